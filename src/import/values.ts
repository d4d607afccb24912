import * as tf from '@tensorflow/tfjs-core';
import '../tfjs-setup.js';

/**
 * What flows between converted nodes at run time.
 *
 * - `DeviceValue`: a tfjs tensor. Rank-4 activations may be held in NHWC (the layout the wasm
 *   backend convolves and pools in) while the ONNX graph means NCHW; `layout` records which,
 *   so a chain of spatial ops pays for no transposes and others transpose back only when they
 *   need the ONNX element order.
 * - `HostValue`: a small integer/float array kept in JS — shapes, indices, axes. PyTorch's
 *   `x.view(x.size(0), -1)` becomes Shape → Gather → Unsqueeze → Concat → Reshape; keeping that
 *   arithmetic on the host means no device round trips and exact int64 semantics.
 */
export type Layout = 'onnx' | 'nhwc';

export class DeviceValue {
  readonly kind = 'device' as const;
  private onnxCache?: tf.Tensor;
  private nhwcCache?: tf.Tensor;

  constructor(tensor: tf.Tensor, readonly layout: Layout = 'onnx') {
    if (layout === 'nhwc') {
      if (tensor.rank !== 4) throw new Error(`NHWC value must be rank 4, got rank ${tensor.rank}`);
      this.nhwcCache = tensor;
    } else {
      this.onnxCache = tensor;
    }
  }

  /** Shape in ONNX (NCHW) terms, whatever the storage layout. */
  get shape(): number[] {
    if (this.layout === 'onnx') return this.onnxCache!.shape;
    const [n, h, w, c] = this.nhwcCache!.shape;
    return [n, c, h, w];
  }

  get rank(): number {
    return this.layout === 'onnx' ? this.onnxCache!.rank : 4;
  }

  get dtype(): tf.DataType {
    return (this.onnxCache ?? this.nhwcCache)!.dtype;
  }

  /** The tensor in ONNX element order. */
  onnx(): tf.Tensor {
    if (!this.onnxCache) {
      const t = this.nhwcCache!;
      const [n, h, w, c] = t.shape;
      // Moving an axis past only size-1 axes keeps the element order: a reshape, not a copy.
      this.onnxCache = c === 1 || h * w === 1 ? tf.reshape(t, [n, c, h, w]) : tf.transpose(t, [0, 3, 1, 2]);
    }
    return this.onnxCache;
  }

  /** The tensor as NHWC; only for rank-4 values. */
  nhwc(): tf.Tensor4D {
    if (!this.nhwcCache) {
      const t = this.onnxCache!;
      if (t.rank !== 4) throw new Error(`cannot view a rank-${t.rank} tensor as NHWC`);
      const [n, c, h, w] = t.shape;
      this.nhwcCache = c === 1 || h * w === 1 ? tf.reshape(t, [n, h, w, c]) : tf.transpose(t, [0, 2, 3, 1]);
    }
    return this.nhwcCache as tf.Tensor4D;
  }

  /** The tensor as it is stored, whichever layout that is (for layout-agnostic elementwise ops). */
  stored(): tf.Tensor {
    return this.layout === 'onnx' ? this.onnxCache! : this.nhwcCache!;
  }
}

export type HostDType = 'int64' | 'int32' | 'float32' | 'bool';

export class HostValue {
  readonly kind = 'host' as const;
  constructor(
    readonly dtype: HostDType,
    readonly shape: number[],
    readonly data: number[],
  ) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`host value of shape [${shape}] needs ${n} elements, got ${data.length}`);
  }

  get rank(): number {
    return this.shape.length;
  }

  static scalar(v: number, dtype: HostDType = 'int64'): HostValue {
    return new HostValue(dtype, [], [v]);
  }

  static vector(v: number[], dtype: HostDType = 'int64'): HostValue {
    return new HostValue(dtype, [v.length], v);
  }
}

export type Value = DeviceValue | HostValue;

export function tfDtypeOf(dtype: HostDType): tf.DataType {
  if (dtype === 'float32') return 'float32';
  if (dtype === 'bool') return 'bool';
  return 'int32';
}

/** The value as a tfjs tensor in ONNX element order (host values are uploaded). */
export function toTensor(v: Value): tf.Tensor {
  if (v.kind === 'device') return v.onnx();
  return tf.tensor(v.data, v.shape, tfDtypeOf(v.dtype));
}

/** Whether the value's contents are known on the host without reading the device. */
export function isHost(v: Value | undefined): v is HostValue {
  return v !== undefined && v.kind === 'host';
}
