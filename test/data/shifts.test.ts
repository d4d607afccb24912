import { describe, expect, it } from 'vitest';
import { applyShifts, type Images } from '../../src/data/shifts.js';

const img = (vals: number[], shape: [number, number, number], n = 1): Images => ({ data: Float32Array.from(vals), n, shape });
const arr = (x: Images) => Array.from(x.data).map((v) => Math.round(v * 1e6) / 1e6);

describe('shifts', () => {
  it('invert gives 1 − x', () => {
    expect(arr(applyShifts(img([0, 0.25, 1, 0.5], [1, 2, 2]), [{ name: 'invert' }], 0))).toEqual([1, 0.75, 0, 0.5]);
  });

  it('rotate 90 turns a 2×2 counter-clockwise, 180 reverses, 360 is identity', () => {
    // [[a b],[c d]] → [[b d],[a c]]
    const x = img([1, 2, 3, 4], [1, 2, 2]);
    expect(arr(applyShifts(x, [{ name: 'rotate', value: 90 }], 0))).toEqual([2, 4, 1, 3]);
    expect(arr(applyShifts(x, [{ name: 'rotate', value: 180 }], 0))).toEqual([4, 3, 2, 1]);
    expect(arr(applyShifts(x, [{ name: 'rotate', value: -90 }], 0))).toEqual([3, 1, 4, 2]);
    expect(arr(applyShifts(x, [{ name: 'rotate', value: 360 }], 0))).toEqual([1, 2, 3, 4]);
    const odd = img([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3]);
    expect(arr(applyShifts(odd, [{ name: 'rotate', value: 90 }], 0))).toEqual([3, 6, 9, 2, 5, 8, 1, 4, 7]);
  });

  it('pad adds zeros around, rgb replicates, blur averages', () => {
    const p = applyShifts(img([1], [1, 1, 1]), [{ name: 'pad', value: 1 }], 0);
    expect(p.shape).toEqual([1, 3, 3]);
    expect(arr(p)).toEqual([0, 0, 0, 0, 1, 0, 0, 0, 0]);
    const r = applyShifts(img([0.1, 0.2], [1, 1, 2]), [{ name: 'rgb' }], 0);
    expect(r.shape).toEqual([3, 1, 2]);
    expect(arr(r)).toEqual([0.1, 0.2, 0.1, 0.2, 0.1, 0.2]);
    const b = applyShifts(img([0, 0, 0, 0, 9, 0, 0, 0, 0], [1, 3, 3]), [{ name: 'blur', value: 3 }], 0);
    // Every 3×3 window of a 3×3 image (edges repeated) holds the centre once: all pixels become 9/9.
    expect(arr(b)).toEqual(new Array(9).fill(1));
    const row = applyShifts(img([0, 0, 3, 0, 0], [1, 1, 5]), [{ name: 'blur', value: 3 }], 0);
    expect(arr(row)).toEqual([0, 1, 1, 1, 0]);
  });

  it('noise is seeded, clamped and has the requested σ', () => {
    const x = img(new Array(4096).fill(0.5), [1, 64, 64]);
    const a = applyShifts(x, [{ name: 'noise', value: 0.1 }], 3);
    expect(arr(applyShifts(x, [{ name: 'noise', value: 0.1 }], 3))).toEqual(arr(a));
    expect(arr(applyShifts(x, [{ name: 'noise', value: 0.1 }], 4))).not.toEqual(arr(a));
    const d = Array.from(a.data).map((v) => v - 0.5);
    const sd = Math.sqrt(d.reduce((s, v) => s + v * v, 0) / d.length);
    expect(sd).toBeGreaterThan(0.09);
    expect(sd).toBeLessThan(0.11);
    const big = applyShifts(x, [{ name: 'noise', value: 5 }], 3);
    expect(Math.min(...big.data)).toBe(0);
    expect(Math.max(...big.data)).toBe(1);
  });

  it('usps keeps the shape and leaves a constant image unchanged', () => {
    const x = img(new Array(28 * 28).fill(0.3), [1, 28, 28]);
    const u = applyShifts(x, [{ name: 'usps' }], 0);
    expect(u.shape).toEqual([1, 28, 28]);
    for (const v of u.data) expect(v).toBeCloseTo(0.3, 6);
    const edge = img(Array.from({ length: 28 * 28 }, (_, i) => (i % 28 < 14 ? 0 : 1)), [1, 28, 28]);
    const e = applyShifts(edge, [{ name: 'usps' }], 0);
    expect(arr(e)).not.toEqual(arr(edge)); // the sharp edge is softened
  });

  it('colorize gives 3 seeded channels of |texture − x|', () => {
    const x = img(new Array(2 * 8 * 8).fill(0).map((_, i) => (i % 5 === 0 ? 1 : 0)), [1, 8, 8], 2);
    const c = applyShifts(x, [{ name: 'colorize' }], 1);
    expect(c.shape).toEqual([3, 8, 8]);
    expect(c.data.length).toBe(2 * 3 * 64);
    expect(arr(applyShifts(x, [{ name: 'colorize' }], 1))).toEqual(arr(c));
    expect(arr(applyShifts(x, [{ name: 'colorize' }], 2))).not.toEqual(arr(c));
    for (const v of c.data) expect(v >= 0 && v <= 1).toBe(true);
    // Same texture under a digit pixel and its inverse: |t − 1| + |t − 0| = 1.
    const inv = applyShifts({ ...x, data: x.data.map((v) => 1 - v) }, [{ name: 'colorize' }], 1);
    for (let i = 0; i < c.data.length; i++) expect(c.data[i]! + inv.data[i]!).toBeCloseTo(1, 5);
  });
});
