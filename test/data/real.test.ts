import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../src/data/index.js';
import type { Dataset } from '../../src/data/types.js';

function hashes(d: Dataset): Set<string> {
  const per = d.shape[0] * d.shape[1] * d.shape[2];
  const s = new Set<string>();
  for (let i = 0; i < d.labels.length; i++) {
    s.add(createHash('sha1').update(d.images.subarray(i * per, (i + 1) * per)).digest('base64'));
  }
  return s;
}

function counts(d: Dataset): number[] {
  const c = new Array(d.classes).fill(0);
  for (const l of d.labels) c[l]++;
  return c;
}

describe('mnist package', () => {
  it('splits 8 000 / 2 000, stratified and disjoint', async () => {
    const tr = await loadDataset('mnist:split=train');
    const te = await loadDataset('mnist:split=test');
    expect(tr.labels.length).toBe(8000);
    expect(te.labels.length).toBe(2000);
    expect(tr.shape).toEqual([1, 28, 28]);
    expect(counts(te)).toEqual([200, 225, 198, 206, 196, 173, 203, 214, 189, 196]);
    expect(counts(tr).map((n, c) => n + counts(te)[c]!)).toEqual([1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
    const a = hashes(tr);
    const b = hashes(te);
    expect(a.size + b.size).toBe(10000);
    for (const h of b) expect(a.has(h)).toBe(false);
    expect((await loadDataset('mnist:split=all')).labels.length).toBe(10000);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of tr.images) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect([lo, hi]).toEqual([0, expect.closeTo(1, 2)]);
  });
});

describe('fashion-mnist package', () => {
  it('gives train 59 990 / test 10 000, disjoint', async () => {
    const tr = await loadDataset('fashion-mnist:split=train');
    const te = await loadDataset('fashion-mnist:split=test');
    expect(tr.labels.length).toBe(59990);
    expect(te.labels.length).toBe(10000);
    expect(counts(te)).toEqual(new Array(10).fill(1000));
    expect(counts(tr)).toEqual([6000, 5998, 5999, 5996, 5999, 6000, 5998, 6000, 6000, 6000]);
    expect(tr.classNames?.[9]).toBe('Ankle boot');
    const a = hashes(tr);
    for (const h of hashes(te)) expect(a.has(h)).toBe(false);
  });

  it('loads selected classes with the documented options', async () => {
    const d = await loadDataset('fashion-mnist:split=train,classes=0-4,limit=1000,size=32,channels=3');
    expect(d.labels.length).toBe(1000);
    expect(d.shape).toEqual([3, 32, 32]);
    expect(d.classes).toBe(5);
    expect(d.classNames).toEqual(['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat']);
    expect(Math.max(...d.labels)).toBe(4);
    const inv = await loadDataset('fashion-mnist+invert:split=test,classes=9,per-class=3');
    const plain = await loadDataset('fashion-mnist:split=test,classes=9,per-class=3');
    for (let i = 0; i < plain.images.length; i++) expect(inv.images[i]).toBeCloseTo(1 - plain.images[i]!, 6);
  });
});
