import { describe, expect, it } from 'vitest';
import { batches } from '../../src/data/loader.js';
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
