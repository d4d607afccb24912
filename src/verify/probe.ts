/**
 * Linear-probe attack: how well a linear classifier on the model's frozen features solves a task.
 *
 * Protocol: multinomial logistic regression (softmax, with bias) minimizing
 *   (1/N) Σ_i CE(W x_i + b, y_i) + (λ/2)‖W‖²     (the bias is not regularized),
 * fitted full-batch by L-BFGS from zero weights (deterministic: no sampling anywhere). Features are
 * standardized with the mean and standard deviation of the examples the probe is fitted on
 * (a constant feature is only centered). λ is chosen from `l2Grid` by accuracy on a seeded,
 * class-stratified validation split of the training features (splitIndices, valFraction 0.2);
 * ties go to the larger λ. The probe is then refitted on all training features with that λ and
 * scored on the test features.
 */
import type { FeatureSet } from './features.js';
import { splitIndices } from './split.js';

export const PROBE_L2_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1];

export interface ProbeOptions {
  /** Candidate λ values (default PROBE_L2_GRID). */
  l2Grid?: number[];
  /** Share of each training class held out to choose λ (default 0.2). */
  valFraction?: number;
  /** Seed of the validation split (default 0). */
  seed?: number;
  /** L-BFGS iterations per fit (default 300). */
  maxIterations?: number;
}

export interface ProbeResult {
  /** Test accuracy of the probe refitted on all training features with bestL2. */
  accuracy: number;
  bestL2: number;
  /** Validation accuracy of each λ of the grid, in grid order. */
  perL2: { l2: number; valAccuracy: number }[];
}

export interface SoftmaxRegression {
  /** classes × dim, row-major, on standardized features. */
  weight: Float64Array;
  bias: Float64Array;
  /** Standardization: x' = (x − mean) / scale. */
  mean: Float64Array;
  scale: Float64Array;
  dim: number;
  classes: number;
  iterations: number;
}

/** Rows `rows` of a FeatureSet (all when omitted) as a standardized float64 matrix, with the statistics used. */
function standardize(x: Float32Array, dim: number, rows: readonly number[], stats?: { mean: Float64Array; scale: Float64Array }) {
  const n = rows.length;
  let mean: Float64Array, scale: Float64Array;
  if (stats) ({ mean, scale } = stats);
  else {
    mean = new Float64Array(dim);
    scale = new Float64Array(dim);
    for (const r of rows) for (let j = 0; j < dim; j++) mean[j]! += x[r * dim + j]!;
    for (let j = 0; j < dim; j++) mean[j]! /= Math.max(n, 1);
    for (const r of rows) for (let j = 0; j < dim; j++) scale[j]! += (x[r * dim + j]! - mean[j]!) ** 2;
    for (let j = 0; j < dim; j++) {
      const sd = Math.sqrt(scale[j]! / Math.max(n, 1));
      scale[j] = sd > 1e-12 ? sd : 1;
    }
  }
  const out = new Float64Array(n * dim);
  rows.forEach((r, i) => {
    for (let j = 0; j < dim; j++) out[i * dim + j] = (x[r * dim + j]! - mean[j]!) / scale[j]!;
  });
  return { x: out, mean, scale };
}

/** Objective and gradient at θ = [W (classes×dim) | b (classes)]. */
function objective(theta: Float64Array, x: Float64Array, y: ArrayLike<number>, dim: number, classes: number, l2: number, grad: Float64Array): number {
  const n = y.length;
  const bOff = classes * dim;
  grad.fill(0);
  const z = new Float64Array(classes);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const row = i * dim;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) {
      let s = theta[bOff + c]!;
      const w = c * dim;
      for (let j = 0; j < dim; j++) s += theta[w + j]! * x[row + j]!;
      z[c] = s;
      if (s > max) max = s;
    }
    const zy = z[y[i]!]!;
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += (z[c] = Math.exp(z[c]! - max));
    loss += Math.log(sum) + max - zy;
    for (let c = 0; c < classes; c++) {
      const d = (z[c]! / sum - (c === y[i] ? 1 : 0)) / n;
      if (d === 0) continue;
      grad[bOff + c]! += d;
      const w = c * dim;
      for (let j = 0; j < dim; j++) grad[w + j]! += d * x[row + j]!;
    }
  }
  let reg = 0;
  for (let k = 0; k < bOff; k++) {
    reg += theta[k]! ** 2;
    grad[k]! += l2 * theta[k]!;
  }
  return loss / Math.max(n, 1) + 0.5 * l2 * reg;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** L-BFGS (memory 10) with a backtracking Armijo line search; minimizes f from theta in place. */
