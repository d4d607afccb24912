/**
 * MaxPool / AvgPool gradients from differentiable ops (the native forward kernels stay).
 *
 * MaxPool routes each window's gradient to exactly one input, the first maximum in
 * row-major window order (PyTorch/onnxruntime semantics), not to every tie: a small kernel
 * finds that argmax on a detached x (a constant for the tape), and dx is a segment sum of
 * dy at those indices, linear in dy, so second derivatives through max-pool are the
 * correct piecewise-linear ones. AvgPool divides by the number of non-padding inputs per
 * window, as tfjs's cpu and wasm forwards do (tfjs's own AvgPoolGrad divides by the full
 * window size, which is wrong next to padding).
 */
import * as tf from '@tensorflow/tfjs-core';
import { scatterWindows, tapIndices, windowOf } from './windows.js';
import { detach, type Shape4 } from './util.js';

/** Kernel name of Harden's first-argmax-per-window kernel (int32 flat indices into x, -1 if none). */
export const MaxPoolArgmax = 'HardenMaxPoolArgmax';

function poolInfo(xShape: number[], attrs: tf.NamedAttrMap): tf.backend_util.Conv2DInfo {
  const a = attrs as unknown as tf.MaxPoolAttrs;
  return tf.backend_util.computePool2DInfo(xShape as Shape4, a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
}

function maxPoolArgmax({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): tf.Tensor {
  const x = inputs.x as tf.TensorInfo;
  const info = poolInfo(x.shape, attrs ?? {});
  const c = info.inChannels;
  const positions = info.batchSize * info.outHeight * info.outWidth;
  const { ids } = tapIndices(windowOf(info), x.shape as Shape4, -1);
  const values = (backend as tf.KernelBackend).readSync(x.dataId) as Float32Array;
  const best = new Float32Array(positions * c).fill(-Infinity);
  const argmax = new Int32Array(positions * c).fill(-1);
  // Taps in row-major window order and a strict '>': the first maximum wins.
  for (let tap = 0, t = 0; tap < ids.length / positions; tap++) {
    for (let p = 0; p < positions; p++, t++) {
      if (ids[t] < 0) continue;
      const src = ids[t] * c;
      const dst = p * c;
      for (let ch = 0; ch < c; ch++) {
        const v = values[src + ch];
        if (v > best[dst + ch]) {
          best[dst + ch] = v;
          argmax[dst + ch] = src + ch;
        }
      }
    }
  }
  return tf.tensor(argmax, info.outShape, 'int32');
}

export function maxPoolArgmaxKernel(backendName: string): tf.KernelConfig {
  return { kernelName: MaxPoolArgmax, backendName, kernelFunc: maxPoolArgmax };
}

export function maxPoolInputGrad(dy: tf.Tensor4D, x: tf.Tensor4D, attrs: tf.NamedAttrMap): tf.Tensor4D {
  const argmax = tf.engine().runKernel(MaxPoolArgmax, { x: detach(x) }, attrs) as tf.Tensor;
  const routed = tf.unsortedSegmentSum(tf.reshape(dy, [-1]), tf.reshape(argmax, [-1]), x.size);
  return tf.reshape(routed, x.shape);
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

export function avgPoolInputGrad(dy: tf.Tensor4D, xShape: Shape4, attrs: tf.NamedAttrMap): tf.Tensor4D {
  const info = poolInfo(xShape, attrs);
  const share = tf.mul(dy, inverseWindowCounts(info));
  const taps = info.filterHeight * info.filterWidth;
  // Every tap of a window receives the same share.
  const perTap = tf.mul(tf.ones([taps, 1, 1, 1, 1]), tf.expandDims(share, 0));
  return scatterWindows(perTap, windowOf(info), xShape);
}

export const poolingGradients: tf.GradConfig[] = [
  {
    kernelName: tf.MaxPool,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => ({
      x: () => maxPoolInputGrad(dy as tf.Tensor4D, saved[0] as tf.Tensor4D, attrs),
    }),
  },
  {
    kernelName: tf.AvgPool,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => ({
      x: () => avgPoolInputGrad(dy as tf.Tensor4D, saved[0].shape as Shape4, attrs),
    }),
  },
];
