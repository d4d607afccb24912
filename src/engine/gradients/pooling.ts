/**
 * MaxPool / AvgPool gradients from differentiable ops (the native forward kernels stay).
 *
 * MaxPool routes each window's gradient to exactly one input: the first maximum in
 * row-major window order (PyTorch/onnxruntime semantics), not to every tie. The routing
 * mask is a constant w.r.t. x, so the second derivative through max-pool is the (correct)
 * piecewise-linear one. AvgPool divides by the number of non-padding inputs per window,
 * as tfjs's cpu and wasm forwards do.
 */
import * as tf from '@tensorflow/tfjs-core';
import { extractWindows, scatterWindows, windowOf } from './windows.js';
import { detach, type Shape4 } from './util.js';

interface PoolAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function poolInfo(xShape: number[], attrs: tf.NamedAttrMap): tf.backend_util.Conv2DInfo {
  const a = attrs as unknown as PoolAttrs;
  return tf.backend_util.computePool2DInfo(xShape as Shape4, a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
}

export function maxPoolInputGrad(dy: tf.Tensor4D, x: tf.Tensor4D, y: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const win = windowOf(info);
  const views = extractWindows(detach(x), win, -Infinity);
  const claimed = tf.scalar(NaN);
  let unclaimed: tf.Tensor = detach(y); // the window max, NaN once an earlier offset took it
  const routed = views.map((view, k) => {
    const hit = tf.equal(view, unclaimed);
    if (k < views.length - 1) unclaimed = tf.where(hit, claimed, unclaimed);
    return tf.mul(dy, tf.cast(hit, 'float32')) as tf.Tensor4D;
  });
  return scatterWindows(routed, win, x.shape);
}

/** 1 / (number of non-padding inputs) for every output position, shaped [1, outH, outW, 1]. */
function inverseWindowCounts(info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const counts = (out: number, stride: number, k: number, before: number, size: number) =>
    Array.from({ length: out }, (_, i) => {
      const start = i * stride - before;
      return Math.min(start + k, size) - Math.max(start, 0);
    });
  const rows = counts(info.outHeight, info.strideHeight, info.filterHeight, info.padInfo.top, info.inHeight);
  const cols = counts(info.outWidth, info.strideWidth, info.filterWidth, info.padInfo.left, info.inWidth);
  const values = rows.flatMap((r) => cols.map((c) => 1 / (r * c)));
  return tf.tensor4d(values, [1, info.outHeight, info.outWidth, 1]);
}

export function avgPoolInputGrad(dy: tf.Tensor4D, xShape: Shape4, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const win = windowOf(info);
  const share = tf.mul(dy, inverseWindowCounts(info)) as tf.Tensor4D;
  return scatterWindows(Array.from({ length: info.filterHeight * info.filterWidth }, () => share), win, xShape);
}

export const poolingGradients: tf.GradConfig[] = [
  {
    kernelName: tf.MaxPool,
    inputsToSave: ['x'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, y] = saved as tf.Tensor4D[];
      return { x: () => maxPoolInputGrad(dy as tf.Tensor4D, x, y, poolInfo(x.shape, attrs)) };
    },
  },
  {
    kernelName: tf.AvgPool,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as tf.Tensor4D[];
      return { x: () => avgPoolInputGrad(dy as tf.Tensor4D, x.shape, poolInfo(x.shape, attrs)) };
    },
  },
];
