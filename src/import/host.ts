import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor } from '../onnx/tensor.js';
import { hostToFloat32 } from '../onnx/tensor.js';
import { HostValue, type HostDType, type Value } from './values.js';

/** An initializer or attribute tensor as a host value (int64 → JS numbers; huge sentinels stay huge). */
export function hostValueFromTensor(h: HostTensor): HostValue {
  const shape = [...h.shape];
  switch (h.dtype) {
    case 'int64':
    case 'uint64':
      return new HostValue('int64', shape, Array.from(h.data as BigInt64Array, (v) => Number(v)));
    case 'int32':
    case 'int16':
    case 'int8':
    case 'uint8':
    case 'uint16':
    case 'uint32':
      return new HostValue(h.dtype === 'int32' ? 'int32' : 'int64', shape, Array.from(h.data as Int32Array));
    case 'bool':
      return new HostValue('bool', shape, Array.from(h.data as Uint8Array, (v) => (v ? 1 : 0)));
    case 'float32':
    case 'float64':
    case 'float16':
    case 'bfloat16':
      return new HostValue('float32', shape, Array.from(hostToFloat32(h)));
    default:
      throw new Error(`tensors of type ${h.dtype} are not supported here`);
  }
}

/** Read a device value back to the host (a sync read: only for small tensors such as shapes). */
export function toHost(v: Value): HostValue {
  if (v.kind === 'host') return v;
  const t = v.onnx();
  const dtype: HostDType = t.dtype === 'float32' ? 'float32' : t.dtype === 'bool' ? 'bool' : 'int64';
  return new HostValue(dtype, [...t.shape], Array.from(t.dataSync() as ArrayLike<number>));
}

/** Integer contents of a value that must be known (shape, axes, pads, ...). */
export function intsOf(v: Value): number[] {
  return toHost(v).data.map((x) => Math.trunc(x));
}

/** Broadcast host values elementwise with numpy rules and combine them with `f`. */
export function hostBroadcastN(values: HostValue[], f: (...xs: number[]) => number, dtype: HostDType): HostValue {
  const rank = Math.max(...values.map((v) => v.rank));
  const padded = values.map((v) => [...Array(rank - v.rank).fill(1), ...v.shape]);
  const shape = Array.from({ length: rank }, (_, i) => {
    const dims = padded.map((p) => p[i]);
    const d = Math.max(...dims);
    if (dims.some((x) => x !== 1 && x !== d)) throw new Error(`cannot broadcast ${values.map((v) => `[${v.shape}]`).join(' with ')}`);
    return d;
  });
  const n = shape.reduce((x, y) => x * y, 1);
  const out = new Array<number>(n);
  const idx = new Array<number>(rank).fill(0);
  const offset = (p: number[]) => {
    let o = 0;
    for (let i = 0; i < rank; i++) o = o * p[i] + (p[i] === 1 ? 0 : idx[i]);
    return o;
  };
  for (let k = 0; k < n; k++) {
    out[k] = f(...values.map((v, j) => v.data[offset(padded[j])]));
    for (let i = rank - 1; i >= 0; i--) {
      if (++idx[i] < shape[i]) break;
      idx[i] = 0;
    }
  }
  return new HostValue(dtype, shape, out);
}

export function hostBroadcast(a: HostValue, b: HostValue, f: (x: number, y: number) => number, dtype: HostDType): HostValue {
  return hostBroadcastN([a, b], f, dtype);
}

export function hostToTensor(h: HostValue): tf.Tensor {
  return tf.tensor(h.data, h.shape, h.dtype === 'float32' ? 'float32' : h.dtype === 'bool' ? 'bool' : 'int32');
}
