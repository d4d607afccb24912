/**
 * DepthwiseConv2dNative gradients (NHWC, channel multiplier M >= 1), differentiable.
 *
 * With y[n,i,j,c*M+m] = sum_{a,b} xpad[n, i*sh + a*dh, j*sw + b*dw, c] * w[a,b,c,m]:
 *
 *  - dL/dw[a,b,c,m] = sum_n sum_{i,j} xpad[n, a*dh + i*sh, b*dw + j*sw, c] * dy[n,i,j,c*M+m]
 *    is a depthwise convolution over N*C channels (batch folded into channels) whose
 *    Ho x Wo "filter" is dy, strides and dilations swapped, followed by a sum over n. (The
 *    per-offset "strided view of x times dy" formulation materializes kh*kw copies of the
 *    activations: 75 MB and ~190 ms vs ~45 ms for a 64x32x32x32 layer on wasm.)
 *  - dL/dx: a depthwise conv (multiplier 1 over the C*M channels of dy) of the
 *    zero-inserted, padded dy with the flipped filter, then a sum over m.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ConvAttrs, ConvFamily, ConvInfo } from './conv-family.js';
import { filterGradConvolution, inputGradConvolution, type Convolve } from './conv2d.js';
import { flipSpatial } from './util.js';

const depthwise: Convolve = (x, f, s, pad, d) => tf.depthwiseConv2d(x, f, s, pad, 'NHWC', d);

export function depthwiseInputGrad(dy: tf.Tensor4D, filter: tf.Tensor4D, info: ConvInfo): tf.Tensor4D {
  const [kh, kw, c, m] = filter.shape;
  const flipped = tf.reshape(flipSpatial(filter), [kh, kw, c * m, 1]) as tf.Tensor4D;
  const perChannel = inputGradConvolution(dy, flipped, info, depthwise);
  if (m === 1) return perChannel;
  const [n, h, w] = perChannel.shape;
  return tf.sum(tf.reshape(perChannel, [n, h, w, c, m]), 4) as tf.Tensor4D;
}

export function depthwiseFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, info: ConvInfo): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const m = info.outChannels / c;
  // Channels ordered (n, c) on both sides; only 4-D transposes (5-D ones are slow on wasm).
  const xT = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c]) as tf.Tensor4D;
  const dyT = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), [info.outHeight, info.outWidth, n * c, m]) as tf.Tensor4D;
  const perSample = filterGradConvolution(xT, dyT, info, depthwise); // [1, kh, kw, N*C*M]
  const [, kh, kw] = perSample.shape;
  return tf.sum(tf.reshape(perSample, [kh, kw, n, c, m]), 2) as tf.Tensor4D;
}

export const depthwiseFamily: ConvFamily = {
  depthwise: true,
  kernels: {
    forward: tf.DepthwiseConv2dNative,
    backpropInput: tf.DepthwiseConv2dNativeBackpropInput,
    backpropFilter: tf.DepthwiseConv2dNativeBackpropFilter,
  },
  forward: (x, filter, a: ConvAttrs) =>
    tf.depthwiseConv2d(x, filter, a.strides, a.pad, 'NHWC', a.dilations ?? 1, a.dimRoundingMode),
  inputGrad: depthwiseInputGrad,
  filterGrad: depthwiseFilterGrad,
};
