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
