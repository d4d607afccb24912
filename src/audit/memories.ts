/**
 * Source-only features and lingering memories (M^s source model, M^t fine-tuned model,
 * M^{st} = M^t's backbone with M^s's head):
 *   v(c) = |{x ∈ D^t : c ∈ top_k(M^s(x))}|            prevalence of source class c in the target data
 *   F    = {c : v(c) ≤ v_lo}                            source-only features
 *   s(c) = mean_{x ∈ D^s, label c} p_c(M^{st}(x))       how well M^{st} still recognizes c
 *   L    = {c ∈ F : s(c) > p_lo},  p_lo = min(10/|C^s|, 0.5) by default
 * The functions here work on score matrices (N×K, row-major) computed elsewhere (under onnxruntime).
 */

/** The k classes with the highest scores of one row (ties: lower class index first). */
export function topK(row: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: row.length }, (_, c) => c);
  idx.sort((i, j) => row[j]! - row[i]! || i - j);
  return idx.slice(0, k);
}

/** v(c) for every class c of an N×K score matrix (logits or probabilities of M^s on D^t). */
export function prevalence(scores: Float32Array, classes: number, k: number): Int32Array {
  if (!Number.isInteger(k) || k < 1 || k > classes) throw new RangeError(`prevalence: k must be an integer in 1..${classes}, got ${k}`);
  const v = new Int32Array(classes);
  for (let r = 0; r < scores.length / classes; r++) for (const c of topK(scores.subarray(r * classes, (r + 1) * classes), k)) v[c]!++;
  return v;
}

/** F = {c : v(c) ≤ v_lo}, in class order. */
export function sourceOnly(v: Int32Array, vLo: number): number[] {
  return [...v.keys()].filter((c) => v[c]! <= vLo);
}

/** s(c) = mean over the rows labelled c of their probability of c (NaN for a class without rows). */
export function recognition(probs: Float32Array, labels: Int32Array, classes: number): number[] {
  const sum = new Float64Array(classes), count = new Int32Array(classes);
  labels.forEach((l, r) => {
    sum[l]! += probs[r * classes + l]!;
    count[l]!++;
  });
  return [...sum].map((s, c) => (count[c]! ? s / count[c]! : Number.NaN));
}

/** L = {c ∈ F : s(c) > p_lo}. */
export function lingering(F: readonly number[], scores: readonly number[], pLo: number): number[] {
  return F.filter((c) => scores[c]! > pLo);
}

/** The default p_lo = min(10/|C^s|, 0.5). */
export function defaultPLo(classes: number): number {
  return Math.min(10 / classes, 0.5);
}

export { softmaxRows } from '../util/softmax.js';
