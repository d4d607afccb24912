import { describe, expect, it } from 'vitest';
import { batches, ClassChunkSampler, FixedBatchSampler, StepSampler } from '../../src/data/loader.js';
import type { Dataset } from '../../src/data/types.js';

function toy(n: number): Dataset {
  const images = new Float32Array(n * 2 * 2 * 2);
  for (let i = 0; i < n; i++) images.fill(i, i * 8, (i + 1) * 8);
  return { name: 'toy', images, labels: Int32Array.from({ length: n }, (_, i) => i % 3), shape: [2, 2, 2], classes: 3 };
}

const collect = (ds: Dataset, o: Parameters<typeof batches>[1]) => [...batches(ds, o)].map((b) => Array.from(b.indices));

describe('batches', () => {
  const ds = toy(10);

  it('yields NCHW batches matching their indices', () => {
    const all = [...batches(ds, { batchSize: 4, seed: 1 })];
    expect(all.map((b) => b.x.shape)).toEqual([[4, 2, 2, 2], [4, 2, 2, 2], [2, 2, 2, 2]]);
    for (const b of all) {
      expect(b.x.dtype).toBe('float32');
      b.indices.forEach((i, k) => {
        expect(Array.from((b.x.data as Float32Array).subarray(k * 8, k * 8 + 8))).toEqual(new Array(8).fill(i));
        expect(b.y[k]).toBe(i % 3);
      });
    }
    expect(all.flatMap((b) => Array.from(b.indices)).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('is deterministic per (seed, epoch) and differs otherwise', () => {
    const a = collect(ds, { batchSize: 3, seed: 7, epoch: 2 });
    expect(collect(ds, { batchSize: 3, seed: 7, epoch: 2 })).toEqual(a);
    expect(collect(ds, { batchSize: 3, seed: 8, epoch: 2 })).not.toEqual(a);
    expect(collect(ds, { batchSize: 3, seed: 7, epoch: 3 })).not.toEqual(a);
  });

  it('keeps order without shuffle and drops the last partial batch on request', () => {
    expect(collect(ds, { batchSize: 4, seed: 1, shuffle: false })).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    expect(collect(ds, { batchSize: 4, seed: 1, shuffle: false, dropLast: true })).toEqual([[0, 1, 2, 3], [4, 5, 6, 7]]);
    expect(() => [...batches(ds, { batchSize: 0, seed: 1 })]).toThrow(/batchSize/);
  });
});

describe('ClassChunkSampler', () => {
  const ds = toy(30); // image i is filled with i, label i % 3

  it('each chunk holds images of one class, the classes of a batch are distinct, labels match images', () => {
    const sampler = new ClassChunkSampler(ds, 2, 4, 3);
    const seenPairs = new Set<string>();
    for (let step = 0; step < 20; step++) {
      const b = sampler.batch(step);
      expect(b.x.shape).toEqual([8, 2, 2, 2]);
      const data = b.x.data as Float32Array;
      for (let k = 0; k < 8; k++) expect(data[k * 8]! % 3).toBe(b.y[k]);
      const chunkClasses = [0, 1].map((c) => new Set(b.y.subarray(c * 4, (c + 1) * 4)));
      for (const classes of chunkClasses) expect(classes.size).toBe(1);
      const [a, c] = chunkClasses.map((s) => [...s][0]!);
      expect(a).not.toBe(c);
      seenPairs.add(`${a},${c}`);
    }
    expect(seenPairs.size).toBeGreaterThan(2); // the classes are redrawn per step
  });

  it('depends only on (seed, step)', () => {
    const a = new ClassChunkSampler(ds, 3, 2, 9), b = new ClassChunkSampler(ds, 3, 2, 9);
    expect(Array.from(b.batch(5).x.data as Float32Array)).toEqual(Array.from(a.batch(5).x.data as Float32Array));
    expect(Array.from(new ClassChunkSampler(ds, 3, 2, 10).batch(5).x.data as Float32Array)).not.toEqual(Array.from(a.batch(5).x.data as Float32Array));
  });

  it('needs as many classes as chunks', () => {
    expect(() => new ClassChunkSampler(ds, 4, 2, 0)).toThrow(/4 chunks need 4 classes/);
  });
});

describe('FixedBatchSampler', () => {
  it('returns one seeded batch at every step, and refuses more examples than there are', () => {
    const ds = toy(30);
    const a = new FixedBatchSampler(ds, 8, 4);
    expect(Array.from(a.batch(7).y)).toEqual(Array.from(a.batch(0).y));
    expect(Array.from(a.batch(3).x.data as Float32Array)).toEqual(Array.from(new StepSampler(ds, 8, 4).batch(0).x.data as Float32Array));
    expect(() => new FixedBatchSampler(ds, 31, 0)).toThrow(/31 examples wanted/);
  });
});
