import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, encodeModel, initializerMap, loadModel } from '../../src/onnx/model.js';
import { hostToFloat32 } from '../../src/onnx/tensor.js';
import { initBackend } from '../../src/engine/backend.js';
import { trainModel, learningRateAt, type TrainSettings } from '../../src/train/trainer.js';
import { withNewHead, selectTrainable } from '../../src/train/head.js';
import { evaluate } from '../../src/verify/evaluate.js';
import type { Dataset } from '../../src/data/types.js';
import { Random } from '../../src/util/random.js';

/** Two classes of 1×8×8 images: a bright top half or a bright bottom half, plus noise. */
function halves(n: number, seed: number): Dataset {
  const rng = new Random(seed);
  const images = new Float32Array(n * 64);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    for (let p = 0; p < 64; p++) images[i * 64 + p] = ((p < 32) === (labels[i] === 0) ? 1 : 0) + 0.3 * rng.normal();
  }
  return { name: 'halves', images, labels, shape: [1, 8, 8], classes: 2 };
}

function tinyNet(classes: number): Uint8Array {
  const rng = new Random(3);
  const g = new GraphBuilder({ opset: 13 });
  g.input('input', ['batch', 1, 8, 8]);
  g.initializer('cw', { data: rng.normalArray(4 * 9, 0.3), shape: [4, 1, 3, 3] });
  g.initializer('cb', { data: new Float32Array(4), shape: [4] });
  g.initializer('bs', { data: new Float32Array(4).fill(1), shape: [4] });
  g.initializer('bb', { data: new Float32Array(4), shape: [4] });
  g.initializer('bm', { data: new Float32Array(4), shape: [4] });
  g.initializer('bv', { data: new Float32Array(4).fill(1), shape: [4] });
  g.initializer('fw', { data: rng.normalArray(classes * 64, 0.1), shape: [classes, 64] });
  g.initializer('fb', { data: new Float32Array(classes), shape: [classes] });
  g.node('Conv', ['input', 'cw', 'cb'], ['c'], { pads: [1, 1, 1, 1] });
  g.node('BatchNormalization', ['c', 'bs', 'bb', 'bm', 'bv'], ['n']);
  g.node('Relu', ['n'], ['r']);
  g.node('MaxPool', ['r'], ['p'], { kernel_shape: [2, 2], strides: [2, 2] });
  g.node('Flatten', ['p'], ['f']);
  g.node('Gemm', ['f', 'fw', 'fb'], ['logits'], { transB: 1 });
  g.output('logits', ['batch', classes]);
  return g.toBytes();
}

const settings: TrainSettings = {
  epochs: 4, batchSize: 16, optimizer: { kind: 'adam', learningRate: 0.01 }, schedule: 'constant', stepEvery: 1, gamma: 0.5, train: 'all', augment: false, seed: 7,
};

