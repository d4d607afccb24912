import * as tf from '@tensorflow/tfjs-core';
import { registerOp, type NodeInfo } from '../registry.js';
import { DeviceValue, HostValue, isHost, type Value } from '../values.js';
import { intsOf, toHost } from '../host.js';
import { axesOf, axisOf, byAxis, hostAt, hostBuild, onDevice, registerVersions } from './shape.js';

/**
 * Indexing and data-movement ops: Gather, Slice, Concat, Split, Tile, Pad. Host values are
 * indexed on the host; device values run in their storage layout with axes mapped (an NHWC
 * activation sliced, padded or concatenated along channels stays NHWC).
 */

// ---- Gather ----

registerOp({
  opType: 'Gather',
  since: 1,
  convert(node) {
    const axisAttr = node.attrs.int('axis', 0);
    return (inputs) => {
      const [x, ind] = inputs as Value[];
      const axis = axisOf(node, axisAttr, x.rank);
      const n = x.shape[axis];
      const fix = (i: number) => {
        const j = i < 0 ? i + n : i;
        if (!(j >= 0 && j < n)) node.fail(`index ${i} is out of range for axis ${axis} of size ${n}`);
        return j;
      };
      if (isHost(x) && isHost(ind)) {
        const q = ind.rank;
        const shape = [...x.shape.slice(0, axis), ...ind.shape, ...x.shape.slice(axis + 1)];
        return [hostBuild(x.dtype, shape, (idx) => hostAt(x, [...idx.slice(0, axis), fix(hostAt(ind, idx.slice(axis, axis + q))), ...idx.slice(axis + q)]))];
      }
      let indices: tf.Tensor;
      if (isHost(ind)) indices = tf.tensor(ind.data.map(fix), ind.shape, 'int32');
      else {
        const t = ind.onnx().dtype === 'int32' ? ind.onnx() : tf.cast(ind.onnx(), 'int32');
        indices = tf.where(tf.less(t, 0), tf.add(t, tf.scalar(n, 'int32')), t);
      }
      // Vector indices keep the rank, so an NHWC value can be gathered in place.
      if (ind.rank === 1) return byAxis([x], ([t], axes) => [tf.gather(t, indices, axes.of(axis))]);
      return [new DeviceValue(tf.gather(onDevice(x).onnx(), indices, axis))];
    };
  },
});

// ---- Slice ----

/** One axis of a slice: `count` elements from `start`, `step` apart. */
interface Range1 {
  start: number;
  count: number;
  step: number;
}

/** ONNX Slice semantics: negative positions count from the end, then clamp (INT64_MAX/MIN sentinels included). */
function sliceRange(dim: number, start: number, end: number, step: number): Range1 {
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = Math.min(Math.max(start, 0), dim);
    end = Math.min(Math.max(end, 0), dim);
  } else {
    start = Math.min(Math.max(start, 0), dim - 1);
    end = Math.min(Math.max(end, -1), dim - 1);
  }
  return { start, step, count: Math.max(0, Math.ceil((end - start) / step)) };
}

function hostSlice(x: HostValue, ranges: Range1[]): HostValue {
  return hostBuild(x.dtype, ranges.map((r) => r.count), (idx) => hostAt(x, ranges.map((r, a) => r.start + idx[a] * r.step)));
}

/** A contiguous slice, reversed along negative-step axes, then every |step|-th element (gather has a gradient; strided slices do not). */
function deviceSlice(t: tf.Tensor, ranges: Range1[]): tf.Tensor {
  if (ranges.every((r, a) => r.start === 0 && r.step === 1 && r.count === t.shape[a])) return t;
  if (ranges.some((r) => r.count === 0)) return tf.zeros(ranges.map((r) => r.count), t.dtype);
  const span = ranges.map((r) => (r.count - 1) * Math.abs(r.step) + 1);
  let y = tf.slice(t, ranges.map((r, a) => (r.step > 0 ? r.start : r.start - span[a] + 1)), span);
  const reversed = ranges.flatMap((r, a) => (r.step < 0 && r.count > 1 ? [a] : []));
  if (reversed.length) y = tf.reverse(y, reversed);
  ranges.forEach((r, a) => {
    if (Math.abs(r.step) > 1 && r.count > 1) y = tf.gather(y, tf.range(0, span[a], Math.abs(r.step), 'int32'), a);
  });
  return y;
}

