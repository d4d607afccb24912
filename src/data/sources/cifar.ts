/**
 * `cifar`: CIFAR-10 or CIFAR-100 binary version, from a folder.
 * - CIFAR-10 (`cifar-10-batches-bin`): `data_batch_1.bin` … `data_batch_5.bin` (train) and
 *   `test_batch.bin` (test); records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32×32).
 *   Class names from `batches.meta.txt` when present.
 * - CIFAR-100 (`cifar-100-binary`): `train.bin` and `test.bin`; records of 2 label bytes (coarse,
 *   fine) + 3072 pixel bytes; the fine label (100 classes) is used. Names from
 *   `fine_label_names.txt` when present.
 * Train batches present in the folder are all used (a folder with only some data_batch files loads
 * those). split=all is train followed by test.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { HardenError } from '../../errors.js';
import type { RawData } from '../types.js';
import { cached, concatRaw } from './common.js';

const PIXELS = 3 * 32 * 32;

async function readRecords(file: string, labelBytes: 1 | 2, classes: number): Promise<RawData> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    throw new HardenError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const rec = labelBytes + PIXELS;
  if (buf.length === 0 || buf.length % rec !== 0) {
    throw new HardenError(`${file}: ${buf.length} bytes is not a whole number of ${rec}-byte CIFAR records`);
  }
  const n = buf.length / rec;
  const pixels = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * rec;
    const label = buf[o + labelBytes - 1]!;
    if (label >= classes) throw new HardenError(`${file}: record ${i} has label ${label}, expected < ${classes}`);
    labels[i] = label;
    pixels.set(buf.subarray(o + labelBytes, o + rec), i * PIXELS);
  }
  return { pixels, labels, shape: [3, 32, 32], classes };
}

function names(file: string): Promise<string[] | undefined> {
  if (!existsSync(file)) return Promise.resolve(undefined);
  return readFile(file, 'utf8').then((t) => t.split(/\r?\n/).map((s) => s.trim()).filter((s) => s !== ''));
}

export function loadCifar(dir: string, split: 'train' | 'test' | 'all'): Promise<RawData> {
  return cached(`cifar:${dir}:${split}`, async () => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch (e) {
      throw new HardenError(`${dir}: cannot read the CIFAR folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const c10train = entries.filter((f) => /^data_batch_\d+\.bin$/.test(f)).sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]));
    const c10 = c10train.length > 0 || entries.includes('test_batch.bin');
    const c100 = entries.includes('train.bin') || entries.includes('test.bin');
    if (!c10 && !c100) {
      throw new HardenError(`${dir}: no CIFAR binary batches (expected data_batch_*.bin/test_batch.bin or train.bin/test.bin)`);
    }
    if (c10 && c100) throw new HardenError(`${dir}: holds both CIFAR-10 and CIFAR-100 files; keep one`);
    const trainFiles = c10 ? c10train : ['train.bin'].filter((f) => entries.includes(f));
    const testFiles = c10 ? ['test_batch.bin'].filter((f) => entries.includes(f)) : ['test.bin'].filter((f) => entries.includes(f));
    const files = [...(split === 'test' ? [] : trainFiles), ...(split === 'train' ? [] : testFiles)];
    if (files.length === 0) {
      throw new HardenError(`${dir}: no ${split} batch (expected ${split === 'test' ? (c10 ? 'test_batch.bin' : 'test.bin') : c10 ? 'data_batch_*.bin' : 'train.bin'})`);
    }
    const classes = c10 ? 10 : 100;
    const parts = await Promise.all(files.map((f) => readRecords(path.join(dir, f), c10 ? 1 : 2, classes)));
    const raw = concatRaw(parts);
    const classNames = await names(path.join(dir, c10 ? 'batches.meta.txt' : 'fine_label_names.txt'));
    return { ...raw, classNames: classNames && classNames.length === classes ? classNames : undefined };
  });
}
