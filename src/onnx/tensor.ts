/**
 * Conversion between ONNX TensorProto / SparseTensorProto and host typed arrays.
 */
import { ExitCode, HardenError } from '../errors.js';
import { clean, isExternal, readExternalBytes, tensorLabel } from './external.js';
import {
  type SparseTensorProto,
  type TensorProto,
  TensorDataType,
  dataTypeName,
  newSparseTensor,
  newTensor,
  toBigInt,
  toNumber,
} from './schema.js';

export type DType =
  | 'float32' | 'float64' | 'float16' | 'bfloat16'
  | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64'
  | 'bool' | 'string';

export type HostData =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array | string[];

/** float16/bfloat16 hold raw bits in a Uint16Array; bool holds 0/1 in a Uint8Array. */
export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: HostData;
}

export interface ReadOptions {
  /** Folder of the model file, for external data. */
  baseDir?: string;
  /** File name used in error messages. */
  source?: string;
}

const CODES: Record<DType, number> = {
  float32: TensorDataType.FLOAT,
  float64: TensorDataType.DOUBLE,
  float16: TensorDataType.FLOAT16,
  bfloat16: TensorDataType.BFLOAT16,
  int8: TensorDataType.INT8,
  uint8: TensorDataType.UINT8,
  int16: TensorDataType.INT16,
  uint16: TensorDataType.UINT16,
  int32: TensorDataType.INT32,
  uint32: TensorDataType.UINT32,
  int64: TensorDataType.INT64,
  uint64: TensorDataType.UINT64,
  bool: TensorDataType.BOOL,
  string: TensorDataType.STRING,
};

const DTYPES = new Map<number, DType>(Object.entries(CODES).map(([d, c]) => [c, d as DType]));

type NumericDType = Exclude<DType, 'string'>;
type TypedArrayCtor = { new (n: number): Exclude<HostData, string[]>; new (b: ArrayBuffer): Exclude<HostData, string[]>; BYTES_PER_ELEMENT: number };

const CTORS: Record<NumericDType, TypedArrayCtor> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
};

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function dtypeFromOnnx(code: number): DType {
  const d = DTYPES.get(code);
  if (d === undefined) throw new HardenError(`unsupported ONNX tensor data type ${dataTypeName(code)}`, ExitCode.Unsupported);
  return d;
}

export function onnxFromDtype(d: DType): number {
  const c = CODES[d];
  if (c === undefined) throw new Error(`unknown dtype '${String(d)}'`);
  return c;
}

/** Bytes per element (0 for string). */
export function dtypeSize(d: DType): number {
  return d === 'string' ? 0 : CTORS[d].BYTES_PER_ELEMENT;
}

export function numel(shape: number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A zero-filled host array of `n` elements of `dtype` ('' for strings). */
export function allocHostData(dtype: DType, n: number): HostData {
  return dtype === 'string' ? new Array<string>(n).fill('') : new CTORS[dtype](n);
}

function swapBytes(bytes: Uint8Array, size: number): void {
  for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
}

/** Copies little-endian bytes into a fresh (aligned) typed array. */
function fromLittleEndian(bytes: Uint8Array, dtype: NumericDType, what: () => string): Exclude<HostData, string[]> {
  const size = CTORS[dtype].BYTES_PER_ELEMENT;
  if (bytes.length % size !== 0) {
    throw new HardenError(`${what()} has ${bytes.length} data bytes, not a whole number of ${size}-byte ${dtype} values`);
  }
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  if (!LITTLE_ENDIAN && size > 1) swapBytes(copy, size);
  return new CTORS[dtype](copy.buffer);
}

function toLittleEndian(data: Exclude<HostData, string[]>): Uint8Array {
  const bytes = new Uint8Array(data.byteLength);
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  if (!LITTLE_ENDIAN && data.BYTES_PER_ELEMENT > 1) swapBytes(bytes, data.BYTES_PER_ELEMENT);
  return bytes;
}

function fromTypedFields(t: TensorProto, dtype: DType): HostData {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(t.float_data);
    case 'float64':
      return Float64Array.from(t.double_data);
    case 'int64':
      return BigInt64Array.from(t.int64_data, (v) => BigInt.asIntN(64, toBigInt(v)));
    case 'uint64':
      return BigUint64Array.from(t.uint64_data, (v) => BigInt.asUintN(64, toBigInt(v)));
    case 'uint32':
      return Uint32Array.from(t.uint64_data, (v) => Number(BigInt.asUintN(32, toBigInt(v))));
    case 'string': {
      const dec = new TextDecoder();
      return t.string_data.map((b) => dec.decode(b));
    }
    default:
      // int32/int16/int8/uint16/uint8/bool, and float16/bfloat16 bit patterns, live in int32_data.
      return (CTORS[dtype] as unknown as { from(a: ArrayLike<number>): Exclude<HostData, string[]> }).from(t.int32_data);
  }
}

