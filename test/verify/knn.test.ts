import { describe, it, expect } from 'vitest';
import type { FeatureSet } from '../../src/verify/features.js';
import { episodeOrders, fewShotKnn, knnPredict, supportIndices } from '../../src/verify/knn.js';
import { Random } from '../../src/util/random.js';

function set(points: number[][], labels: number[], classes: number): FeatureSet {
  return { features: Float32Array.from(points.flat()), labels: Int32Array.from(labels), dim: points[0]!.length, classes };
}

/** Three tight clusters around orthogonal directions: every sensible classifier gets them all. */
function clusters(n: number, seed: number): FeatureSet {
  const rng = new Random(seed);
  const dim = 4, features = new Float32Array(n * dim), labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = (labels[i] = i % 3);
    for (let j = 0; j < dim; j++) features[i * dim + j] = (j === c ? 5 : 0) + 0.3 * rng.normal();
  }
  return { features, labels, dim, classes: 3 };
}

describe('knnPredict', () => {
  // Support: class 0 at (1, 0.1) and (1, −0.1), class 1 at (1, 0.05); query (1, 0.04).
  // Cosine similarities: (1, 0.05) is closest (angle 0.01), then (1, 0.1) (0.06), then (1, −0.1) (0.14).
  const support = set([[1, 0.1], [1, -0.1], [1, 0.05]], [0, 0, 1], 2);
  const query = Float32Array.of(1, 0.04);

  it('1-NN takes the single closest example', () => {
    expect(Array.from(knnPredict(support, query, 1))).toEqual([1]);
  });

  it('a 1–1 vote goes to the class with the larger summed similarity', () => {
    expect(Array.from(knnPredict(support, query, 2))).toEqual([1]);
  });

  it('3-NN lets the majority win over the nearest', () => {
    expect(Array.from(knnPredict(support, query, 3))).toEqual([0]);
  });

  it('uses cosine similarity, not Euclidean distance', () => {
    // (10, 0) is Euclidean-closer to (5, 1) but points exactly along (0.1, 0).
    const s = set([[0.1, 0], [5, 1]], [0, 1], 2);
    expect(Array.from(knnPredict(s, Float32Array.of(10, 0), 1))).toEqual([0]);
  });

  it('honours a support subset', () => {
    expect(Array.from(knnPredict(support, query, 1, [0, 1]))).toEqual([0]);
  });
});

describe('episodes', () => {
  it('draws class-balanced, nested support sets, reproducibly', () => {
    const labels = Int32Array.from({ length: 60 }, (_, i) => i % 3);
    const orders = episodeOrders(labels, 3, 1, 0);
    const one = supportIndices(orders, 1), five = supportIndices(orders, 5), ten = supportIndices(orders, 10);
    expect(one.map((i) => labels[i])).toEqual([0, 1, 2]);
    expect(five.map((i) => labels[i])).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    expect(ten).toHaveLength(30);
    expect(one.every((i) => five.includes(i)) && five.every((i) => ten.includes(i))).toBe(true);
    expect(episodeOrders(labels, 3, 1, 0)).toEqual(orders);
    expect(episodeOrders(labels, 3, 1, 1)).not.toEqual(orders);
  });
});

describe('fewShotKnn', () => {
  it('classifies well-separated clusters perfectly at every shot count', () => {
    const { results } = fewShotKnn(clusters(90, 1), clusters(60, 2), { episodes: 3 });
    expect(results.map((r) => [r.shots, r.k])).toEqual([[1, 1], [5, 5], [10, 5]]);
    for (const r of results) {
      expect(r.accuracy).toBe(1);
      expect(r.std).toBe(0);
      expect(r.episodes).toEqual([1, 1, 1]);
    }
  });

  it('is near chance when labels carry no information', () => {
    const rng = new Random(4);
    const random = (n: number): FeatureSet => ({ features: rng.normalArray(n * 8), labels: Int32Array.from({ length: n }, () => rng.int(4)), dim: 8, classes: 4 });
    const { results } = fewShotKnn(random(200), random(400), { shots: [5], episodes: 4 });
    expect(results[0]!.accuracy).toBeGreaterThan(0.15);
    expect(results[0]!.accuracy).toBeLessThan(0.35);
  });
});
