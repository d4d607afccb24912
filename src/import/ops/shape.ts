import * as tf from '@tensorflow/tfjs-core';
import { registerOp, type Kernel, type NodeInfo } from '../registry.js';
import { DeviceValue, HostValue, isHost, type HostDType, type Value } from '../values.js';
import { hostToTensor, intsOf, toHost } from '../host.js';
import { operand, result } from '../layout.js';

/**
 * Shape ops (Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Shape, Size, Expand) and the
 * pass-through ops Identity and Dropout, plus the helpers the other data-movement files share.
 * Host values (shape arithmetic) are moved on the host; device values keep the ONNX element
 * order wherever the op depends on it, and stay NHWC where the op only addresses axes by number.
 */

/** Storage axis of each ONNX axis for an NHWC-held rank-4 value. */
export const NHWC_AXIS = [0, 3, 1, 2];

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** An axis in [-rank, rank) (or [-rank, rank] with `inclusive`), normalized to be non-negative. */
export function axisOf(node: NodeInfo, axis: number, rank: number, inclusive = false): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a > rank || (a === rank && !inclusive)) node.fail(`axis ${axis} is out of range for a rank-${rank} input`);
  return a;
}

/** Distinct axes, normalized. */
export function axesOf(node: NodeInfo, axes: number[], rank: number): number[] {
  const out = axes.map((a) => axisOf(node, a, rank));
  if (new Set(out).size !== out.length) node.fail(`axes [${axes}] repeat an axis`);
  return out;
}

/** The element of a host value at a multi-index. */
export function hostAt(v: HostValue, idx: readonly number[]): number {
  let o = 0;
  for (let i = 0; i < v.shape.length; i++) o = o * v.shape[i] + idx[i];
  return v.data[o];
}

/** A host value of `shape` whose element at each multi-index is `at(index)`. */
export function hostBuild(dtype: HostDType, shape: number[], at: (idx: readonly number[]) => number): HostValue {
  const n = numel(shape);
  const out = new Array<number>(n);
  const idx = new Array<number>(shape.length).fill(0);
  for (let k = 0; k < n; k++) {
    out[k] = at(idx);
    for (let i = shape.length - 1; i >= 0; i--) {
      if (++idx[i] < shape[i]) break;
      idx[i] = 0;
    }
  }
  return new HostValue(dtype, shape, out);
}

/** A device value (host values are uploaded). */
export function onDevice(v: Value): DeviceValue {
  return v.kind === 'device' ? v : new DeviceValue(hostToTensor(v));
}

/**
 * The tensor in ONNX element order. An NHWC value whose H·W or C is 1 has the same element
 * order in both layouts, so a reshape replaces the transpose (e.g. Flatten after a global pool).
 */
export function onnxOrder(v: DeviceValue): tf.Tensor {
  if (v.layout === 'nhwc') {
    const [, c, h, w] = v.shape;
    if (c === 1 || h * w === 1) return v.stored().reshape(v.shape);
  }
  return v.onnx();
}

/** How an op addresses the axes of the tensors it is given. */
export interface StoredAxes {
  /** Storage axis of ONNX axis `a`. */
  of(a: number): number;
  /** A per-ONNX-axis list (pads, repeats, target dims) in storage order. */
  order<T>(perAxis: readonly T[]): T[];
}

const IDENTITY_AXES: StoredAxes = { of: (a) => a, order: (xs) => [...xs] };
const NHWC_AXES: StoredAxes = {
  of: (a) => NHWC_AXIS[a],
  order: (xs) => [xs[0], xs[2], xs[3], xs[1]],
};

/**
 * Run an op that addresses axes only by number (concat, split, slice, gather, pad, tile, ...)
 * in the layout its rank-4 operands are held in: when one is NHWC, all are taken as NHWC, the
 * op's ONNX axes are mapped, and the rank-4 results stay NHWC. Otherwise it runs in ONNX order.
 */
export function byAxis(values: Value[], f: (ts: tf.Tensor[], axes: StoredAxes) => tf.Tensor[]): DeviceValue[] {
  const nhwc = values.some((v) => v.kind === 'device' && v.layout === 'nhwc') && values.every((v) => v.rank === 4);
  return f(values.map((v) => operand(v, nhwc)), nhwc ? NHWC_AXES : IDENTITY_AXES).map((t) => result(t, nhwc));
}

/** Same data, new shape (ONNX element order). */
function reshaped(x: Value, shape: number[]): Value {
  if (isHost(x)) return new HostValue(x.dtype, shape, x.data);
  if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
  return new DeviceValue(onnxOrder(x).reshape(shape));
}

