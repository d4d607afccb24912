import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HardenError } from '../../src/errors.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { cloneModel, decodeModel, encodeModel, initializerMap, loadModel, opsetOf, saveModel } from '../../src/onnx/model.js';
import {
  AttributeType,
  DataLocation,
  ModelProtoT,
  encodeMessage,
  longFromBigInt,
  newAttribute,
  newGraph,
  newNode,
  newOpsetId,
  newValueInfo,
  toNumber,
} from '../../src/onnx/schema.js';
import { hostToFloat32, readTensor } from '../../src/onnx/tensor.js';
import { fixture, runOrt, tempDir } from './onnx-helpers.js';

describe('toNumber', () => {
  it('converts exact int64 values and refuses unsafe ones', () => {
    expect(toNumber(longFromBigInt(2n ** 53n - 1n))).toBe(2 ** 53 - 1);
    expect(toNumber(longFromBigInt(-42n))).toBe(-42);
    expect(toNumber(undefined)).toBe(0);
    expect(toNumber('123')).toBe(123);
    expect(() => toNumber(longFromBigInt(2n ** 64n - 1n, true))).toThrow(RangeError);
    expect(() => toNumber(longFromBigInt(-(2n ** 60n)))).toThrow(RangeError);
    expect(() => toNumber(1.5)).toThrow(RangeError);
  });
});

describe('opsetOf', () => {
  it("treats '' and 'ai.onnx' as one domain and returns 0 when absent", () => {
    const b = new GraphBuilder({ opset: 13 });
    b.input('x', [1]);
    b.node('Relu', ['x'], ['y']);
    b.output('y');
    const m = b.build();
    m.opset_import.push(newOpsetId({ domain: 'ai.onnx', version: 11 }), newOpsetId({ domain: 'ai.onnx.ml', version: 3 }));
    expect(opsetOf(m)).toBe(13);
    expect(opsetOf(m, 'ai.onnx')).toBe(13);
    expect(opsetOf(m, 'ai.onnx.ml')).toBe(3);
    expect(opsetOf(m, 'com.microsoft')).toBe(0);
  });
});

describe('initializerMap', () => {
  it('reads every initializer of a real model with the right shapes', () => {
    const f = fixture('mobilemini_dw');
    const proto = decodeModel(f.bytes, f.file);
    const map = initializerMap(proto);
    expect(map.size).toBe(proto.graph!.initializer.length);
    for (const t of proto.graph!.initializer) {
      const h = map.get(t.name!)!;
      expect(h.shape).toEqual(t.dims.map((d) => toNumber(d)));
      expect(h.data.length).toBe(h.shape.reduce((a, b) => a * b, 1));
      expect(hostToFloat32(h).every((v) => Number.isFinite(v))).toBe(true);
    }
  });
});

describe('subgraphs', () => {
  function ifModel(elseInput: string) {
    const branch = (input: string, out: string) =>
      newGraph({
        name: out,
        node: [newNode({ op_type: 'Identity', input: [input], output: [out] })],
        output: [newValueInfo({ name: out, type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 2 }] } } } })],
      });
    const b = new GraphBuilder({ opset: 13 });
    b.input('x', [2]);
    b.input('cond', [], 'bool');
    b.node('Neg', ['x'], ['nx']);
    b.node('If', ['cond'], ['y']);
    b.output('y', [2]);
    const m = b.build();
    m.graph!.node[1]!.attribute.push(
      newAttribute({ name: 'then_branch', type: AttributeType.GRAPH, g: branch('x', 't_out') }),
      newAttribute({ name: 'else_branch', type: AttributeType.GRAPH, g: branch(elseInput, 'e_out') }),
    );
    return encodeMessage(ModelProtoT, m);
  }

  it('resolve outer-scope names, and report undefined ones inside subgraphs', () => {
    expect(decodeModel(ifModel('nx'), 'if.onnx').graph!.node[1]!.attribute[1]!.g!.node[0]!.input).toEqual(['nx']);
    expect(() => decodeModel(ifModel('nowhere'), 'if.onnx')).toThrow(HardenError);
    expect(() => decodeModel(ifModel('nowhere'), 'if.onnx')).toThrow(/^if\.onnx: node '\?' \(Identity\) in a subgraph of node 'If_1' \(If\) uses 'nowhere'/);
  });
});

describe('saveModel', () => {
  const dir = tempDir();

  it('moves large Constant-node tensors to the side file too, and onnxruntime still runs it', async () => {
    const big = Float32Array.from({ length: 600 }, (_, i) => i / 8);
    const b = new GraphBuilder({ opset: 13 });
    b.input('x', [600]);
    const [c] = b.node('Constant', [], 1, { value: { dtype: 'float32', shape: [600], data: big } });
    b.node('Add', ['x', c!], ['y']);
    b.output('y', [600]);
    const file = path.join(dir, 'const.onnx');
    await saveModel(b.build(), file, { externalData: { location: 'const.bin', threshold: 2000 } });

    const loaded = await loadModel(file);
    const t = loaded.proto.graph!.node[0]!.attribute[0]!.t!;
    expect(t.data_location).toBe(DataLocation.EXTERNAL);
    expect(readFileSync(path.join(dir, 'const.bin')).length).toBe(2400);
    expect(Array.from(readTensor(t, { baseDir: loaded.baseDir }).data as Float32Array)).toEqual(Array.from(big));
    const x = Float32Array.from({ length: 600 }, () => 1);
    const y = (await runOrt(file, { x: { data: x, dims: [600] } })).y!;
    expect(y[0]).toBe(1);
    expect(y[599]).toBe(1 + 599 / 8);
  });

  it('cloneModel keeps the origin, so a clone of a loaded model still finds its external data', async () => {
    const f = fixture('lenet5_mnist');
    const file = path.join(dir, 'lenet.onnx');
    await saveModel(decodeModel(f.bytes, f.file), file, { externalData: true });
    const clone = cloneModel((await loadModel(file)).proto);
    const inits = initializerMap(clone);
    const ref = initializerMap(decodeModel(f.bytes, f.file));
    for (const [k, v] of ref) expect(Array.from(hostToFloat32(inits.get(k)!))).toEqual(Array.from(hostToFloat32(v)));
    expect(Buffer.compare(Buffer.from(encodeModel(clone)), readFileSync(file))).toBe(0);
  });
});
