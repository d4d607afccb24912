/**
 * DepthwiseConv2dNative gradients (NHWC, channel multiplier M >= 1), differentiable.
 *
 * With y[n,i,j,c*M+m] = sum_{a,b} xpad[n, i*sh + a*dh, j*sw + b*dw, c] * w[a,b,c,m]:
 *
 *  - dL/dw[a,b,c,m] = sum_{n,i,j} view_{a,b}(x)[n,i,j,c] * dy[n,i,j,c*M+m]: one strided
 *    view of the padded input per kernel offset (cheap for 3x3) times dy, reduced.
 *  - dL/dx: a depthwise conv (multiplier 1 over the C*M channels of dy) of the
 *    zero-inserted, padded dy with the flipped filter, then a sum over m.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ConvAttrs, ConvFamily, ConvInfo } from './conv-family.js';
import { transposedConvInput } from './conv2d.js';
import { extractWindows, windowOf } from './windows.js';
import { flipSpatial } from './util.js';

function multiplier(info: ConvInfo): number {
  return info.outChannels / info.inChannels;
}

export function depthwiseInputGrad(dy: tf.Tensor4D, filter: tf.Tensor4D, info: ConvInfo): tf.Tensor4D {
  const [kh, kw, c, m] = filter.shape;
  const { input, pad } = transposedConvInput(dy, info);
  const flipped = tf.reshape(flipSpatial(filter), [kh, kw, c * m, 1]) as tf.Tensor4D;
  const perChannel = tf.depthwiseConv2d(input, flipped, 1, pad, 'NHWC', [info.dilationHeight, info.dilationWidth]);
  if (m === 1) return perChannel;
  const [n, h, w] = perChannel.shape;
  return tf.sum(tf.reshape(perChannel, [n, h, w, c, m]), 4) as tf.Tensor4D;
}

export function depthwiseFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, info: ConvInfo): tf.Tensor4D {
  const m = multiplier(info);
  const c = info.inChannels;
  const positions = info.batchSize * info.outHeight * info.outWidth;
  const dyFlat = tf.reshape(dy, [positions, c, m]);
  const rows = extractWindows(x, windowOf(info)).map((view) =>
    tf.sum(tf.mul(tf.reshape(view, [positions, c, 1]), dyFlat), 0));
  return tf.reshape(tf.stack(rows), [info.filterHeight, info.filterWidth, c, m]);
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
