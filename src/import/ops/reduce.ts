import * as tf from '@tensorflow/tfjs-core';
import { registerOp, type NodeInfo } from '../registry.js';
import { DeviceValue, HostValue, type Value } from '../values.js';
import { hostToTensor, intsOf } from '../host.js';

/**
 * Reductions (ReduceMean, ReduceSum, ...) and ArgMax/ArgMin. A value held in NHWC is reduced
 * in NHWC with its axes mapped (a hand-written global average pool costs no transpose); the
 * result stays NHWC with keepdims=1 and is brought to ONNX order otherwise. Host values
 * (e.g. ReduceProd of a shape) are reduced on the host.
 */

/** Storage axis of each ONNX axis for an NHWC-held rank-4 value. */
const NHWC_AXIS = [0, 3, 1, 2];

/** ONNX axes, normalized to [0, rank) and checked. */
function normalizeAxes(node: NodeInfo, axes: number[], rank: number): number[] {
  const out = axes.map((a) => (a < 0 ? a + rank : a));
  const bad = out.findIndex((a) => a < 0 || a >= rank);
  if (bad >= 0) node.fail(`axis ${axes[bad]} is out of range for a rank-${rank} input`);
  if (new Set(out).size !== out.length) node.fail(`axes [${axes}] repeat an axis`);
  return out.sort((a, b) => a - b);
}

/**
 * Reduce a device value over ONNX `axes` with `f`, which receives the stored tensor and the
 * storage axes and must return a result with the reduced axes kept (size 1).
 */
function reduceDevice(x: DeviceValue, axes: number[], keepdims: boolean, f: (t: tf.Tensor, axes: number[]) => tf.Tensor): DeviceValue {
  const nhwc = x.layout === 'nhwc';
  const y = nhwc ? f(x.nhwc(), axes.map((a) => NHWC_AXIS[a])) : f(x.onnx(), axes);
  if (keepdims) return new DeviceValue(y, x.layout);
  // The kept ONNX axes in storage order; when that order is ascending a reshape drops the rest.
  const storageOrder = nhwc ? [0, 2, 3, 1] : x.shape.map((_, i) => i);
  const kept = storageOrder.filter((a) => !axes.includes(a));
  const squeezed = tf.reshape(y, kept.map((a) => x.shape[a]));
  const ascending = [...kept].sort((a, b) => a - b);
  const perm = ascending.map((a) => kept.indexOf(a));
  return new DeviceValue(perm.every((p, i) => p === i) ? squeezed : tf.transpose(squeezed, perm));
}

/** Reduce a host value: `f` combines the elements of each reduced group. */
function reduceHost(x: HostValue, axes: number[], keepdims: boolean, f: (xs: number[]) => number): HostValue {
  const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const groups = Array.from({ length: keptShape.reduce((a, b) => a * b, 1) }, () => [] as number[]);
  const idx = new Array<number>(x.rank).fill(0);
  for (const v of x.data) {
    let o = 0;
    for (let i = 0; i < x.rank; i++) o = o * keptShape[i] + (axes.includes(i) ? 0 : idx[i]);
    groups[o].push(v);
    for (let i = x.rank - 1; i >= 0; i--) {
      if (++idx[i] < x.shape[i]) break;
      idx[i] = 0;
    }
  }
  const shape = keepdims ? keptShape : x.shape.filter((_, i) => !axes.includes(i));
  const int = x.dtype === 'int64' || x.dtype === 'int32';
  return new HostValue(x.dtype, shape, groups.map((g) => (int ? Math.trunc(f(g)) : f(g))));
}

interface Reducer {
  host: (xs: number[]) => number;
  /** Reduce `t` over `axes`, keeping them as size-1 dims. */
  device: (t: tf.Tensor, axes: number[]) => tf.Tensor;
  /** Whether integer tensors are reduced exactly (otherwise only float32 is accepted). */
  integer: boolean;
}

/**
 * Product over `axes` (kept as size 1) by pairwise multiplication in log2(n) steps: tfjs's
 * Prod gradient goes through Cumprod, which has no gradient itself (no double backprop).
 */
