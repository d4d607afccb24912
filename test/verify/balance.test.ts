import { describe, it, expect } from 'vitest';
import path from 'node:path';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { cloneModel, encodeModel, initializerMap, loadModel } from '../../src/onnx/model.js';
import type { ModelProto } from '../../src/onnx/schema.js';
import { hostToFloat32, makeTensorProto, readTensor } from '../../src/onnx/tensor.js';
import { balanceScales } from '../../src/verify/balance.js';
import { ROOT } from '../helpers/cli.js';
import { randomTensor, runOrt } from '../helpers/ops.js';
import { initBackend } from '../../src/engine/backend.js';
import { loadDataset } from '../../src/data/index.js';
import { piggybackAttack } from '../../src/verify/piggyback.js';

const weight = (p: ModelProto, name: string) => Array.from(hostToFloat32(initializerMap(p).get(name)!));

/** The model with some initializers multiplied by a factor each. */
function scaled(proto: ModelProto, factors: Record<string, number>): ModelProto {
  const p = cloneModel(proto);
  p.graph!.initializer = p.graph!.initializer.map((t) => {
    const k = factors[t.name!];
    if (k === undefined) return t;
    const h = readTensor(t);
    return makeTensorProto(t.name!, { ...h, data: Float32Array.from(h.data as Float32Array, (v) => v * k) });
  });
  return p;
}

/** x → Gemm(W1 [K=2, N=2]) → middle op → Gemm(W2 [2, 2]) → y. */
function twoLayer(middle: string, extraOutput = false): ModelProto {
  const g = new GraphBuilder({ opset: 17 });
  g.input('x', ['batch', 2]);
  g.initializer('w1', { data: [1, 0, 0, 2], shape: [2, 2] });
  g.initializer('b1', { data: [0, 0], shape: [2] });
  g.initializer('w2', { data: [4, 0, 0, 0.5], shape: [2, 2] });
  g.initializer('b2', { data: [1, -1], shape: [2] });
  g.node('Gemm', ['x', 'w1', 'b1'], ['h']);
  g.node(middle, ['h'], ['a']);
  g.node('Gemm', ['a', 'w2', 'b2'], ['y']);
  g.output('y', ['batch', 2]);
  if (extraOutput) g.output('a', ['batch', 2]);
  return g.build();
}

async function logits(proto: ModelProto, input: string, shape: number[]): Promise<Float64Array> {
  const out = await runOrt(encodeModel(proto), { [input]: randomTensor(shape, 7) });
  return Object.values(out)[0]!.data;
}

