import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, opsetOf } from '../../src/onnx/model.js';
import { type AttributeProto, AttributeType, TensorDataType, toNumber } from '../../src/onnx/schema.js';
import { readTensor } from '../../src/onnx/tensor.js';
import { runOrt } from './onnx-helpers.js';

/** Naive NCHW convolution with symmetric padding, stride 1, one group. */
function conv2d(x: Float32Array, [n, c, h, w]: number[], k: Float32Array, [m, , kh, kw]: number[], bias: Float32Array, pad: number): Float32Array {
  const oh = h + 2 * pad - kh + 1;
  const ow = w + 2 * pad - kw + 1;
  const out = new Float32Array(n! * m! * oh * ow);
  for (let b = 0; b < n!; b++)
    for (let o = 0; o < m!; o++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) {
          let s = bias[o]!;
          for (let ci = 0; ci < c!; ci++)
            for (let u = 0; u < kh!; u++)
              for (let v = 0; v < kw!; v++) {
                const y = i + u - pad;
                const xx = j + v - pad;
                if (y < 0 || y >= h! || xx < 0 || xx >= w!) continue;
                s += x[((b * c! + ci) * h! + y) * w! + xx]! * k[((o * c! + ci) * kh! + u) * kw! + v]!;
              }
          out[((b * m! + o) * oh + i) * ow + j] = s;
        }
  return out;
}

