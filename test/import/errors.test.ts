import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { HardenError } from '../../src/errors.js';
import { TfjsTrainable } from '../../src/engine/tfjs-engine.js';
import { initBackend } from '../../src/engine/backend.js';
import { loadModel } from '../../src/onnx/model.js';
import { loadFixture } from '../helpers/fixtures.js';

describe('run-time input checks', () => {
  it.each([
    [[2, 3, 28, 28], /input 'input' expects shape \[batch, 1, 28, 28\], got \[2, 3, 28, 28\]/],
    [[2, 1, 32, 32], /expects shape \[batch, 1, 28, 28\], got \[2, 1, 32, 32\]/],
    [[2, 784], /got \[2, 784\]/],
  ])('an input of shape %j is a one-line HardenError', async (shape, message) => {
    await initBackend('wasm');
    const fx = loadFixture('lenet5_mnist');
    const engine = new TfjsTrainable(await loadModel(fx.path), 'lenet5_mnist.onnx');
    try {
      const before = tf.memory().numTensors;
      const x = { dtype: 'float32' as const, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
      const err = await engine.forward(x).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(HardenError);
      expect((err as HardenError).message).toMatch(message);
      expect((err as HardenError).message).not.toContain('\n');
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      engine.dispose();
    }
  });
});
