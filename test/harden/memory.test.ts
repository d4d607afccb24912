import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend.js';
import { applyMethod, type MethodName, type MethodOptions } from '../../src/harden/apply.js';
import { tinyNet, synthetic } from '../helpers/tiny.js';

beforeAll(async () => {
  await initBackend('wasm');
});

// Every method leaves tfjs's tensor count where it found it (a second run after a warm-up one).
describe('hardening methods free their tensors', () => {
  const keep = synthetic(64, 1, 'quadrants');
  const block = synthetic(64, 2, 'halves');
  const options: MethodOptions = {
    seed: 0,
    prune: { iterations: 2, stepsPerIteration: 3, finetuneSteps: 3, batchSize: 16 },
    ntl: { steps: 3, batchSize: 16 },
    sophon: { outerSteps: 2, innerSteps: 2, supportBatchSize: 8, queryBatchSize: 8, keepBatchSize: 8 },
    skd: { steps: 3, headSteps: 3, batchSize: 16 },
    unsir: { noiseSteps: 2, batchSize: 16 },
    dispose: { steps: 3, batchSize: 16, forgetBatchSize: 16 },
  };
  const data = (m: MethodName) =>
    m === 'unsir' ? { keep: { ...keep, labels: keep.labels.map((l) => l % 3) }, block: { ...keep, labels: keep.labels.map(() => 3) } } : { keep, block };

  for (const method of ['ntp', 'magnitude', 'ntl', 'sophon', 'skd', 'gc', 'unsir'] as const) {
    it(method, async () => {
      await applyMethod(tinyNet(4), 'tiny', method, data(method), options);
      const before = tf.memory().numTensors;
      await applyMethod(tinyNet(4), 'tiny', method, data(method), options);
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('sophon with distillation retention (its teacher copy is freed)', async () => {
    const kd: MethodOptions = { ...options, sophon: { ...options.sophon, retention: 'kd' } };
    await applyMethod(tinyNet(4), 'tiny', 'sophon', data('sophon'), kd);
    const before = tf.memory().numTensors;
    await applyMethod(tinyNet(4), 'tiny', 'sophon', data('sophon'), kd);
    expect(tf.memory().numTensors).toBe(before);
  });
});
