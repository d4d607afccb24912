import { describe, it, expect } from 'vitest';
import { subsetDataset, withUnlabelledImages } from '../../src/data/subset.js';
import type { Dataset } from '../../src/data/types.js';

const ds = (name: string, n: number, first: number, shape: [number, number, number] = [1, 1, 2]): Dataset => ({
  name, shape, classes: 3,
  images: Float32Array.from({ length: n * shape[0] * shape[1] * shape[2] }, (_, i) => first + i),
  labels: Int32Array.from({ length: n }, (_, i) => (i % 2) + 1),
});

describe('subsetDataset', () => {
  it('takes the images and labels at the indices, in that order', () => {
    const s = subsetDataset(ds('a', 3, 0), [2, 0]);
    expect(Array.from(s.images)).toEqual([4, 5, 0, 1]);
    expect(Array.from(s.labels)).toEqual([1, 1]);
  });
});

describe('withUnlabelledImages', () => {
  it("appends the other set's images under label 0 and keeps the first set's labels and classes", () => {
    const out = withUnlabelledImages(ds('retain', 2, 0), ds('forget', 2, 100));
    expect(Array.from(out.images)).toEqual([0, 1, 2, 3, 100, 101, 102, 103]);
    expect(Array.from(out.labels)).toEqual([1, 2, 0, 0]);
    expect(out.classes).toBe(3);
    expect(out.name).toBe('retain+forget');
  });

  it('refuses images of another shape', () => {
    expect(() => withUnlabelledImages(ds('retain', 2, 0), ds('forget', 1, 0, [1, 2, 2]))).toThrow(/'forget' images are 1×2×2, 'retain' 1×1×2/);
  });
});
