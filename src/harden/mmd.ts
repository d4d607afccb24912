/**
 * Maximum mean discrepancy with a sum of Gaussian kernels, as non-transferable learning (NTL)
 * uses it between source and target features. With X = [φ_s; φ_t] and D_ij = ‖x_i − x_j‖²:
 *
 *   b = Σ_{i≠j} D_ij / (n² − n)                        (mean pairwise squared distance)
 *   k(x, y) = Σ_{q=0..4} exp(−‖x − y‖² / (b·2^{q−2}))   (bandwidths b/4, b/2, b, 2b, 4b)
 *   MMD = mean k(φ_s, φ_s) + mean k(φ_t, φ_t) − 2·mean k(φ_s, φ_t)
 *
 * The bandwidth is a constant of the batch (not differentiated), as in the NTL reference code.
 */
import * as tf from '@tensorflow/tfjs-core';
import { detach } from '../engine/gradients/util.js';

export const MMD_KERNELS = 5;

export function mmd(source: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const s = tf.reshape(source, [source.shape[0], -1]);
    const t = tf.reshape(target, [target.shape[0], -1]);
    const [n, m] = [s.shape[0]!, t.shape[0]!];
    const x = tf.concat([s, t], 0);
    const sq = tf.sum(tf.square(x), 1, true);
    const d = tf.relu(tf.sub(tf.add(sq, tf.transpose(sq)), tf.mul(2, tf.matMul(x, x, false, true)))); // relu: rounding can leave tiny negatives
    const total = n + m;
    const b = detach(tf.div(tf.sum(d), total * total - total));
    let k = tf.zerosLike(d);
    for (let q = 0; q < MMD_KERNELS; q++) k = tf.add(k, tf.exp(tf.neg(tf.div(d, tf.mul(b, 2 ** (q - 2))))));
    const ss = tf.mean(tf.slice(k, [0, 0], [n, n]));
    const tt = tf.mean(tf.slice(k, [n, n], [m, m]));
    const st = tf.mean(tf.slice(k, [0, n], [n, m]));
    return tf.sub(tf.add(ss, tt), tf.mul(2, st)) as tf.Scalar;
  });
}

/**
 * mmd() on host arrays ([n, F] and [m, F] features, row-major) with its gradient in both, the
 * bandwidth b held constant as above. With w_ij = ∂MMD/∂k_ij (1/n² within the source, 1/m²
 * within the target, −2/(nm) for a source row i and target column j) and
 * k'_ij = Σ_q −exp(−D_ij/σ_q)/σ_q: ∂MMD/∂x_i = Σ_j (w_ij + w_ji)·k'_ij·2(x_i − x_j).
 */
export function mmdWithGradient(source: Float32Array, target: Float32Array, features: number): { value: number; source: Float32Array; target: Float32Array } {
  const F = features;
  const [n, m] = [source.length / F, target.length / F];
  const N = n + m;
  const row = (i: number) => (i < n ? source.subarray(i * F, (i + 1) * F) : target.subarray((i - n) * F, (i - n + 1) * F));
  const D = new Float64Array(N * N);
  let total = 0;
  for (let i = 0; i < N; i++) {
    const a = row(i);
    for (let j = i + 1; j < N; j++) {
      const b = row(j);
      let d = 0;
      for (let f = 0; f < F; f++) d += (a[f]! - b[f]!) ** 2;
      D[i * N + j] = D[j * N + i] = d;
      total += 2 * d;
    }
  }
  const b = total / (N * N - N);
  const sigmas = Array.from({ length: MMD_KERNELS }, (_, q) => b * 2 ** (q - 2));
  const weight = (i: number, j: number) => (i < n ? (j < n ? 1 / (n * n) : -2 / (n * m)) : j < n ? 0 : 1 / (m * m));
  let value = 0;
  const grad = new Float64Array(N * F);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      let k = 0, dk = 0;
      for (const s of sigmas) {
        const e = Math.exp(-D[i * N + j]! / s);
        k += e;
        dk -= e / s;
      }
      value += weight(i, j) * k;
      if (i === j) continue;
      const c = (weight(i, j) + weight(j, i)) * dk * 2;
      const [a, bb] = [row(i), row(j)];
      for (let f = 0; f < F; f++) grad[i * F + f] += c * (a[f]! - bb[f]!);
    }
  }
  return { value, source: Float32Array.from(grad.subarray(0, n * F)), target: Float32Array.from(grad.subarray(n * F)) };
}
