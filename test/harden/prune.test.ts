import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { encodeModel, initializerMap, loadModel, type OnnxModel } from '../../src/onnx/model.js';
import { hostToFloat32 } from '../../src/onnx/tensor.js';
import { initBackend } from '../../src/engine/backend.js';
import { TfjsTrainable } from '../../src/engine/tfjs-engine.js';
import { readHardenRecord } from '../../src/export/export.js';
import { Random } from '../../src/util/random.js';
import { fisherRatio, fisherRatioWithGradient } from '../../src/harden/fisher.js';
import { projectOntoSparsity, prunableWeights, prunedCount, sparsityMasks } from '../../src/harden/admm.js';
import { pruneModel, DEFAULT_PRUNE_SETTINGS, type PruneSettings } from '../../src/harden/prune.js';
import { tinyNet, synthetic } from '../helpers/tiny.js';
import { measureSuppression, suppressedLayers, suppressionHinge, suppressionHingeTf, suppressionTensor, type Suppression } from '../../src/harden/suppression.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { extractFeatures } from '../../src/verify/features.js';
import { ROOT } from '../helpers/cli.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('fisherRatio', () => {
  it('matches a hand computation on a small feature matrix', () => {
    // Class means (1,0), (4,5), (1,10); every sample is 1 away from its mean:
    // S_W = 1 + 1 + 1 = 3. μ̄ = (2,5); S_B = (26 + 4 + 26)/3 = 56/3. Ratio = 56/9.
    const f = tf.tensor2d([[0, 0], [2, 0], [4, 4], [4, 6], [0, 10], [2, 10]]);
    const r = fisherRatio(f, Int32Array.from([0, 0, 1, 1, 2, 2]));
    expect(r.dataSync()[0]).toBeCloseTo(56 / 9, 5);
    tf.dispose([f, r]);
  });

  it('averages within each class and weighs classes equally when counts differ', () => {
    // Class 0: (0,0),(0,0),(0,6) → mean (0,2), mean sq. distance (4+4+16)/3 = 8.
    // Class 1: (3,0) → mean (3,0), 0. S_W = 8. μ̄ = (1.5,1); S_B = ((2.25+1)+(2.25+1))/2 = 3.25.
    const f = tf.tensor2d([[0, 0], [3, 0], [0, 0], [0, 6]]);
    const r = fisherRatio(f, Int32Array.from([0, 1, 0, 0]));
    expect(r.dataSync()[0]).toBeCloseTo(3.25 / 8, 5);
    tf.dispose([f, r]);
  });

  it('the host version gives the same value and tfjs autodiff\'s gradient', () => {
    const rng = new Random(3);
    const labels = Int32Array.from([0, 2, 1, 0, 2, 2, 1, 0, 1]);
    const data = rng.normalArray(labels.length * 4);
    const host = fisherRatioWithGradient(data, labels);
    const f = tf.tensor2d(data, [labels.length, 4]);
    const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => fisherRatio(x, labels))(f);
    expect(host.value).toBeCloseTo(value.dataSync()[0]!, 5);
    const g = grad.dataSync();
    const scale = Math.max(...Array.from(g, Math.abs));
    expect(Math.max(...Array.from(host.gradient, (v, i) => Math.abs(v - g[i]!)))).toBeLessThan(1e-4 * scale);
    expect(fisherRatioWithGradient(Float32Array.from([0, 0, 2, 0, 4, 4, 4, 6, 0, 10, 2, 10]), Int32Array.from([0, 0, 1, 1, 2, 2])).value).toBeCloseTo(56 / 9, 5);
    tf.dispose([f, value, grad]);
  });

  it('is 0 for a batch of one class (no separation to measure)', () => {
    const f = tf.tensor2d([[1, 2], [3, 4]]);
    const r = fisherRatio(f, Int32Array.from([5, 5]));
    expect(r.dataSync()[0]).toBe(0);
    tf.dispose([f, r]);
  });
});