describe('GraphBuilder', () => {
  it('Add graph runs in onnxruntime with exact results', async () => {
    const b = new GraphBuilder({ opset: 13 });
    const x = b.input('x', ['batch', 3]);
    const bias = b.initializer('bias', { data: [10, 20, 30], shape: [3] });
    const [sum] = b.node('Add', [x, bias], 1);
    const [y] = b.node('Mul', [sum!, b.initializer('two', { data: [2], shape: [] })], ['y']);
    b.output(y!, ['batch', 3]);
    const model = b.build();

    expect(sum).toBe('Add_0_out');
    const dims = model.graph!.input[0]!.type!.tensor_type!.shape!.dim;
    expect(dims[0]!.dim_param).toBe('batch');
    expect(toNumber(dims[1]!.dim_value)).toBe(3);

    const out = await runOrt(b.toBytes(), { x: { data: Float32Array.of(1, 2, 3, -1, -2, -3), dims: [2, 3] } });
    expect(Array.from(out.y!)).toEqual([22, 44, 66, 18, 36, 54]);
  });

  it('Conv graph matches a hand-computed convolution', async () => {
    const xShape = [1, 2, 5, 5];
    const wShape = [3, 2, 3, 3];
    const x = Float32Array.from({ length: 50 }, (_, i) => ((i * 7) % 11) - 5);
    const w = Float32Array.from({ length: 54 }, (_, i) => ((i * 5) % 9) / 4 - 1);
    const bias = Float32Array.of(0.5, -1, 2);

    const b = new GraphBuilder({ opset: 17 });
    b.input('x', xShape);
    b.initializer('w', { dtype: 'float32', shape: wShape, data: w });
    b.initializer('b', { data: bias, shape: [3] });
    b.node('Conv', ['x', 'w', 'b'], ['y'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1], group: 1 });
    b.output('y', [1, 3, 5, 5]);

    const out = (await runOrt(b.toBytes(), { x: { data: x, dims: xShape } })).y!;
    const expected = conv2d(x, xShape, w, wShape, bias, 1);
    expect(out.length).toBe(75);
    for (let i = 0; i < out.length; i++) expect(out[i]).toBeCloseTo(expected[i]!, 5);
  });

  it('Gemm with a FLOAT attribute forced for an integral value', async () => {
    const b = new GraphBuilder();
    b.input('a', [1, 2]);
    b.initializer('B', { data: [1, 2, 3, 4, 5, 6], shape: [3, 2] });
    b.node('Gemm', ['a', 'B'], ['y'], { transB: 1, alpha: { float: 2 }, beta: 0.5 });
    b.output('y');
    const attrs = b.build().graph!.node[0]!.attribute;
    expect(attrs.map((a) => [a.name, a.type])).toEqual([
      ['transB', AttributeType.INT],
      ['alpha', AttributeType.FLOAT],
      ['beta', AttributeType.FLOAT],
    ]);
    const out = (await runOrt(b.toBytes(), { a: { data: Float32Array.of(1, -1), dims: [1, 2] } })).y!;
    expect(Array.from(out)).toEqual([-2, -2, -2]); // 2 * [1-2, 3-4, 5-6]
  });

  it('maps attribute values to ONNX attribute types', () => {
    const b = new GraphBuilder();
    b.input('x', [1]);
    b.node('Custom', ['x'], 2, {
      i: 3,
      f: 0.25,
      ints: [1, -2],
      floats: [1.5, 2],
      forced: { floats: [1, 2] },
      one: { float: 1 },
      s: 'same_upper',
      ss: ['a', 'b'],
      t: { dtype: 'int64', shape: [2], data: BigInt64Array.of(5n, -6n) },
    }, { name: 'custom', domain: 'com.example' });
    b.output('custom_out0');
    const model = b.build();
    const node = model.graph!.node[0]!;
    expect(node.output).toEqual(['custom_out0', 'custom_out1']);
    expect(node.domain).toBe('com.example');
    expect(opsetOf(model, 'com.example')).toBe(1);
    const by: Record<string, AttributeProto> = Object.fromEntries(node.attribute.map((a) => [a.name ?? '', a] as const));
    expect(by.i!.type).toBe(AttributeType.INT);
    expect(toNumber(by.i!.i)).toBe(3);
    expect(by.f!.type).toBe(AttributeType.FLOAT);
    expect(by.f!.f).toBe(0.25);
    expect(by.ints!.type).toBe(AttributeType.INTS);
    expect(by.ints!.ints.map((v) => toNumber(v))).toEqual([1, -2]);
    expect(by.floats!.type).toBe(AttributeType.FLOATS);
    expect(by.floats!.floats).toEqual([1.5, 2]);
    expect(by.forced!.type).toBe(AttributeType.FLOATS);
    expect(by.one!.type).toBe(AttributeType.FLOAT);
    expect(by.one!.f).toBe(1);
    expect(by.s!.type).toBe(AttributeType.STRING);
    expect(new TextDecoder().decode(by.s!.s)).toBe('same_upper');
    expect(by.ss!.type).toBe(AttributeType.STRINGS);
    expect(by.ss!.strings.map((s) => new TextDecoder().decode(s))).toEqual(['a', 'b']);
    expect(by.t!.type).toBe(AttributeType.TENSOR);
    expect(by.t!.t!.data_type).toBe(TensorDataType.INT64);
    expect(Array.from(readTensor(by.t!.t!).data as BigInt64Array)).toEqual([5n, -6n]);
  });

  it('build() returns independent, valid models with the requested versions', () => {
    const b = new GraphBuilder({ opset: 15, irVersion: 7, name: 'g' });
    b.input('x', [2]);
    b.node('Relu', ['x'], ['y']);
    b.output('y', [2]);
    const first = b.build();
    b.node('Neg', ['y'], ['z']);
    const second = b.build();
    expect(first.graph!.node.length).toBe(1);
    expect(second.graph!.node.length).toBe(2);
    expect(toNumber(first.ir_version)).toBe(7);
    expect(opsetOf(first)).toBe(15);
    expect(first.graph!.name).toBe('g');
    expect(decodeModel(b.toBytes(), 'built.onnx').graph!.node.map((n) => n.op_type)).toEqual(['Relu', 'Neg']);
  });

  it('initializers take dtype conversions from plain numbers', () => {
    const b = new GraphBuilder();
    b.input('x', [2]);
    b.initializer('h', { data: [1, -2], shape: [2], dtype: 'float16' });
    b.initializer('i', { data: [7, -8], shape: [2], dtype: 'int64' });
    b.node('Identity', ['x'], ['y']);
    b.output('y');
    const [h, i] = b.build().graph!.initializer;
    expect(Array.from(readTensor(h!).data as Uint16Array)).toEqual([0x3c00, 0xc000]);
    expect(Array.from(readTensor(i!).data as BigInt64Array)).toEqual([7n, -8n]);
  });
});
