/**
 * Sliding-window plumbing for NHWC tensors, written with differentiable tfjs ops only.
 *
 * `extractWindows` returns, for each kernel offset (a, b) in row-major order, the strided
 * view `x_padded[:, a*dh + i*sh, b*dw + j*sw, :]` (i < outH, j < outW). `scatterWindows`
 * is its adjoint: it adds such views back into an input-shaped tensor. The two are each
 * other's gradient, so everything built from them supports double backprop.
 *
 * Strides are handled by a polyphase split (spaceToBatchND / batchToSpaceND): offset a
 * reads phase `a*dh mod sh` at grid shift `floor(a*dh / sh)`, so each view is a plain,
 * unstrided slice of one phase, and scattering costs O(outH*outW) per offset rather than
 * O(H*W).
 */
import * as tf from '@tensorflow/tfjs-core';
import { padOrCrop, type Pair, type Shape4 } from './util.js';

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

interface AxisPlan {
  /** Rows (or columns) per phase after the polyphase split. */
  grid: number;
  /** Padding (>0) or cropping (<0) after x so that its length is grid * stride. */
  padAfter: number;
}

function planAxis(win: Window2D, axis: 0 | 1, inSize: number): AxisPlan {
  const s = win.strides[axis];
  const extent = (win.out[axis] - 1) * s + (win.size[axis] - 1) * win.dilations[axis] + 1;
  const grid = Math.ceil(extent / s);
  return { grid, padAfter: grid * s - inSize - win.padBefore[axis] };
}

/** Phase index and grid shift of kernel offset `k` along one axis. */
function phaseOf(win: Window2D, axis: 0 | 1, k: number): [phase: number, shift: number] {
  const o = k * win.dilations[axis];
  const s = win.strides[axis];
  return [o % s, Math.floor(o / s)];
}

function offsets(win: Window2D): Pair[] {
  const result: Pair[] = [];
  for (let a = 0; a < win.size[0]; a++) for (let b = 0; b < win.size[1]; b++) result.push([a, b]);
  return result;
}

/**
 * The kh*kw strided views of x (padded with `padValue`) that a window slides over, each
 * [N, outH, outW, C], in row-major kernel order.
 */
export function extractWindows(x: tf.Tensor4D, win: Window2D, padValue = 0): tf.Tensor4D[] {
  const [n, h, w, c] = x.shape;
  const [sh, sw] = win.strides;
  const ph = planAxis(win, 0, h);
  const pw = planAxis(win, 1, w);
  const padded = padOrCrop(x, [[win.padBefore[0], ph.padAfter], [win.padBefore[1], pw.padAfter]], padValue);
  const phases = sh * sw === 1 ? padded : tf.spaceToBatchND(padded, [sh, sw], [[0, 0], [0, 0]]);
  return offsets(win).map(([a, b]) => {
    const [rh, qh] = phaseOf(win, 0, a);
    const [rw, qw] = phaseOf(win, 1, b);
    const size: Shape4 = [n, win.out[0], win.out[1], c];
    return tf.slice(phases as tf.Tensor4D, [(rh * sw + rw) * n, qh, qw, 0], size);
  });
}

/**
 * Adjoint of `extractWindows`: adds `parts[k]` (each [N, outH, outW, C], row-major kernel
 * order) at the positions the k-th view was read from, and returns a tensor of `inShape`.
 * Contributions that fall into the padding are dropped.
 */
export function scatterWindows(parts: tf.Tensor4D[], win: Window2D, inShape: Shape4): tf.Tensor4D {
  const [n, h, w, c] = inShape;
  const [sh, sw] = win.strides;
  const ph = planAxis(win, 0, h);
  const pw = planAxis(win, 1, w);
  const blocks: tf.Tensor4D[] = [];
  for (let rh = 0; rh < sh; rh++) {
    for (let rw = 0; rw < sw; rw++) {
      const terms: tf.Tensor4D[] = [];
      offsets(win).forEach(([a, b], k) => {
        const [pa, qh] = phaseOf(win, 0, a);
        const [pb, qw] = phaseOf(win, 1, b);
        if (pa !== rh || pb !== rw) return;
        terms.push(padOrCrop(parts[k], [[qh, ph.grid - qh - win.out[0]], [qw, pw.grid - qw - win.out[1]]]));
      });
      blocks.push(sumAll(terms, [n, ph.grid, pw.grid, c]));
    }
  }
  const padded = blocks.length === 1 ? blocks[0] : tf.batchToSpaceND(tf.concat(blocks, 0), [sh, sw], [[0, 0], [0, 0]]);
  return padOrCrop(padded, [[-win.padBefore[0], -ph.padAfter], [-win.padBefore[1], -pw.padAfter]]);
}

function sumAll(terms: tf.Tensor4D[], shape: Shape4): tf.Tensor4D {
  if (terms.length === 0) return tf.zeros(shape);
  return terms.length === 1 ? terms[0] : tf.addN(terms);
}

/**
 * Zero insertion ("dilation") of the spatial axes: y[:, i*sh, j*sw, :] = x[:, i, j, :] and
 * zeros elsewhere; y is [N, H*sh, W*sw, C] (callers crop the trailing zeros if needed).
 */
export function zeroInsert(x: tf.Tensor4D, strides: Pair): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  if (strides[0] === 1 && strides[1] === 1) return x;
  const win: Window2D = { size: [1, 1], strides, dilations: [1, 1], out: [h, w], padBefore: [0, 0] };
  return scatterWindows([x], win, [n, h * strides[0], w * strides[1], c]);
}
