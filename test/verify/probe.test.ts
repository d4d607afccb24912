import { describe, it, expect } from 'vitest';
import type { FeatureSet } from '../../src/verify/features.js';
import { fitSoftmaxRegression, linearProbe } from '../../src/verify/probe.js';
import { Random } from '../../src/util/random.js';

/** n examples of `classes` Gaussian clusters in `dim` dimensions: class c is centred at 3·e_c. */
function clusters(n: number, dim: number, classes: number, seed: number, noise = 0.5): FeatureSet {
  const rng = new Random(seed);
  const features = new Float32Array(n * dim), labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = (labels[i] = i % classes);
    for (let j = 0; j < dim; j++) features[i * dim + j] = (j === c ? 3 : 0) + noise * rng.normal();
  }
  return { features, labels, dim, classes };
}

/** Gaussian features with labels drawn independently of them. */
function noise(n: number, dim: number, classes: number, seed: number): FeatureSet {
  const rng = new Random(seed);
  return { features: rng.normalArray(n * dim), labels: Int32Array.from({ length: n }, () => rng.int(classes)), dim, classes };
}

describe('fitSoftmaxRegression', () => {
  it('reaches the analytic optimum of a symmetric two-point problem', () => {
    // x = ∓1 (already standardized) with labels 0, 1. By symmetry w1 = −w0 = a, b = 0, and the
    // objective log(1 + e^{−2a}) + λa² is stationary where λ·a·(1 + e^{2a}) = 1.
    const l2 = 1;
    let lo = 0, hi = 1;
    for (let k = 0; k < 60; k++) {
      const a = (lo + hi) / 2;
      if (l2 * a * (1 + Math.exp(2 * a)) < 1) lo = a;
      else hi = a;
    }
    const fit = fitSoftmaxRegression({ features: Float32Array.of(-1, 1), labels: Int32Array.of(0, 1), dim: 1, classes: 2 }, l2);
    expect(fit.weight[1]).toBeCloseTo(lo, 6);
    expect(fit.weight[0]).toBeCloseTo(-lo, 6);
    expect(fit.bias[0]).toBeCloseTo(0, 6);
    expect(fit.bias[1]).toBeCloseTo(0, 6);
  });
});

describe('linearProbe', () => {
  it('separates linearly separable features', () => {
    const result = linearProbe(clusters(90, 6, 3, 1), clusters(60, 6, 3, 2));
    expect(result.accuracy).toBe(1);
    expect(result.perL2.map((p) => p.l2)).toEqual([1e-4, 1e-3, 1e-2, 1e-1, 1]);
    expect(result.perL2.every((p) => p.valAccuracy === 1)).toBe(true);
    // Ties go to the strongest regularization.
    expect(result.bestL2).toBe(1);
  });

  it('is near chance on random labels', () => {
    const result = linearProbe(noise(200, 10, 4, 3), noise(400, 10, 4, 4));
    expect(result.accuracy).toBeGreaterThan(0.15);
    expect(result.accuracy).toBeLessThan(0.35);
  });

  it('is deterministic and uses the given grid', () => {
    const train = noise(80, 5, 2, 5), test = noise(40, 5, 2, 6);
    const a = linearProbe(train, test, { l2Grid: [0.01, 10], seed: 7 });
    const b = linearProbe(train, test, { l2Grid: [0.01, 10], seed: 7 });
    expect(a).toEqual(b);
    expect(a.perL2.map((p) => p.l2)).toEqual([0.01, 10]);
    expect([0.01, 10]).toContain(a.bestL2);
  });

  it('rejects mismatched feature sizes', () => {
    expect(() => linearProbe(clusters(10, 3, 2, 1), clusters(10, 4, 2, 1))).toThrow(/dim/);
  });
});
