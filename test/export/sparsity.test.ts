import { describe, it, expect, beforeAll } from 'vitest';
import path from 'node:path';
import * as ortWeb from 'onnxruntime-web';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, encodeModel, initializerMap, loadModel, type OnnxModel } from '../../src/onnx/model.js';
import { hostToFloat32, type HostTensor } from '../../src/onnx/tensor.js';
import { toNumber, newTypeProto, newValueInfo, type ModelProto } from '../../src/onnx/schema.js';
import { withWeights } from '../../src/export/export.js';
import {
  SPARSITY_METADATA_KEY,
  readSparsityMetadata,
  setSparsityMetadata,
  sparsityReport,
  toSparseInitializers,
} from '../../src/export/sparsity.js';
import { createSession, runSession } from '../../src/verify/ort.js';
import { Random } from '../../src/util/random.js';
import { maxAbsDiff } from '../helpers/fixtures.js';
import { ROOT } from '../helpers/cli.js';

const LENET = path.join(ROOT, 'models', 'lenet5-mnist.onnx');

/** x [2,3] → MatMul W [3,2] (+ b [2]) → y (first output); W has 4 zeros of 6, b one zero of 2. */
function tinyModel(opts: { irVersion?: number; w?: number[] } = {}): ModelProto {
  const g = new GraphBuilder({ irVersion: opts.irVersion ?? 8, opset: 13 });
  g.input('x', [2, 3]);
  g.initializer('W', { data: opts.w ?? [1, 0, 0, 2, 0, 0], shape: [3, 2] });
  g.initializer('K', { data: [0, 3, 4, 5], shape: [1, 1, 2, 2] }); // rank 4, 1 zero
  g.initializer('b', { data: [0, 1], shape: [2] });
  g.initializer('steps', { data: [0, 0, 0, 0], shape: [2, 2], dtype: 'int64' });
  g.node('MatMul', ['x', 'W'], ['xw']);
  g.node('Add', ['xw', 'b'], ['y']);
  g.node('Identity', ['K'], ['k']);
  g.node('Cast', ['steps'], ['s'], { to: 1 });
  g.output('y', [2, 2]);
  g.output('k', [1, 1, 2, 2]);
  g.output('s', [2, 2]);
  return g.build();
}

const X: HostTensor = { dtype: 'float32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) };

async function ortRun(bytes: Uint8Array, feeds: Record<string, HostTensor>): Promise<Float32Array> {
  const s = await createSession(bytes, { threads: 1 });
  const out = [...(await runSession(s, feeds)).values()][0]!.data as Float32Array;
  await s.release();
  return out;
}

describe('sparsityReport', () => {
  it('counts exact zeros of float initializers of rank ≥ 2 only', () => {
    const r = sparsityReport(tinyModel());
    expect(Object.keys(r.perTensor).sort()).toEqual(['K', 'W']);
    expect(r.perTensor.W).toEqual({ zeros: 4, elements: 6, sparsity: 4 / 6 });
    expect(r.perTensor.K).toEqual({ zeros: 1, elements: 4, sparsity: 0.25 });
    expect(r.zeros).toBe(5);
    expect(r.elements).toBe(10);
    expect(r.global).toBeCloseTo(0.5, 12);
  });

  it('is 0 for a model without weight matrices, and counts -0 as zero', () => {
    const g = new GraphBuilder();
    g.input('x', [2]);
    g.initializer('b', { data: [0, 0], shape: [2] });
    g.node('Add', ['x', 'b'], ['y']);
    g.output('y', [2]);
    expect(sparsityReport(g.build())).toEqual({ global: 0, zeros: 0, elements: 0, perTensor: {} });
    expect(sparsityReport(tinyModel({ w: [-0, 0, 1, 1, 1, 1] })).perTensor.W!.zeros).toBe(2);
  });

  it('setSparsityMetadata records global and per-tensor sparsity as JSON', () => {
    const proto = tinyModel();
    const r = sparsityReport(proto);
    setSparsityMetadata(proto, r);
    setSparsityMetadata(proto, r); // replaces, does not duplicate
    const entries = proto.metadata_props.filter((e) => e.key === SPARSITY_METADATA_KEY);
    expect(entries).toHaveLength(1);
    expect(JSON.parse(entries[0]!.value!)).toEqual({ global: r.global, perTensor: { W: 4 / 6, K: 0.25 } });
    expect(readSparsityMetadata(decodeModel(encodeModel(proto), 'm.onnx'))).toEqual({ global: r.global, perTensor: { W: 4 / 6, K: 0.25 } });
  });
});

describe('toSparseInitializers', () => {
  it('moves weight matrices with sparsity ≥ minSparsity to COO sparse initializers', async () => {
    const dense = tinyModel();
    const { proto, converted } = toSparseInitializers(dense);
    expect(converted).toEqual(['W']); // K is 25 % zero, b is a bias, steps is int64
    expect(proto.graph!.initializer.map((t) => t.name)).toEqual(['K', 'b', 'steps']);
    const s = proto.graph!.sparse_initializer[0]!;
    expect(s.values!.name).toBe('W');
    expect(s.dims.map((d) => toNumber(d))).toEqual([3, 2]);
    expect(s.indices!.dims.map((d) => toNumber(d))).toEqual([2]); // linear [NNZ] int64
    expect(dense.graph!.sparse_initializer).toHaveLength(0); // the input model is untouched
    expect(initializerMap(proto)).toEqual(initializerMap(dense));
    expect(toSparseInitializers(dense, { minSparsity: 0.2 }).converted).toEqual(['W', 'K']);

    const a = await ortRun(encodeModel(dense), { x: X });
    const b = await ortRun(encodeModel(proto), { x: X });
    expect(Array.from(b)).toEqual([1, 5, 4, 11]);
    expect(maxAbsDiff(a, b)).toBe(0);
  });

  it('converts named initializers, keeps graph inputs of the same name, and handles all-zero tensors', async () => {
    const dense = tinyModel({ w: [0, 0, 0, 0, 0, 0] });
    dense.graph!.input.push(newValueInfo({ name: 'W', type: newTypeProto({ tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 3 }, { dim_value: 2 }] } } }) }));
    const { proto, converted } = toSparseInitializers(dense, { names: ['W', 'b'] });
    expect(converted).toEqual(['W', 'b']);
    expect(proto.graph!.input.map((i) => i.name)).toEqual(['x', 'W']);
    expect(initializerMap(proto)).toEqual(initializerMap(dense));
    expect(Array.from(await ortRun(encodeModel(proto), { x: X }))).toEqual([0, 1, 0, 1]);
    expect(() => toSparseInitializers(dense, { names: ['nope'] })).toThrow(/no initializer named 'nope'/);
    expect(() => toSparseInitializers(dense, { names: ['steps'] })).toThrow(/int64/);
  });

  it('raises the IR version to 6 (the first with sparse_initializer) and leaves newer ones', () => {
    expect(toNumber(toSparseInitializers(tinyModel({ irVersion: 4 })).proto.ir_version)).toBe(6);
    expect(toNumber(toSparseInitializers(tinyModel({ irVersion: 9 })).proto.ir_version)).toBe(9);
    expect(toNumber(toSparseInitializers(tinyModel({ irVersion: 4 }), { minSparsity: 1 }).proto.ir_version)).toBe(4); // nothing converted
  });
});