registerVersions('Slice', [1, 10], (node, since) => {
  const attr = since < 10 ? {
    starts: node.attrs.ints('starts') ?? node.fail("attribute 'starts' is required"),
    ends: node.attrs.ints('ends') ?? node.fail("attribute 'ends' is required"),
    axes: node.attrs.ints('axes'),
  } : undefined;
  return (inputs) => {
    const x = inputs[0]!;
    const starts = attr?.starts ?? intsOf(inputs[1]!);
    const ends = attr?.ends ?? intsOf(inputs[2]!);
    const given = attr ? attr.axes : inputs[3] && intsOf(inputs[3]);
    const axes = axesOf(node, given ?? starts.map((_, i) => i), x.rank);
    const steps = !attr && inputs[4] ? intsOf(inputs[4]) : axes.map(() => 1);
    if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) {
      node.fail('starts, ends, axes and steps differ in length');
    }
    if (steps.includes(0)) node.fail('a step of 0');
    const ranges = x.shape.map((d): Range1 => ({ start: 0, count: d, step: 1 }));
    axes.forEach((a, i) => (ranges[a] = sliceRange(x.shape[a], starts[i], ends[i], steps[i])));
    if (isHost(x)) return [hostSlice(x, ranges)];
    return byAxis([x], ([t], ax) => [deviceSlice(t, ax.order(ranges))]);
  };
});

// ---- Concat, Split ----

function concat(node: NodeInfo, values: Value[], axisAttr: number): Value {
  const rank = values[0].rank;
  const axis = axisOf(node, axisAttr, rank);
  if (values.some((v) => v.rank !== rank || v.shape.some((d, i) => i !== axis && d !== values[0].shape[i]))) {
    node.fail(`cannot concatenate shapes ${values.map((v) => `[${v.shape}]`).join(', ')} along axis ${axis}`);
  }
  if (values.every(isHost)) {
    const shape = [...values[0].shape];
    shape[axis] = values.reduce((s, v) => s + v.shape[axis], 0);
    return hostBuild(values[0].dtype, shape, (idx) => {
      let i = idx[axis], k = 0;
      while (i >= values[k].shape[axis]) i -= values[k++].shape[axis];
      return hostAt(values[k], idx.map((d, a) => (a === axis ? i : d)));
    });
  }
  const parts = values.filter((v) => v.shape[axis] > 0);
  if (parts.length === 1) return parts[0];
  return byAxis(parts.length ? parts : [values[0]], (ts, axes) => [tf.concat(ts, axes.of(axis))])[0];
}

registerVersions('Concat', [1, 4], (node, since) => {
  const axis = since < 4 ? node.attrs.int('axis', 1) : (node.attrs.int('axis') ?? node.fail("attribute 'axis' is required"));
  return (inputs) => [concat(node, inputs as Value[], axis)];
});

/**
 * Split. Sizes come from the `split` attribute (1, 2–12) or input (1, 13+), or from
 * `num_outputs` (18+: ceil-sized chunks, the last one smaller), else equal parts.
 */
registerVersions('Split', [1, 2, 13, 18], (node, since) => {
  const axisAttr = node.attrs.int('axis', 0);
  const splitAttr = since < 13 ? node.attrs.ints('split') : undefined;
  const numOutputs = since >= 18 ? node.attrs.int('num_outputs') : undefined;
  const splitInput = (since === 1 || since >= 13) && !!node.inputs[1];
  const parts = node.outputs.length;
  if (numOutputs !== undefined && (numOutputs !== parts || splitInput)) node.fail(`num_outputs ${numOutputs} with ${parts} outputs${splitInput ? ' and a split input' : ''}`);
  if (since >= 18 && numOutputs === undefined && !splitInput) node.fail("either input 'split' or attribute 'num_outputs' is required");
  return (inputs) => {
    const x = inputs[0]!;
    const axis = axisOf(node, axisAttr, x.rank);
    const dim = x.shape[axis];
    let sizes = splitAttr ?? (splitInput ? intsOf(inputs[1]!) : undefined);
    if (!sizes && numOutputs !== undefined) {
      const chunk = Math.ceil(dim / parts);
      sizes = Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(chunk, dim - i * chunk)));
    }
    if (!sizes) {
      if (dim % parts !== 0) node.fail(`axis ${axis} of size ${dim} does not split into ${parts} equal parts`);
      sizes = new Array<number>(parts).fill(dim / parts);
    }
    if (sizes.length !== parts || sizes.some((s) => s < 0) || sizes.reduce((a, b) => a + b, 0) !== dim) {
      node.fail(`split [${sizes}] does not cut axis ${axis} of size ${dim} into ${parts} parts`);
    }
    if (isHost(x)) {
      let start = 0;
      return sizes.map((count) => {
        const ranges = x.shape.map((d, a): Range1 => (a === axis ? { start, count, step: 1 } : { start: 0, count: d, step: 1 }));
        start += count;
        return hostSlice(x, ranges);
      });
    }
    return byAxis([x], ([t], axes) => tf.split(t, sizes, axes.of(axis)));
  };
});

// ---- Tile ----

