import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { readHardenRecord } from '../../src/export/export.js';
import { evaluate } from '../../src/verify/evaluate.js';
import { preActivationTensor, skdLoss, skdModel, DEFAULT_SKD_SETTINGS } from '../../src/harden/skd.js';
import { tinyNet, synthetic, trainTiny } from '../helpers/tiny.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('SKD targets and loss', () => {
  it('matches the teacher on authorized rows and −100 on unauthorized rows, by hand', () => {
    // Student rows: authorized [1, 2], [0, 0]; unauthorized [−90, −100]. Teacher: [1, 4], [2, 0].
    // Authorized MSE = (0 + 4 + 4 + 0)/4 = 2; unauthorized MSE = (100 + 0)/2 = 50; w = 0.1 → 2 + 5 = 7.
    const student = tf.tensor2d([[1, 2], [0, 0], [-90, -100]]);
    const teacher = tf.tensor2d([[1, 4], [2, 0]]);
    expect(skdLoss(student, teacher, 2, -100, 0.1).dataSync()[0]).toBeCloseTo(7, 5);
    expect(skdLoss(tf.tensor2d([[1, 4], [2, 0]]), teacher, 2, -100, 0.1).dataSync()[0]).toBe(0);
  });

  it('finds the ReLU before the classifier, and refuses a model without one', () => {
    expect(preActivationTensor(tinyNet(4).proto, 'tiny')).toEqual({ preActivation: 'h0', features: 'h' });
  });
});

describe.each(['tfjs', 'ort'] as const)('skdModel on a tiny conv net (%s engine)', (engine) => {
  it('keeps the authorized task and silences the features of unauthorized images', async () => {
    const keep = synthetic(160, 1, 'quadrants');
    const test = synthetic(80, 3, 'quadrants');
    const block = synthetic(160, 2, 'halves');
    const { proto: teacher } = await trainTiny(tinyNet(4), keep, 15, 0);
    const r = await skdModel({ proto: teacher }, 'tiny', { keep, block }, { ...DEFAULT_SKD_SETTINGS, init: 'teacher', steps: 800, headSteps: 200, batchSize: 16, headLearningRate: 1e-2, engine });
    const graph = new ImportedGraph({ proto: r.proto }, 'skd');
    const features = (ds: typeof keep) => tf.tidy(() => graph.run({ input: tf.tensor(ds.images.subarray(0, 32 * 64), [32, 1, 8, 8]) }, { outputs: ['h'] }).outputs.get('h')!.mean().dataSync()[0]!);
    const [authorized, unauthorized] = [features(keep), features(block)];
    graph.dispose();
    expect(unauthorized).toBeLessThan(0.05 * authorized);
    const [before, after] = [(await evaluate(teacher, test)).accuracy, (await evaluate(r.proto, test)).accuracy];
    // 16 feature units serve both goals here: the authorized task keeps most, not all, of its accuracy.
    expect(after).toBeGreaterThanOrEqual(before - 0.15);
    expect(readHardenRecord(r.proto)!.operation).toBe('skd');
  });
});

describe('skdModel on both engines', () => {
  it('the distillation losses agree step by step', async () => {
    const keep = synthetic(64, 1, 'quadrants');
    const block = synthetic(64, 2, 'halves');
    // A random student: both terms of L_distill carry weight (from the teacher the authorized one starts at 0).
    const s = { ...DEFAULT_SKD_SETTINGS, init: 'random' as const, steps: 6, headSteps: 1, batchSize: 16, unauthorizedWeight: 1e-4, learningRate: 3e-2 };
    const [a, b] = [await skdModel(tinyNet(4), 'tiny', { keep, block }, { ...s, engine: 'tfjs' }), await skdModel(tinyNet(4), 'tiny', { keep, block }, { ...s, engine: 'ort' })];
    const distill = (r: typeof a) => r.history.filter((h) => h.phase === 'distill').map((h) => h.loss);
    const [da, db] = [distill(a), distill(b)];
    expect(da).toHaveLength(6);
    da.forEach((v, i) => expect(Math.abs(v - db[i]!), `step ${i + 1}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(v))));
    expect(readHardenRecord(b.proto)!.settings!.engine).toBe('ort');
  });
});