function prodKeep(t: tf.Tensor, axes: number[]): tf.Tensor {
  const others = t.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const rest = others.reduce((n, i) => n * t.shape[i], 1);
  let y = tf.reshape(tf.transpose(t, [...others, ...axes]), [rest, -1]);
  while (y.shape[1]! > 1) {
    if (y.shape[1]! % 2) y = tf.pad(y, [[0, 0], [0, 1]], 1);
    const half = y.shape[1]! / 2;
    y = tf.mul(tf.slice(y, [0, 0], [rest, half]), tf.slice(y, [0, half], [rest, half]));
  }
  return tf.reshape(y, t.shape.map((d, i) => (axes.includes(i) ? 1 : d)));
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const sumSq = (xs: number[]) => sum(xs.map((v) => v * v));

const REDUCERS: Record<string, Reducer> = {
  ReduceSum: { host: sum, device: (t, a) => tf.sum(t, a, true), integer: true },
  ReduceMean: { host: (xs) => sum(xs) / xs.length, device: (t, a) => tf.mean(t, a, true), integer: false },
  ReduceMax: { host: (xs) => Math.max(...xs), device: (t, a) => tf.max(t, a, true), integer: true },
  ReduceMin: { host: (xs) => Math.min(...xs), device: (t, a) => tf.min(t, a, true), integer: true },
  ReduceProd: { host: (xs) => xs.reduce((a, b) => a * b, 1), device: prodKeep, integer: true },
  ReduceL1: { host: (xs) => sum(xs.map(Math.abs)), device: (t, a) => tf.sum(tf.abs(t), a, true), integer: true },
  ReduceL2: { host: (xs) => Math.sqrt(sumSq(xs)), device: (t, a) => tf.sqrt(tf.sum(tf.square(t), a, true)), integer: false },
  ReduceSumSquare: { host: sumSq, device: (t, a) => tf.sum(tf.square(t), a, true), integer: true },
  ReduceLogSum: { host: (xs) => Math.log(sum(xs)), device: (t, a) => tf.log(tf.sum(t, a, true)), integer: false },
  ReduceLogSumExp: {
    host: (xs) => {
      const m = Math.max(...xs);
      return m + Math.log(sum(xs.map((v) => Math.exp(v - m))));
    },
    device: (t, a) => tf.logSumExp(t, a, true),
    integer: false,
  },
};

/**
 * Register one reduce op. Before `axesInputSince` the axes are an attribute; from then on they
 * are the optional second input and `noop_with_empty_axes` says what empty axes mean.
 */
function reduceOp(opType: string, axesInputSince: number): void {
  const r = REDUCERS[opType];
  const make = (axesFromInput: boolean) => (node: NodeInfo) => {
    const keepdims = node.attrs.int('keepdims', 1) !== 0;
    const attrAxes = axesFromInput ? undefined : node.attrs.ints('axes');
    const noop = axesFromInput && node.attrs.int('noop_with_empty_axes', 0) !== 0;
    return (inputs: (Value | undefined)[]) => {
      const x = inputs[0]!;
      const given = axesFromInput ? (inputs[1] ? intsOf(inputs[1]) : []) : (attrAxes ?? []);
      // Empty axes reduce everything, unless noop_with_empty_axes: then nothing is reduced.
      const axes = given.length ? normalizeAxes(node, given, x.rank) : noop ? [] : x.shape.map((_, i) => i);
      if (x.kind === 'host') return [reduceHost(x, axes, keepdims, r.host)];
      if (!r.integer && x.dtype !== 'float32') node.fail(`${x.dtype} input is not supported (only float32)`);
      // Reducing over no axis still applies the elementwise part (|x| for L1, x² for SumSquare).
      const reduce = (t: tf.Tensor, a: number[]) => (a.length ? r.device(t, a) : tf.squeeze(r.device(tf.expandDims(t, 0), [0]), [0]));
      return [reduceDevice(x, axes, keepdims, reduce)];
    };
  };
  registerOp({ opType, since: 1, convert: make(false) });
  registerOp({ opType, since: axesInputSince, convert: make(true) });
}

reduceOp('ReduceSum', 13);
for (const op of Object.keys(REDUCERS).filter((o) => o !== 'ReduceSum')) reduceOp(op, 18);

/** ArgMax/ArgMin: int64 indices, held as int32 on the device. */
function argOp(opType: 'ArgMax' | 'ArgMin'): void {
  const arg = opType === 'ArgMax' ? tf.argMax : tf.argMin;
  registerOp({
    opType,
    since: 1,
    convert(node) {
      const axisAttr = node.attrs.int('axis', 0);
      const keepdims = node.attrs.int('keepdims', 1) !== 0;
      const last = node.attrs.int('select_last_index', 0) !== 0;
      return (inputs) => {
        const xv = inputs[0]!;
        const x = xv.kind === 'host' ? new DeviceValue(hostToTensor(xv)) : xv;
        const [axis] = normalizeAxes(node, [axisAttr], x.rank);
        const y = reduceDevice(x, [axis], keepdims, (t, [a]) => {
          const keptShape = t.shape.map((d, i) => (i === a ? 1 : d));
          if (!last) return tf.reshape(arg(t, a), keptShape);
          // The last extreme element is the first one of the reversed axis.
          return tf.reshape(tf.sub(tf.scalar(t.shape[a] - 1, 'int32'), arg(tf.reverse(t, a), a)), keptShape);
        });
        return [y];
      };
    },
  });
}

argOp('ArgMax');
argOp('ArgMin');