describe('balanceScales', () => {
  it('sets each unit to the geometric mean of its norms in the two layers (hand-computed)', () => {
    // Unit 0: p = 1 (W1 column 0, bias 0), q = 16 (W2 row 0): c = 16^¼ = 2. Unit 1: p = 4, q = 0.25: c = ½.
    const r = balanceScales(twoLayer('Relu'));
    expect(r.links).toHaveLength(1);
    expect(weight(r.proto, 'w1')).toEqual([2, 0, 0, 1]);
    expect(weight(r.proto, 'w2')).toEqual([2, 0, 0, 1]);
    expect(weight(r.proto, 'b2')).toEqual([1, -1]);
    // Weights and biases of both layers: 1 + 4 + 16 + 0.25 + ‖b2‖² = 2, then 4 + 1 + 4 + 1 + 2.
    expect(r.squaredNorm.before).toBeCloseTo(23.25, 6);
    expect(r.squaredNorm.after).toBeCloseTo(12, 6);
  });

  it('links only through positively homogeneous single-consumer paths', () => {
    expect(balanceScales(twoLayer('LeakyRelu')).links).toHaveLength(1);
    expect(balanceScales(twoLayer('Sigmoid')).links).toHaveLength(0);
    expect(balanceScales(twoLayer('Relu', true)).links).toHaveLength(0); // the hidden tensor is an output too
    const untouched = balanceScales(twoLayer('Tanh'));
    expect(weight(untouched.proto, 'w1')).toEqual([1, 0, 0, 2]);
  });

  it('keeps LeNet-5 the same function under onnxruntime while lowering its squared weight norm', async () => {
    const lenet = (await loadModel(path.join(ROOT, 'models', 'lenet5-mnist.onnx'))).proto;
    const all = balanceScales(lenet);
    expect(all.links.length).toBe(4); // conv1→conv2 (through MaxPool), conv2→fc1 (through Flatten), fc1→fc2, fc2→fc3
    const backbone = balanceScales(lenet, { backboneOnly: true });
    expect(backbone.links.length).toBe(3);
    for (const r of [all, backbone]) {
      expect(r.squaredNorm.after).toBeLessThan(r.squaredNorm.before);
      const [a, b] = await Promise.all([logits(lenet, 'input', [4, 1, 28, 28]), logits(r.proto, 'input', [4, 1, 28, 28])]);
      const scale = Math.max(...a.map(Math.abs));
      expect(Math.max(...a.map((v, i) => Math.abs(v - b[i]!)))).toBeLessThan(1e-4 * scale);
    }
    // The head's link left out: its weights are as they were.
    expect(weight(backbone.proto, 'fc3.weight')).toEqual(weight(lenet, 'fc3.weight'));
  });

  it('is canonical: a rescaled copy of a model balances to the same weights', async () => {
    const lenet = (await loadModel(path.join(ROOT, 'models', 'lenet5-mnist.onnx'))).proto;
    // fc1 ×8 and fc2 ×1/8 (fc1's bias along): the same function, with inflated fc1 weights.
    const inflated = scaled(lenet, { 'fc1.weight': 8, 'fc1.bias': 8, 'fc2.weight': 1 / 8 });
    const [a, b] = [balanceScales(lenet, { backboneOnly: true }), balanceScales(inflated, { backboneOnly: true })];
    for (const name of ['conv1.weight', 'conv2.weight', 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']) {
      const [x, y] = [weight(a.proto, name), weight(b.proto, name)];
      const err = Math.sqrt(x.reduce((s, v, i) => s + (v - y[i]!) ** 2, 0) / x.reduce((s, v) => s + v * v, 0));
      expect(err, name).toBeLessThan(1e-3);
    }
    expect(Math.abs(weight(inflated, 'fc1.weight')[0]! / weight(lenet, 'fc1.weight')[0]! - 8)).toBeLessThan(1e-4);
  });
});

describe('piggybackAttack with balance', () => {
  it('attacks a rescaled copy of a model exactly as it attacks the model', async () => {
    await initBackend('wasm');
    const lenet = (await loadModel(path.join(ROOT, 'models', 'lenet5-mnist.onnx'))).proto;
    const inflated = scaled(lenet, { 'fc1.weight': 8, 'fc1.bias': 8, 'fc2.weight': 1 / 8 });
    const data = {
      train: await loadDataset('fashion-mnist:split=train,classes=0-4,per-class=6,seed=1'),
      val: await loadDataset('fashion-mnist:split=train,classes=0-4,per-class=4,seed=2'),
      test: await loadDataset('fashion-mnist:split=test,classes=0-4,per-class=40,seed=3'),
    };
    const opts = { epochs: 3, batchSize: 10, learningRates: [1e-3], seed: 4 };
    const [plain, rescaled, rescaledBalanced, plainBalanced] = await Promise.all([
      piggybackAttack({ proto: lenet }, data, opts), piggybackAttack({ proto: inflated }, data, opts),
      piggybackAttack({ proto: inflated }, data, { ...opts, balance: true }), piggybackAttack({ proto: lenet }, data, { ...opts, balance: true }),
    ]);
    // The rescaling alone changes what fine-tuning reaches; balancing first removes it.
    expect(rescaled.accuracy).not.toBe(plain.accuracy);
    expect(Math.abs(rescaledBalanced.accuracy - plainBalanced.accuracy)).toBeLessThanOrEqual(0.01);
  });
});