/** Numpy broadcast of two shapes. */
export function broadcastShapes(node: NodeInfo, a: number[], b: number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const pa = [...Array(rank - a.length).fill(1), ...a], pb = [...Array(rank - b.length).fill(1), ...b];
  return pa.map((d, i) => {
    if (d !== pb[i] && d !== 1 && pb[i] !== 1) node.fail(`shapes [${a}] and [${b}] do not broadcast`);
    return d === 1 ? pb[i] : d;
  });
}

/** Register `convert` for each opset version in `versions`; it gets the version it serves. */
export function registerVersions(opType: string, versions: number[], convert: (node: NodeInfo, since: number) => Kernel): void {
  for (const since of versions) registerOp({ opType, since, convert: (node) => convert(node, since) });
}

// ---- Flatten, Reshape, Squeeze, Unsqueeze: new shapes over the ONNX element order ----

registerOp({
  opType: 'Flatten',
  since: 1,
  convert(node) {
    const axisAttr = node.attrs.int('axis', 1);
    return (inputs) => {
      const x = inputs[0]!;
      const axis = axisOf(node, axisAttr, x.rank, true);
      return [reshaped(x, [numel(x.shape.slice(0, axis)), numel(x.shape.slice(axis))])];
    };
  },
});

/** Reshape's target: 0 copies the input dim (unless allowzero), one -1 is inferred. */
function reshapeTarget(node: NodeInfo, inShape: number[], target: number[], allowzero: boolean): number[] {
  if (allowzero && target.includes(0) && target.includes(-1)) node.fail('allowzero with both 0 and -1 in the shape');
  const out = target.map((d, i) => {
    if (d === 0 && !allowzero) return i < inShape.length ? inShape[i] : node.fail(`shape [${target}] copies dim ${i} of a rank-${inShape.length} input`);
    if (d < -1) node.fail(`shape [${target}] has a negative dim`);
    return d;
  });
  const infer = out.indexOf(-1);
  if (infer !== out.lastIndexOf(-1)) node.fail(`shape [${target}] has more than one -1`);
  const total = numel(inShape);
  if (infer >= 0) {
    const known = numel(out.filter((_, i) => i !== infer));
    if (known === 0 || total % known !== 0) node.fail(`cannot reshape [${inShape}] to [${target}]`);
    out[infer] = total / known;
  }
  if (numel(out) !== total) node.fail(`cannot reshape [${inShape}] to [${target}]`);
  return out;
}

registerVersions('Reshape', [1, 5, 14], (node, since) => {
  if (since === 1) node.attrs.ints('consumed_inputs'); // legacy optimization hint, no semantics
  const attrShape = since === 1 ? (node.attrs.ints('shape') ?? node.fail("attribute 'shape' is required")) : undefined;
  const allowzero = since >= 14 && node.attrs.int('allowzero', 0) !== 0;
  return (inputs) => {
    const x = inputs[0]!;
    // The shape is a host value whenever it comes from shape arithmetic; intsOf reads the device only otherwise.
    const target = attrShape ?? intsOf(inputs[1]!);
    return [reshaped(x, reshapeTarget(node, x.shape, target, allowzero))];
  };
});

registerVersions('Squeeze', [1, 13], (node, since) => {
  const attrAxes = since < 13 ? node.attrs.ints('axes') : undefined;
  return (inputs) => {
    const x = inputs[0]!;
    const given = since < 13 ? attrAxes : inputs[1] && intsOf(inputs[1]);
    const axes = given ? axesOf(node, given, x.rank) : x.shape.flatMap((d, i) => (d === 1 ? [i] : []));
    const bad = axes.find((a) => x.shape[a] !== 1);
    if (bad !== undefined) node.fail(`cannot squeeze axis ${bad} of size ${x.shape[bad]}`);
    return [reshaped(x, x.shape.filter((_, i) => !axes.includes(i)))];
  };
});

registerVersions('Unsqueeze', [1, 13], (node, since) => {
  const attrAxes = since < 13 ? (node.attrs.ints('axes') ?? node.fail("attribute 'axes' is required")) : undefined;
  return (inputs) => {
    const x = inputs[0]!;
    const given = attrAxes ?? (inputs[1] ? intsOf(inputs[1]) : node.fail("input 'axes' is required"));
    const rank = x.rank + given.length;
    const axes = axesOf(node, given, rank);
    const rest = [...x.shape];
    return [reshaped(x, Array.from({ length: rank }, (_, i) => (axes.includes(i) ? 1 : rest.shift()!)))];
  };
});

// ---- Transpose ----

