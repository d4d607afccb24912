/**
 * Finite-difference and comparison helpers for the engine's gradient tests. Sums are
 * accumulated in float64 from the tensors' float32 data.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../../src/engine/backend.js';

export const BACKENDS: BackendName[] = ['wasm', 'cpu'];

/** Deterministic values in [-scale, scale) from a 32-bit LCG (identical on every backend). */
export function randomValues(size: number, seed: number, scale = 1): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

export function random(shape: number[], seed: number, scale = 1): tf.Tensor {
  return tf.tensor(randomValues(tf.util.sizeFromShape(shape), seed, scale), shape);
}

/**
 * Values spaced `gap` apart in random order: no two entries of a pooling window are
 * within `gap`, so perturbations smaller than gap/2 never move an argmax.
 */
export function distinct(shape: number[], seed: number, gap = 0.01): tf.Tensor {
  const n = tf.util.sizeFromShape(shape);
  const keys = randomValues(n, seed);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => keys[a] - keys[b]);
  const values = new Float32Array(n);
  order.forEach((slot, rank) => { values[slot] = (rank - n / 2) * gap; });
  return tf.tensor(values, shape);
}

/** Σ over all tensors of Σ a·b, accumulated in float64. */
export function dot(a: tf.Tensor[], b: tf.Tensor[]): number {
  let acc = 0;
  a.forEach((t, i) => {
    const x = t.dataSync();
    const y = b[i].dataSync();
    for (let k = 0; k < x.length; k++) acc += x[k] * y[k];
  });
  return acc;
}

/**
 * Checks tf.grads of L(xs) = ⟨f(xs), R⟩ (R fixed random) against central differences
 * along `directions` random directions, separately for every input. Returns, per input,
 * ‖analytic − numeric‖ / ‖numeric‖ over the directions (several directions keep one
 * unlucky, nearly orthogonal projection from dominating). `eps` must keep x ± eps·v away
 * from kinks of f (|v| < 1).
 */
export function gradientErrors(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], eps = 1e-2, seed = 17, directions = 3): number[] {
  const weights = tf.tidy(() => random(f(...inputs).shape, seed));
  const loss = (xs: tf.Tensor[]) => tf.tidy(() => dot([f(...xs)], [weights]));
  const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), weights)))(inputs);
  const errors = inputs.map((x, i) => {
    let diff = 0;
    let norm = 0;
    for (let d = 0; d < directions; d++) {
      const v = random(x.shape, seed + 101 * (i + 1) + 7 * d);
      const shifted = (sign: number) => {
        const moved = tf.add(x, tf.mul(v, sign * eps));
        const value = loss(inputs.map((y, j) => (j === i ? moved : y)));
        moved.dispose();
        return value;
      };
      const numeric = (shifted(1) - shifted(-1)) / (2 * eps);
      const analytic = dot([grads[i]], [v]);
      v.dispose();
      diff += (analytic - numeric) ** 2;
      norm += numeric ** 2;
    }
    return Math.sqrt(diff / Math.max(norm, 1e-12));
  });
  tf.dispose([weights, ...grads]);
  return errors;
}

/** max|a − b| / max(1, max|b|). */
export function maxRelativeDiff(a: tf.Tensor | ArrayLike<number>, b: tf.Tensor | ArrayLike<number>): number {
  const x = a instanceof tf.Tensor ? a.dataSync() : a;
  const y = b instanceof tf.Tensor ? b.dataSync() : b;
  if (x.length !== y.length) return Infinity;
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < x.length; i++) {
    diff = Math.max(diff, Math.abs(x[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  return diff / scale;
}

/**
 * Runs `compute` on tfjs's cpu backend (whose conv/pool backprop kernels are tfjs's own)
 * and returns its outputs' data, then switches back to `backend`.
 */
export async function onCpu(backend: BackendName, compute: () => tf.Tensor[]): Promise<Float32Array[]> {
  await initBackend('cpu');
  const outs = tf.tidy(compute);
  const data = outs.map((t) => Float32Array.from(t.dataSync()));
  tf.dispose(outs);
  await initBackend(backend);
  return data;
}
