/**
 * Sliding-window plumbing for NHWC tensors, written with differentiable tfjs ops only.
 *
 * `extractWindows` returns, for each kernel offset (a, b) in row-major order, the strided
 * view `x_padded[:, a*dh + i*sh - top, b*dw + j*sw - left, :]` (i < outH, j < outW).
 * `scatterWindows` is its adjoint: it adds such views back into an input-shaped tensor.
 *
 * Both are a single gather / segment-sum over the pixels (rows of x as [N*H*W, C]) with
 * precomputed tap indices: GatherV2 and UnsortedSegmentSum are each other's gradient, so
 * everything built from these supports double backprop, and both are one pass over the
 * data on every backend (strided slices and 6-D transposes are slow on wasm).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Pair, Shape4 } from './util.js';

/** Geometry of a 2-D sliding window over the spatial axes of an NHWC tensor. */
export interface Window2D {
  size: Pair;
  strides: Pair;
  dilations: Pair;
  /** Number of window positions along H and W. */
  out: Pair;
  /** Padding before the first row / column (top, left). */
  padBefore: Pair;
}

/** The window geometry of a tfjs conv/pool info object (padding resolved by tfjs). */
export function windowOf(info: tf.backend_util.Conv2DInfo): Window2D {
  return {
    size: [info.filterHeight, info.filterWidth],
    strides: [info.strideHeight, info.strideWidth],
    dilations: [info.dilationHeight, info.dilationWidth],
    out: [info.outHeight, info.outWidth],
    padBefore: [info.padInfo.top, info.padInfo.left],
  };
}

/**
 * Row index (n*H + r)*W + c of every tap, offset-major ([kh*kw][N][outH][outW]); taps that
 * fall into the padding get `outside`. Also says whether any did.
 */
export function tapIndices(win: Window2D, [n, h, w]: Shape4, outside: number): { ids: Int32Array; padded: boolean } {
  const [kh, kw] = win.size;
  const [outH, outW] = win.out;
  const ids = new Int32Array(kh * kw * n * outH * outW);
  let padded = false;
  let p = 0;
  for (let a = 0; a < kh; a++) {
    for (let b = 0; b < kw; b++) {
      for (let batch = 0; batch < n; batch++) {
        for (let i = 0; i < outH; i++) {
          const r = i * win.strides[0] + a * win.dilations[0] - win.padBefore[0];
          for (let j = 0; j < outW; j++) {
            const c = j * win.strides[1] + b * win.dilations[1] - win.padBefore[1];
            const inside = r >= 0 && r < h && c >= 0 && c < w;
            padded ||= !inside;
            ids[p++] = inside ? (batch * h + r) * w + c : outside;
          }
        }
      }
    }
  }
  return { ids, padded };
}

/**
 * The kh*kw strided views of x (zero-padded) that a window slides over, stacked in
 * row-major kernel order: [kh*kw, N, outH, outW, C].
 */
export function extractWindows(x: tf.Tensor4D, win: Window2D): tf.Tensor5D {
  const [n, h, w, c] = x.shape;
  const pixels = n * h * w;
  const { ids, padded } = tapIndices(win, x.shape, pixels);
  let rows: tf.Tensor2D = tf.reshape(x, [pixels, c]);
  if (padded) rows = tf.concat([rows, tf.zeros([1, c])], 0);
  const taps = tf.gather(rows, tf.tensor1d(ids, 'int32'));
  return tf.reshape(taps, [win.size[0] * win.size[1], n, win.out[0], win.out[1], c]);
}

/**
 * Adjoint of `extractWindows`: adds taps[k] ([kh*kw, N, outH, outW, C]) at the positions
 * the k-th view was read from, and returns a tensor of `inShape`. Contributions that fall
 * into the padding are dropped.
 */
export function scatterWindows(taps: tf.Tensor, win: Window2D, inShape: Shape4): tf.Tensor4D {
  const [n, h, w, c] = inShape;
  const { ids } = tapIndices(win, inShape, -1);
  const rows = tf.reshape(taps, [ids.length, c]);
  return tf.reshape(tf.unsortedSegmentSum(rows, tf.tensor1d(ids, 'int32'), n * h * w), inShape);
}

/**
 * Zero insertion ("dilation") of the spatial axes: y[:, i*sh, j*sw, :] = x[:, i, j, :] and
 * zeros elsewhere; y is [N, (H-1)*sh+1, (W-1)*sw+1, C].
 */
export function zeroInsert(x: tf.Tensor4D, strides: Pair): tf.Tensor4D {
  const [sh, sw] = strides;
  if (sh === 1 && sw === 1) return x;
  // Pad a size-1 axis after each row/column and fold it in: only pad/reshape/slice, no scatter.
  const [n, h, w, c] = x.shape;
  const spread = tf.pad(tf.reshape(x, [n, h, 1, w, 1, c]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
  return tf.slice(tf.reshape(spread, [n, h * sh, w * sw, c]), [0, 0, 0, 0], [n, (h - 1) * sh + 1, (w - 1) * sw + 1, c]) as tf.Tensor4D;
}
