/**
 * Few-shot k-nearest-neighbour attack: how well the model's frozen features classify a task from
 * a handful of labelled examples per class, with no training at all.
 *
 * Protocol: for each episode e (default 5) one seeded permutation of each class's training
 * examples is drawn; the support set for `shots` ∈ {1, 5, 10} is the first `shots` of every
 * class's permutation (all of a class's examples when it has fewer), so within an episode the
 * 1-shot support lies inside the 5-shot one, which lies inside the 10-shot one. Every test example
 * is classified by its k = min(shots, 5) nearest support examples under cosine similarity (a
 * zero feature vector has similarity 0 to everything); k = 1 for one shot. The neighbours vote;
 * a tie in votes goes to the class with the larger summed similarity, then to the lower class.
 * Neighbours at equal similarity are taken in support order (class, then sampling order). The
 * reported accuracy for a shot count is the mean over episodes (std is over episodes too).
 */
import type { FeatureSet } from './features.js';
import { Random } from '../util/random.js';

export const KNN_SHOTS = [1, 5, 10];

export interface KnnOptions {
  /** Default KNN_SHOTS. */
  shots?: number[];
  /** Episodes (seeded support draws) averaged per shot count; default 5. */
  episodes?: number;
  seed?: number;
  /** Neighbours per vote for a shot count; default min(shots, 5). */
  k?: (shots: number) => number;
}

export interface KnnShotResult {
  shots: number;
  k: number;
  /** Mean test accuracy over episodes. */
  accuracy: number;
  /** Population standard deviation of the episode accuracies. */
  std: number;
  episodes: number[];
}

export interface KnnResult {
  results: KnnShotResult[];
}

export const defaultK = (shots: number): number => Math.min(shots, 5);

function episodeRandom(seed: number, episode: number): Random {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul((episode + 1) >>> 0, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  return new Random((h ^ (h >>> 15)) >>> 0);
}

/** Per class, a seeded permutation of its example indices for episode `episode`. */
export function episodeOrders(labels: Int32Array, classes: number, seed: number, episode: number): number[][] {
  const byClass: number[][] = Array.from({ length: classes }, () => []);
  labels.forEach((l, i) => byClass[l]!.push(i));
  const rng = episodeRandom(seed, episode);
  for (const order of byClass) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
  }
  return byClass;
}

/** The support set of `shots` per class from episode orders: indices grouped by class. */
export function supportIndices(orders: number[][], shots: number): number[] {
  return orders.flatMap((o) => o.slice(0, shots));
}

/** Rows scaled to unit L2 norm (zero rows stay zero). */
function normalizeRows(x: Float32Array, dim: number, rows: ArrayLike<number> | undefined, n: number): Float64Array {
  const out = new Float64Array(n * dim);
  for (let i = 0; i < n; i++) {
    const r = rows ? rows[i]! : i;
    let s = 0;
    for (let j = 0; j < dim; j++) s += x[r * dim + j]! ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < dim; j++) out[i * dim + j] = x[r * dim + j]! * inv;
  }
  return out;
}

/**
 * Predicts each query row by a k-nearest-neighbour vote (cosine similarity) among the support rows
 * `support` of `train` (all rows when omitted).
 */
export function knnPredict(train: FeatureSet, query: Float32Array, k: number, support?: readonly number[]): Int32Array {
  const { dim, classes } = train;
  const m = support ? support.length : train.labels.length;
  const n = dim ? query.length / dim : 0;
  if (m === 0) throw new Error('knnPredict: empty support set');
  const kk = Math.max(1, Math.min(k, m));
  const s = normalizeRows(train.features, dim, support, m);
  const sl = Int32Array.from({ length: m }, (_, i) => train.labels[support ? support[i]! : i]!);
  const q = normalizeRows(query, dim, undefined, n);
  const out = new Int32Array(n);
  const sim = new Float64Array(m);
  const votes = new Float64Array(classes), sums = new Float64Array(classes);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < m; a++) {
      let d = 0;
      for (let j = 0; j < dim; j++) d += q[i * dim + j]! * s[a * dim + j]!;
      sim[a] = d;
    }
    // Partial selection of the kk most similar (stable: earlier support rows win ties).
    const top: number[] = [];
    for (let a = 0; a < m; a++) {
      if (top.length === kk && sim[a]! <= sim[top[kk - 1]!]!) continue;
      let p = Math.min(top.length, kk - 1);
      if (top.length < kk) top.push(a);
      while (p > 0 && sim[top[p - 1]!]! < sim[a]!) {
        top[p] = top[p - 1]!;
        p--;
      }
      top[p] = a;
    }
    votes.fill(0);
    sums.fill(0);
    for (const a of top) {
      votes[sl[a]!]! += 1;
      sums[sl[a]!]! += sim[a]!;
    }
    let best = -1;
    for (let c = 0; c < classes; c++) {
      if (votes[c] === 0) continue;
      if (best < 0 || votes[c]! > votes[best]! || (votes[c] === votes[best] && sums[c]! > sums[best]!)) best = c;
    }
    out[i] = best;
  }
  return out;
}

/** The few-shot k-NN attack: mean test accuracy per shot count over seeded episodes. */
export function fewShotKnn(train: FeatureSet, test: FeatureSet, opts: KnnOptions = {}): KnnResult {
  const { shots = KNN_SHOTS, episodes = 5, seed = 0, k = defaultK } = opts;
  if (train.dim !== test.dim) throw new Error(`fewShotKnn: train features have dim ${train.dim}, test features ${test.dim}`);
  if (!(episodes >= 1)) throw new Error(`fewShotKnn: episodes must be at least 1, got ${episodes}`);
  const classes = Math.max(train.classes, test.classes);
  const tr = { ...train, classes };
  const perShot = shots.map(() => [] as number[]);
  for (let e = 0; e < episodes; e++) {
    const orders = episodeOrders(train.labels, classes, seed, e);
    shots.forEach((s, si) => {
      const pred = knnPredict(tr, test.features, k(s), supportIndices(orders, s));
      let ok = 0;
      pred.forEach((p, i) => {
        if (p === test.labels[i]) ok++;
      });
      perShot[si]!.push(test.labels.length ? ok / test.labels.length : 0);
    });
  }
  return {
    results: shots.map((s, si) => {
      const acc = perShot[si]!;
      const mean = acc.reduce((a, b) => a + b, 0) / acc.length;
      const std = Math.sqrt(acc.reduce((a, b) => a + (b - mean) ** 2, 0) / acc.length);
      return { shots: s, k: k(s), accuracy: mean, std, episodes: acc };
    }),
  };
}