describe('ADMM projection', () => {
  const rng = new Random(11);
  const tensors = new Map([
    ['a', rng.normalArray(1000)],
    ['b', rng.normalArray(333, 3)],
    ['c', new Float32Array(50).fill(0.5)], // all ties
  ]);

  for (const s of [0, 0.5, 0.9, 0.95]) {
    it(`gives exactly the requested sparsity ${s} per layer and globally`, () => {
      for (const [name, mask] of sparsityMasks(tensors, s, 'layer')) {
        const zeros = mask.length - mask.reduce((a, b) => a + b, 0);
        expect(zeros).toBe(prunedCount(tensors.get(name)!.length, s));
      }
      const global = sparsityMasks(tensors, s, 'global');
      const zeros = [...global.values()].reduce((acc, m) => acc + m.length - m.reduce((a, b) => a + b, 0), 0);
      expect(zeros).toBe(Math.round(s * 1383));
    });
  }

  it('keeps the largest magnitudes', () => {
    const masks = sparsityMasks(tensors, 0.9, 'global');
    let minKept = Infinity, maxPruned = 0;
    for (const [name, m] of masks) {
      tensors.get(name)!.forEach((v, i) => (m[i] ? (minKept = Math.min(minKept, Math.abs(v))) : (maxPruned = Math.max(maxPruned, Math.abs(v)))));
    }
    expect(minKept).toBeGreaterThanOrEqual(maxPruned);
  });

  it('Z = Π(W + U) is W + U on the kept entries and 0 elsewhere', () => {
    const w = new Map([['a', Float32Array.from([1, -5, 0.1, 3])]]);
    const u = new Map([['a', Float32Array.from([0, 1, 0, -0.5])]]);
    const { z, masks } = projectOntoSparsity(w, u, 0.5, 'layer');
    expect([...z.get('a')!]).toEqual([0, -4, 0, 2.5]);
    expect([...masks.get('a')!]).toEqual([0, 1, 0, 1]);
  });

  it('rejects a sparsity outside [0, 1)', () => {
    expect(() => sparsityMasks(tensors, 1, 'layer')).toThrow(/\[0, 1\)/);
    expect(() => sparsityMasks(tensors, -0.1, 'global')).toThrow(/\[0, 1\)/);
  });
});

const keep = synthetic(128, 1, 'quadrants');
const block = synthetic(128, 2, 'halves');
const model = tinyNet(4);
const quickSettings: PruneSettings = { ...DEFAULT_PRUNE_SETTINGS, keepHeadDense: false, sparsity: 0.75, iterations: 2, stepsPerIteration: 4, finetuneSteps: 4, batchSize: 16, rho: 0.1, probe: { epochs: 2 } };

describe('pruneModel on both engines', () => {
  it('the first step\'s terms agree (keep CE, h_t CE, Fisher ratio, ADMM penalty, suppression hinge)', async () => {
    const [a, b] = await Promise.all((['tfjs', 'ort'] as const).map((engine) => pruneModel(model, 'tiny', { keep, block }, { ...quickSettings, iterations: 1, stepsPerIteration: 1, finetuneSteps: 1, engine })));
    const [ra, rb] = [a.history[0]!, b.history[0]!];
    for (const k of ['keep', 'block', 'fisher', 'penalty', 'suppressed', 'loss'] as const) expect(Math.abs(ra[k]! - rb[k]!), k).toBeLessThan(1e-4 * Math.max(1, Math.abs(ra[k]!)));
    expect(ra.fisher).toBeGreaterThan(0);
    expect(ra.suppressed).toBeGreaterThan(0);
    // The masked fine-tune step: keep CE and the hinge only.
    const [fa, fb] = [a.history[1]!, b.history[1]!];
    expect(fa).toMatchObject({ phase: 'finetune' });
    expect(fa.block ?? fa.fisher ?? fa.penalty).toBeUndefined();
    for (const k of ['keep', 'suppressed', 'loss'] as const) expect(Math.abs(fa[k]! - fb[k]!), k).toBeLessThan(1e-3 * Math.max(1, Math.abs(fa[k]!)));
    expect(fa.loss).toBeCloseTo(fa.keep + quickSettings.suppression * fa.suppressed!, 5);
    // Two suppressed layers (h and the conv ReLU r): the hinges add up the same way on both engines.
    const [c, d] = await Promise.all((['tfjs', 'ort'] as const).map((engine) => pruneModel(model, 'tiny', { keep, block }, { ...quickSettings, suppressionLayers: 2, iterations: 1, stepsPerIteration: 1, finetuneSteps: 0, engine })));
    expect(c.history[0]!.suppressed!).toBeGreaterThan(ra.suppressed!);
    for (const k of ['suppressed', 'loss'] as const) expect(Math.abs(c.history[0]![k]! - d.history[0]![k]!), k).toBeLessThan(1e-4 * Math.max(1, Math.abs(c.history[0]![k]!)));
    expect([a, b].map((r) => readHardenRecord(r.proto)!.settings!.engine)).toEqual(['tfjs', 'ort']);
  });

  it('one ADMM step moves the weights the same way (Adam\'s first step is lr·sign of the full gradient)', async () => {
    const settings = { ...quickSettings, iterations: 1, stepsPerIteration: 1, finetuneSteps: 0, rho: 0, tolerance: 0 };
    const before = new Map([...initializerMap(model.proto)].map(([n, h]) => [n, hostToFloat32(h)] as const));
    // Hard pruning follows the step: compare the coordinates it kept.
    const [a, b] = await Promise.all((['tfjs', 'ort'] as const).map((engine) => pruneModel(model, 'tiny', { keep, block }, { ...settings, engine })));
    let same = 0, moved = 0;
    for (const name of ['cw', 'cb', 'hw', 'hb']) {
      const w0 = before.get(name)!, wa = hostToFloat32(initializerMap(a.proto).get(name)!), wb = hostToFloat32(initializerMap(b.proto).get(name)!);
      for (let i = 0; i < w0.length; i++) {
        if (wa[i] === 0 || wb[i] === 0) continue;
        moved++;
        if (Math.sign(wa[i]! - w0[i]!) === Math.sign(wb[i]! - w0[i]!)) same++;
      }
    }
    expect(moved).toBeGreaterThan(100);
    expect(same / moved).toBeGreaterThan(0.99);
  });
});

