/**
 * `idx`: a pair of IDX files, the original MNIST format (optionally gzipped): big-endian header
 * `0x00 0x00 <type> <ndims>` then ndims uint32 sizes, then the data. Images: type 0x08 (uint8),
 * 3 dims N×H×W (one channel) or 4 dims N×C×H×W; labels: type 0x08, 1 dim N.
 * `classes` = the largest label + 1.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { HardenError } from '../../errors.js';
import type { RawData } from '../types.js';
import { cached } from './common.js';

interface Idx {
  dims: number[];
  data: Uint8Array;
}

export function parseIdx(buf: Uint8Array, file: string): Idx {
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw new HardenError(`${file}: corrupt gzip data (${(e as Error).message})`);
    }
  }
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) throw new HardenError(`${file}: not an IDX file (bad magic number)`);
  if (buf[2] !== 0x08) {
    throw new HardenError(`${file}: IDX element type 0x${buf[2]!.toString(16).padStart(2, '0')} is not supported (only 0x08, unsigned byte)`);
  }
  const nd = buf[3]!;
  if (nd < 1 || buf.length < 4 + 4 * nd) throw new HardenError(`${file}: truncated IDX header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * nd;
  if (buf.length - start !== count) {
    throw new HardenError(`${file}: IDX header says ${dims.join('×')} = ${count} bytes but the file holds ${buf.length - start}`);
  }
  return { dims, data: buf.subarray(start) };
}

async function read(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (e) {
    throw new HardenError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

export function loadIdx(imagesFile: string, labelsFile: string): Promise<RawData> {
  return cached(`idx:${imagesFile}:${labelsFile}`, async () => {
    const [ib, lb] = await Promise.all([read(imagesFile), read(labelsFile)]);
    const im = parseIdx(ib, imagesFile);
    const lab = parseIdx(lb, labelsFile);
    if (im.dims.length !== 3 && im.dims.length !== 4) {
      throw new HardenError(`${imagesFile}: IDX images must have 3 dims (N×H×W) or 4 (N×C×H×W), got ${im.dims.length}`);
    }
    if (lab.dims.length !== 1) throw new HardenError(`${labelsFile}: IDX labels must have 1 dim, got ${lab.dims.length}`);
    const [n, ...rest] = im.dims as [number, ...number[]];
    if (lab.dims[0] !== n) throw new HardenError(`${labelsFile}: ${lab.dims[0]} labels for ${n} images in ${imagesFile}`);
    if (n === 0) throw new HardenError(`${imagesFile}: no images`);
    const shape = (rest.length === 2 ? [1, rest[0]!, rest[1]!] : rest) as [number, number, number];
    const labels = Int32Array.from(lab.data);
    let classes = 0;
    for (const l of labels) classes = Math.max(classes, l + 1);
    return { pixels: im.data, labels, shape, classes };
  });
}
