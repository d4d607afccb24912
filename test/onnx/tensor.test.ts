import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode, HardenError } from '../../src/errors.js';
import {
  DataLocation,
  TensorDataType,
  TensorProtoT,
  type TensorProto,
  decodeMessage,
  encodeMessage,
  longFromBigInt,
  newEntry,
  newTensor,
  toNumber,
} from '../../src/onnx/schema.js';
import {
  dtypeFromOnnx,
  float16BitsToNumber,
  hostToFloat32,
  makeTensorProto,
  numberToBfloat16Bits,
  numberToFloat16Bits,
  numel,
  onnxFromDtype,
  readTensor,
  setTensorData,
} from '../../src/onnx/tensor.js';
import { tempDir } from './onnx-helpers.js';

/** Encode and decode through the wire format, as a tensor read from a file would be. */
function wire(t: TensorProto): TensorProto {
  return decodeMessage<TensorProto>(TensorProtoT, encodeMessage(TensorProtoT, t));
}

function catchError(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

function expectHardenError(fn: () => unknown, ...parts: string[]): HardenError {
  const e = catchError(fn);
  expect(e).toBeInstanceOf(HardenError);
  expect(e.message).not.toMatch(/[\r\n]/);
  for (const p of parts) expect(e.message).toContain(p);
  return e as HardenError;
}

describe('dtype codes', () => {
  it('maps both ways', () => {
    expect(dtypeFromOnnx(1)).toBe('float32');
    expect(dtypeFromOnnx(10)).toBe('float16');
    expect(dtypeFromOnnx(16)).toBe('bfloat16');
    expect(dtypeFromOnnx(7)).toBe('int64');
    expect(onnxFromDtype('bool')).toBe(9);
    expect(onnxFromDtype('uint64')).toBe(13);
    expect(numel([2, 3, 4])).toBe(24);
    expect(numel([])).toBe(1);
    expect(numel([5, 0])).toBe(0);
  });

  it('refuses types it cannot hold as Unsupported', () => {
    const e = expectHardenError(() => dtypeFromOnnx(TensorDataType.FLOAT8E4M3FN), 'FLOAT8E4M3FN');
    expect(e.exitCode).toBe(ExitCode.Unsupported);
  });
});

describe('readTensor storage forms', () => {
  const values = [1.5, -2.25, 0, 3.0e-8, 1e30, -0];

  it('raw_data, float_data and the wire form give the same float32 values', () => {
    const raw = makeTensorProto('w', { dtype: 'float32', shape: [2, 3], data: Float32Array.from(values) });
    const typed = newTensor({ name: 'w', data_type: TensorDataType.FLOAT, dims: [2, 3], float_data: values });
    const a = readTensor(raw).data as Float32Array;
    const b = readTensor(typed).data as Float32Array;
    const c = readTensor(wire(raw)).data as Float32Array;
    const d = readTensor(wire(typed)).data as Float32Array;
    for (const x of [a, b, c, d]) {
      expect(x).toBeInstanceOf(Float32Array);
      expect(Array.from(x)).toEqual(Array.from(Float32Array.from(values)));
      expect(Object.is(x[5], -0)).toBe(true);
    }
    expect(readTensor(raw).shape).toEqual([2, 3]);
  });

  it('copies unaligned raw_data into an aligned array', () => {
    const src = new Uint8Array(1 + 8);
    new DataView(src.buffer).setFloat32(1, 3.5, true);
    new DataView(src.buffer).setFloat32(5, -7.25, true);
    const t = newTensor({ name: 'u', data_type: TensorDataType.FLOAT, dims: [2], raw_data: src.subarray(1) });
    const h = readTensor(t);
    expect((h.data as Float32Array).byteOffset % 4).toBe(0);
    expect(Array.from(h.data as Float32Array)).toEqual([3.5, -7.25]);
  });

  it('int64 from raw_data and int64_data agree beyond 2^53', () => {
    const big = [2n ** 53n + 1n, -5n, -(2n ** 62n) - 3n, 0n, 9_223_372_036_854_775_807n];
    const raw = makeTensorProto('i', { dtype: 'int64', shape: [5], data: BigInt64Array.from(big) });
    const typed = newTensor({ name: 'i', data_type: TensorDataType.INT64, dims: [5], int64_data: big.map((b) => longFromBigInt(b)) });
    for (const t of [raw, typed, wire(raw), wire(typed)]) {
      const h = readTensor(t);
      expect(h.dtype).toBe('int64');
      expect(h.data).toBeInstanceOf(BigInt64Array);
      expect(Array.from(h.data as BigInt64Array)).toEqual(big);
    }
  });

  it('uint64/uint32 from uint64_data, double from double_data', () => {
    const u64 = [2n ** 64n - 1n, 2n ** 63n + 5n, 7n];
    const t64 = wire(newTensor({ data_type: TensorDataType.UINT64, dims: [3], uint64_data: u64.map((b) => longFromBigInt(b, true)) }));
    expect(Array.from(readTensor(t64).data as BigUint64Array)).toEqual(u64);
    const t32 = wire(newTensor({ data_type: TensorDataType.UINT32, dims: [2], uint64_data: [4294967295, 12] }));
    expect(Array.from(readTensor(t32).data as Uint32Array)).toEqual([4294967295, 12]);
    const dbl = wire(newTensor({ data_type: TensorDataType.DOUBLE, dims: [2], double_data: [0.1, -1e300] }));
    expect(Array.from(readTensor(dbl).data as Float64Array)).toEqual([0.1, -1e300]);
  });

  it('int32_data carries int8/uint8/int16/uint16/bool', () => {
    const cases: [number, number[], string][] = [
      [TensorDataType.INT8, [-128, 127, -1], 'int8'],
      [TensorDataType.UINT8, [0, 255, 17], 'uint8'],
      [TensorDataType.INT16, [-32768, 32767, 5], 'int16'],
      [TensorDataType.UINT16, [65535, 0, 9], 'uint16'],
      [TensorDataType.BOOL, [1, 0, 1], 'bool'],
      [TensorDataType.INT32, [-2147483648, 2147483647, 0], 'int32'],
    ];
    for (const [code, vals, dtype] of cases) {
      const typed = readTensor(wire(newTensor({ data_type: code, dims: [3], int32_data: vals })));
      expect(typed.dtype).toBe(dtype);
      expect(Array.from(typed.data as Int32Array)).toEqual(vals);
      const raw = readTensor(wire(makeTensorProto('x', typed)));
      expect(Array.from(raw.data as Int32Array)).toEqual(vals);
    }
  });

  it('strings via string_data', () => {
    const t = wire(makeTensorProto('s', { dtype: 'string', shape: [3], data: ['a', 'ünï', ''] }));
    expect(readTensor(t).data).toEqual(['a', 'ünï', '']);
  });

  it('scalar and empty tensors', () => {
    expect(Array.from(readTensor(wire(makeTensorProto('s', { dtype: 'float32', shape: [], data: Float32Array.of(4) }))).data as Float32Array)).toEqual([4]);
    const empty = readTensor(wire(makeTensorProto('e', { dtype: 'float32', shape: [0, 3], data: new Float32Array(0) })));
    expect(empty.shape).toEqual([0, 3]);
    expect(empty.data.length).toBe(0);
  });

  it('element count / shape mismatch is a one-line HardenError naming tensor and file', () => {
    const t = newTensor({ name: 'conv.weight', data_type: TensorDataType.FLOAT, dims: [2, 3], float_data: [1, 2, 3] });
    expectHardenError(() => readTensor(t, { source: 'net.onnx' }), 'net.onnx', "'conv.weight'", '3 values', '[2,3]');
    const raw = newTensor({ name: 'b', data_type: TensorDataType.FLOAT, dims: [2], raw_data: new Uint8Array(7) });
    expectHardenError(() => readTensor(raw, { source: 'net.onnx' }), 'net.onnx', "'b'", '7 data bytes');
    const bad = newTensor({ name: 'q', data_type: TensorDataType.FLOAT8E5M2, dims: [1], raw_data: new Uint8Array(1) });
    expect(expectHardenError(() => readTensor(bad, { source: 'm.onnx' }), 'm.onnx', "'q'", 'FLOAT8E5M2').exitCode).toBe(ExitCode.Unsupported);
  });
});

describe('float16 / bfloat16', () => {
  const cases: [number, number][] = [
    [0x3c00, 1],
    [0xc000, -2],
    [0x7bff, 65504],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x0400, 2 ** -14],
    [0x3555, 0.333251953125],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ];

  it('decodes raw_data and int32_data bit patterns to exact values', () => {
    const bits = [...cases.map((c) => c[0]), 0x8000, 0x7e00];
    const raw = makeTensorProto('h', { dtype: 'float16', shape: [bits.length], data: Uint16Array.from(bits) });
    const typed = newTensor({ name: 'h', data_type: TensorDataType.FLOAT16, dims: [bits.length], int32_data: bits });
    for (const t of [wire(raw), wire(typed)]) {
      const h = readTensor(t);
      expect(h.dtype).toBe('float16');
      expect(Array.from(h.data as Uint16Array)).toEqual(bits);
      const f = hostToFloat32(h);
      cases.forEach(([, v], i) => expect(f[i]).toBe(v));
      expect(Object.is(f[cases.length], -0)).toBe(true);
      expect(Number.isNaN(f[cases.length + 1])).toBe(true);
    }
  });

  it('number → float16 bits round-trips every non-NaN pattern and rounds ties to even', () => {
    const wrong: number[] = [];
    for (let b = 0; b < 0x10000; b++) {
      const v = float16BitsToNumber(b);
      const ok = Number.isNaN(v) ? Number.isNaN(float16BitsToNumber(numberToFloat16Bits(v))) : numberToFloat16Bits(v) === b;
      if (!ok) wrong.push(b);
    }
    expect(wrong).toEqual([]);
    expect(numberToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(numberToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(numberToFloat16Bits(65520)).toBe(0x7c00); // rounds to infinity
    expect(numberToFloat16Bits(2 ** -25)).toBe(0); // tie with zero → even
    expect(numberToFloat16Bits(1.5 * 2 ** -25)).toBe(1);
  });

  it('bfloat16', () => {
    const h = readTensor(wire(newTensor({ data_type: TensorDataType.BFLOAT16, dims: [3], int32_data: [0x3f80, 0xc040, 0x4049] })));
    expect(h.dtype).toBe('bfloat16');
    expect(Array.from(hostToFloat32(h))).toEqual([1, -3, 3.140625]);
    expect(numberToBfloat16Bits(3.14159)).toBe(0x4049);
    expect(numberToBfloat16Bits(-3)).toBe(0xc040);
  });

  it('hostToFloat32 converts integer and double tensors', () => {
    expect(Array.from(hostToFloat32({ dtype: 'int64', shape: [2], data: BigInt64Array.of(-3n, 40n) }))).toEqual([-3, 40]);
    expect(Array.from(hostToFloat32({ dtype: 'float64', shape: [1], data: Float64Array.of(0.5) }))).toEqual([0.5]);
    expect(Array.from(hostToFloat32({ dtype: 'uint8', shape: [2], data: Uint8Array.of(255, 1) }))).toEqual([255, 1]);
  });
});

describe('external data', () => {
  const dir = tempDir();
  const payload = Float32Array.of(1, 2, 3, 4, 5, 6);
  const file = path.join(dir, 'weights.bin');
  const bytes = new Uint8Array(100 + payload.byteLength);
  bytes.set(new Uint8Array(payload.buffer), 100);
  writeFileSync(file, bytes);

  function ext(location: string, offset?: number, length?: number, name = 'fc.weight'): TensorProto {
    const entries = [newEntry({ key: 'location', value: location })];
    if (offset !== undefined) entries.push(newEntry({ key: 'offset', value: String(offset) }));
    if (length !== undefined) entries.push(newEntry({ key: 'length', value: String(length) }));
    return wire(newTensor({ name, data_type: TensorDataType.FLOAT, dims: [2, 3], external_data: entries, data_location: DataLocation.EXTERNAL }));
  }

  it('reads location/offset/length relative to baseDir', () => {
    expect(Array.from(readTensor(ext('weights.bin', 100, 24), { baseDir: dir }).data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    // length omitted: the tensor's own size
    expect(Array.from(readTensor(ext('weights.bin', 100), { baseDir: dir }).data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('refuses missing files, short files and paths leaving the folder', () => {
    const src = { baseDir: dir, source: 'model.onnx' };
    expectHardenError(() => readTensor(ext('nope.bin', 0, 24), src), 'model.onnx', "'fc.weight'", 'nope.bin', 'not found');
    expectHardenError(() => readTensor(ext('weights.bin', 100, 48), src), 'model.onnx', "'fc.weight'", 'weights.bin', '124 bytes');
    expectHardenError(() => readTensor(ext('weights.bin', 120, 24), src), "'fc.weight'", 'weights.bin');
    expectHardenError(() => readTensor(ext(file, 100, 24), src), 'model.onnx', "'fc.weight'", 'absolute path');
    expectHardenError(() => readTensor(ext('../weights.bin', 100, 24), src), 'model.onnx', "'fc.weight'", 'outside');
    expectHardenError(() => readTensor(ext('sub/../../x.bin', 0, 24), src), "'fc.weight'", 'outside');
    expectHardenError(() => readTensor(ext('weights.bin', -1, 24), src), "'fc.weight'", 'offset');
    expectHardenError(() => readTensor(ext('weights.bin', 100, 24), { source: 'model.onnx' }), "'fc.weight'", 'folder is unknown');
  });
});

describe('setTensorData', () => {
  const next = Float32Array.of(9, 8, 7, 6);

  it('keeps raw_data tensors in raw_data', () => {
    const t = wire(makeTensorProto('w', { dtype: 'float32', shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) }));
    t.doc_string = 'doc';
    setTensorData(t, next);
    expect(t.float_data.length).toBe(0);
    expect(t.raw_data!.length).toBe(16);
    const back = wire(t);
    expect(back.name).toBe('w');
    expect(back.doc_string).toBe('doc');
    expect(back.dims.map((d) => toNumber(d))).toEqual([2, 2]);
    expect(Array.from(readTensor(back).data as Float32Array)).toEqual([9, 8, 7, 6]);
  });

  it('keeps float_data tensors in float_data', () => {
    const t = wire(newTensor({ name: 'w', data_type: TensorDataType.FLOAT, dims: [4], float_data: [1, 2, 3, 4] }));
    setTensorData(t, next);
    expect(t.raw_data?.length ?? 0).toBe(0);
    expect(t.float_data).toEqual([9, 8, 7, 6]);
    expect(Array.from(readTensor(wire(t)).data as Float32Array)).toEqual([9, 8, 7, 6]);
  });

  it('converts to the tensor’s float16 storage', () => {
    const t = wire(newTensor({ name: 'h', data_type: TensorDataType.FLOAT16, dims: [2], int32_data: [0, 0] }));
    setTensorData(t, Float32Array.of(1, -2));
    expect(t.int32_data).toEqual([0x3c00, 0xc000]);
  });

  it('marks external tensors as pending without touching the file', () => {
    const t = newTensor({
      name: 'e', data_type: TensorDataType.FLOAT, dims: [4], data_location: DataLocation.EXTERNAL,
      external_data: [newEntry({ key: 'location', value: 'gone.bin' })],
    });
    setTensorData(t, next);
    expect(t.data_location).toBe(DataLocation.EXTERNAL);
    expect(t.external_data[0]!.value).toBe('gone.bin');
    // the pending payload is what reads return, even though gone.bin does not exist
    expect(Array.from(readTensor(t, { baseDir: '/nonexistent' }).data as Float32Array)).toEqual([9, 8, 7, 6]);
  });

  it('rejects non-float tensors and wrong lengths', () => {
    expect(() => setTensorData(newTensor({ data_type: TensorDataType.INT64, dims: [1] }), Float32Array.of(1))).toThrow(/not a float tensor/);
    expect(() => setTensorData(newTensor({ data_type: TensorDataType.FLOAT, dims: [3] }), Float32Array.of(1))).toThrow(/needs 3 values/);
  });
});