/** Tile: `repeats` per axis (6+); opset 1 took a scalar `tiles` count and an `axis` input. */
registerVersions('Tile', [1, 6], (node, since) => (inputs) => {
  const x = inputs[0]!;
  let reps: number[];
  if (since === 1) {
    const axis = axisOf(node, intsOf(inputs[2]!)[0], x.rank);
    reps = x.shape.map((_, a) => (a === axis ? intsOf(inputs[1]!)[0] : 1));
  } else reps = intsOf(inputs[1]!);
  if (reps.length !== x.rank || reps.some((r) => r < 0)) node.fail(`repeats [${reps}] do not fit a rank-${x.rank} input`);
  if (reps.every((r) => r === 1)) return [x];
  if (isHost(x)) return [hostBuild(x.dtype, x.shape.map((d, a) => d * reps[a]), (idx) => hostAt(x, idx.map((i, a) => i % x.shape[a])))];
  return byAxis([x], ([t], axes) => [tf.tile(t, axes.order(reps))]);
});

// ---- Pad ----

type PadMode = 'constant' | 'reflect' | 'edge' | 'wrap';

/** Source index along an axis of size n for padded position k (relative to the original start); -1 means the constant. */
function padSource(mode: PadMode, k: number, n: number): number {
  if (k >= 0 && k < n) return k;
  switch (mode) {
    case 'constant':
      return -1;
    case 'edge':
      return k < 0 ? 0 : n - 1;
    case 'wrap':
      return ((k % n) + n) % n;
    case 'reflect': {
      if (n === 1) return 0;
      const m = ((k % (2 * n - 2)) + 2 * n - 2) % (2 * n - 2);
      return m < n ? m : 2 * n - 2 - m;
    }
  }
}

/**
 * Pad a tensor by `before`/`after` per axis (negative values crop). Constant mode is a crop
 * and tf.pad; the other modes gather each padded axis through `padSource`.
 */
function devicePad(t: tf.Tensor, before: number[], after: number[], mode: PadMode, value: number): tf.Tensor {
  if (mode === 'constant') {
    const crop = t.shape.map((d, a): Range1 => ({ start: Math.max(0, -before[a]), count: d + Math.min(0, before[a]) + Math.min(0, after[a]), step: 1 }));
    const y = deviceSlice(t, crop);
    if (before.every((b) => b <= 0) && after.every((b) => b <= 0)) return y;
    return tf.pad(y, before.map((b, a) => [Math.max(0, b), Math.max(0, after[a])]), value);
  }
  return before.reduce((y, b, a) => {
    if (b === 0 && after[a] === 0) return y;
    const n = t.shape[a];
    const src = Array.from({ length: n + b + after[a] }, (_, j) => padSource(mode, j - b, n));
    return tf.gather(y, tf.tensor(src, [src.length], 'int32'), a);
  }, t);
}

/**
 * Pad. Versions: 1 `paddings` attribute; 2 `pads` attribute; 11 pads and constant_value
 * inputs; 18 optional `axes` input; 19 mode 'wrap'.
 */
registerVersions('Pad', [1, 2, 11, 18, 19], (node, since) => {
  const mode = node.attrs.string('mode', 'constant') as PadMode;
  const modes = since >= 19 ? ['constant', 'reflect', 'edge', 'wrap'] : ['constant', 'reflect', 'edge'];
  if (!modes.includes(mode)) node.fail(`mode '${mode}' is not supported`);
  const padsName = since === 1 ? 'paddings' : 'pads';
  const attrPads = since < 11 ? (node.attrs.ints(padsName) ?? node.fail(`attribute '${padsName}' is required`)) : undefined;
  const attrValue = since < 11 ? node.attrs.float('value', 0) : undefined;
  return (inputs) => {
    const x = inputs[0]!;
    const pads = attrPads ?? intsOf(inputs[1]!);
    const value = attrValue ?? (inputs[2] ? toHost(inputs[2]).data[0] : 0);
    const axes = since >= 18 && inputs[3] ? axesOf(node, intsOf(inputs[3]), x.rank) : x.shape.map((_, a) => a);
    if (pads.length !== 2 * axes.length) node.fail(`${pads.length} pads for ${axes.length} axes`);
    const before = new Array<number>(x.rank).fill(0), after = new Array<number>(x.rank).fill(0);
    axes.forEach((a, i) => ((before[a] = pads[i]), (after[a] = pads[i + axes.length])));
    const shape = x.shape.map((d, a) => d + before[a] + after[a]);
    if (shape.some((d) => d < 0)) node.fail(`pads [${pads}] crop more than the input [${x.shape}] holds`);
    if (mode !== 'constant' && x.shape.some((d, a) => d === 0 && before[a] + after[a] > 0)) node.fail(`mode '${mode}' cannot pad an empty axis`);
    if (before.every((b) => b === 0) && after.every((b) => b === 0)) return [x];
    if (isHost(x)) {
      return [hostBuild(x.dtype, shape, (idx) => {
        const src = idx.map((i, a) => padSource(mode, i - before[a], x.shape[a]));
        return src.includes(-1) ? value : hostAt(x, src);
      })];
    }
    return byAxis([x], ([t], ax) => [devicePad(t, ax.order(before), ax.order(after), mode, value)]);
  };
});