describe.each(['tfjs', 'ort'] as const)('pruneModel on a tiny conv net (%s engine)', (engine) => {
  const quick: PruneSettings = { ...quickSettings, engine };
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'harden-prune-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const weightsOf = (proto: OnnxModel['proto']) => new Map([...initializerMap(proto)].map(([n, h]) => [n, hostToFloat32(h)] as const));

  it('prunes the Conv/Gemm weights to exact zeros at the requested sparsity, and records it', async () => {
    const r = await pruneModel(model, 'tiny', { keep, block }, quick);
    expect(prunableWeights(model.proto, ['cw', 'cb', 'hw', 'hb', 'fw', 'fb'])).toEqual(['cw', 'hw', 'fw']);
    expect([...r.masks.keys()]).toEqual(['cw', 'hw', 'fw']);
    const w = weightsOf(r.proto);
    let zeros = 0, total = 0;
    for (const [name, mask] of r.masks) {
      const values = w.get(name)!;
      mask.forEach((m, i) => {
        if (!m) expect(values[i]).toBe(0);
      });
      zeros += values.filter((v) => v === 0).length;
      total += values.length;
    }
    expect(zeros).toBe(prunedCount(total, 0.75));
    expect(r.iterations.map((i) => i.iteration)).toEqual([1, 2]);
    expect(r.history.filter((h) => h.phase === 'admm')).toHaveLength(8);
    expect(r.history.filter((h) => h.phase === 'finetune')).toHaveLength(4);
    const record = readHardenRecord(r.proto)!;
    expect(record.operation).toBe('prune');
    expect(record.figures?.sparsity).toBeCloseTo(prunedCount(total, 0.75) / total, 12);
  });

  it('magnitude pruning needs no block data and keeps the largest weights', async () => {
    const r = await pruneModel(model, 'tiny', { keep }, { ...quick, method: 'magnitude', finetuneSteps: 0 });
    const before = weightsOf(model.proto), after = weightsOf(r.proto);
    const expected = sparsityMasks(new Map(['cw', 'hw', 'fw'].map((n) => [n, before.get(n)!])), 0.75, 'global');
    for (const [name, mask] of expected) expect([...after.get(name)!]).toEqual([...before.get(name)!].map((v, i) => (mask[i] ? v : 0)));
    expect([...after.get('cb')!]).toEqual([...before.get('cb')!]); // biases are never pruned
  });

  it('keeps the classifier dense when asked', async () => {
    const r = await pruneModel(model, 'tiny', { keep }, { ...quick, method: 'magnitude', keepHeadDense: true });
    expect([...r.masks.keys()]).toEqual(['cw', 'hw']);
  });

  it('is deterministic for a seed, and resumes from a checkpoint to the same bytes', async () => {
    const full = await pruneModel(model, 'tiny', { keep, block }, quick);
    const again = await pruneModel(model, 'tiny', { keep, block }, quick);
    expect(Buffer.from(encodeModel(again.proto)).equals(Buffer.from(encodeModel(full.proto)))).toBe(true);
    // Interrupted run: stop after the first ADMM iteration's checkpoint (position 4), then resume.
    const ckpt = path.join(dir, 'ckpt');
    await expect(
      pruneModel(model, 'tiny', { keep, block }, quick, {
        checkpointDir: ckpt,
        checkpointEvery: 100,
        progress: { onStep: (r) => { if (r.step === 6) throw new Error('interrupted'); } },
      }),
    ).rejects.toThrow('interrupted');
    let resumedAt = -1;
    const resumed = await pruneModel(model, 'tiny', { keep, block }, quick, { checkpointDir: ckpt, resume: true, progress: { onResume: (s) => (resumedAt = s) } });
    expect(resumedAt).toBe(4);
    expect(Buffer.from(encodeModel(resumed.proto)).equals(Buffer.from(encodeModel(full.proto)))).toBe(true);
  });

  it('rejects bad settings and data with one-line errors', async () => {
    await expect(pruneModel(model, 'tiny', { keep, block }, { ...quick, sparsity: 1 })).rejects.toThrow(/^prune: sparsity must be in \[0, 1\), got 1$/);
    const oneClass = { ...block, labels: new Int32Array(block.labels.length) };
    await expect(pruneModel(model, 'tiny', { keep, block: oneClass }, quick)).rejects.toThrow(/has 1 class; the Fisher ratio needs at least 2/);
    await expect(pruneModel(model, 'tiny', { keep }, quick)).rejects.toThrow(/ntp needs block/);
    await expect(pruneModel(model, 'tiny', { keep, block }, { ...quick, suppression: -1 })).rejects.toThrow(/^prune: suppression must be a finite number ≥ 0, got -1$/);
    await expect(pruneModel(model, 'tiny', { keep, block }, { ...quick, suppressionMargin: Number.NaN })).rejects.toThrow(/^prune: suppression margin must be/);
    await expect(pruneModel(model, 'tiny', { keep, block }, { ...quick, suppressionLayers: 0 })).rejects.toThrow(/^prune: suppression layers must be an integer ≥ 1, got 0$/);
    await expect(pruneModel(model, 'tiny', { keep, block }, { ...quick, suppressionLayers: 3 })).rejects.toThrow(/^prune: tiny: suppression layers 3, but only 2 ReLU layers lead to the classifier$/);
  });
});

