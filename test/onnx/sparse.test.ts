import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HardenError } from '../../src/errors.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, encodeModel, initializerMap, saveModel } from '../../src/onnx/model.js';
import { SparseTensorProtoT, type SparseTensorProto, decodeMessage, encodeMessage, newSparseTensor, toNumber } from '../../src/onnx/schema.js';
import { hostToFloat32, makeSparseTensorProto, makeTensorProto, readSparseTensor, readTensor } from '../../src/onnx/tensor.js';
import { bitsEqual, fixture, runFixture, runOrt, tempDir } from './onnx-helpers.js';

function wire(s: SparseTensorProto): SparseTensorProto {
  return decodeMessage<SparseTensorProto>(SparseTensorProtoT, encodeMessage(SparseTensorProtoT, s));
}

describe('sparse tensors', () => {
  const dense = { dtype: 'float32' as const, shape: [3, 4], data: Float32Array.from([0, 1.5, 0, 0, -0, 0, 0, 2, 0, 0, 3.25, 0]) };

  it('makeSparseTensorProto writes COO with linearized int64 indices', () => {
    const s = wire(makeSparseTensorProto('w', dense));
    expect(s.values!.name).toBe('w');
    expect(s.dims.map((d) => toNumber(d))).toEqual([3, 4]);
    expect(Array.from(readTensor(s.values!).data as Float32Array)).toEqual([1.5, -0, 2, 3.25]);
    const idx = readTensor(s.indices!);
    expect(idx.dtype).toBe('int64');
    expect(Array.from(idx.data as BigInt64Array)).toEqual([1n, 4n, 7n, 10n]); // -0 kept so the round trip is exact
    const back = readSparseTensor(s);
    expect(back.shape).toEqual([3, 4]);
    expect(bitsEqual(back.data as Float32Array, dense.data)).toBe(true);
  });

  it('reads [NNZ, rank] coordinate indices', () => {
    const s = newSparseTensor({
      values: makeTensorProto('c', { dtype: 'float32', shape: [3], data: Float32Array.of(5, 6, 7) }),
      indices: makeTensorProto('', { dtype: 'int64', shape: [3, 2], data: BigInt64Array.of(0n, 1n, 1n, 0n, 2n, 3n) }),
      dims: [3, 4],
    });
    expect(Array.from(readSparseTensor(wire(s)).data as Float32Array)).toEqual([0, 5, 0, 0, 6, 0, 0, 0, 0, 0, 0, 7]);
  });

  it('rejects out-of-range or malformed indices with a one-line HardenError', () => {
    const bad = newSparseTensor({
      values: makeTensorProto('bad', { dtype: 'float32', shape: [2], data: Float32Array.of(1, 2) }),
      indices: makeTensorProto('', { dtype: 'int64', shape: [2], data: BigInt64Array.of(3n, 12n) }),
      dims: [3, 4],
    });
    expect(() => readSparseTensor(bad, { source: 's.onnx' })).toThrow(HardenError);
    expect(() => readSparseTensor(bad, { source: 's.onnx' })).toThrow(/^s\.onnx: sparse tensor 'bad' has index 12 outside its 12 elements$/);
    const shape = newSparseTensor({
      values: makeTensorProto('odd', { dtype: 'float32', shape: [2], data: Float32Array.of(1, 2) }),
      indices: makeTensorProto('', { dtype: 'int64', shape: [2, 3], data: new BigInt64Array(6) }),
      dims: [3, 4],
    });
    expect(() => readSparseTensor(shape, { source: 's.onnx' })).toThrow(/'odd' has indices of shape \[2,3\]/);
  });

  it('a sparse_initializer model runs in onnxruntime like its dense twin', async () => {
    const dir = tempDir();
    const make = (sparse: boolean) => {
      const b = new GraphBuilder({ opset: 13 });
      b.input('x', ['N', 3, 4]);
      if (!sparse) b.initializer('w', dense);
      b.node('Add', ['x', 'w'], ['y']);
      b.output('y', ['N', 3, 4]);
      const m = b.build();
      if (sparse) m.graph!.sparse_initializer.push(makeSparseTensorProto('w', dense));
      return m;
    };
    const x = Float32Array.from({ length: 24 }, (_, i) => i * 0.5 - 3);
    const feeds = { x: { data: x, dims: [2, 3, 4] } };
    const denseOut = (await runOrt(encodeModel(make(false)), feeds)).y!;
    const sparseModel = make(true);
    const sparseOut = (await runOrt(encodeModel(sparseModel), feeds)).y!;
    expect(bitsEqual(sparseOut, denseOut)).toBe(true);
    expect(sparseOut[1]).toBe(x[1]! + 1.5);
    expect(sparseOut[12 + 7]).toBe(x[19]! + 2);

    // and it survives save → load, densified by initializerMap
    const file = path.join(dir, 'sparse.onnx');
    await saveModel(sparseModel, file);
    expect(bitsEqual((await runOrt(file, feeds)).y!, denseOut)).toBe(true);
    const inits = initializerMap(sparseModel);
    expect(bitsEqual(inits.get('w')!.data as Float32Array, dense.data)).toBe(true);
  });

  it('a real model with a pruned, sparse Gemm weight matches the pruned dense model', async () => {
    const f = fixture('lenet5_mnist');
    const pruned = decodeModel(f.bytes, f.file);
    const g = pruned.graph!;
    const gemm = g.node.find((n) => n.op_type === 'Gemm')!;
    const wName = gemm.input[1]!;
    const idx = g.initializer.findIndex((t) => t.name === wName);
    const w = readTensor(g.initializer[idx]!);
    const values = hostToFloat32(w).map((v, i) => (i % 5 === 0 ? v : 0)); // keep 20%
    g.initializer[idx] = makeTensorProto(wName, { dtype: 'float32', shape: w.shape, data: values });
    const denseBytes = encodeModel(pruned);

    const sparse = decodeModel(denseBytes, 'pruned.onnx');
    sparse.graph!.initializer.splice(idx, 1);
    sparse.graph!.sparse_initializer.push(makeSparseTensorProto(wName, { dtype: 'float32', shape: w.shape, data: values }));
    const sparseBytes = encodeModel(sparse);
    expect(sparseBytes.length).toBeLessThan(denseBytes.length);

    const a = await runFixture(denseBytes, f);
    const b = await runFixture(sparseBytes, f);
    expect(bitsEqual(a, b)).toBe(true);
    expect(bitsEqual(a, await runFixture(f.file, f))).toBe(false);
  });
});
