import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend.js';
import { hessianVectorProduct } from '../../src/engine/hvp.js';
import { BACKENDS, distinct, gradientErrors } from './helpers.js';

/** Values 0.05 apart in [-8, 8): none within a 1e-2 step of the kinks at 0, ±1, ±3, 6. */
function awayFromKinks(): tf.Tensor {
  return tf.tidy(() => tf.add(distinct([4, 80], 140, 0.05), 0.025));
}

const ACTIVATIONS: [string, (x: tf.Tensor) => tf.Tensor][] = [
  ['relu', (x) => tf.relu(x)],
  ['relu6', (x) => tf.relu6(x)],
  ['clip (hard-sigmoid)', (x) => tf.clipByValue(tf.add(tf.mul(x, 1 / 6), 0.5), 0, 1)],
  ['leaky relu', (x) => tf.leakyRelu(x, 0.1)],
  ['softmax', (x) => tf.softmax(tf.mul(x, 0.3))],
];

describe.each(BACKENDS)('activation gradients on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  it.each(ACTIVATIONS)('%s matches central differences', (_name, f) => {
    const x = awayFromKinks();
    const [error] = gradientErrors(f, [x]);
    expect(error).toBeLessThan(1e-2);
    x.dispose();
  });

  it.each(ACTIVATIONS.slice(0, 4))('%s: second derivative is zero away from the kinks', (_name, f) => {
    const x = awayFromKinks();
    const [hv] = hessianVectorProduct(([p]) => tf.sum(tf.mul(f(p), p)) as tf.Scalar, [x], [tf.onesLike(x)]);
    // d²/dx² of f(x)·x = 2 f'(x) + x f''(x) = 2 f'(x) where f is piecewise linear.
    const expected = tf.tidy(() => tf.mul(tf.grad((p: tf.Tensor) => tf.sum(f(p)))(x), 2));
    expect(Array.from(hv.dataSync())).toEqual(Array.from(expected.dataSync()));
    tf.dispose([x, hv, expected]);
  });

  it('masks built from comparisons (where, maximum, minimum) do not break double backprop', () => {
    const x = awayFromKinks();
    const loss = ([p]: tf.Tensor[]) =>
      tf.sum(tf.add(tf.where(tf.greater(p, 0), tf.square(p), tf.neg(p)), tf.minimum(tf.maximum(p, -1), 1))) as tf.Scalar;
    const [hv] = hessianVectorProduct(loss, [x], [tf.onesLike(x)]);
    const values = x.dataSync();
    hv.dataSync().forEach((h, i) => expect(h).toBe(values[i] > 0 ? 2 : 0));
    tf.dispose([x, hv]);
  });
});
