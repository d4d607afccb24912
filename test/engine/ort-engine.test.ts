import { beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import * as tf from '@tensorflow/tfjs-core';
import fs from 'node:fs';
import path from 'node:path';
import { GraphBuilder, type AttrValue } from '../../src/onnx/builder.js';
import { encodeModel, initializerMap, loadModel } from '../../src/onnx/model.js';
import { buildTrainingGraph } from '../../src/engine/ort/autodiff.js';
import { NCHWC_DOMAIN, nchwcBlockSize } from '../../src/engine/ort/nchwc.js';
import type { ModelProto } from '../../src/onnx/schema.js';
import { OrtTrainable } from '../../src/engine/ort-engine.js';
import { TfjsTrainable, crossEntropy } from '../../src/engine/tfjs-engine.js';
import { initBackend } from '../../src/engine/backend.js';
import { hessianVectorProduct } from '../../src/engine/hvp.js';
import { Random } from '../../src/util/random.js';
import { relError, smoothConvNet } from '../helpers/tiny.js';

const FIXTURES = ['lenet5_mnist', 'vggish_bn', 'resnet8_bn', 'mobilemini_dw'];
const fixture = (n: string) => path.join(__dirname, '..', 'fixtures', 'onnx', `${n}.onnx`);

function batch(shape: (number | string)[], n: number, seed: number) {
  const s = shape.map((d, i) => (i === 0 ? n : (d as number)));
  const rng = new Random(seed);
  return {
    x: { dtype: 'float32' as const, shape: s, data: rng.normalArray(s.reduce((a, b) => a * b, 1)) },
    labels: Int32Array.from({ length: n }, () => rng.int(10)),
  };
}

interface OpCase {
  name: string;
  shape: number[];
  /** Adds the op on 'h' (= x + w) and returns its output. */
  build(g: GraphBuilder): string;
  /** Input values in [lo, hi) (default a normal sample). */
  positive?: boolean;
  /** Build the graph in training mode (batch statistics). */
  training?: boolean;
  /**
   * Generate with onnxruntime's NCHWc kernels (this CPU's block size) and check, where it has
   * them, that a ReorderInput and at least this many NCHWc Convs are in the graph.
   */
  nchwc?: number;
}

function op(opType: string, attrs: Record<string, AttrValue> = {}, extra: (g: GraphBuilder) => string[] = () => []): OpCase['build'] {
  return (g) => g.node(opType, ['h', ...extra(g)], 1, attrs)[0];
}
const init = (name: string, shape: number[], seed: number, dtype: 'float32' | 'int64' = 'float32', values?: number[]) => (g: GraphBuilder) =>
  g.initializer(name, values ? { data: values, shape, dtype } : { data: new Random(seed).normalArray(shape.reduce((a, b) => a * b, 1), 0.5), shape });
const ints = (name: string, values: number[]) => (g: GraphBuilder) => g.initializer(name, { data: values, shape: [values.length], dtype: 'int64' });

const CASES: OpCase[] = [
  { name: 'Conv stride 2, pads', shape: [2, 3, 7, 7], build: op('Conv', { strides: [2, 2], pads: [1, 0, 1, 2] }, (g) => [init('k', [4, 3, 3, 3], 1)(g), init('b', [4], 2)(g)]) },
  { name: 'Conv depthwise, dilation', shape: [2, 4, 8, 8], build: op('Conv', { group: 4, dilations: [2, 2], pads: [2, 2, 2, 2] }, (g) => [init('k', [8, 1, 3, 3], 3)(g)]) },
  { name: 'Conv groups 2, SAME_UPPER', shape: [1, 4, 5, 6], build: op('Conv', { group: 2, auto_pad: 'SAME_UPPER', strides: [2, 1] }, (g) => [init('k', [6, 2, 3, 2], 4)(g)]) },
  { name: 'Conv im2col: strides, dilations, uneven pads', shape: [2, 5, 9, 8], build: op('Conv', { strides: [2, 1], dilations: [1, 2], pads: [1, 0, 2, 1] }, (g) => [init('k', [4, 5, 3, 2], 11)(g), init('b', [4], 12)(g)]) },
  { name: 'Conv stride 1 (flipped-kernel input gradient): dilations, uneven pads', shape: [1, 16, 6, 7], build: op('Conv', { dilations: [2, 1], pads: [2, 0, 1, 1] }, (g) => [init('k', [2, 16, 3, 2], 15)(g)]) },
  { name: 'Conv stride 1, pads wider than the kernel (ConvTranspose input gradient)', shape: [1, 16, 4, 4], build: op('Conv', { pads: [3, 1, 0, 3] }, (g) => [init('k', [2, 16, 3, 3], 16)(g)]) },
  { name: 'Conv shifted-slices weight gradient: strides, dilations, uneven pads', shape: [2, 2, 9, 8], build: op('Conv', { strides: [2, 1], dilations: [1, 2], pads: [1, 0, 2, 1] }, (g) => [init('k', [3, 2, 3, 2], 17)(g)]) },
  { name: 'Conv shifted-slices weight gradient: 1-D, stride 2', shape: [2, 1, 11], build: op('Conv', { strides: [2] }, (g) => [init('k', [2, 1, 4], 18)(g)]) },
  { name: 'Conv im2col: 1-D, stride 2, leftover input', shape: [2, 4, 10], build: op('Conv', { strides: [2] }, (g) => [init('k', [3, 4, 3], 13)(g)]) },
  { name: 'ConvTranspose im2col: stride 2, output_padding', shape: [2, 3, 4, 4], build: op('ConvTranspose', { strides: [2, 2], pads: [1, 0, 0, 1], output_padding: [1, 1] }, (g) => [init('k', [3, 5, 3, 3], 14)(g)]) },
  // Channels are multiples of 16, so they fill the NCHWc blocks of AVX2 (8) and AVX-512 (16).
  // Pads differ between [top, left, bottom, right] and [top, bottom, left, right] readings.
  { name: 'Conv in NCHWc blocks: stride 1, uneven pads, bias (two input blocks, blocked flipped-kernel input gradient)', shape: [1, 32, 5, 4], nchwc: 2, build: op('Conv', { pads: [1, 1, 0, 0] }, (g) => [init('k', [16, 32, 2, 2], 25)(g), init('b', [16], 26)(g)]) },
  { name: 'Conv in NCHWc blocks: stride 2, dilation (blocked weight gradient, ConvTranspose input gradient)', shape: [2, 16, 7, 6], nchwc: 1, build: op('Conv', { strides: [2, 2], dilations: [1, 2], pads: [0, 1, 2, 0] }, (g) => [init('k', [16, 16, 3, 2], 27)(g)]) },
  { name: 'Conv with 16 input but 3 output channels (not lowered; blocked weight gradient of the reordered input)', shape: [2, 16, 5, 5], nchwc: 0, build: op('Conv', { pads: [2, 0, 1, 1] }, (g) => [init('k', [3, 16, 3, 3], 28)(g)]) },
  { name: 'ConvTranspose with 16 output channels (blocked weight gradient of the reordered dY)', shape: [1, 3, 3, 4], nchwc: 0, build: op('ConvTranspose', { strides: [2, 1], pads: [1, 0, 0, 1] }, (g) => [init('k', [3, 16, 2, 2], 29)(g)]) },
  { name: 'ConvTranspose stride 2', shape: [2, 3, 4, 4], build: op('ConvTranspose', { strides: [2, 2], pads: [1, 1, 0, 0], output_padding: [1, 0] }, (g) => [init('k', [3, 2, 3, 3], 5)(g), init('b', [2], 6)(g)]) },
  { name: 'MaxPool 3x3 s2 overlapping, pads', shape: [2, 2, 7, 7], build: op('MaxPool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }) },
  { name: 'MaxPool ceil_mode', shape: [1, 2, 7, 7], build: op('MaxPool', { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }) },
  { name: 'AveragePool pads, exclude pad', shape: [2, 2, 6, 6], build: op('AveragePool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }) },
  { name: 'AveragePool include pad, ceil', shape: [1, 2, 7, 7], build: op('AveragePool', { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1, count_include_pad: 1 }) },
  { name: 'GlobalAveragePool', shape: [2, 3, 4, 5], build: op('GlobalAveragePool') },
  { name: 'GlobalMaxPool', shape: [2, 3, 4, 5], build: op('GlobalMaxPool') },
  { name: 'Gemm transB, bias', shape: [4, 6], build: op('Gemm', { transB: 1, alpha: { float: 0.7 }, beta: { float: 1.3 } }, (g) => [init('k', [5, 6], 7)(g), init('b', [5], 8)(g)]) },
  { name: 'Gemm transA', shape: [6, 4], build: op('Gemm', { transA: 1 }, (g) => [init('k', [6, 3], 9)(g)]) },
  { name: 'MatMul batched, broadcast', shape: [2, 3, 4, 5], build: op('MatMul', {}, (g) => [init('k', [5, 2], 10)(g)]) },
  { name: 'BatchNormalization (inference)', shape: [2, 3, 4, 4], build: op('BatchNormalization', { epsilon: { float: 1e-3 } }, (g) => [init('s', [3], 11)(g), init('b', [3], 12)(g), init('m', [3], 13)(g), init('v', [3], 0, 'float32', [0.5, 1.5, 2])(g)]) },
  { name: 'BatchNormalization (training: batch statistics, fused backward)', shape: [2, 2, 2, 2], training: true, build: op('BatchNormalization', { epsilon: { float: 1e-3 } }, (g) => [init('k', [2], 23)(g), init('b', [2], 24)(g), init('m', [2], 25)(g), init('v', [2], 0, 'float32', [0.5, 1.5])(g)]) },
  { name: 'InstanceNormalization', shape: [2, 3, 4, 4], build: op('InstanceNormalization', {}, (g) => [init('s', [3], 14)(g), init('b', [3], 15)(g)]) },
  { name: 'LayerNormalization', shape: [2, 3, 8], build: op('LayerNormalization', { axis: -1 }, (g) => [init('s', [8], 16)(g), init('b', [8], 17)(g)]) },
  ...['Relu', 'Sigmoid', 'Tanh', 'Softplus', 'Erf', 'Neg', 'Abs', 'Exp', 'HardSwish'].map((t) => ({ name: t, shape: [3, 7], build: op(t) })),
  { name: 'LeakyRelu', shape: [3, 7], build: op('LeakyRelu', { alpha: { float: 0.2 } }) },
  { name: 'Elu', shape: [3, 7], build: op('Elu', { alpha: { float: 0.8 } }) },
  { name: 'HardSigmoid', shape: [3, 7], build: op('HardSigmoid', { alpha: { float: 0.3 } }) },
  { name: 'Clip', shape: [3, 7], build: op('Clip', {}, (g) => [g.initializer('lo', { data: [-0.5], shape: [] }), g.initializer('hi', { data: [0.6], shape: [] })]) },
  { name: 'PRelu', shape: [2, 3, 4], build: op('PRelu', {}, (g) => [init('k', [3, 1], 18)(g)]) },
  ...['Log', 'Sqrt', 'Reciprocal'].map((t) => ({ name: t, shape: [3, 7], positive: true, build: op(t) })),
  { name: 'Div (both)', shape: [3, 4], positive: true, build: op('Div', {}, (g) => [init('k', [4], 0, 'float32', [1, 2, 3, 4])(g)]) },
  { name: 'Pow', shape: [3, 4], positive: true, build: op('Pow', {}, (g) => [init('k', [1, 4], 0, 'float32', [0.5, 1.5, 2, 3])(g)]) },
  { name: 'Mul broadcast', shape: [2, 3, 4], build: op('Mul', {}, (g) => [init('k', [3, 1], 19)(g)]) },
  { name: 'Sub broadcast', shape: [2, 3, 4], build: op('Sub', {}, (g) => [init('k', [4], 20)(g)]) },
  { name: 'Softmax', shape: [3, 6], build: op('Softmax', { axis: 1 }) },
  { name: 'LogSoftmax', shape: [3, 6], build: op('LogSoftmax', { axis: -1 }) },
  { name: 'ReduceMean', shape: [2, 3, 4], build: op('ReduceMean', { axes: [1, 2], keepdims: 0 }) },
  { name: 'ReduceSum', shape: [2, 3, 4], build: op('ReduceSum', { keepdims: 1 }, (g) => [ints('ax', [0, 2])(g)]) },
  { name: 'ReduceMax', shape: [2, 3, 4], build: op('ReduceMax', { axes: [2] }) },
  { name: 'ReduceL2', shape: [2, 3, 4], build: op('ReduceL2', { axes: [1] }) },
  { name: 'Transpose', shape: [2, 3, 4], build: op('Transpose', { perm: [2, 0, 1] }) },
  { name: 'Flatten', shape: [2, 3, 4], build: op('Flatten', { axis: 1 }) },
  { name: 'Reshape', shape: [2, 3, 4], build: op('Reshape', {}, (g) => [ints('s', [4, -1])(g)]) },
  { name: 'Unsqueeze', shape: [2, 3], build: op('Unsqueeze', {}, (g) => [ints('a', [1])(g)]) },
  { name: 'Squeeze', shape: [2, 1, 3], build: op('Squeeze', {}, (g) => [ints('a', [1])(g)]) },
  { name: 'Concat', shape: [2, 3], build: (g) => g.node('Concat', ['h', init('k', [2, 2], 21)(g), 'h'], 1, { axis: 1 })[0] },
  { name: 'Split', shape: [2, 6], build: (g) => {
    const [a, b] = g.node('Split', ['h', ints('sp', [2, 4])(g)], 2, { axis: 1 });
    return g.node('Concat', [b, a, b], 1, { axis: 1 })[0];
  } },
  { name: 'Slice step 2', shape: [3, 8], build: op('Slice', {}, (g) => [ints('st', [1]), ints('en', [7]), ints('ax', [1]), ints('sp', [2])].map((f) => f(g))) },
  { name: 'Slice unit step, negative start', shape: [3, 8], build: op('Slice', {}, (g) => [ints('st', [-6, 1]), ints('en', [100, 3]), ints('ax', [1, 0])].map((f) => f(g))) },
  { name: 'Pad constant', shape: [2, 3], build: op('Pad', { mode: 'constant' }, (g) => [ints('p', [1, 0, 0, 2])(g)]) },
  { name: 'Pad reflect', shape: [2, 4], build: op('Pad', { mode: 'reflect' }, (g) => [ints('p', [0, 2, 0, 1])(g)]) },
  { name: 'Gather repeated indices', shape: [4, 3], build: op('Gather', { axis: 0 }, (g) => [g.initializer('ix', { data: [3, 0, 3, -1], shape: [2, 2], dtype: 'int64' })]) },
  { name: 'Expand', shape: [3, 1], build: op('Expand', {}, (g) => [ints('s', [2, 3, 4])(g)]) },
  { name: 'Tile', shape: [2, 3], build: op('Tile', {}, (g) => [ints('r', [2, 3])(g)]) },
  { name: 'Resize nearest x2', shape: [1, 2, 3, 3], build: op('Resize', { mode: 'nearest' }, (g) => ['', g.initializer('sc', { data: [1, 1, 2, 2], shape: [4] })]) },
  { name: 'Where', shape: [3, 4], build: (g) => {
    const [c] = g.node('Greater', ['h', g.initializer('z', { data: [0.1], shape: [] })], 1);
    return g.node('Where', [c, 'h', init('k', [4], 22)(g)], 1)[0];
  } },
];

/** The single-op model x → Add(x, w) → op, its float weights ('w', 'k', 'b') and an input away from kinks and ties. */
function singleOpProblem(c: OpCase) {
  const g = new GraphBuilder({ opset: 17 });
  g.input('x', c.shape);
  const n = c.shape.reduce((a, b) => a * b, 1);
  g.initializer('w', { data: new Float32Array(n), shape: c.shape });
  g.node('Add', ['x', 'w'], ['h']);
  const y = c.build(g);
  g.output(y);
  const proto = g.build();
  const weights = new Map<string, { shape: number[]; data: Float32Array }>([['w', { shape: c.shape, data: new Float32Array(n) }]]);
  for (const t of proto.graph!.initializer) {
    if ((t.name === 'k' || t.name === 'b') && t.data_type === 1) {
      const h = initializerMap(proto).get(t.name)!;
      weights.set(t.name, { shape: h.shape, data: Float32Array.from(h.data as Float32Array) });
    }
  }
  // Values on a 0.07 grid offset from 0, so ties (max pooling) and kinks (ReLU at 0) are not probed.
  const kinks = [0, -0.5, 0.6, 0.1, -3, 3];
  const x = Float32Array.from({ length: n }, (_, i) => {
    if (c.positive) return 0.5 + ((i * 37) % n) / n;
    const v = (((i * 37) % n) - n / 2) * 0.07 + 0.031;
    return kinks.some((k) => Math.abs(v - k) < 0.02) ? v + 0.04 : v;
  });
  return { model: { proto }, y, weights, params: [...weights.keys()], x };
}

const blockFor = async (c: OpCase) => (c.nchwc !== undefined ? nchwcBlockSize() : 0);

/** Where this CPU has NCHWc kernels, an NCHWc case really runs its convolutions and reorders in blocks. */
async function expectNchwcWhereAsked(c: OpCase, proto: ModelProto): Promise<void> {
  if (c.nchwc === undefined || (await nchwcBlockSize()) === 0) return;
  const ops = proto.graph!.node.filter((n) => n.domain === NCHWC_DOMAIN).map((n) => n.op_type);
  expect(ops.filter((o) => o === 'Conv').length, c.name).toBeGreaterThanOrEqual(c.nchwc);
  expect(ops, c.name).toContain('ReorderInput');
}

/**
 * ⟨f(x + w), u⟩ for a fixed u: its gradient in w and in the op's float weights ('k', 'b') from
 * the generated graph against central differences of the forward pass, at every coordinate
 * (relative to the largest entry of each gradient).
 */
async function ruleError(c: OpCase): Promise<number> {
  const { model, y, weights, params, x } = singleOpProblem(c);
  const graph = await buildTrainingGraph(model, { inputName: 'x', inputShape: c.shape, training: c.training ?? false, fed: params, wrt: params, upstream: [y], outputs: [y], nchwcBlock: await blockFor(c) }, c.name);
  await expectNchwcWhereAsked(c, graph.proto);
  const session = await ort.InferenceSession.create(encodeModel(graph.proto));
  const rng = new Random(7);
  const up = graph.upstream.get(y)!;
  const u = rng.normalArray(up.shape.reduce((a, b) => a * b, 1));
  const run = async (changed?: { name: string; data: Float32Array }) => {
    const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor('float32', x, c.shape), [up.name]: new ort.Tensor('float32', u, up.shape) };
    for (const [name, p] of weights) feeds[name] = new ort.Tensor('float32', changed?.name === name ? changed.data : p.data, p.shape);
    return session.run(feeds);
  };
  const base = await run();
  const objective = async (name: string, data: Float32Array) => {
    const out = (await run({ name, data }))[y].data as Float32Array;
    let s = 0;
    for (let i = 0; i < out.length; i++) s += out[i] * u[i];
    return s;
  };
  const eps = 1e-2;
  let worst = 0;
  for (const [name, p] of weights) {
    const analytic = base[graph.gradients.get(name)!].data as Float32Array;
    const scale = Math.max(1e-6, ...Array.from(analytic, Math.abs));
    for (let i = 0; i < p.data.length; i++) {
      const wp = Float32Array.from(p.data); wp[i] += eps;
      const wm = Float32Array.from(p.data); wm[i] -= eps;
      const fd = ((await objective(name, wp)) - (await objective(name, wm))) / (2 * eps);
      worst = Math.max(worst, Math.abs(fd - analytic[i]) / scale);
    }
  }
  await session.release();
  return worst;
}

/**
 * H·v of ⟨f(x + w), u⟩ over all float weights from the tangent pass, against central
 * differences of the graph's own gradients, (g(θ + εv) − g(θ − εv)) / 2ε (relative to the
 * largest entry of either, at least 1e-3: linear ops have H = 0).
 */
async function tangentError(c: OpCase): Promise<number> {
  const { model, y, weights, params, x } = singleOpProblem(c);
  const graph = await buildTrainingGraph(model, { inputName: 'x', inputShape: c.shape, training: c.training ?? false, fed: params, wrt: params, upstream: [y], hessianVector: true, nchwcBlock: await blockFor(c) }, c.name);
  await expectNchwcWhereAsked(c, graph.proto);
  const session = await ort.InferenceSession.create(encodeModel(graph.proto));
  const rng = new Random(8);
  const up = graph.upstream.get(y)!;
  const u = rng.normalArray(up.shape.reduce((a, b) => a * b, 1));
  const v = new Map(params.map((p) => [p, rng.normalArray(weights.get(p)!.data.length)]));
  const run = async (shift: number) => {
    const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor('float32', x, c.shape), [up.name]: new ort.Tensor('float32', u, up.shape) };
    for (const [name, p] of weights) feeds[name] = new ort.Tensor('float32', Float32Array.from(p.data, (w, i) => w + shift * v.get(name)![i]), p.shape);
    for (const [name, d] of graph.directions) feeds[d.name] = new ort.Tensor('float32', v.get(name)!, d.shape);
    return session.run(feeds);
  };
  const eps = 1e-3;
  const [base, plus, minus] = [await run(0), await run(eps), await run(-eps)];
  let worst = 0;
  for (const p of params) {
    const hv = base[graph.hessianVector.get(p)!].data as Float32Array;
    const gp = plus[graph.gradients.get(p)!].data as Float32Array;
    const gm = minus[graph.gradients.get(p)!].data as Float32Array;
    const fd = Float32Array.from(gp, (a, i) => (a - gm[i]) / (2 * eps));
    const scale = Math.max(1e-3, ...Array.from(hv, Math.abs), ...Array.from(fd, Math.abs));
    for (let i = 0; i < hv.length; i++) worst = Math.max(worst, Math.abs(hv[i] - fd[i]) / scale);
  }
  await session.release();
  return worst;
}

describe('ort engine gradient rules', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s matches central differences', async (_n, c) => {
    expect(await ruleError(c)).toBeLessThan(1e-2);
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s: Hessian-vector product (tangent pass) matches central differences of gradients', async (_n, c) => {
    expect(await tangentError(c)).toBeLessThan(1e-2);
  });

  it('an op without a rule on the gradient path names the node and op', async () => {
    const g = new GraphBuilder({ opset: 17 });
    g.input('x', [2, 3]);
    g.initializer('w', { data: new Float32Array(6), shape: [2, 3] });
    g.node('Add', ['x', 'w'], ['h']);
    g.node('Cos', ['h'], ['y'], {}, { name: 'the_cos' });
    g.output('y');
    await expect(buildTrainingGraph({ proto: g.build() }, { inputName: 'x', inputShape: [2, 3], training: false, fed: ['w'], wrt: ['w'], upstream: ['y'] }, 'm.onnx'))
      .rejects.toThrow(/node 'the_cos' \(Cos, opset 17\): no gradient rule/);
  });
});

