import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend.js';
import { mmd, mmdWithGradient } from '../../src/harden/mmd.js';
import { Random } from '../../src/util/random.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('mmd (sum of 5 Gaussian kernels)', () => {
  it('matches a hand computation on tiny 1-D sets', () => {
    // X = [0, 1 | 3]: squared distances 1, 9, 4; b = 2·(1+9+4)/(3²−3) = 14/3.
    const b = 14 / 3;
    const k = (d: number) => [0.25, 0.5, 1, 2, 4].reduce((acc, f) => acc + Math.exp(-d / (b * f)), 0);
    const expected = (2 * k(0) + 2 * k(1)) / 4 + k(0) - 2 * ((k(9) + k(4)) / 2);
    const value = mmd(tf.tensor2d([[0], [1]]), tf.tensor2d([[3]]));
    expect(value.dataSync()[0]).toBeCloseTo(expected, 5);
    value.dispose();
  });

  it('is 0 for identical sets and symmetric in its arguments', () => {
    const a = tf.tensor2d([[0, 1], [2, 0], [1, 1]]);
    const c = tf.tensor2d([[5, 5], [4, 6], [6, 4]]);
    expect(mmd(a, a).dataSync()[0]).toBeCloseTo(0, 6);
    expect(mmd(a, c).dataSync()[0]).toBeCloseTo(mmd(c, a).dataSync()[0]!, 6);
    expect(mmd(a, c).dataSync()[0]).toBeGreaterThan(0.5);
    tf.dispose([a, c]);
  });

  it('on host arrays: the same value as above, and a gradient that matches central differences (b held fixed)', () => {
    const b = 14 / 3;
    const k = (d: number) => [0.25, 0.5, 1, 2, 4].reduce((acc, f) => acc + Math.exp(-d / (b * f)), 0);
    const expected = (2 * k(0) + 2 * k(1)) / 4 + k(0) - 2 * ((k(9) + k(4)) / 2);
    expect(mmdWithGradient(Float32Array.of(0, 1), Float32Array.of(3), 1).value).toBeCloseTo(expected, 10);

    const rng = new Random(3);
    const [n, m, F] = [5, 4, 3];
    const s0 = rng.normalArray(n * F), t0 = rng.normalArray(m * F);
    const r = mmdWithGradient(s0, t0, F);
    const tfValue = mmd(tf.tensor2d(s0, [n, F]), tf.tensor2d(t0, [m, F]));
    expect(r.value).toBeCloseTo(tfValue.dataSync()[0]!, 5);
    tfValue.dispose();
    // The bandwidth is a constant of the batch: central differences at the unperturbed b.
    const bandwidth = (() => {
      const x = [...Array.from({ length: n }, (_, i) => s0.subarray(i * F, (i + 1) * F)), ...Array.from({ length: m }, (_, i) => t0.subarray(i * F, (i + 1) * F))];
      let total = 0;
      for (const a of x) for (const c of x) total += a.reduce((acc, v, f) => acc + (v - c[f]!) ** 2, 0);
      return total / ((n + m) ** 2 - (n + m));
    })();
    const fixedB = (s: Float64Array, t: Float64Array) => {
      const kern = (a: Float64Array, c: Float64Array) => {
        const d = a.reduce((acc, v, f) => acc + (v - c[f]!) ** 2, 0);
        return [0.25, 0.5, 1, 2, 4].reduce((acc, f) => acc + Math.exp(-d / (bandwidth * f)), 0);
      };
      const rows = (x: Float64Array, count: number) => Array.from({ length: count }, (_, i) => x.subarray(i * F, (i + 1) * F));
      const [S, T] = [rows(s, n), rows(t, m)];
      const mean = (A: Float64Array[], B: Float64Array[]) => A.reduce((acc, a) => acc + B.reduce((x, c) => x + kern(a, c), 0), 0) / (A.length * B.length);
      return mean(S, S) + mean(T, T) - 2 * mean(S, T);
    };
    const eps = 1e-5;
    let worst = 0;
    for (const [which, grad, len] of [['s', r.source, n * F], ['t', r.target, m * F]] as const) {
      for (let i = 0; i < len; i++) {
        const [sp, sm, tp, tm] = [Float64Array.from(s0), Float64Array.from(s0), Float64Array.from(t0), Float64Array.from(t0)];
        if (which === 's') { sp[i]! += eps; sm[i]! -= eps; } else { tp[i]! += eps; tm[i]! -= eps; }
        const fd = (fixedB(sp, tp) - fixedB(sm, tm)) / (2 * eps);
        worst = Math.max(worst, Math.abs(fd - grad[i]!));
      }
    }
    const scale = Math.max(...Array.from(r.source, Math.abs), ...Array.from(r.target, Math.abs));
    expect(scale).toBeGreaterThan(1e-3);
    expect(worst / scale).toBeLessThan(1e-5);
  });
});