let dir: string;
beforeAll(async () => {
  await initBackend('wasm');
  dir = mkdtempSync(path.join(tmpdir(), 'harden-train-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('trainModel', () => {
  it('learns a separable task; onnxruntime accuracy of the result is high', async () => {
    const model = { proto: decodeModel(tinyNet(2), 'tiny.onnx') };
    const test = halves(100, 2);
    const before = await evaluate(model.proto, test);
    const { proto, history } = await trainModel(model, 'tiny.onnx', halves(160, 1), test, settings);
    expect(history).toHaveLength(4);
    expect(history[3].trainLoss).toBeLessThan(history[0].trainLoss);
    const after = await evaluate(proto, test);
    expect(after.accuracy).toBeGreaterThan(0.95);
    expect(after.accuracy).toBeGreaterThan(before.accuracy);
    expect(history[3].test!.accuracy).toBeCloseTo(after.accuracy, 6);
  });

  // Not bit-identical: tfjs's Adam restores beta^t with pow() where the live run multiplied step by step.
  it('an interrupted run resumed from its checkpoint ends with (nearly) the same weights and accuracy', async () => {
    const bytes = tinyNet(2);
    const straight = await trainModel({ proto: decodeModel(bytes, 'a.onnx') }, 'a.onnx', halves(160, 1), undefined, settings);
    const ckpt = path.join(dir, 'resume.ckpt');
    const crash = { onBatch: (epoch: number, batch: number) => { if (epoch === 2 && batch === 3) throw new Error('killed'); } };
    await expect(trainModel({ proto: decodeModel(bytes, 'b.onnx') }, 'b.onnx', halves(160, 1), undefined, settings, { checkpointDir: ckpt, progress: crash })).rejects.toThrow('killed');
    let resumedAt = -1;
    const resumed = await trainModel({ proto: decodeModel(bytes, 'b.onnx') }, 'b.onnx', halves(160, 1), undefined, settings, { checkpointDir: ckpt, resume: true, progress: { onResume: (e) => (resumedAt = e) } });
    expect(resumedAt).toBe(2);
    const a = initializerMap(straight.proto), b = initializerMap(resumed.proto);
    for (const [name, t] of a) {
      const x = hostToFloat32(t), y = hostToFloat32(b.get(name)!);
      const diff = x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
      expect(diff, name).toBeLessThan(1e-3);
    }
    expect(hostToFloat32(a.get('bm')!).some((v) => v !== 0)).toBe(true); // BN statistics were trained too
    const test = halves(100, 2);
    expect((await evaluate(resumed.proto, test)).accuracy).toBeCloseTo((await evaluate(straight.proto, test)).accuracy, 2);
  });

  it('a new head for another class count, and head-only training leaves the backbone alone', async () => {
    const model = { proto: decodeModel(tinyNet(2), 'c.onnx') };
    const fresh = withNewHead(model.proto, 5, 1, 'c.onnx');
    const inits = initializerMap(fresh);
    expect(inits.get('fw')!.shape).toEqual([5, 64]);
    expect(inits.get('fb')!.shape).toEqual([5]);
    expect(selectTrainable(fresh, ['cw', 'cb', 'bs', 'bb', 'fw', 'fb'], 'head', 'c.onnx')).toEqual(['fw', 'fb']);
    expect(selectTrainable(fresh, ['cw', 'cb', 'bs', 'bb', 'fw', 'fb'], 'last-2', 'c.onnx')).toEqual(['bs', 'bb', 'fw', 'fb']);
    const data: Dataset = { ...halves(64, 4), classes: 5 };
    const { proto } = await trainModel({ proto: fresh }, 'c.onnx', data, undefined, { ...settings, epochs: 1, train: 'head' });
    const after = initializerMap(proto);
    expect(Array.from(hostToFloat32(after.get('cw')!))).toEqual(Array.from(hostToFloat32(inits.get('cw')!)));
    expect(Array.from(hostToFloat32(after.get('fw')!))).not.toEqual(Array.from(hostToFloat32(inits.get('fw')!)));
  });

  it('the same seed gives the same model bytes; another seed does not', async () => {
    const run = async (seed: number) => {
      const { proto } = await trainModel({ proto: decodeModel(tinyNet(2), 'e.onnx') }, 'e.onnx', halves(64, 1), undefined, { ...settings, epochs: 2, seed });
      return Buffer.from(encodeModel(proto)).toString('hex');
    };
    const [a, b, c] = [await run(3), await run(3), await run(4)];
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });

  it('learning-rate schedules', () => {
    expect(learningRateAt({ ...settings, schedule: 'step', stepEvery: 2, gamma: 0.1 }, 3)).toBeCloseTo(0.001, 9);
    expect(learningRateAt({ ...settings, schedule: 'cosine', epochs: 4 }, 2)).toBeCloseTo(0.005, 9);
    expect(learningRateAt(settings, 3)).toBe(0.01);
  });

  it('labels beyond the model classes and images of another size are one-line errors', async () => {
    const model = { proto: decodeModel(tinyNet(2), 'd.onnx') };
    const wide: Dataset = { ...halves(8, 5), classes: 3, labels: Int32Array.from([0, 1, 2, 0, 1, 2, 0, 1]) };
    await expect(trainModel(model, 'd.onnx', wide, undefined, settings)).rejects.toThrow(/label 2 but the model has 2 classes/);
    // The same through a model read from a file (its int64 dims decode as Long values).
    const file = path.join(dir, 'd.onnx');
    writeFileSync(file, tinyNet(2));
    await expect(trainModel(await loadModel(file), file, wide, undefined, settings)).rejects.toThrow(/label 2 but the model has 2 classes/);
    const big: Dataset = { name: 'big', images: new Float32Array(8 * 100), labels: new Int32Array(8), shape: [1, 10, 10], classes: 2 };
    await expect(trainModel(model, 'd.onnx', big, undefined, settings)).rejects.toThrow(/\[1, 10, 10\] but the model takes \[1, 8, 8\]/);
  });
});
