/**
 * Small tensor helpers shared by Harden's gradient definitions. Everything here is built
 * from differentiable tfjs ops (except `detach`, whose whole point is to cut the tape), so
 * gradients written with these helpers can themselves be differentiated (double backprop).
 */
import * as tf from '@tensorflow/tfjs-core';

export type Pair = [number, number];
export type Shape4 = [number, number, number, number];

/** tfjs accepts `n` or `[h, w]` for strides, dilations and pool sizes. */
export function pair(v: number | number[] | undefined, fallback = 1): Pair {
  if (v == null) return [fallback, fallback];
  return typeof v === 'number' ? [v, v] : [v[0] ?? fallback, v[1] ?? v[0] ?? fallback];
}

/**
 * A new tensor sharing `t`'s data but unknown to the gradient tape: ops applied to it are
 * constants for every enclosing `tf.grad`. Used for masks (ReLU, max-pool argmax) so that
 * double backprop neither fails on comparison kernels nor wastes time pushing zeros.
 * Dispose it like any tensor (it holds a reference on the shared data).
 */
export function detach<T extends tf.Tensor>(t: T): T;
export function detach(t: tf.TensorInfo): tf.Tensor;
export function detach(t: tf.TensorInfo): tf.Tensor {
  const engine = tf.engine();
  engine.backend.incRef(t.dataId);
  return engine.makeTensorFromDataId(t.dataId, t.shape, t.dtype);
}

/** Removes `[[top, bottom], [left, right]]` rows/columns (all >= 0) from an NHWC tensor. */
export function cropSpatial(x: tf.Tensor4D, [[top, bottom], [left, right]]: [Pair, Pair]): tf.Tensor4D {
  if (top === 0 && bottom === 0 && left === 0 && right === 0) return x;
  const [n, h, w, c] = x.shape;
  return tf.slice(x, [0, top, left, 0], [n, h - top - bottom, w - left - right, c]);
}

/** Flips a [kh, kw, ...] filter along both spatial axes. */
export function flipSpatial(filter: tf.Tensor4D): tf.Tensor4D {
  return tf.reverse(filter, [0, 1]);
}
