import * as tf from '@tensorflow/tfjs-core';
import { registerOp, type NodeInfo } from '../registry.js';
import { DeviceValue, HostValue, tfDtypeOf, type HostDType, type Value } from '../values.js';
import { hostValueFromTensor, intsOf, toHost } from '../host.js';
import { elementwise } from '../layout.js';
import { TensorDataType, dataTypeName } from '../../onnx/schema.js';
import { float16BitsToNumber, numberToFloat16Bits, bfloat16BitsToNumber, numberToBfloat16Bits } from '../../onnx/tensor.js';
import { numel, registerVersions } from './shape.js';

/**
 * Value sources and conversions: Constant, ConstantOfShape, Range, Cast. Results stay on the
 * host (for shape arithmetic and folding at import), except float tensors larger than
 * HOST_FLOAT_LIMIT, which go to the device as float initializers do.
 */

const HOST_FLOAT_LIMIT = 64;

function produce(v: HostValue): Value {
  if (v.dtype !== 'float32' || v.data.length <= HOST_FLOAT_LIMIT) return v;
  const data = Float32Array.from(v.data);
  return new DeviceValue(tf.tensor(data, v.shape, 'float32'));
}

/** A TENSOR attribute as a host value; string tensors are refused. */
function tensorAttr(node: NodeInfo, name: string): HostValue | undefined {
  const t = node.attrs.tensor(name);
  if (!t) return undefined;
  if (t.dtype === 'string') node.fail(`string tensor in attribute '${name}' is not supported`);
  return hostValueFromTensor(t);
}

// ---- Constant ----

/** Constant: `value` (1+); value_float(s)/value_int(s) (12+); sparse_value and strings are refused. */
registerVersions('Constant', [1, 12], (node, since) => {
  const a = node.attrs;
  if (a.has('sparse_value')) node.fail("attribute 'sparse_value' (sparse tensors) is not supported");
  if (a.has('value_string') || a.has('value_strings')) node.fail('string constants are not supported');
  const candidates: (HostValue | undefined)[] = [tensorAttr(node, 'value')];
  if (since >= 12) {
    const f = a.float('value_float'), fs = a.floats('value_floats'), i = a.int('value_int'), is = a.ints('value_ints');
    candidates.push(
      f === undefined ? undefined : HostValue.scalar(f, 'float32'),
      fs && HostValue.vector(fs.map(Math.fround), 'float32'),
      i === undefined ? undefined : HostValue.scalar(i),
      is && HostValue.vector(is),
    );
  }
  const given = candidates.filter((c): c is HostValue => c !== undefined);
  if (given.length !== 1) node.fail(`exactly one value attribute is required, got ${given.length}`);
  return () => [produce(given[0])];
});

// ---- ConstantOfShape ----

registerOp({
  opType: 'ConstantOfShape',
  since: 9,
  convert(node) {
    const fill = tensorAttr(node, 'value') ?? HostValue.scalar(0, 'float32');
    if (fill.data.length !== 1) node.fail("attribute 'value' must hold one element");
    return (inputs) => {
      const shape = intsOf(inputs[0]!);
      if (shape.some((d) => d < 0)) node.fail(`negative dim in shape [${shape}]`);
      return [produce(new HostValue(fill.dtype, shape, new Array<number>(numel(shape)).fill(fill.data[0])))];
    };
  },
});

// ---- Range ----

/** Range: start, limit and delta are scalars, so the result is computed on the host. */
registerOp({
  opType: 'Range',
  since: 11,
  convert(node) {
    return (inputs) => {
      const [start, limit, delta] = (inputs as Value[]).map((v) => toHost(v));
      const [s, l, d] = [start.data[0], limit.data[0], delta.data[0]];
      if (d === 0) node.fail('delta is 0');
      const n = Math.max(0, Math.ceil((l - s) / d));
      const round = start.dtype === 'float32' ? Math.fround : (x: number) => x;
      return [produce(HostValue.vector(Array.from({ length: n }, (_, i) => round(s + i * d)), start.dtype))];
    };
  },
});

// ---- Cast ----

interface Target {
  host: HostDType;
  /** Host conversion of one element. */
  convert: (x: number) => number;
}

const wrapWith = (T: { from(xs: number[]): ArrayLike<number> }) => (x: number) => T.from([Number.isFinite(x) ? Math.trunc(x) : 0])[0];
const trunc = (x: number) => (Number.isFinite(x) ? Math.trunc(x) : 0);

/** Cast targets by ONNX type code. 16-bit floats are rounded on the host; on the device they are float32. */
const TARGETS = new Map<number, Target>([
  [TensorDataType.FLOAT, { host: 'float32', convert: Math.fround }],
  [TensorDataType.DOUBLE, { host: 'float32', convert: Math.fround }],
  [TensorDataType.FLOAT16, { host: 'float32', convert: (x) => float16BitsToNumber(numberToFloat16Bits(x)) }],
  [TensorDataType.BFLOAT16, { host: 'float32', convert: (x) => bfloat16BitsToNumber(numberToBfloat16Bits(x)) }],
  [TensorDataType.INT8, { host: 'int64', convert: wrapWith(Int8Array) }],
  [TensorDataType.UINT8, { host: 'int64', convert: wrapWith(Uint8Array) }],
  [TensorDataType.INT16, { host: 'int64', convert: wrapWith(Int16Array) }],
  [TensorDataType.UINT16, { host: 'int64', convert: wrapWith(Uint16Array) }],
  [TensorDataType.INT32, { host: 'int32', convert: wrapWith(Int32Array) }],
  [TensorDataType.UINT32, { host: 'int64', convert: wrapWith(Uint32Array) }],
  [TensorDataType.INT64, { host: 'int64', convert: trunc }],
  [TensorDataType.UINT64, { host: 'int64', convert: trunc }],
  [TensorDataType.BOOL, { host: 'bool', convert: (x) => (x !== 0 ? 1 : 0) }],
]);

/** Cast: `to` is a type name string in opset 1, a type code from 6; 19 adds `saturate` (float8 only). */
registerVersions('Cast', [1, 6, 19], (node, since) => {
  const to = since === 1 ? (node.attrs.string('to') ?? node.fail("attribute 'to' is required")) : (node.attrs.int('to') ?? node.fail("attribute 'to' is required"));
  if (since >= 19) node.attrs.int('saturate'); // only affects float8 targets, which are refused below
  const code = typeof to === 'string' ? (TensorDataType as Record<string, number>)[to.toUpperCase()] ?? -1 : to;
  const target = TARGETS.get(code) ?? node.fail(`cast to ${typeof to === 'string' ? to : dataTypeName(code)} is not supported`);
  const dtype = tfDtypeOf(target.host);
  return (inputs) => {
    const x = inputs[0]!;
    if (x.kind === 'host') return [new HostValue(target.host, x.shape, x.data.map(target.convert))];
    if (x.dtype === dtype) return [x];
    // notEqual rather than cast for bool, so NaN is true on every backend.
    return [elementwise([x], (t) => (dtype === 'bool' ? tf.notEqual(t, tf.scalar(0, t.dtype)) : tf.cast(t, dtype)))];
  };
});
