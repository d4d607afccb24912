import * as tf from '@tensorflow/tfjs-core';
import { registerOp, type NodeInfo } from '../registry.js';
import { DeviceValue } from '../values.js';
import { explicitPads, readWindow, spatialInput, spatialOutput, type Window2D } from './spatial.js';

/**
 * MaxPool and AveragePool (1-D as 2-D with H = 1, and 2-D) and the global pools, computed in NHWC.
 *
 * ONNX pads, ceil_mode and count_include_pad are applied explicitly rather than through tfjs's
 * padding (which always leaves padding out of an average and knows no ceil_mode): the input is
 * padded (with the lowest float for max, 0 for average) so that every window onnxruntime
 * evaluates lies inside it, the pool runs 'valid', and an average is rescaled where
 * onnxruntime's divisor is not the kernel size. The same ops serve both backends and autodiff.
 */

type PoolKind = 'max' | 'avg';

interface PoolOptions {
  node: NodeInfo;
  kind: PoolKind;
  win: Window2D;
  ceil: boolean;
  countPad: boolean;
}

/** numeric_limits<float>::lowest(): what onnxruntime's MaxPool starts from; padding never wins. */
const LOWEST = -3.4028234663852886e38;

/** One spatial axis of a window resolved for an input of length `size`, by onnxruntime's rules. */
interface Axis {
  out: number;
  head: number;
  /** Padding after the input that the last window reaches into (ceil_mode may need more than `pads`). */
  tail: number;
  /** Per output position: what onnxruntime divides the window sum by. */
  divisor: number[];
}

function resolveAxis(opts: PoolOptions, i: 0 | 1, size: number, [head, tail]: [number, number]): Axis {
  const [k, s, d] = [opts.win.kernel[i], opts.win.strides[i], opts.win.dilations[i]];
  const eff = (k - 1) * d + 1;
  const span = size + head + tail - eff;
  if (span < 0) opts.node.fail(`a window of ${eff} does not fit an input of ${size} padded by ${head} + ${tail}`);
  const { ceil, countPad } = opts;
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  // ceil_mode: a window that would start in the tail padding is dropped.
  if (ceil && (out - 1) * s >= size + head) out--;
  const divisor = Array.from({ length: out }, (_, o) => {
    const start = o * s - head;
    const end = Math.min(start + k * d, size + tail);
    if (countPad) return 1 + Math.floor((end - start - 1) / d);
    let inside = 0;
    for (let t = start; t < end; t += d) if (t >= 0 && t < size) inside++;
    return inside;
  });
  return { out, head, tail: Math.max(0, (out - 1) * s + eff - size - head), divisor };
}

/** Rows 0, s, 2s, … of a stride-1 pool result, `out` of them, along H and W. */
function subsample(y: tf.Tensor4D, [sh, sw]: [number, number], oh: number, ow: number): tf.Tensor4D {
  const [n, , , c] = y.shape;
  const used = tf.slice(y, [0, 0, 0, 0], [n, (oh - 1) * sh + 1, (ow - 1) * sw + 1, c]);
  const grid = tf.reshape(tf.pad(used, [[0, 0], [0, sh - 1], [0, sw - 1], [0, 0]]), [n, oh, sh, ow, sw, c]);
  return tf.reshape(tf.slice(grid, [0, 0, 0, 0, 0, 0], [n, oh, 1, ow, 1, c]), [n, oh, ow, c]);
}

/** Pool an NHWC tensor whose padding is already in place, every window inside it. */
function validPool(x: tf.Tensor4D, kind: PoolKind, win: Window2D, oh: number, ow: number): tf.Tensor4D {
  if (win.dilations[0] === 1 && win.dilations[1] === 1) {
    return kind === 'max' ? tf.maxPool(x, win.kernel, win.strides, 'valid') : tf.avgPool(x, win.kernel, win.strides, 'valid');
  }
  // tfjs pools dilated windows only with stride 1: pool densely, then keep every stride-th output.
  return subsample(tf.pool(x, win.kernel, kind, 'valid', win.dilations, 1) as tf.Tensor4D, win.strides, oh, ow);
}

function pool2d(x: tf.Tensor4D, opts: PoolOptions): tf.Tensor4D {
  const { kind, win } = opts;
  const [ph, pw] = explicitPads(win, x.shape[1], x.shape[2]);
  const rows = resolveAxis(opts, 0, x.shape[1], ph);
  const cols = resolveAxis(opts, 1, x.shape[2], pw);
  const padding: [number, number][] = [[0, 0], [rows.head, rows.tail], [cols.head, cols.tail], [0, 0]];
  const padded = padding.some(([a, b]) => a > 0 || b > 0) ? tf.pad(x, padding, kind === 'max' ? LOWEST : 0) : x;
  const y = validPool(padded, kind, win, rows.out, cols.out);
  if (kind === 'max') return y;
  // tfjs averaged over the kernel size; rescale where onnxruntime divides by something else.
  const size = win.kernel[0] * win.kernel[1];
  const scale = rows.divisor.flatMap((r) => cols.divisor.map((c) => (r * c === 0 ? 0 : size / (r * c))));
  if (scale.every((v) => v === 1)) return y;
  return tf.mul(y, tf.tensor4d(scale, [1, rows.out, cols.out, 1]));
}

function registerPool(opType: string, kind: PoolKind): void {
  registerOp({
    opType,
    since: 1,
    convert(node) {
      const a = node.attrs;
      const win = readWindow(node);
      const spatialRank = a.ints('kernel_shape')?.length ?? node.fail('kernel_shape is required');
      const ceil = a.int('ceil_mode', 0) !== 0;
      const countPad = kind === 'avg' && a.int('count_include_pad', 0) !== 0;
      if (kind === 'max') {
        if (a.int('storage_order', 0) !== 0) node.fail('storage_order = 1 is not supported');
        if (node.outputs[1]) node.fail('the Indices output is not supported');
      }
      // onnxruntime sizes SAME padding by the undilated kernel, the ONNX spec by the dilated one.
      if (win.autoPad.startsWith('SAME') && win.dilations.some((d) => d > 1)) {
        node.fail(`auto_pad ${win.autoPad} with dilations > 1 is not supported`);
      }
      const opts: PoolOptions = { node, kind, win, ceil, countPad };
      return (inputs) => {
        const { t: x, oneD } = spatialInput(inputs[0], node, spatialRank + 2);
        return [spatialOutput(pool2d(x, opts), oneD)];
      };
    },
  });
}

registerPool('MaxPool', 'max');
registerPool('AveragePool', 'avg');

function registerGlobalPool(opType: string, reduce: (t: tf.Tensor, axes: number[], keepDims: boolean) => tf.Tensor): void {
  registerOp({
    opType,
    since: 1,
    convert: (node) => (inputs) => {
      const x = inputs[0];
      if (!x || x.kind !== 'device') return node.fail('input must be a tensor');
      if (x.rank === 4) return [new DeviceValue(reduce(x.nhwc(), [1, 2], true), 'nhwc')];
      if (x.rank < 3) node.fail(`rank-${x.rank} input is not supported`);
      const t = x.onnx();
      return [new DeviceValue(reduce(t, Array.from({ length: t.rank - 2 }, (_, i) => i + 2), true))];
    },
  });
}

registerGlobalPool('GlobalAveragePool', tf.mean);
registerGlobalPool('GlobalMaxPool', tf.max);
