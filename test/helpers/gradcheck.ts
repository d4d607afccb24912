import * as tf from '@tensorflow/tfjs-core';

/** Where and how finely `lossGradientError` probes. */
export interface ProbeOptions {
  /** How many input elements to probe. */
  samples?: number;
  /** The central-difference step. */
  eps?: number;
  /** Probe k sits at floor((k + offset) · n / samples) of the n input elements. */
  offset?: number;
}

/**
 * Central-difference check of the gradient of a scalar loss at x0 for a sample of input
 * elements: the largest error relative to the largest gradient entry (at least 1e-6).
 */
export function lossGradientError(loss: (x: tf.Tensor) => tf.Tensor, x0: tf.Tensor, opts: ProbeOptions = {}): number {
  const { samples = 40, eps = 1e-2, offset = 0 } = opts;
  return tf.tidy(() => {
    const analytic = tf.grad(loss)(x0).dataSync();
    const base = x0.dataSync();
    const scale = Math.max(1e-6, ...Array.from(analytic, Math.abs));
    let worst = 0;
    for (let k = 0; k < samples; k++) {
      const i = Math.floor(((k + offset) * base.length) / samples);
      const at = (d: number) => {
        const xs = Float32Array.from(base);
        xs[i] += d;
        return loss(tf.tensor(xs, x0.shape)).dataSync()[0];
      };
      worst = Math.max(worst, Math.abs((at(eps) - at(-eps)) / (2 * eps) - analytic[i]) / scale);
    }
    return worst;
  });
}

/**
 * Largest error of tf.grad against central differences at a few coordinates, relative to the
 * largest gradient entry, for the loss sum(f(x) · w); with order 2, for the loss
 * sum(∇(that loss)(x) · v), which checks double backprop. w and v are fixed sine waves.
 */
export function gradientError(f: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor, order: 1 | 2, eps = 1e-2, probes = 16): number {
  return tf.tidy(() => {
    const wave = (shape: number[], phase: number) => tf.sin(tf.add(tf.reshape(tf.range(0, shape.reduce((a, b) => a * b, 1)), shape), phase));
    const w = wave(f(x).shape, 0);
    const v = wave(x.shape, 1);
    const first = (t: tf.Tensor) => tf.sum(tf.mul(f(t), w));
    const loss = order === 1 ? first : (t: tf.Tensor) => tf.sum(tf.mul(tf.grad(first)(t), v));
    return lossGradientError(loss, x, { samples: probes, eps, offset: 0.5 });
  });
}