/** True when raw_data carries bytes. */
export function hasRawData(t: TensorProto): boolean {
  return t.raw_data !== undefined && t.raw_data !== null && t.raw_data.length > 0;
}

function shapeOf(dims: TensorProto['dims'], what: () => string): number[] {
  return dims.map((d) => {
    let v: number;
    try {
      v = toNumber(d);
    } catch {
      v = -1;
    }
    if (v < 0) throw new HardenError(`${what()} has an invalid dimension ${String(d)}`);
    return v;
  });
}

/** Decodes a dense tensor from raw_data, the typed *_data fields, or external data. */
export function readTensor(t: TensorProto, opts: ReadOptions = {}): HostTensor {
  const source = opts.source ?? 'model';
  const what = () => `${source}: ${tensorLabel(t)}`;
  const code = t.data_type ?? 0;
  const dtype = DTYPES.get(code);
  if (dtype === undefined) {
    throw new HardenError(`${what()} has unsupported data type ${dataTypeName(code)}`, ExitCode.Unsupported);
  }
  if (t.segment) throw new HardenError(`${what()} is stored in segments, which Harden does not support`, ExitCode.Unsupported);
  const shape = shapeOf(t.dims, what);
  const n = numel(shape);

  let data: HostData;
  if (isExternal(t) || hasRawData(t)) {
    if (dtype === 'string') throw new HardenError(`${what()} is a string tensor stored as raw bytes, which ONNX does not allow`);
    // An external tensor that also carries raw_data has a pending in-memory payload (setTensorData).
    const bytes = hasRawData(t) ? (t.raw_data as Uint8Array) : readExternalBytes(t, opts.baseDir, source);
    data = fromLittleEndian(bytes, dtype, what);
  } else {
    data = fromTypedFields(t, dtype);
  }
  if (data.length !== n) {
    throw new HardenError(`${what()} has ${data.length} values but its shape [${shape.join(',')}] needs ${n}`);
  }
  return { dtype, shape, data };
}

// ---- 16-bit float conversions ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function float16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Rounds to the nearest float16 (ties to even) and returns its bit pattern. */
export function numberToFloat16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // a carry correctly rolls into the exponent
  return sign | half;
}

export function bfloat16BitsToNumber(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0]!;
}

export function numberToBfloat16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff; // quiet NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Converts any numeric host tensor to float32 values (always a fresh array). */
export function hostToFloat32(h: HostTensor): Float32Array {
  const d = h.data;
  switch (h.dtype) {
    case 'string':
      throw new HardenError('cannot use a string tensor as numbers');
    case 'float16':
      return Float32Array.from(d as Uint16Array, float16BitsToNumber);
    case 'bfloat16':
      return Float32Array.from(d as Uint16Array, bfloat16BitsToNumber);
    case 'int64':
    case 'uint64':
      return Float32Array.from(d as BigInt64Array, (v) => Number(v));
    default:
      return Float32Array.from(d as Float32Array);
  }
}