describe('block-domain suppression', () => {
  const s: Suppression = { tensor: 'z', scale: 2, margin: 0.5 };

  it('the hinge matches a hand computation', () => {
    // relu(z + 0.5) = [0, 1, 1.5, 0.3, 0, 0]: sum 2.8 over n·κ = 2·2 → 0.7; gradient 1/4 where active.
    const z = Float32Array.from([-2, 0.5, 1, -0.2, -0.5, -3]);
    const host = suppressionHinge(z, 2, s);
    expect(host.value).toBeCloseTo(0.7, 6);
    expect([...host.gradient]).toEqual([0, 0.25, 0.25, 0.25, 0, 0]);
    const t = tf.tensor2d(z, [2, 3]);
    const v = suppressionHingeTf(t, s);
    expect(v.dataSync()[0]).toBeCloseTo(0.7, 6);
    tf.dispose([t, v]);
  });

  it('the host gradient is tfjs autodiff\'s and the central difference\'s', () => {
    const z = new Random(5).normalArray(40);
    const host = suppressionHinge(z, 8, s);
    const t = tf.tensor2d(z, [8, 5]);
    const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => suppressionHingeTf(x, s))(t);
    expect(host.value).toBeCloseTo(value.dataSync()[0]!, 5);
    expect(Math.max(...[...host.gradient].map((g, i) => Math.abs(g - grad.dataSync()[i]!)))).toBeLessThan(1e-7);
    const h = 1e-3;
    for (let i = 0; i < z.length; i++) {
      if (Math.abs(z[i]! + s.margin) < 2 * h) continue; // the kink
      const up = Float32Array.from(z), down = Float32Array.from(z);
      up[i] += h;
      down[i] -= h;
      expect((suppressionHinge(up, 8, s).value - suppressionHinge(down, 8, s).value) / (2 * h)).toBeCloseTo(host.gradient[i]!, 3);
    }
    tf.dispose([t, value, grad]);
  });

  it('walks back through the ReLU layers before the classifier (through pooling and flattening)', async () => {
    expect(suppressedLayers(model.proto, 'h', 1)).toEqual(['h']);
    expect(suppressedLayers(model.proto, 'h', 3)).toEqual(['h', 'r']); // the chain ends at the input
    const lenet = await loadModel(path.join(ROOT, 'models', 'lenet5-mnist.onnx'));
    expect(suppressedLayers(lenet.proto, 'Relu_10_out', 4)).toEqual(['Relu_10_out', 'Relu_8_out', 'Relu_4_out', 'Relu_1_out']);
  });

  it('acts on the feature ReLU\'s input, in units of the original keep features\' mean L1 norm (onnxruntime reference)', async () => {
    expect(suppressionTensor(model.proto, 'h')).toBe('h0');
    expect(suppressionTensor(model.proto, 'f')).toBe('f'); // not a Relu output: the features themselves
    const graph = new ImportedGraph(model, 'tiny');
    try {
      const measured = measureSuppression(graph, 'h', keep, 2);
      const ref = await extractFeatures(model.proto, keep);
      const l1 = ref.features.reduce((a, v) => a + Math.abs(v), 0) / keep.labels.length;
      expect(measured.tensor).toBe('h0');
      expect(measured.scale).toBeCloseTo(l1, 3);
      expect(measured.margin).toBeCloseTo((2 * l1) / 16, 4);
      // A spatial layer: F = 4 channels × 8 × 8.
      const conv = measureSuppression(graph, 'r', keep, 2);
      const refConv = await extractFeatures(model.proto, keep, { featureTensor: 'r' });
      const l1Conv = refConv.features.reduce((a, v) => a + Math.abs(v), 0) / keep.labels.length;
      expect(conv.tensor).toBe('c');
      expect(conv.scale).toBeCloseTo(l1Conv, 2);
      expect(conv.margin).toBeCloseTo((2 * l1Conv) / 256, 4);
    } finally {
      graph.dispose();
    }
  });

  it.each(['tfjs', 'ort'] as const)('drives the block pre-activations below the margin on the %s engine, and is off at λ_S = 0', async (engine) => {
    const settings = { ...quickSettings, sparsity: 0.5, iterations: 2, stepsPerIteration: 30, finetuneSteps: 30, learningRate: 0.01, finetuneLearningRate: 0.01, engine };
    const on = await pruneModel(model, 'tiny', { keep, block }, settings);
    const hinge = on.history.map((h) => h.suppressed!);
    expect(hinge[0]).toBeGreaterThan(0.05);
    expect(hinge.at(-1)!).toBeLessThan(0.1 * hinge[0]!);
    const dead = async (proto: OnnxModel['proto']) => {
      const f = await extractFeatures(proto, block);
      let rows = 0;
      for (let i = 0; i < f.labels.length; i++) if (f.features.subarray(i * f.dim, (i + 1) * f.dim).every((v) => v === 0)) rows++;
      return rows / f.labels.length;
    };
    const off = await pruneModel(model, 'tiny', { keep, block }, { ...settings, suppression: 0 });
    expect(off.history.some((h) => h.suppressed !== undefined)).toBe(false);
    expect(await dead(on.proto)).toBeGreaterThan(0.9);
    expect(await dead(off.proto)).toBeLessThan(0.5);
  });
});

describe('masks in the training engine', () => {
  it('hold masked weights at exactly zero through training steps', async () => {
    const engine = new TfjsTrainable(tinyNet(4));
    const data = synthetic(16, 4, 'quadrants');
    const mask = Uint8Array.from({ length: 16 * 64 }, (_, i) => (i % 3 === 0 ? 0 : 1));
    engine.setOptimizer({ kind: 'adam', learningRate: 0.01 });
    engine.setMasks(new Map([['hw', mask]]));
    for (let i = 0; i < 3; i++) await engine.trainStep({ dtype: 'float32', shape: [16, 1, 8, 8], data: data.images }, data.labels);
    const hw = engine.weights().get('hw')!;
    mask.forEach((m, i) => (m ? expect(hw[i]).not.toBe(0) : expect(hw[i]).toBe(0)));
    engine.dispose();
  });
});
