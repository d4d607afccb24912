import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend.js';
import { mmd } from '../../src/harden/mmd.js';

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
});
