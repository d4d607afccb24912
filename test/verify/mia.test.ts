import { describe, it, expect } from 'vitest';
import { evaluate } from '../../src/verify/evaluate.js';
import { crossEntropyLosses, exampleLosses, lossThresholdAttack, membershipInference } from '../../src/verify/mia.js';
import { tinyNet, synthetic } from '../helpers/tiny.js';

describe('lossThresholdAttack', () => {
  it('matches a hand computation', () => {
    // Sorted: 0.1 M, 0.15 N, 0.2 M, 0.3 M, 0.5 N, 0.6 N, 0.7 N, 0.9 M. TPR − FPR after each:
    // .25, 0, .25, .5, .25, 0, −.25, 0 → best .5 at t = 0.3 (TPR 3/4, FPR 1/4).
    // AUC: member/non-member pairs with the member lower: 4 + 3 + 3 + 0 = 10 of 16.
    const r = lossThresholdAttack([0.1, 0.2, 0.3, 0.9], [0.5, 0.6, 0.7, 0.15]);
    expect(r.advantage).toBeCloseTo(0.5, 12);
    expect(r.threshold).toBe(0.3);
    expect(r.tpr).toBe(0.75);
    expect(r.fpr).toBe(0.25);
    expect(r.auc).toBeCloseTo(10 / 16, 12);
    expect([r.members, r.nonMembers]).toEqual([4, 4]);
  });

  it('gives 0 advantage and AUC 1/2 for identical distributions', () => {
    const r = lossThresholdAttack([0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]);
    expect(r.advantage).toBe(0);
    expect(r.threshold).toBe(-Infinity);
    expect(r.auc).toBeCloseTo(0.5, 12);
  });

  it('gives 1 for perfectly separated losses, and 0 (AUC 0) when members have the higher losses', () => {
    const sep = lossThresholdAttack([0.01, 0.02, 0.03], [1, 2]);
    expect([sep.advantage, sep.threshold, sep.auc]).toEqual([1, 0.03, 1]);
    const rev = lossThresholdAttack([1, 2], [0.01, 0.02, 0.03]);
    expect([rev.advantage, rev.auc]).toEqual([0, 0]);
  });

  it('counts tied losses once, as half in the AUC', () => {
    // One threshold 0.5 flags everyone: TPR = FPR = 1. AUC is the diagonal, 1/2.
    const r = lossThresholdAttack([0.5, 0.5], [0.5]);
    expect(r.advantage).toBe(0);
    expect(r.auc).toBeCloseTo(0.5, 12);
  });

  it('rejects empty sets', () => {
    expect(() => lossThresholdAttack([], [1])).toThrow(/members/);
  });
});

describe('losses', () => {
  it('cross-entropy by hand', () => {
    // logits (0, ln 3): softmax (1/4, 3/4).
    const l = crossEntropyLosses(Float32Array.of(0, Math.log(3), 0, Math.log(3)), Int32Array.of(0, 1), 2);
    expect(l[0]).toBeCloseTo(Math.log(4), 6);
    expect(l[1]).toBeCloseTo(Math.log(4 / 3), 6);
  });

  it('onnxruntime per-example losses average to evaluate()', async () => {
    const net = tinyNet(2);
    const data = synthetic(20, 3, 'halves');
    const losses = await exampleLosses(net.proto, data, 7, { threads: 1 });
    expect(losses).toHaveLength(20);
    const mean = losses.reduce((a, b) => a + b, 0) / losses.length;
    expect(mean).toBeCloseTo((await evaluate(net.proto, data)).loss, 5);
    const r = await membershipInference(net.proto, data, synthetic(12, 4, 'halves'), 256, { threads: 1 });
    expect([r.members, r.nonMembers]).toEqual([20, 12]);
    expect(r.advantage).toBeGreaterThanOrEqual(0);
    expect(r.advantage).toBeLessThanOrEqual(1);
  });
});
