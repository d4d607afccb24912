/**
 * The Fisher ratio S_B / S_W of a feature batch, the term non-transferable pruning minimizes on
 * the unauthorized domain to collapse the separation of its classes. Over the classes present
 * in the batch, with μ_c the mean feature of class c and μ̄ the mean of the class means:
 *
 *   S_W = Σ_c mean_{i∈c} ‖f_i − μ_c‖²        (within-class scatter, summed over classes)
 *   S_B = mean_c ‖μ_c − μ̄‖²                  (between-class scatter, averaged over classes)
 *
 * μ̄ is the mean of the class means rather than of all samples, so every class weighs the same
 * in S_B however the batch happens to be drawn. Differentiable in the features (plain tfjs ops).
 */
import * as tf from '@tensorflow/tfjs-core';

/** Features [N, ...] (flattened to [N, F]) and their integer labels → S_B / (S_W + ε). */
export function fisherRatio(features: tf.Tensor, labels: Int32Array, epsilon = 1e-8): tf.Scalar {
  const n = features.shape[0];
  if (labels.length !== n) throw new Error(`fisherRatio: ${n} feature rows but ${labels.length} labels`);
  const present = [...new Set(labels)].sort((a, b) => a - b);
  const column = new Map(present.map((c, k) => [c, k]));
  const K = present.length;
  const counts = new Float32Array(K);
  for (const l of labels) counts[column.get(l)!]!++;
  // One-hot membership [N, K] and 1/n_c per sample, built on the host (labels are constants).
  const member = new Float32Array(n * K);
  const inverseCount = new Float32Array(n);
  labels.forEach((l, i) => {
    member[i * K + column.get(l)!] = 1;
    inverseCount[i] = 1 / counts[column.get(l)!]!;
  });
  return tf.tidy(() => {
    const f = tf.reshape(features, [n, -1]);
    const M = tf.tensor2d(member, [n, K]);
    const means = tf.div(tf.matMul(M, f, true, false), tf.tensor2d(counts, [K, 1])); // [K, F]
    const centered = tf.sub(f, tf.matMul(M, means));
    const within = tf.sum(tf.mul(tf.sum(tf.square(centered), 1), tf.tensor1d(inverseCount)));
    const between = tf.mean(tf.sum(tf.square(tf.sub(means, tf.mean(means, 0, true))), 1));
    return tf.div(between, tf.add(within, epsilon)) as tf.Scalar;
  });
}

/**
 * fisherRatio on host arrays ([n, F] row-major features), with its gradient in the features:
 *   ∂S_W/∂f_i = 2(f_i − μ_c)/n_c,   ∂S_B/∂f_i = 2(μ_c − μ̄)/(K·n_c)   (i ∈ c; the terms through μ_c
 *   and μ̄ vanish because deviations from a mean sum to zero), and the quotient rule.
 * For engines that differentiate the model only (the ort engine: the gradient is fed upstream).
 */
export function fisherRatioWithGradient(features: Float32Array, labels: Int32Array, epsilon = 1e-8): { value: number; gradient: Float32Array } {
  const n = labels.length;
  const F = features.length / n;
  const present = [...new Set(labels)].sort((a, b) => a - b);
  const column = new Map(present.map((c, k) => [c, k]));
  const K = present.length;
  const counts = new Float64Array(K);
  const means = new Float64Array(K * F);
  labels.forEach((l, i) => {
    const k = column.get(l)!;
    counts[k]++;
    for (let j = 0; j < F; j++) means[k * F + j] += features[i * F + j];
  });
  for (let k = 0; k < K; k++) for (let j = 0; j < F; j++) means[k * F + j] /= counts[k];
  const grand = new Float64Array(F);
  for (let k = 0; k < K; k++) for (let j = 0; j < F; j++) grand[j] += means[k * F + j] / K;
  let within = 0, between = 0;
  labels.forEach((l, i) => {
    const k = column.get(l)!;
    for (let j = 0; j < F; j++) within += (features[i * F + j] - means[k * F + j]) ** 2 / counts[k];
  });
  for (let k = 0; k < K; k++) for (let j = 0; j < F; j++) between += (means[k * F + j] - grand[j]) ** 2 / K;
  const denominator = within + epsilon;
  const value = between / denominator;
  const gradient = new Float32Array(n * F);
  labels.forEach((l, i) => {
    const k = column.get(l)!;
    for (let j = 0; j < F; j++) {
      const dBetween = (2 * (means[k * F + j] - grand[j])) / (K * counts[k]);
      const dWithin = (2 * (features[i * F + j] - means[k * F + j])) / counts[k];
      gradient[i * F + j] = dBetween / denominator - (value / denominator) * dWithin;
    }
  });
  return { value, gradient };
}