registerOp({
  opType: 'Transpose',
  since: 1,
  convert(node) {
    const attrPerm = node.attrs.ints('perm');
    return (inputs) => {
      const x = inputs[0]!;
      const perm = attrPerm ?? x.shape.map((_, i) => x.rank - 1 - i);
      if (perm.length !== x.rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
        node.fail(`perm [${perm}] is not a permutation of a rank-${x.rank} input`);
      }
      const shape = perm.map((p) => x.shape[p]);
      if (isHost(x)) {
        return [hostBuild(x.dtype, shape, (idx) => hostAt(x, perm.map((_, i) => idx[perm.indexOf(i)])))];
      }
      // An NHWC value is transposed straight from its storage order: one transpose, not two.
      const stored = x.layout === 'nhwc' ? perm.map((p) => NHWC_AXIS[p]) : perm;
      const identity = stored.every((p, i) => p === i);
      return [new DeviceValue(identity ? x.stored() : tf.transpose(x.stored(), stored))];
    };
  },
});

// ---- Shape, Size: known on the host for every value ----

registerVersions('Shape', [1, 15], (node, since) => {
  const start = since >= 15 ? node.attrs.int('start', 0) : 0;
  const end = since >= 15 ? node.attrs.int('end') : undefined;
  return (inputs) => {
    const shape = inputs[0]!.shape;
    const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + shape.length : i, 0), shape.length);
    return [HostValue.vector(shape.slice(clamp(start), clamp(end ?? shape.length)))];
  };
});

registerOp({
  opType: 'Size',
  since: 1,
  convert: () => (inputs) => [HostValue.scalar(numel(inputs[0]!.shape))],
});

// ---- Expand ----

registerOp({
  opType: 'Expand',
  since: 8,
  convert(node) {
    return (inputs) => {
      const x = inputs[0]!;
      const shape = broadcastShapes(node, x.shape, intsOf(inputs[1]!));
      if (shape.length === x.rank && shape.every((d, i) => d === x.shape[i])) return [x];
      const lead = shape.length - x.rank;
      if (isHost(x)) {
        return [hostBuild(x.dtype, shape, (idx) => hostAt(x, x.shape.map((d, i) => (d === 1 ? 0 : idx[lead + i]))))];
      }
      if (lead === 0) return byAxis([x], ([t], axes) => [tf.broadcastTo(t, axes.order(shape))]);
      return [new DeviceValue(tf.broadcastTo(x.onnx(), shape))];
    };
  },
});

// ---- Identity, Dropout: the value passes through in whatever layout it is held ----

registerOp({ opType: 'Identity', since: 1, convert: () => (inputs) => [inputs[0]!] });

/**
 * Dropout. In inference it is the identity, with an all-true mask. In training (the run's
 * mode decides, not the training_mode input) elements are zeroed with probability `ratio`
 * from the run's seeded stream and the rest scaled by 1 / (1 − ratio).
 * Versions: 1/6 is_test + ratio attributes; 7 mask of the data type; 10 bool mask;
 * 12 ratio and training_mode inputs, seed attribute (the run's seed stream is used instead,
 * so repeated steps draw different masks).
 */
registerVersions('Dropout', [1, 6, 7, 10, 12], (node, since) => {
  const a = node.attrs;
  if (since === 1) a.ints('consumed_inputs');
  if (since < 7) a.int('is_test');
  if (since >= 12) a.int('seed');
  const attrRatio = since < 12 ? a.float('ratio', 0.5) : undefined;
  const wantMask = node.outputs.length > 1 && node.outputs[1] !== '';
  return (inputs, ctx) => {
    const x = inputs[0]!;
    const ratio = attrRatio ?? (inputs[1] ? toHost(inputs[1]).data[0] : 0.5);
    if (!(ratio >= 0 && ratio < 1)) node.fail(`ratio ${ratio} is not in [0, 1)`);
    const maskDtype: HostDType = since >= 10 ? 'bool' : x.dtype === 'float32' ? 'float32' : 'int64';
    if (!ctx.training || ratio === 0) {
      if (!wantMask) return [x];
      if (isHost(x)) return [x, new HostValue(maskDtype, x.shape, new Array<number>(x.data.length).fill(1))];
      const stored = x.stored();
      return [x, new DeviceValue(tf.ones(stored.shape, maskDtype === 'bool' ? 'bool' : stored.dtype), x.layout)];
    }
    const d = onDevice(x);
    const t = d.stored();
    const keep = tf.greaterEqual(tf.randomUniform(t.shape, 0, 1, 'float32', ctx.nextSeed()), ratio);
    const y = tf.mul(t, tf.div(tf.cast(keep, t.dtype), 1 - ratio));
    return [new DeviceValue(y, d.layout), new DeviceValue(maskDtype === 'bool' ? keep : tf.cast(keep, t.dtype), d.layout)];
  };
});
