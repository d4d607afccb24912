import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend.js';
import { BACKENDS, distinct, gradientErrors, maxRelativeDiff, onCpu, random } from './helpers.js';

type Pad = 'same' | 'valid' | tf.backend_util.ExplicitPadding;
interface PoolCase {
  name: string;
  x: number[];
  size: number;
  strides: number;
  pad: Pad;
}

const CASES: PoolCase[] = [
  { name: '2x2 stride 2', x: [2, 8, 10, 3], size: 2, strides: 2, pad: 'valid' },
  { name: '3x3 stride 2, same (padded)', x: [2, 9, 10, 3], size: 3, strides: 2, pad: 'same' },
  { name: '3x3 stride 2, explicit pads', x: [2, 9, 8, 2], size: 3, strides: 2, pad: [[0, 0], [1, 1], [0, 1], [0, 0]] },
  { name: '3x3 stride 1, same', x: [1, 7, 6, 3], size: 3, strides: 1, pad: 'same' },
  { name: '2x2 stride 1, valid', x: [2, 5, 6, 2], size: 2, strides: 1, pad: 'valid' },
];

const maxPool = (c: PoolCase) => (x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, c.size, c.strides, c.pad as 'same');
const avgPool = (c: PoolCase) => (x: tf.Tensor) => tf.avgPool(x as tf.Tensor4D, c.size, c.strides, c.pad as 'same');

describe.each(BACKENDS)('pooling gradients on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  it.each(CASES)('max-pool $name matches central differences', (c) => {
    // Entries 0.05 apart and steps below 0.01: no argmax moves.
    const x = distinct(c.x, 21, 0.05);
    const [error] = gradientErrors(maxPool(c), [x], 1e-2);
    expect(error).toBeLessThan(1e-2);
    x.dispose();
  });

  it.each(CASES)('avg-pool $name matches central differences', (c) => {
    const x = random(c.x, 22);
    const [error] = gradientErrors(avgPool(c), [x]);
    expect(error).toBeLessThan(1e-2);
    x.dispose();
  });

  it.each(CASES)('max-pool $name equals tfjs cpu MaxPoolGrad (no ties)', async (c) => {
    const x = distinct(c.x, 23);
    const dy = tf.tidy(() => random(maxPool(c)(x).shape, 24));
    const [xs, dys] = [x.arraySync(), dy.arraySync()];
    const [ref] = await onCpu(backend, () => {
      const cx = tf.tensor(xs) as tf.Tensor4D;
      const output = maxPool(c)(cx);
      const attrs = { filterSize: c.size, strides: c.strides, pad: c.pad };
      return [tf.engine().runKernel(tf.MaxPoolGrad, { dy: tf.tensor(dys), input: cx, output }, attrs as tf.NamedAttrMap) as tf.Tensor];
    });
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(maxPool(c)(a), dy)))(x);
    expect(maxRelativeDiff(g, ref)).toBeLessThan(1e-4);
    tf.dispose([x, dy, g]);
  });

  it.each(CASES.filter((c) => c.pad === 'valid'))('avg-pool $name equals tfjs cpu AvgPoolGrad', async (c) => {
    // (With padding tfjs's AvgPoolGrad divides by the full window although its forward
    // averages over the non-padding inputs only; the central-difference tests cover that.)
    const x = random(c.x, 25);
    const dy = tf.tidy(() => random(avgPool(c)(x).shape, 26));
    const dys = dy.arraySync();
    const [ref] = await onCpu(backend, () => {
      const attrs = { filterSize: c.size, strides: c.strides, pad: c.pad };
      return [tf.engine().runKernel(tf.AvgPoolGrad, { dy: tf.tensor(dys), input: tf.zeros(c.x) }, attrs as tf.NamedAttrMap) as tf.Tensor];
    });
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(avgPool(c)(a), dy)))(x);
    expect(maxRelativeDiff(g, ref)).toBeLessThan(1e-4);
    tf.dispose([x, dy, g]);
  });

  it('max-pool routes each window to its first maximum (row-major) when values tie', () => {
    // One channel, 4x4 of equal values except a tied pair of larger ones at (1, 2) and
    // (2, 1), which all four 3x3 windows (stride 1) contain: row-major order puts (1, 2) first.
    const values = new Float32Array(16).fill(1);
    values[1 * 4 + 2] = 5;
    values[2 * 4 + 1] = 5;
    const x = tf.tensor4d(values, [1, 4, 4, 1]);
    const dy = tf.tensor4d([1, 10, 100, 1000], [1, 2, 2, 1]);
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, 3, 1, 'valid'), dy)))(x);
    const expected = new Float32Array(16);
    expected[1 * 4 + 2] = 1 + 10 + 100 + 1000;
    expect(Array.from(g.dataSync())).toEqual(Array.from(expected));
    // All-equal windows: everything goes to each window's top-left input.
    const flat = tf.ones([1, 4, 4, 1]);
    const gFlat = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, 2, 2, 'valid'), dy)))(flat);
    expect(Array.from(gFlat.dataSync())).toEqual([1, 0, 10, 0, 0, 0, 0, 0, 100, 0, 1000, 0, 0, 0, 0, 0]);
    tf.dispose([x, dy, g, flat, gFlat]);
  });
});
