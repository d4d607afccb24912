import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HardenError } from '../../src/errors.js';
import { loadDataset } from '../../src/data/index.js';

let dir: string;

function idxFile(dims: number[], data: Uint8Array): Buffer {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h[2] = 0x08;
  h[3] = dims.length;
  dims.forEach((d, i) => h.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([h, Buffer.from(data)]);
}

/** n images of h×w where image i is filled with value 10·i (mod 256); label i % classes. */
function writeIdx(name: string, n: number, h: number, w: number, classes: number, gz = false): void {
  const px = new Uint8Array(n * h * w);
  for (let i = 0; i < n; i++) px.fill((10 * i) % 256, i * h * w, (i + 1) * h * w);
  const lab = Uint8Array.from({ length: n }, (_, i) => i % classes);
  const im = idxFile([n, h, w], px);
  writeFileSync(path.join(dir, `${name}-images.idx`), gz ? gzipSync(im) : im);
  writeFileSync(path.join(dir, `${name}-labels.idx`), idxFile([n], lab));
}

function cifarRecords(n: number, labelBytes: 1 | 2, label: (i: number) => number, fill: (i: number) => number): Buffer {
  const rec = labelBytes + 3072;
  const b = Buffer.alloc(n * rec);
  for (let i = 0; i < n; i++) {
    if (labelBytes === 2) b[i * rec] = 99; // coarse label, ignored
    b[i * rec + labelBytes - 1] = label(i);
    b.fill(fill(i), i * rec + labelBytes, i * rec + labelBytes + 1024); // R
    b.fill(0, i * rec + labelBytes + 1024, i * rec + labelBytes + 2048); // G
    b.fill(255, i * rec + labelBytes + 2048, (i + 1) * rec); // B
  }
  return b;
}

async function png(file: string, w: number, h: number, rgb: [number, number, number]): Promise<void> {
  await sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toFile(file);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'harden-data-'));
  writeIdx('small', 12, 4, 3, 3);
  writeIdx('gz', 5, 2, 2, 5, true);
  const c10 = path.join(dir, 'c10');
  mkdirSync(c10);
  writeFileSync(path.join(c10, 'data_batch_1.bin'), cifarRecords(4, 1, (i) => i % 10, (i) => i));
  writeFileSync(path.join(c10, 'data_batch_2.bin'), cifarRecords(3, 1, (i) => (i + 4) % 10, (i) => 100 + i));
  writeFileSync(path.join(c10, 'test_batch.bin'), cifarRecords(2, 1, (i) => 9 - i, () => 200));
  writeFileSync(path.join(c10, 'batches.meta.txt'), 'airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n');
  const c100 = path.join(dir, 'c100');
  mkdirSync(c100);
  writeFileSync(path.join(c100, 'train.bin'), cifarRecords(5, 2, (i) => 90 + i, () => 1));
  writeFileSync(path.join(c100, 'test.bin'), cifarRecords(1, 2, () => 42, () => 2));
  // Image folders.
  const f = path.join(dir, 'photos');
  for (const c of ['cat', 'dog', 'ant']) mkdirSync(path.join(f, c), { recursive: true });
  await png(path.join(f, 'ant', 'a.png'), 6, 4, [255, 0, 0]);
  await png(path.join(f, 'ant', 'b.png'), 6, 4, [0, 255, 0]);
  await sharp({ create: { width: 6, height: 4, channels: 3, background: { r: 0, g: 0, b: 255 } } }).jpeg({ quality: 100 }).toFile(path.join(f, 'cat', 'c.jpg'));
  await sharp({ create: { width: 6, height: 4, channels: 4, background: { r: 255, g: 255, b: 255, alpha: 1 } } }).webp({ lossless: true }).toFile(path.join(f, 'dog', 'd.webp'));
  writeFileSync(path.join(f, 'dog', 'notes.txt'), 'ignored');
  const bad = path.join(dir, 'bad');
  mkdirSync(path.join(bad, 'x'), { recursive: true });
  mkdirSync(path.join(bad, 'y'), { recursive: true });
  await png(path.join(bad, 'x', 'ok.png'), 5, 5, [10, 20, 30]);
  await png(path.join(bad, 'y', 'ok.png'), 5, 5, [10, 20, 30]);
  writeFileSync(path.join(bad, 'y', 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\nthis is not a png'));
  const empty = path.join(dir, 'empty');
  mkdirSync(path.join(empty, 'a'), { recursive: true });
  mkdirSync(path.join(empty, 'b'), { recursive: true });
  await png(path.join(empty, 'a', 'ok.png'), 5, 5, [1, 2, 3]);
  const mixed = path.join(dir, 'mixed');
  mkdirSync(path.join(mixed, 'a'), { recursive: true });
  await png(path.join(mixed, 'a', '1.png'), 5, 5, [1, 2, 3]);
  await png(path.join(mixed, 'a', '2.png'), 7, 5, [1, 2, 3]);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function fails(spec: string, re: RegExp): Promise<void> {
  const e = await loadDataset(spec, { baseDir: dir }).then(() => undefined, (x: unknown) => x);
  expect(e, spec).toBeInstanceOf(HardenError);
  expect((e as Error).message).toMatch(re);
  expect((e as Error).message).not.toContain('\n');
}

describe('idx source', () => {
  it('reads images and labels (plain and gzipped)', async () => {
    const d = await loadDataset('idx:images=small-images.idx,labels=small-labels.idx', { baseDir: dir });
    expect(d.shape).toEqual([1, 4, 3]);
    expect(d.labels.length).toBe(12);
    expect(d.classes).toBe(3);
    expect(Array.from(d.labels.slice(0, 4))).toEqual([0, 1, 2, 0]);
    expect(d.images[12 * 5]).toBeCloseTo(50 / 255, 6);
    const g = await loadDataset(`idx:images=${path.join(dir, 'gz-images.idx')},labels=gz-labels.idx`, { baseDir: dir });
    expect(g.shape).toEqual([1, 2, 2]);
    expect(g.classes).toBe(5);
  });

  it('selects, relabels, subsets, resizes, converts channels and normalizes', async () => {
    const base = 'idx:images=small-images.idx,labels=small-labels.idx';
    const d = await loadDataset(`${base},classes=2,0`, { baseDir: dir });
    expect(d.classes).toBe(2);
    expect(Array.from(d.labels)).toEqual([1, 0, 1, 0, 1, 0, 1, 0]); // original 0 → 1, 2 → 0
    const k = await loadDataset(`${base},classes=2,0,relabel=false`, { baseDir: dir });
    expect(Array.from(k.labels)).toEqual([0, 2, 0, 2, 0, 2, 0, 2]);
    expect(k.classes).toBe(3);
    const pc = await loadDataset(`${base},per-class=2,seed=5`, { baseDir: dir });
    expect(pc.labels.length).toBe(6);
    expect([0, 1, 2].map((c) => pc.labels.filter((l) => l === c).length)).toEqual([2, 2, 2]);
    const pc2 = await loadDataset(`${base},per-class=2,seed=6`, { baseDir: dir });
    const lim = await loadDataset(`${base},limit=5`, { baseDir: dir });
    expect(lim.labels.length).toBe(5);
    expect(Array.from(pc.images)).toEqual(Array.from((await loadDataset(`${base},per-class=2,seed=5`, { baseDir: dir })).images));
    expect(Array.from(pc2.images)).not.toEqual(Array.from(pc.images));
    const r = await loadDataset(`${base},size=8,channels=3,mean=0.5,std=0.25`, { baseDir: dir });
    expect(r.shape).toEqual([3, 8, 8]);
    // image 1 is constant 10/255: resize keeps it, each channel normalized.
    const v = (10 / 255 - 0.5) / 0.25;
    for (let p = 0; p < 3 * 64; p++) expect(r.images[3 * 64 + p]).toBeCloseTo(v, 5);
    await fails(`${base},classes=3`, /class 3 does not exist/);
    await fails(`${base},mean=0.1,0.2,0.3`, /mean: 3 values for 1 channels/);
  });

  it('reports bad files', async () => {
    writeFileSync(path.join(dir, 'trunc.idx'), idxFile([3, 2, 2], new Uint8Array(5)));
    await fails('idx:images=trunc.idx,labels=small-labels.idx', /trunc\.idx: IDX header says 3×2×2 = 12 bytes but the file holds 5/);
    await fails('idx:images=small-images.idx,labels=gz-labels.idx', /5 labels for 12 images/);
    await fails('idx:images=missing.idx,labels=gz-labels.idx', /missing\.idx: cannot read \(ENOENT\)/);
  });
});

describe('cifar source', () => {
  it('reads CIFAR-10 batches per split', async () => {
    const tr = await loadDataset('cifar:c10,split=train', { baseDir: dir });
    expect(tr.shape).toEqual([3, 32, 32]);
    expect(tr.labels.length).toBe(7);
    expect(Array.from(tr.labels)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(tr.classes).toBe(10);
    expect(tr.classNames?.[3]).toBe('cat');
    expect(tr.images[4 * 3072]).toBeCloseTo(100 / 255, 6); // R of image 4 (first of batch 2)
    expect(tr.images[4 * 3072 + 1024]).toBe(0); // G
    expect(tr.images[4 * 3072 + 2048]).toBe(1); // B
    const te = await loadDataset('cifar:c10,split=test', { baseDir: dir });
    expect(Array.from(te.labels)).toEqual([9, 8]);
    expect((await loadDataset('cifar:c10,split=all', { baseDir: dir })).labels.length).toBe(9);
  });

  it('reads CIFAR-100 fine labels', async () => {
    const tr = await loadDataset('cifar:c100', { baseDir: dir });
    expect(tr.classes).toBe(100);
    expect(Array.from(tr.labels)).toEqual([90, 91, 92, 93, 94]);
    const te = await loadDataset('cifar:c100,split=test,channels=1', { baseDir: dir });
    expect(te.shape).toEqual([1, 32, 32]);
    expect(te.labels[0]).toBe(42);
    expect(te.images[0]).toBeCloseTo((0.299 * 2 + 0.114 * 255) / 255, 5);
  });

  it('reports bad folders and files', async () => {
    await fails('cifar:photos', /no CIFAR binary batches/);
    mkdirSync(path.join(dir, 'c10bad'));
    writeFileSync(path.join(dir, 'c10bad', 'data_batch_3.bin'), Buffer.alloc(100));
    await fails('cifar:c10bad,split=train', /data_batch_3\.bin: 100 bytes is not a whole number of 3073-byte CIFAR records/);
    await fails('cifar:c10bad,split=test', /c10bad: no test batch \(expected test_batch\.bin\)/);
  });
});

describe('folder source', () => {
  it('decodes png, jpeg and webp per class folder, classes sorted by name', async () => {
    const d = await loadDataset('folder:photos', { baseDir: dir });
    expect(d.classNames).toEqual(['ant', 'cat', 'dog']);
    expect(Array.from(d.labels)).toEqual([0, 0, 1, 2]);
    expect(d.shape).toEqual([3, 4, 6]);
    const plane = 24;
    const px = (i: number, c: number) => d.images[i * 3 * plane + c * plane]!;
    expect([px(0, 0), px(0, 1), px(0, 2)]).toEqual([1, 0, 0]); // red png
    expect([px(1, 0), px(1, 1), px(1, 2)]).toEqual([0, 1, 0]); // green png
    expect(px(2, 2)).toBeGreaterThan(0.95); // blue jpeg
    expect(px(2, 0)).toBeLessThan(0.05);
    expect([px(3, 0), px(3, 1), px(3, 2)]).toEqual([1, 1, 1]); // white webp, alpha dropped
    const s = await loadDataset('folder:photos,size=8,channels=1', { baseDir: dir });
    expect(s.shape).toEqual([1, 8, 8]);
    expect(s.images[3 * 64]).toBeCloseTo(1, 2);
  });

  it('names a corrupt image, or skips and counts it with skip-bad=true', async () => {
    await fails('folder:bad', /bad[\\/]y[\\/]broken\.png: cannot decode image/);
    const d = await loadDataset('folder:bad,skip-bad=true', { baseDir: dir });
    expect(d.labels.length).toBe(2);
    expect(d.skipped).toBe(1);
    expect(Array.from(d.labels)).toEqual([0, 1]);
  });

  it('rejects empty class folders, mixed sizes without size= and missing folders', async () => {
    await fails('folder:empty', /empty[\\/]b: empty class folder/);
    await fails('folder:mixed', /mixed[\\/]a[\\/]2\.png: image is 7×5 but earlier images are 5×5; give size=N/);
    expect((await loadDataset('folder:mixed,size=5', { baseDir: dir })).shape).toEqual([3, 5, 5]);
    await fails('folder:nowhere', /nowhere: cannot read the image folder \(ENOENT\)/);
  });
});