function lbfgs(f: (t: Float64Array, g: Float64Array) => number, theta: Float64Array, maxIterations: number): number {
  const m = 10, len = theta.length;
  const S: Float64Array[] = [], Y: Float64Array[] = [], rho: number[] = [];
  let g = new Float64Array(len);
  let fx = f(theta, g);
  const dir = new Float64Array(len), next = new Float64Array(len);
  let gNext = new Float64Array(len);
  let it = 0;
  for (; it < maxIterations; it++) {
    let gmax = 0;
    for (let k = 0; k < len; k++) gmax = Math.max(gmax, Math.abs(g[k]!));
    if (gmax < 1e-7) break;
    // Two-loop recursion: dir = −H·g.
    dir.set(g);
    const alpha: number[] = [];
    for (let k = S.length - 1; k >= 0; k--) {
      alpha[k] = rho[k]! * dot(S[k]!, dir);
      for (let j = 0; j < len; j++) dir[j]! -= alpha[k]! * Y[k]![j]!;
    }
    const gamma = S.length ? dot(S[S.length - 1]!, Y[Y.length - 1]!) / dot(Y[Y.length - 1]!, Y[Y.length - 1]!) : 1 / Math.sqrt(dot(g, g));
    for (let j = 0; j < len; j++) dir[j]! *= gamma;
    for (let k = 0; k < S.length; k++) {
      const beta = rho[k]! * dot(Y[k]!, dir);
      for (let j = 0; j < len; j++) dir[j]! += (alpha[k]! - beta) * S[k]![j]!;
    }
    for (let j = 0; j < len; j++) dir[j] = -dir[j]!;
    let slope = dot(g, dir);
    if (slope >= 0) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      S.length = Y.length = rho.length = 0;
      for (let j = 0; j < len; j++) dir[j] = -g[j]! / Math.sqrt(dot(g, g));
      slope = dot(g, dir);
    }
    let step = 1, fNext = Infinity;
    for (let tries = 0; tries < 40; tries++, step *= 0.5) {
      for (let j = 0; j < len; j++) next[j] = theta[j]! + step * dir[j]!;
      fNext = f(next, gNext);
      if (fNext <= fx + 1e-4 * step * slope) break;
    }
    if (!(fNext < fx)) break; // no progress possible at this precision
    const s = new Float64Array(len), yv = new Float64Array(len);
    for (let j = 0; j < len; j++) {
      s[j] = next[j]! - theta[j]!;
      yv[j] = gNext[j]! - g[j]!;
    }
    const sy = dot(s, yv);
    if (sy > 1e-12) {
      if (S.length === m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
      S.push(s);
      Y.push(yv);
      rho.push(1 / sy);
    }
    theta.set(next);
    [g, gNext] = [gNext, g];
    const decrease = fx - fNext;
    fx = fNext;
    if (decrease <= 1e-12 * Math.max(1, Math.abs(fx))) {
      it++;
      break;
    }
  }
  return it;
}

/** Fits the L2-regularized softmax regression on rows `rows` of `set` (all rows when omitted). */
export function fitSoftmaxRegression(set: FeatureSet, l2: number, rows?: readonly number[], maxIterations = 300): SoftmaxRegression {
  const { dim, classes } = set;
  const idx = rows ?? Array.from(set.labels, (_, i) => i);
  const { x, mean, scale } = standardize(set.features, dim, idx);
  const y = idx.map((r) => set.labels[r]!);
  const theta = new Float64Array(classes * (dim + 1));
  const iterations = lbfgs((t, g) => objective(t, x, y, dim, classes, l2, g), theta, maxIterations);
  return { weight: theta.slice(0, classes * dim), bias: theta.slice(classes * dim), mean, scale, dim, classes, iterations };
}

/** Predicted class (first maximal logit) of rows `rows` of `set` (all rows when omitted). */
export function predictSoftmax(model: SoftmaxRegression, set: FeatureSet, rows?: readonly number[]): Int32Array {
  const { dim, classes } = model;
  const idx = rows ?? Array.from(set.labels, (_, i) => i);
  const { x } = standardize(set.features, dim, idx, model);
  const out = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    let best = 0, max = -Infinity;
    for (let c = 0; c < classes; c++) {
      let s = model.bias[c]!;
      for (let j = 0; j < dim; j++) s += model.weight[c * dim + j]! * x[i * dim + j]!;
      if (s > max) [max, best] = [s, c];
    }
    out[i] = best;
  }
  return out;
}

function accuracyOf(model: SoftmaxRegression, set: FeatureSet, rows?: readonly number[]): number {
  const pred = predictSoftmax(model, set, rows);
  const idx = rows ?? Array.from(set.labels, (_, i) => i);
  let ok = 0;
  idx.forEach((r, i) => {
    if (pred[i] === set.labels[r]) ok++;
  });
  return idx.length ? ok / idx.length : 0;
}

function check(set: FeatureSet, what: string): void {
  if (set.features.length !== set.labels.length * set.dim) {
    throw new Error(`linearProbe: ${what} has ${set.features.length} feature values for ${set.labels.length} examples of dim ${set.dim}`);
  }
  for (const l of set.labels) if (!(l >= 0 && l < set.classes)) throw new Error(`linearProbe: ${what} label ${l} outside 0..${set.classes - 1}`);
}

/** The linear-probe attack: test accuracy of a softmax regression on frozen features, λ chosen on validation. */
export function linearProbe(train: FeatureSet, test: FeatureSet, opts: ProbeOptions = {}): ProbeResult {
  const { l2Grid = PROBE_L2_GRID, valFraction = 0.2, seed = 0, maxIterations = 300 } = opts;
  if (train.dim !== test.dim) throw new Error(`linearProbe: train features have dim ${train.dim}, test features ${test.dim}`);
  if (l2Grid.length === 0) throw new Error('linearProbe: l2Grid is empty');
  const classes = Math.max(train.classes, test.classes);
  const tr = { ...train, classes }, te = { ...test, classes };
  check(tr, 'train');
  check(te, 'test');
  const split = splitIndices(tr.labels, classes, valFraction, seed);
  const perL2 = l2Grid.map((l2) => ({ l2, valAccuracy: accuracyOf(fitSoftmaxRegression(tr, l2, split.train, maxIterations), tr, split.val) }));
  let best = perL2[0]!;
  for (const p of perL2) if (p.valAccuracy > best.valAccuracy || (p.valAccuracy === best.valAccuracy && p.l2 > best.l2)) best = p;
  const final = fitSoftmaxRegression(tr, best.l2, undefined, maxIterations);
  return { accuracy: accuracyOf(final, te), bestL2: best.l2, perL2 };
}