describe('onnxruntime NCHWc kernels', () => {
  it('the probed block size is MLAS\'s (x86: 16 floats with AVX-512, else 8), 0 when turned off', async () => {
    const block = await nchwcBlockSize();
    expect([0, 8, 16]).toContain(block);
    if (process.platform === 'linux' && process.arch === 'x64') {
      const flags = new Set(fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)![1].trim().split(/\s+/));
      expect(block).toBe(flags.has('avx512f') ? 16 : 8);
    }
    process.env.HARDEN_ORT_NCHWC = '0';
    try {
      expect(await nchwcBlockSize()).toBe(0);
    } finally {
      delete process.env.HARDEN_ORT_NCHWC;
    }
  });

  it('resnet8_bn: the engine uses them, and its gradients and BN statistics equal the standard-op graph\'s (rel. error < 1e-5)', async () => {
    const model = await loadModel(fixture('resnet8_bn'));
    const run = async (nchwc: boolean) => {
      if (!nchwc) process.env.HARDEN_ORT_NCHWC = '0';
      try {
        const engine = new OrtTrainable(model, 'resnet8', { threads: 1 });
        const { x, labels } = batch(engine.inputShape, 8, 4);
        const req = { training: true, wrt: engine.parameterNames, losses: [{ tensor: engine.outputName, targets: new Float32Array(80) }] };
        const ops = (await engine.trainingGraph(x.shape, req)).proto.graph!.node.filter((n) => n.domain === NCHWC_DOMAIN).map((n) => n.op_type);
        const r = await engine.crossEntropyGradients(x, labels, { training: true });
        engine.dispose();
        return { ops, ...r };
      } finally {
        delete process.env.HARDEN_ORT_NCHWC;
      }
    };
    const [blocked, standard] = [await run(true), await run(false)];
    expect(standard.ops).toEqual([]);
    if ((await nchwcBlockSize()) > 0) expect(blocked.ops.filter((o) => o === 'Conv').length).toBeGreaterThanOrEqual(12);
    expect(Math.abs(blocked.loss! - standard.loss!)).toBeLessThan(1e-5);
    expect(standard.gradients.size).toBe(blocked.gradients.size);
    for (const [p, g] of standard.gradients) expect(relError(blocked.gradients.get(p)!, g), p).toBeLessThan(1e-5);
    expect(standard.statistics.size).toBeGreaterThan(0);
    for (const [p, v] of standard.statistics) expect(relError(blocked.statistics.get(p)!, v), p).toBeLessThan(1e-5);
  });
});

