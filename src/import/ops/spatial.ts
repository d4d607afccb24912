import * as tf from '@tensorflow/tfjs-core';
import type { NodeInfo } from '../registry.js';
import { DeviceValue, type Value } from '../values.js';

/** A sliding-window op's input seen as NHWC; `oneD` when it was a rank-3 [N, C, L] value. */
export interface SpatialInput {
  t: tf.Tensor4D;
  oneD: boolean;
}

/**
 * The NHWC view of a window op's input: rank 4 as is, rank 3 ([N, C, L], a 1-D window) lifted
 * to [N, 1, L, C]. With `rank`, an input of another rank fails naming it.
 */
export function spatialInput(v: Value | undefined, node: NodeInfo, rank?: number): SpatialInput {
  if (!v || v.kind !== 'device') return node.fail('input must be a tensor');
  if (rank !== undefined && v.rank !== rank) node.fail(`a ${rank - 2}-D window needs a rank-${rank} input, got rank ${v.rank}`);
  if (v.rank === 4) return { t: v.nhwc(), oneD: false };
  if (v.rank === 3) return { t: tf.expandDims(tf.transpose(v.onnx(), [0, 2, 1]), 1), oneD: true };
  return node.fail(`rank-${v.rank} input is not supported (only 1-D and 2-D windows)`);
}

/** The inverse of `spatialInput` for the result: NHWC-held, or back to [N, C, L] when 1-D. */
export function spatialOutput(y: tf.Tensor4D, oneD: boolean): DeviceValue {
  if (!oneD) return new DeviceValue(y, 'nhwc');
  return new DeviceValue(tf.transpose(tf.squeeze(y, [1]), [0, 2, 1])); // [N, 1, L, C] → [N, C, L]
}

/** Geometry of a 2-D sliding-window op (Conv, pooling), read and validated from ONNX attributes. */
export interface Window2D {
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  autoPad: 'NOTSET' | 'SAME_UPPER' | 'SAME_LOWER' | 'VALID';
  /** Explicit pads [top, left, bottom, right] (ONNX order), used when autoPad is NOTSET. */
  pads: [number, number, number, number];
}

/**
 * Read the window attributes at import. A 1-D window (Conv1d) is lifted to 2-D with a height
 * of 1. Without kernel_shape the kernel is [0, 0] until `withKernel` fills it from the weight.
 */
export function readWindow(node: NodeInfo): Window2D {
  const a = node.attrs;
  const given = a.ints('kernel_shape');
  let strides = a.ints('strides');
  let dilations = a.ints('dilations');
  let pads = a.ints('pads');
  const rank = given?.length ?? strides?.length ?? dilations?.length ?? (pads ? pads.length / 2 : 2);
  let k = given ?? new Array<number>(rank).fill(0);
  strides ??= new Array<number>(rank).fill(1);
  dilations ??= new Array<number>(rank).fill(1);
  pads ??= new Array<number>(2 * rank).fill(0);
  if (rank === 1) {
    [k, strides, dilations, pads] = [[1, k[0]], [1, strides[0]], [1, dilations[0]], [0, pads[0], 0, pads[1]]];
  }
  const autoPad = a.string('auto_pad', 'NOTSET');
  if (!['NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID'].includes(autoPad)) node.fail(`auto_pad '${autoPad}' is not supported`);
  if (k.length !== 2) node.fail(`${k.length}-D windows are not supported (only 1-D and 2-D)`);
  if (strides.length !== 2 || dilations.length !== 2 || pads.length !== 4) node.fail('strides/dilations/pads do not match the kernel rank');
  if ([...strides, ...dilations].some((v) => v < 1) || pads.some((v) => v < 0)) node.fail('strides and dilations must be >= 1 and pads >= 0');
  return {
    kernel: [k[0], k[1]],
    strides: [strides[0], strides[1]],
    dilations: [dilations[0], dilations[1]],
    autoPad: autoPad as Window2D['autoPad'],
    pads: [pads[0], pads[1], pads[2], pads[3]],
  };
}

/** The window with its kernel size taken from the weight when the attribute left it out. */
export function withKernel(win: Window2D, kh: number, kw: number): Window2D {
  return win.kernel[0] === 0 ? { ...win, kernel: [kh, kw] } : win;
}

/** Explicit [[top, bottom], [left, right]] padding for an input of spatial size [h, w]. */
export function explicitPads(win: Window2D, h: number, w: number): [[number, number], [number, number]] {
  if (win.autoPad === 'NOTSET') return [[win.pads[0], win.pads[2]], [win.pads[1], win.pads[3]]];
  if (win.autoPad === 'VALID') return [[0, 0], [0, 0]];
  const same = (size: number, i: 0 | 1): [number, number] => {
    const out = Math.ceil(size / win.strides[i]);
    const eff = (win.kernel[i] - 1) * win.dilations[i] + 1;
    const total = Math.max(0, (out - 1) * win.strides[i] + eff - size);
    const small = Math.floor(total / 2);
    return win.autoPad === 'SAME_UPPER' ? [small, total - small] : [total - small, small];
  };
  return [same(h, 0), same(w, 1)];
}

/** tfjs's explicit padding argument for NHWC ops. */
export function tfPadding(p: [[number, number], [number, number]]): [[number, number], [number, number], [number, number], [number, number]] {
  return [[0, 0], p[0], p[1], [0, 0]];
}

/** Pad (positive) or crop (negative) H and W of an NHWC tensor. */
export function padOrCrop(x: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
  const grow = [Math.max(0, top), Math.max(0, bottom), Math.max(0, left), Math.max(0, right)];
  if (grow.some((v) => v > 0)) x = tf.pad(x, [[0, 0], [grow[0], grow[1]], [grow[2], grow[3]], [0, 0]]);
  const cut = [Math.max(0, -top), Math.max(0, -bottom), Math.max(0, -left), Math.max(0, -right)];
  if (cut.some((v) => v > 0)) {
    const [n, h, w, c] = x.shape;
    x = x.slice([0, cut[0], cut[2], 0], [n, h - cut[0] - cut[1], w - cut[2] - cut[3], c]);
  }
  return x;
}
