import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initializerMap } from '../../src/onnx/model.js';
import { hostToFloat32 } from '../../src/onnx/tensor.js';
import { initBackend } from '../../src/engine/backend.js';
import { crossEntropy } from '../../src/engine/tfjs-engine.js';
import { readHardenRecord } from '../../src/export/export.js';
import { innerStep, sophonModel, suppressionLoss, DEFAULT_SOPHON_SETTINGS, type SophonSettings } from '../../src/harden/sophon.js';
import { tinyNet, synthetic } from '../helpers/tiny.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('SOPHON losses', () => {
  it('suppression loss: cross-entropy to uniform, and its KL form', () => {
    const z = tf.tensor2d([[0, Math.log(3)]]); // q = [1/4, 3/4]
    expect(suppressionLoss(z, 'uniform-ce').dataSync()[0]).toBeCloseTo(-(Math.log(0.25) + Math.log(0.75)) / 2, 6);
    expect(suppressionLoss(z, 'kl').dataSync()[0]).toBeCloseTo(-(Math.log(0.25) + Math.log(0.75)) / 2 - Math.log(2), 6);
    expect(suppressionLoss(tf.tensor2d([[2, 2, 2]]), 'kl').dataSync()[0]).toBeCloseTo(0, 6);
  });

  it('suppression after one inner SGD step matches a hand computation', () => {
    // logits = x·w, x = 1, label 0, w = [0, 0]: ∇CE = softmax(w) − e_0 = [−½, ½]; SGD lr 1 → w' = [½, −½].
    // On query x = 1: CE to uniform = logsumexp(½, −½) − mean(½, −½) = ln(2 cosh ½).
    const x = tf.tensor2d([[1]]);
    const loss = (ps: tf.Tensor[]) => crossEntropy(tf.matMul(x, ps[0]!) as tf.Tensor2D, tf.tensor1d([0], 'int32'));
    const after = innerStep({ params: [tf.zeros([1, 2])], m: [], v: [], t: 0 }, loss, 'sgd', 1);
    expect([...after.params[0]!.dataSync()]).toEqual([0.5, -0.5]);
    const value = suppressionLoss(tf.matMul(x, after.params[0]!) as tf.Tensor2D, 'uniform-ce').dataSync()[0];
    expect(value).toBeCloseTo(Math.log(2 * Math.cosh(0.5)), 6);
  });

  it('the Adam inner step moves each weight by about the learning rate at first', () => {
    const loss = (ps: tf.Tensor[]) => tf.sum(tf.mul(ps[0]!, tf.tensor1d([3, -0.01]))) as tf.Scalar;
    const after = innerStep({ params: [tf.tensor1d([0, 0])], m: [], v: [], t: 0 }, loss, 'adam', 0.1);
    const [a, b] = after.params[0]!.dataSync();
    expect(a).toBeCloseTo(-0.1, 5);
    expect(b).toBeCloseTo(0.1, 5);
  });
});

describe.each(['tfjs', 'ort'] as const)('sophonModel on a tiny conv net (%s engine)', (engine) => {
  const keep = synthetic(64, 1, 'quadrants');
  const block = synthetic(64, 2, 'halves');
  const quick: SophonSettings = { ...DEFAULT_SOPHON_SETTINGS, outerSteps: 3, innerSteps: 2, supportBatchSize: 8, queryBatchSize: 8, keepBatchSize: 8, learningRate: 1e-2, engine };

  it('updates the model and records the run', async () => {
    const model = tinyNet(4);
    const r = await sophonModel(model, 'tiny', { keep, block }, quick);
    expect(r.history).toHaveLength(3);
    for (const h of r.history) expect(Number.isFinite(h.suppression) && Number.isFinite(h.retention)).toBe(true);
    const before = hostToFloat32(initializerMap(model.proto).get('cw')!), after = hostToFloat32(initializerMap(r.proto).get('cw')!);
    expect([...after]).not.toEqual([...before]);
    expect(readHardenRecord(r.proto)!.operation).toBe('sophon');
  });

  it('rolls back to the last weights above --min-keep-acc and stops', async () => {
    const model = tinyNet(4);
    const r = await sophonModel(model, 'tiny', { keep, block, keepCheck: keep }, { ...quick, minKeepAccuracy: 1, checkEvery: 1, learningRate: 0.5 });
    expect(r.rolledBack).toBe(true);
    expect(r.history).toHaveLength(1);
    expect([...hostToFloat32(initializerMap(r.proto).get('cw')!)]).toEqual([...hostToFloat32(initializerMap(model.proto).get('cw')!)]);
  });

  it('needs target data', async () => {
    await expect(sophonModel(tinyNet(4), 'tiny', { keep }, quick)).rejects.toThrow(/^sophon: needs target \(block\) data/);
  });
});

describe('sophonModel on both engines', () => {
  const keep = synthetic(64, 1, 'quadrants');
  const block = synthetic(64, 2, 'halves');
  it.each([['sgd', 'ce'], ['adam', 'ce'], ['adam', 'kd']] as const)('the outer steps agree (suppression after %s inner steps, %s retention)', async (innerOptimizer, retention) => {
    const s: SophonSettings = { ...DEFAULT_SOPHON_SETTINGS, outerSteps: 3, innerSteps: 3, innerOptimizer, innerLearningRate: 1e-2, supportBatchSize: 8, queryBatchSize: 8, keepBatchSize: 8, learningRate: 1e-3, retention, retentionTemperature: 2 };
    const [a, b] = [await sophonModel(tinyNet(4), 'tiny', { keep, block }, { ...s, engine: 'tfjs' }), await sophonModel(tinyNet(4), 'tiny', { keep, block }, { ...s, engine: 'ort' })];
    // KD's gradient at the teacher is float noise; the outer Adam turns it into full-size steps
    // of the head that differ between the engines, so later steps agree less tightly.
    const tolerance = retention === 'kd' ? 5e-4 : 1e-4;
    for (let i = 0; i < 3; i++) {
      for (const term of ['retention', 'suppression'] as const) {
        expect(Math.abs(a.history[i]![term] - b.history[i]![term]), `step ${i + 1} ${term}`).toBeLessThan(tolerance * Math.max(1, Math.abs(a.history[i]![term])));
      }
    }
    expect(readHardenRecord(b.proto)!.settings!.engine).toBe('ort');
    // KD to the model itself starts at zero: the first step's retention is 0 before it moves.
    if (retention === 'kd') expect(Math.abs(a.history[0]!.retention)).toBeLessThan(1e-5);
  });
});