describe('ort engine on the fixture models', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it.each(FIXTURES)('%s: gradients equal the tfjs engine\'s (rel. error < 1e-3)', async (name) => {
    const model = await loadModel(fixture(name));
    const ortEngine = new OrtTrainable(model, name, { threads: 1 });
    const tfjsEngine = new TfjsTrainable(model, name);
    const { x, labels } = batch(ortEngine.inputShape, 8, 1);
    const a = await ortEngine.lossAndGradients(x, labels);
    const b = await tfjsEngine.lossAndGradients(x, labels);
    expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5);
    expect([...a.gradients.keys()]).toEqual([...b.gradients.keys()]);
    for (const [p, g] of a.gradients) expect(relError(g, b.gradients.get(p)!), p).toBeLessThan(1e-3);
    ortEngine.dispose();
    tfjsEngine.dispose();
  });

  it('a training step in training mode (batch statistics, running-stat update, Adam) matches tfjs', async () => {
    const model = await loadModel(fixture('resnet8_bn'));
    const ortEngine = new OrtTrainable(model, 'resnet8', { threads: 1 });
    const tfjsEngine = new TfjsTrainable(model, 'resnet8');
    for (const e of [ortEngine, tfjsEngine]) e.setOptimizer({ kind: 'adam', learningRate: 1e-3 });
    const { x, labels } = batch(ortEngine.inputShape, 8, 2);
    for (let step = 0; step < 2; step++) {
      const la = await ortEngine.trainStep(x, labels);
      const lb = await tfjsEngine.trainStep(x, labels);
      expect(Math.abs(la - lb)).toBeLessThan(1e-4);
    }
    const wa = ortEngine.weights();
    const wb = tfjsEngine.weights();
    for (const [name, v] of wa) expect(relError(v, wb.get(name)!), name).toBeLessThan(1e-3);
    ortEngine.dispose();
    tfjsEngine.dispose();
  });

  it('input gradients: per-row losses and ∂ΣCE/∂x agree between the engines and with central differences', async () => {
    for (const model of [smoothConvNet(10, 9), await loadModel(fixture('resnet8_bn'))]) {
      const [a, b] = [new OrtTrainable(model, 'm', { threads: 1 }), new TfjsTrainable(model, 'm')];
      const { x, labels } = batch(a.inputShape, 4, 5);
      const [ra, rb] = [await a.inputGradient(x, labels), await b.inputGradient(x, labels)];
      expect(relError(ra.losses, rb.losses)).toBeLessThan(1e-5);
      expect(relError(ra.gradient, rb.gradient)).toBeLessThan(1e-3);
      a.dispose();
      b.dispose();
    }
    const model = smoothConvNet(10, 9);
    const engine = new OrtTrainable(model, 'smooth', { threads: 1 });
    const { x, labels } = batch(engine.inputShape, 3, 6);
    const { gradient } = await engine.inputGradient(x, labels);
    const sum = async (data: Float32Array) => (await engine.inputGradient({ ...x, data }, labels)).losses.reduce((p, q) => p + q, 0);
    const eps = 1e-2;
    const scale = Math.max(...Array.from(gradient, Math.abs));
    for (const i of [0, 17, 100, 255, 383]) {
      const [p, m] = [Float32Array.from(x.data as Float32Array), Float32Array.from(x.data as Float32Array)];
      p[i]! += eps;
      m[i]! -= eps;
      expect(Math.abs(((await sum(p)) - (await sum(m))) / (2 * eps) - gradient[i]!) / scale).toBeLessThan(1e-2);
    }
    engine.dispose();
  });

  it('an inference-mode step (training: false) leaves the BN statistics as they are', async () => {
    const model = await loadModel(fixture('resnet8_bn'));
    const ortEngine = new OrtTrainable(model, 'resnet8', { threads: 1 });
    const { x, labels } = batch(ortEngine.inputShape, 4, 7);
    for (const engine of [ortEngine, new TfjsTrainable(model, 'resnet8')]) {
      engine.setOptimizer({ kind: 'sgd', learningRate: 1e-2 });
      const before = engine.weights();
      await engine.trainStep(x, labels, { training: false });
      const after = engine.weights();
      const stats = [...before.keys()].filter((n) => !engine.parameterNames.includes(n));
      expect(stats.length).toBeGreaterThan(0);
      for (const n of stats) expect(Array.from(after.get(n)!), n).toEqual(Array.from(before.get(n)!));
      expect(engine.parameterNames.some((n) => after.get(n)!.some((v, i) => v !== before.get(n)![i]))).toBe(true);
      engine.dispose();
    }
  });

  it('the training graph is a valid ONNX model onnxruntime loads on its own', async () => {
    const model = await loadModel(fixture('mobilemini_dw'));
    const engine = new OrtTrainable(model, 'mobilemini', { threads: 1 });
    const graph = await engine.trainingGraph([4, 3, 32, 32], { training: true, wrt: engine.parameterNames, losses: [{ tensor: engine.outputName, targets: new Float32Array(40) }] });
    const session = await ort.InferenceSession.create(encodeModel(graph.proto));
    expect(session.outputNames).toContain('harden_loss');
    expect(session.outputNames.length).toBe(1 + engine.parameterNames.length + graph.statistics.size);
    await session.release();
    engine.dispose();
  });

  // Exact on ReLU/MaxPool nets too (kinks and routing held fixed, as double backprop does),
  // where central differences of gradient runs are not.
  it.each(['smooth', 'lenet5_mnist', 'resnet8_bn', 'vggish_bn', 'mobilemini_dw'])('%s: Hessian-vector products (forward over reverse) equal tfjs\'s double backprop (rel. error < 1e-3)', async (name) => {
    const model = name === 'smooth' ? smoothConvNet(10, 9) : await loadModel(fixture(name));
    const ortEngine = new OrtTrainable(model, name, { threads: 1 });
    const tfjsEngine = new TfjsTrainable(model, name);
    const { x, labels } = batch(ortEngine.inputShape, 8, 3);
    const names = [...ortEngine.parameterNames];
    const rng = new Random(5);
    const v = new Map(names.map((n) => [n, rng.normalArray(ortEngine.weights().get(n)!.length)]));
    const product = await ortEngine.hessianVectorProduct(x, labels, v);
    const exact = tf.tidy(() => {
      const params = names.map((n) => tfjsEngine.graph.variables.get(n)! as tf.Tensor);
      const xt = tf.tensor(x.data, x.shape);
      const yt = tf.tensor1d(labels, 'int32');
      const loss = (ps: tf.Tensor[]) => crossEntropy(tfjsEngine.graph.run({ [tfjsEngine.inputName]: xt }, { parameters: new Map(names.map((n, i) => [n, ps[i]])) }).outputs.get(tfjsEngine.outputName) as tf.Tensor2D, yt);
      return hessianVectorProduct(loss, params, names.map((n) => tf.tensor(v.get(n)!, tfjsEngine.graph.variables.get(n)!.shape))).map((t) => t.dataSync() as Float32Array);
    });
    const flat = (parts: Float32Array[]) => Float32Array.from(parts.flatMap((p) => Array.from(p)));
    expect(relError(flat(names.map((n) => product.get(n)!)), flat(exact))).toBeLessThan(1e-3);
    ortEngine.dispose();
    tfjsEngine.dispose();
  });
});
