import { describe, it, expect, beforeAll } from 'vitest';
import { initializerMap } from '../../src/onnx/model.js';
import { hostToFloat32 } from '../../src/onnx/tensor.js';
import { initBackend } from '../../src/engine/backend.js';
import { pruneModel, DEFAULT_PRUNE_SETTINGS } from '../../src/harden/prune.js';
import { fineTune } from '../../src/verify/finetune.js';
import { learningCurveAuc, nestedSubsets, pruningMasks, slcAttack } from '../../src/verify/slc.js';
import { splitDataset } from '../../src/verify/split.js';
import { tinyNet, synthetic } from '../helpers/tiny.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('learningCurveAuc', () => {
  it('matches a hand computation on a given curve', () => {
    // ln(0.1) − ln(0.01) = ln(1) − ln(0.1) = ln 10; areas ln10·(0.2+0.5)/2 + ln10·(0.5+0.8)/2 = ln 10.
    expect(learningCurveAuc([{ fraction: 0.01, accuracy: 0.2 }, { fraction: 0.1, accuracy: 0.5 }, { fraction: 1, accuracy: 0.8 }])).toBeCloseTo(Math.log(10), 12);
    // Uneven spacing: (ln 0.005 − ln 0.001)·(0.1+0.3)/2 + (ln 1 − ln 0.005)·(0.3+0.9)/2.
    const expected = Math.log(5) * 0.2 + Math.log(200) * 0.6;
    expect(learningCurveAuc([{ fraction: 0.001, accuracy: 0.1 }, { fraction: 0.005, accuracy: 0.3 }, { fraction: 1, accuracy: 0.9 }])).toBeCloseTo(expected, 12);
    expect(learningCurveAuc([{ fraction: 0.5, accuracy: 0.7 }])).toBe(0);
  });

  it('SLC-AUC of two curves is the difference of their areas', () => {
    const fractions = [0.001, 0.01, 0.1, 1];
    const model = fractions.map((fraction, i) => ({ fraction, accuracy: [0.3, 0.5, 0.7, 0.9][i]! }));
    const scratch = fractions.map((fraction, i) => ({ fraction, accuracy: [0.1, 0.4, 0.7, 0.9][i]! }));
    // Gaps 0.2, 0.1, 0, 0 → ln10·(0.15 + 0.05 + 0).
    expect(learningCurveAuc(model) - learningCurveAuc(scratch)).toBeCloseTo(Math.log(10) * 0.2, 12);
  });

  it('rejects fractions out of order', () => {
    expect(() => learningCurveAuc([{ fraction: 0.1, accuracy: 0 }, { fraction: 0.01, accuracy: 0 }])).toThrow(/must increase/);
  });
});

describe('nestedSubsets', () => {
  const labels = Int32Array.from({ length: 1000 }, (_, i) => (i * 7) % 10);
  const subsets = nestedSubsets(labels, [0.001, 0.01, 0.1, 1], 3);

  it('takes at least one image per class, then round(r·N)', () => {
    expect(subsets.map((s) => s.length)).toEqual([10, 10, 100, 1000]);
    expect(new Set(subsets[0]!.map((i) => labels[i])).size).toBe(10);
  });

  it('nests smaller fractions inside larger ones', () => {
    for (let k = 1; k < subsets.length; k++) {
      const larger = new Set(subsets[k]);
      expect(subsets[k - 1]!.every((i) => larger.has(i))).toBe(true);
    }
  });

  it('depends on the seed only', () => {
    expect(nestedSubsets(labels, [0.1], 3)).toEqual([subsets[2]]);
    expect(nestedSubsets(labels, [0.1], 4)).not.toEqual([subsets[2]]);
  });
});

describe('the SLC attack on a tiny pruned net', () => {
  const keep = synthetic(96, 1, 'quadrants');
  const pool = synthetic(120, 5, 'halves');
  const test = synthetic(40, 6, 'halves');
  const { train, val } = splitDataset(pool, 0.2, 0);
  const opts = { fractions: [0.05, 0.2, 1], steps: 4, batchSize: 8, learningRates: [1e-3, 1e-2], seed: 0 };

  it('finds the pruned weights (not the replaced classifier) and holds them at zero when masked', async () => {
    const pruned = await pruneModel(tinyNet(4), 'tiny', { keep }, { ...DEFAULT_PRUNE_SETTINGS, method: 'magnitude', sparsity: 0.5, finetuneSteps: 0 });
    const masks = pruningMasks(pruned.proto, ['fw', 'fb']);
    expect([...masks.keys()]).toEqual(['cw', 'hw']);
    const tuned = await fineTune({ proto: pruned.proto }, 'tiny', train, { steps: 3, batchSize: 8, learningRate: 0.05, seed: 1, masks });
    const w = hostToFloat32(initializerMap(tuned).get('hw')!);
    masks.get('hw')!.forEach((m, i) => (m ? expect(w[i]).not.toBe(0) : expect(w[i]).toBe(0)));
  });

  it('reports dense, masked and scratch curves whose areas give SLC-AUC', async () => {
    const pruned = await pruneModel(tinyNet(4), 'tiny', { keep }, { ...DEFAULT_PRUNE_SETTINGS, method: 'magnitude', sparsity: 0.5, finetuneSteps: 0 });
    const r = await slcAttack({ proto: pruned.proto }, { train, val, test }, opts, 0);
    for (const curve of [r.model, r.masked!, r.scratch]) {
      expect(curve.points.map((p) => p.fraction)).toEqual(opts.fractions);
      expect(curve.points.map((p) => p.images)).toEqual([5, 19, 96]) // round(0.05·96), round(0.2·96), 96;
      for (const p of curve.points) expect(p.accuracy).toBeGreaterThanOrEqual(0), expect(p.accuracy).toBeLessThanOrEqual(1), expect(opts.learningRates).toContain(p.learningRate);
      expect(curve.auc).toBeCloseTo(learningCurveAuc(curve.points), 12);
    }
    expect(r.slcAuc).toBeCloseTo(r.model.auc - r.scratch.auc, 12);
    expect(r.slcAucMasked).toBeCloseTo(r.masked!.auc - r.scratch.auc, 12);
  });

  it('has no masked curve for a dense model', async () => {
    const r = await slcAttack(tinyNet(4), { train, val, test }, { ...opts, fractions: [0.5, 1], learningRates: [1e-2] }, 0);
    expect(r.masked).toBeUndefined();
    expect(r.slcAucMasked).toBeUndefined();
  });
});