/** Zeroes the `fraction` smallest-magnitude entries of every float weight matrix/kernel. */
function prune(model: OnnxModel, fraction: number): ModelProto {
  const weights = new Map<string, Float32Array>();
  for (const [name, h] of initializerMap(model.proto, model.baseDir)) {
    if (h.dtype !== 'float32' || h.shape.length < 2) continue;
    const w = hostToFloat32(h);
    const order = Array.from(w.keys()).sort((i, j) => Math.abs(w[i]!) - Math.abs(w[j]!));
    for (const i of order.slice(0, Math.floor(fraction * w.length))) w[i] = 0;
    weights.set(name, w);
  }
  return withWeights(model, weights);
}

describe('a 90 %-pruned LeNet-5 stored with sparse initializers', () => {
  let denseBytes: Uint8Array, sparseBytes: Uint8Array, converted: string[];
  let dense: ModelProto, sparse: ModelProto;
  const batch: HostTensor = { dtype: 'float32', shape: [8, 1, 28, 28], data: new Random(7).normalArray(8 * 784) };

  beforeAll(async () => {
    const model = await loadModel(LENET);
    dense = prune(model, 0.9);
    denseBytes = encodeModel(dense);
    const r = toSparseInitializers(dense);
    converted = r.converted;
    sparseBytes = encodeModel(r.proto);
    sparse = decodeModel(sparseBytes, 'sparse.onnx');
  });

  it('converts every weight matrix and makes the file smaller', () => {
    const weightNames = [...initializerMap(dense)].filter(([, h]) => h.shape.length >= 2).map(([n]) => n);
    expect(weightNames.length).toBeGreaterThanOrEqual(5);
    expect(converted.sort()).toEqual(weightNames.sort());
    expect(sparse.graph!.initializer.every((t) => t.dims.length < 2)).toBe(true);
    // 10 % of the values (4 bytes) plus an int64 index (8 bytes) each: ~30 % of the dense weights
    expect(sparseBytes.length).toBeLessThan(0.5 * denseBytes.length);
  });

  it('initializerMap of the COO model equals the dense weights, and the sparsity reports agree', () => {
    const a = initializerMap(dense), b = initializerMap(sparse);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [name, h] of a) {
      const g = b.get(name)!;
      expect(g.dtype).toBe(h.dtype);
      expect(g.shape).toEqual(h.shape);
      expect(Buffer.from(hostToFloat32(g).buffer).equals(Buffer.from(hostToFloat32(h).buffer)), name).toBe(true);
    }
    const ra = sparsityReport(dense), rb = sparsityReport(sparse);
    expect(rb).toEqual(ra);
    for (const t of Object.values(ra.perTensor)) expect(t.sparsity).toBeGreaterThanOrEqual(0.9);
    expect(ra.global).toBeGreaterThanOrEqual(0.9);
    expect(ra.elements).toBe(Object.values(ra.perTensor).reduce((s, t) => s + t.elements, 0));
  });

  it('onnxruntime-node gives the same outputs for the dense and the COO model', async () => {
    const a = await ortRun(denseBytes, { input: batch });
    const b = await ortRun(sparseBytes, { input: batch });
    expect(a.length).toBe(80);
    expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-6);
  });

  it('onnxruntime-web (wasm, in Node) loads the COO model and agrees', async () => {
    ortWeb.env.wasm.numThreads = 1;
    const run = async (bytes: Uint8Array) => {
      const s = await ortWeb.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
      const out = await s.run({ input: new ortWeb.Tensor('float32', batch.data as Float32Array, batch.shape) });
      const data = Float32Array.from(out[s.outputNames[0]!]!.data as Float32Array);
      await s.release();
      return data;
    };
    const node = await ortRun(denseBytes, { input: batch });
    const web = await run(sparseBytes);
    expect(maxAbsDiff(node, web)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(await run(denseBytes), web)).toBeLessThanOrEqual(1e-6);
  });
});
