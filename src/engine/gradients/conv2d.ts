/**
 * Conv2D gradients computed with the backend's forward conv2d (NHWC).
 *
 * With y[n,i,j,o] = sum_{a,b,c} xpad[n, i*sh + a*dh, j*sw + b*dw, c] * w[a,b,c,o]:
 *
 *  - dL/dw is itself a convolution once batch and channels swap roles: the input is
 *    x^T [Ci, H, W, N] (channels as batch, batch as channels), the "filter" is
 *    dy^T [Ho, Wo, N, Co], strides become dilations and dilations become strides.
 *  - dL/dx is the forward conv of the zero-inserted, padded dy with the spatially flipped,
 *    in/out-swapped filter, at stride 1 and the original dilation.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ConvAttrs, ConvFamily, ConvInfo } from './conv-family.js';
import { extractWindows, zeroInsert } from './windows.js';
import { flipSpatial, padOrCrop, type Pair } from './util.js';

type Explicit = tf.backend_util.ExplicitPadding;

function explicit(top: number, bottom: number, left: number, right: number): Explicit {
  return [[0, 0], [top, bottom], [left, right], [0, 0]];
}

function geometry(info: ConvInfo) {
  return {
    k: [info.filterHeight, info.filterWidth] as Pair,
    s: [info.strideHeight, info.strideWidth] as Pair,
    d: [info.dilationHeight, info.dilationWidth] as Pair,
    out: [info.outHeight, info.outWidth] as Pair,
    size: [info.inHeight, info.inWidth] as Pair,
    before: [info.padInfo.top, info.padInfo.left] as Pair,
  };
}

/** Splits signed pad amounts into a crop of `x` (negative parts) and conv padding (positive). */
function cropThenPad(x: tf.Tensor4D, amounts: [Pair, Pair]): { input: tf.Tensor4D; pad: Explicit } {
  const neg = (v: number) => Math.min(v, 0);
  const pos = (v: number) => Math.max(v, 0);
  const [[t, b], [l, r]] = amounts;
  return { input: padOrCrop(x, [[neg(t), neg(b)], [neg(l), neg(r)]]), pad: explicit(pos(t), pos(b), pos(l), pos(r)) };
}

/**
 * The zero-inserted dy, cropped where needed, and the padding under which a stride-1
 * convolution with the flipped filter (at the forward dilation) yields dL/dx of shape x.
 * Shared with the depthwise family.
 */
export function transposedConvInput(dy: tf.Tensor4D, info: ConvInfo): { input: tf.Tensor4D; pad: Explicit } {
  const g = geometry(info);
  const amount = (axis: 0 | 1): Pair => [
    (g.k[axis] - 1) * g.d[axis] - g.before[axis],
    g.size[axis] + g.before[axis] - g.out[axis] * g.s[axis],
  ];
  return cropThenPad(zeroInsert(dy, g.s), [amount(0), amount(1)]);
}

export function conv2dInputGrad(dy: tf.Tensor4D, filter: tf.Tensor4D, info: ConvInfo): tf.Tensor4D {
  const { input, pad } = transposedConvInput(dy, info);
  const swapped = tf.transpose(flipSpatial(filter), [0, 1, 3, 2]);
  return tf.conv2d(input, swapped, 1, pad, 'NHWC', [info.dilationHeight, info.dilationWidth]);
}

export function conv2dFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, info: ConvInfo): tf.Tensor4D {
  const g = geometry(info);
  // Rows/cols of the padded input that the forward pass read; pad or crop x to exactly that.
  const after = (axis: 0 | 1) =>
    (g.out[axis] - 1) * g.s[axis] + (g.k[axis] - 1) * g.d[axis] + 1 - g.size[axis] - g.before[axis];
  const { input, pad } = cropThenPad(x, [[g.before[0], after(0)], [g.before[1], after(1)]]);
  const xT = tf.transpose(input, [3, 1, 2, 0]);
  const dyT = tf.transpose(dy, [1, 2, 0, 3]);
  const stridesAndDilations = g.s.some((v) => v > 1) && g.d.some((v) => v > 1);
  let grad: tf.Tensor4D;
  if (!stridesAndDilations) {
    grad = tf.conv2d(xT, dyT, g.d, pad, 'NHWC', g.s);
  } else {
    // tfjs's conv2d refuses strides > 1 together with dilations > 1: convolve at stride 1
    // and keep every d-th output.
    const dense = tf.conv2d(xT, dyT, 1, pad, 'NHWC', g.s);
    [grad] = extractWindows(dense, { size: [1, 1], strides: g.d, dilations: [1, 1], out: g.k, padBefore: [0, 0] });
  }
  return tf.transpose(grad, [1, 2, 0, 3]);
}

export const conv2dFamily: ConvFamily = {
  depthwise: false,
  kernels: { forward: tf.Conv2D, backpropInput: tf.Conv2DBackpropInput, backpropFilter: tf.Conv2DBackpropFilter },
  forward: (x, filter, a: ConvAttrs) =>
    tf.conv2d(x, filter, a.strides, a.pad, 'NHWC', a.dilations ?? 1, a.dimRoundingMode),
  inputGrad: conv2dInputGrad,
  filterGrad: conv2dFilterGrad,
};