/** Host data of `dtype` holding the given values (rounded/truncated as a cast would). */
function fromNumbers(data: ArrayLike<number>, dtype: NumericDType): Exclude<HostData, string[]> {
  switch (dtype) {
    case 'float16':
      return Uint16Array.from(data, numberToFloat16Bits);
    case 'bfloat16':
      return Uint16Array.from(data, numberToBfloat16Bits);
    case 'int64':
      return BigInt64Array.from(data, (v) => BigInt(Math.trunc(v)));
    case 'uint64':
      return BigUint64Array.from(data, (v) => BigInt(Math.trunc(v)));
    default:
      return (CTORS[dtype] as unknown as { from(a: ArrayLike<number>): Exclude<HostData, string[]> }).from(data);
  }
}

/** A host tensor of `dtype` from plain numbers (float16/bfloat16 values are rounded to bits). */
export function hostFromNumbers(values: ArrayLike<number>, shape: number[], dtype: DType = 'float32'): HostTensor {
  if (dtype === 'string') throw new Error('hostFromNumbers: string dtype');
  const h: HostTensor = { dtype, shape: shape.slice(), data: fromNumbers(values, dtype) };
  checkHost(h);
  return h;
}

function checkHost(h: HostTensor): void {
  if (h.data.length !== numel(h.shape)) {
    throw new Error(`host tensor has ${h.data.length} values but shape [${h.shape.join(',')}] needs ${numel(h.shape)}`);
  }
}

/** A TensorProto holding `h` in raw_data (string tensors use string_data). */
export function makeTensorProto(name: string, h: HostTensor): TensorProto {
  checkHost(h);
  const t = newTensor({ data_type: onnxFromDtype(h.dtype), dims: h.shape.slice() });
  if (name) t.name = name;
  if (h.dtype === 'string') {
    const enc = new TextEncoder();
    t.string_data = (h.data as string[]).map((s) => enc.encode(s));
  } else {
    t.raw_data = toLittleEndian(h.data as Exclude<HostData, string[]>);
  }
  return t;
}

const FLOAT_CODES = new Set<number>([TensorDataType.FLOAT, TensorDataType.DOUBLE, TensorDataType.FLOAT16, TensorDataType.BFLOAT16]);

/**
 * Replaces the payload of a floating-point tensor in place, keeping name, dims, doc_string and
 * storage form. An externally stored tensor keeps its external_data entries and gets the new
 * payload in raw_data, which marks it as pending: readTensor returns the new values and
 * saveModel writes them out (encodeModel refuses such a model, as its bytes would be stale).
 * `_opts` is accepted for API stability; the new payload stays in memory until saveModel.
 */
export function setTensorData(t: TensorProto, data: Float32Array, _opts?: { baseDir?: string }): void {
  const code = t.data_type ?? 0;
  if (!FLOAT_CODES.has(code)) throw new Error(`setTensorData: ${tensorLabel(t)} is ${dataTypeName(code)}, not a float tensor`);
  const dtype = DTYPES.get(code) as NumericDType;
  const n = numel(t.dims.map((d) => toNumber(d)));
  if (data.length !== n) throw new Error(`setTensorData: ${tensorLabel(t)} needs ${n} values, got ${data.length}`);
  const values = fromNumbers(data, dtype);

  const useTyped = !isExternal(t) && !hasRawData(t) && n > 0 &&
    (t.float_data.length > 0 || t.double_data.length > 0 || t.int32_data.length > 0);
  if (!useTyped) {
    t.raw_data = toLittleEndian(values);
  } else if (dtype === 'float32') {
    t.float_data = Array.from(values as Float32Array);
  } else if (dtype === 'float64') {
    t.double_data = Array.from(values as Float64Array);
  } else {
    t.int32_data = Array.from(values as Uint16Array);
  }
}

// ---- Sparse tensors ----

