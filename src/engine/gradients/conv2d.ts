/**
 * Conv2D gradients computed with the backend's forward conv2d (NHWC).
 *
 * With y[n,i,j,o] = sum_{a,b,c} xpad[n, i*sh + a*dh, j*sw + b*dw, c] * w[a,b,c,o]:
 *
 *  - dL/dw is itself a convolution once batch and channels swap roles: the input is
 *    x^T [Ci, H, W, N] (channels as batch, batch as channels), the "filter" is
 *    dy^T [Ho, Wo, N, Co], strides become dilations and dilations become strides.
 *    (The depthwise family reuses both constructions, see depthwise.ts.)
 *  - dL/dx is the forward conv of the zero-inserted, padded dy with the spatially flipped,
 *    in/out-swapped filter, at stride 1 and the original dilation.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ConvAttrs, ConvFamily, ConvInfo } from './conv-family.js';
import { extractWindows, zeroInsert } from './windows.js';
import { cropSpatial, flipSpatial, type Pair } from './util.js';

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
  const cut = (v: number) => Math.max(-v, 0);
  const pos = (v: number) => Math.max(v, 0);
  const [[t, b], [l, r]] = amounts;
  return { input: cropSpatial(x, [[cut(t), cut(b)], [cut(l), cut(r)]]), pad: explicit(pos(t), pos(b), pos(l), pos(r)) };
}

/**
 * The zero-inserted dy, cropped where needed, and the padding under which a stride-1
 * convolution with the flipped filter (at the forward dilation) yields dL/dx of shape x.
 */
function transposedConvInput(dy: tf.Tensor4D, info: ConvInfo): { input: tf.Tensor4D; pad: Explicit } {
  const g = geometry(info);
  const amount = (axis: 0 | 1): Pair => [
    (g.k[axis] - 1) * g.d[axis] - g.before[axis],
    g.size[axis] + g.before[axis] - 1 - (g.out[axis] - 1) * g.s[axis],
  ];
  return cropThenPad(zeroInsert(dy, g.s), [amount(0), amount(1)]);
}

/** A forward convolution: tf.conv2d or tf.depthwiseConv2d in NHWC. */
export type Convolve = (x: tf.Tensor4D, filter: tf.Tensor4D, strides: Pair, pad: Explicit, dilations: Pair) => tf.Tensor4D;

const conv2d: Convolve = (x, f, s, pad, d) => tf.conv2d(x, f, s, pad, 'NHWC', d);

/**
 * dL/dx: `convolve` over the zero-inserted, padded dy with `filter` (already flipped and
 * laid out for it), at stride 1 and the forward dilation.
 */
export function inputGradConvolution(dy: tf.Tensor4D, filter: tf.Tensor4D, info: ConvInfo, convolve: Convolve): tf.Tensor4D {
  const { input, pad } = transposedConvInput(dy, info);
  return convolve(input, filter, [1, 1], pad, [info.dilationHeight, info.dilationWidth]);
}

/**
 * The filter gradient as a forward convolution of x and dy with batch and channels swapped:
 * `input` is x as [B', H, W, C'] and `filter` is dy as [Ho, Wo, C', M'] (spatial axes
 * untouched); the forward strides become dilations and vice versa. Returns [B', kh, kw, *].
 */
export function filterGradConvolution(input: tf.Tensor4D, filter: tf.Tensor4D, info: ConvInfo, convolve: Convolve): tf.Tensor4D {
  const g = geometry(info);
  // Rows/cols of the padded input that the forward pass read; pad or crop to exactly that.
  const after = (axis: 0 | 1) =>
    (g.out[axis] - 1) * g.s[axis] + (g.k[axis] - 1) * g.d[axis] + 1 - g.size[axis] - g.before[axis];
  const cropped = cropThenPad(input, [[g.before[0], after(0)], [g.before[1], after(1)]]);
  if (!(g.s.some((v) => v > 1) && g.d.some((v) => v > 1))) return convolve(cropped.input, filter, g.d, cropped.pad, g.s);
  // tfjs refuses strides > 1 together with dilations > 1: convolve at stride 1, keep every d-th output.
  const dense = convolve(cropped.input, filter, [1, 1], cropped.pad, g.s);
  const every = extractWindows(dense, { size: [1, 1], strides: g.d, dilations: [1, 1], out: g.k, padBefore: [0, 0] });
  return tf.reshape(every, [dense.shape[0], g.k[0], g.k[1], dense.shape[3]]);
}

export function conv2dInputGrad(dy: tf.Tensor4D, filter: tf.Tensor4D, info: ConvInfo): tf.Tensor4D {
  return inputGradConvolution(dy, tf.transpose(flipSpatial(filter), [0, 1, 3, 2]), info, conv2d);
}

export function conv2dFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, info: ConvInfo): tf.Tensor4D {
  const xT = tf.transpose(x, [3, 1, 2, 0]); // [Ci, H, W, N]
  const dyT = tf.transpose(dy, [1, 2, 0, 3]); // [Ho, Wo, N, Co]
  return tf.transpose(filterGradConvolution(xT, dyT, info, conv2d), [1, 2, 0, 3]);
}

export const conv2dFamily: ConvFamily = {
  depthwise: false,
  kernels: { forward: tf.Conv2D, backpropInput: tf.Conv2DBackpropInput, backpropFilter: tf.Conv2DBackpropFilter },
  forward: (x, filter, a: ConvAttrs) =>
    tf.conv2d(x, filter, a.strides, a.pad, 'NHWC', a.dilations ?? 1, a.dimRoundingMode),
  inputGrad: conv2dInputGrad,
  filterGrad: conv2dFilterGrad,
};
