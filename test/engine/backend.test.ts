import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { ExitCode, HardenError } from '../../src/errors.js';
import { activeBackend, initBackend } from '../../src/engine/backend.js';
import { BACKENDS, gradientErrors, random } from './helpers.js';

describe('initBackend', () => {
  it('auto picks wasm when tfjs-node is not installed', async () => {
    expect(await initBackend()).toBe('wasm');
    expect(activeBackend()).toBe('wasm');
  });

  it("an explicit 'tensorflow' without tfjs-node is a one-line HardenError (exit code 4)", async () => {
    const error = await initBackend('tensorflow').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HardenError);
    expect((error as HardenError).exitCode).toBe(ExitCode.Unavailable);
    expect((error as HardenError).message).toBe(
      "backend 'tensorflow' needs @tensorflow/tfjs-node, which is not installed (npm i @tensorflow/tfjs-node)");
    expect(activeBackend()).toBe('wasm'); // unchanged
  });

  it('switches between cpu and wasm', async () => {
    expect(await initBackend('cpu')).toBe('cpu');
    expect(activeBackend()).toBe('cpu');
    expect(await initBackend('wasm')).toBe('wasm');
  });

  it('registers the wasm kernels tfjs lacks', async () => {
    await initBackend('wasm');
    for (const kernel of [tf.Conv2DBackpropFilter, tf.DepthwiseConv2dNativeBackpropFilter,
      tf.DepthwiseConv2dNativeBackpropInput, tf.UnsortedSegmentSum]) {
      expect(tf.getKernel(kernel, 'wasm'), kernel).toBeDefined();
    }
  });
});

describe.each(BACKENDS)('gather and memory on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  it('tf.gather has a gradient (repeated indices add up)', () => {
    const x = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
    const indices = tf.tensor1d([2, 0, 2, 2], 'int32');
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.gather(a, indices), tf.tensor2d([[1, 10], [100, 1000], [2, 20], [3, 30]]))))(x);
    expect(Array.from(g.dataSync())).toEqual([100, 1000, 0, 0, 6, 60]);
    tf.dispose([x, indices, g]);
  });

  it('tf.gather along an inner axis matches central differences', () => {
    const x = random([3, 5, 4], 120);
    const indices = tf.tensor1d([4, 1, 1, 0, 3], 'int32');
    const [error] = gradientErrors((a) => tf.gather(a, indices, 1), [x]);
    expect(error).toBeLessThan(1e-2);
    tf.dispose([x, indices]);
  });

  it('tensor count is flat over 100 gradient evaluations of a conv net', () => {
    const x = random([4, 12, 12, 2], 130);
    const params = [random([3, 3, 2, 4], 131, 0.4), random([3, 3, 4, 1], 132, 0.4), random([3, 3, 4, 3], 133, 0.3)];
    const loss = (w1: tf.Tensor, dw: tf.Tensor, w2: tf.Tensor) => {
      const a = tf.relu(tf.conv2d(x as tf.Tensor4D, w1 as tf.Tensor4D, 1, 'same'));
      const d = tf.relu6(tf.depthwiseConv2d(a, dw as tf.Tensor4D, 2, 'same'));
      const p = tf.maxPool(tf.avgPool(d, 3, 1, 'same'), 2, 2, 'valid');
      return tf.mean(tf.square(tf.conv2d(p, w2 as tf.Tensor4D, 1, 'valid'))) as tf.Scalar;
    };
    const evaluate = () => tf.dispose(tf.grads(loss)(params));
    evaluate();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) evaluate();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, ...params]);
  });
});