/** Densifies a SparseTensorProto; indices may be [NNZ] linear or [NNZ, rank] coordinates. */
export function readSparseTensor(s: SparseTensorProto, opts: ReadOptions = {}): HostTensor {
  const source = opts.source ?? 'model';
  const name = s.values?.name ? `sparse tensor '${clean(s.values.name)}'` : 'unnamed sparse tensor';
  const fail = (msg: string): never => {
    throw new HardenError(`${source}: ${name} ${msg}`);
  };
  if (!s.values) return fail('has no values');
  if (!s.indices) return fail('has no indices');
  const values = readTensor(s.values, opts);
  const indices = readTensor(s.indices, opts);
  const shape = shapeOf(s.dims, () => `${source}: ${name}`);
  const total = numel(shape);
  const nnz = values.data.length;
  if (values.shape.length !== 1) fail(`has values of shape [${values.shape.join(',')}], expected [NNZ]`);
  if (indices.dtype === 'string' || indices.dtype.startsWith('float') || indices.dtype === 'bfloat16' || indices.dtype === 'bool') {
    fail(`has ${indices.dtype} indices, expected integers`);
  }
  const idx = Array.from(indices.data as ArrayLike<number | bigint>, (v) => Number(v));

  let linear: number[];
  const rank = shape.length;
  if (indices.shape.length === 1 && indices.shape[0] === nnz) {
    linear = idx;
  } else if (indices.shape.length === 2 && indices.shape[0] === nnz && indices.shape[1] === rank) {
    linear = new Array<number>(nnz);
    for (let i = 0; i < nnz; i++) {
      let lin = 0;
      for (let j = 0; j < rank; j++) {
        const k = idx[i * rank + j]!;
        if (k < 0 || k >= shape[j]!) fail(`has index ${k} out of range for dimension ${j} of size ${shape[j]}`);
        lin = lin * shape[j]! + k;
      }
      linear[i] = lin;
    }
  } else {
    return fail(`has indices of shape [${indices.shape.join(',')}], expected [${nnz}] or [${nnz},${rank}]`);
  }

  const dense = allocHostData(values.dtype, total);
  for (let i = 0; i < nnz; i++) {
    const k = linear[i]!;
    if (!Number.isInteger(k) || k < 0 || k >= total) fail(`has index ${k} outside its ${total} elements`);
    (dense as unknown as unknown[])[k] = (values.data as unknown as unknown[])[i];
  }
  return { dtype: values.dtype, shape, data: dense };
}

function isDefaultValue(v: number | bigint | string, dtype: DType): boolean {
  if (dtype === 'float32' || dtype === 'float64') return v === 0 && !Object.is(v, -0); // keep -0 exact
  if (typeof v === 'bigint') return v === 0n;
  if (typeof v === 'string') return v === '';
  return v === 0; // ints, bool, and float16/bfloat16 bit patterns (0x8000 = -0 is kept)
}

/** COO form of a dense tensor: values [NNZ] named `name`, linearized int64 indices [NNZ]. */
export function makeSparseTensorProto(name: string, dense: HostTensor): SparseTensorProto {
  checkHost(dense);
  const src = dense.data as unknown as ArrayLike<number | bigint | string>;
  const keep: number[] = [];
  for (let i = 0; i < src.length; i++) if (!isDefaultValue(src[i]!, dense.dtype)) keep.push(i);

  let values: HostData;
  if (dense.dtype === 'string') {
    values = keep.map((i) => (dense.data as string[])[i]!);
  } else {
    const out = new CTORS[dense.dtype](keep.length) as unknown as unknown[];
    keep.forEach((i, j) => (out[j] = src[i]));
    values = out as unknown as HostData;
  }
  return newSparseTensor({
    values: makeTensorProto(name, { dtype: dense.dtype, shape: [keep.length], data: values }),
    indices: makeTensorProto('', { dtype: 'int64', shape: [keep.length], data: BigInt64Array.from(keep, (i) => BigInt(i)) }),
    dims: dense.shape.slice(),
  });
}
