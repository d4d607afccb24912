import * as tf from '@tensorflow/tfjs-core';
import { DeviceValue, type Value } from './values.js';
import { hostToTensor } from './host.js';

/**
 * Layout helpers for elementwise ops. A rank-4 operand held in NHWC lets the op run in NHWC
 * when the other operand can be viewed the same way (a scalar, a per-channel [C,1,1] constant,
 * or another rank-4 value): no transpose back to NCHW between a conv and its activation,
 * bias, residual add or batch norm.
 */
export function preferNhwc(values: (Value | undefined)[]): boolean {
  const present = values.filter((v): v is Value => v !== undefined);
  const anyNhwc = present.some((v) => v.kind === 'device' && v.layout === 'nhwc');
  return anyNhwc && present.every((v) => v.rank <= 4);
}

/** The operand as a tensor in the chosen layout; lower-rank operands are right-aligned first. */
export function operand(v: Value, nhwc: boolean): tf.Tensor {
  if (!nhwc) return v.kind === 'device' ? v.onnx() : hostToTensor(v);
  if (v.kind === 'device' && v.rank === 4) return v.nhwc();
  const t = v.kind === 'device' ? v.onnx() : hostToTensor(v);
  if (t.rank === 0) return t;
  const shape4 = [...Array(4 - t.rank).fill(1), ...t.shape];
  const [n, c, h, w] = shape4;
  if (c === 1) return t.reshape([n, h, w, 1]); // no channel axis to move: only reorder dims of size 1
  return t.reshape(shape4).transpose([0, 2, 3, 1]);
}

/** Wrap an op result computed in the chosen layout. */
export function result(t: tf.Tensor, nhwc: boolean): DeviceValue {
  return new DeviceValue(t, nhwc && t.rank === 4 ? 'nhwc' : 'onnx');
}

/** Apply a tensor function to operands in a common layout (NHWC when it avoids transposes). */
export function elementwise(values: (Value | undefined)[], f: (...ts: tf.Tensor[]) => tf.Tensor): DeviceValue {
  const nhwc = preferNhwc(values);
  const ts = values.map((v) => (v === undefined ? (undefined as unknown as tf.Tensor) : operand(v, nhwc)));
  return result(f(...ts), nhwc);
}
