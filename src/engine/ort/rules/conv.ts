/**
 * Gradients of Conv, ConvTranspose, the pools, Gemm and MatMul (any number of spatial dims).
 *
 * Conv: the input gradient is a ConvTranspose of dY with the same weights, or for ungrouped
 * stride-1 convolutions of 16+ channels a Conv of dY with the weights flipped and transposed
 * (onnxruntime runs it up to 3× faster than its ConvTranspose). The weight gradient is im2col
 * (a Gather of every window, then a batched MatMul with dY); for 1–3 input channels one Gemm
 * over stacked shifted slices; for grouped convolutions a grouped Conv of the input with dY as
 * the kernel, batch and channel axes swapped (stride and dilation swap roles), cropped to the
 * kernel size. MaxPool's input gradient scatters dY through the Indices output its lowering adds; AveragePool's is a
 * ConvTranspose with a ones kernel of dY divided by each window's element count.
 *
 * Where onnxruntime has NCHWc kernels (ctx.nchwcBlock > 0, see ./nchwc.ts), a 2-D ungrouped Conv
 * whose channel counts are multiples of the block is lowered to the NCHWc Conv, its flipped-kernel
 * input gradient too, and its weight gradient's im2col gathers from the reordered input.
 */
import { newNode } from '../../../onnx/schema.js';
import { blockedConv, fillsBlocks, nchwcConvApplies, toBlocks } from './nchwc.js';
import { registerRule, type BackwardContext, type LowerContext, type RuleContext, type TangentContext } from './registry.js';

interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  /** Explicit pads [begin..., end...] after auto_pad. */
  pads: number[];
}

/** The node's window attributes with auto_pad resolved against the static input size. */
function windowOf(ctx: RuleContext, spatial: number[], kernel: number[]): Window {
  const a = ctx.attrs;
  const d = spatial.length;
  const strides = a.ints('strides', Array(d).fill(1));
  const dilations = a.ints('dilations', Array(d).fill(1));
  const autoPad = a.string('auto_pad', 'NOTSET');
  let pads = a.ints('pads', Array(2 * d).fill(0));
  if (autoPad === 'VALID') pads = Array(2 * d).fill(0);
  else if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    pads = Array(2 * d).fill(0);
    spatial.forEach((size, i) => {
      const out = Math.ceil(size / strides[i]);
      const total = Math.max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + d] = total - pads[i];
    });
  } else if (autoPad !== 'NOTSET') ctx.fail(`auto_pad '${autoPad}' has no gradient rule`);
  return { kernel, strides, dilations, pads };
}

/**
 * ConvTranspose attributes that map dY (spatial `outSize`) back onto an input of spatial
 * `inSize`: the end pads/output_padding absorb what the forward window left over.
 */
function transposeAttrs(w: Window, inSize: number[], outSize: number[], group: number) {
  const d = inSize.length;
  const pads = w.pads.slice();
  const outputPadding = Array(d).fill(0);
  inSize.forEach((size, i) => {
    const full = w.strides[i] * (outSize[i] - 1) + (w.kernel[i] - 1) * w.dilations[i] + 1;
    const t = full - w.pads[i] - size; // what must be cropped at the end
    if (t >= 0) pads[i + d] = t;
    else {
      pads[i + d] = 0;
      outputPadding[i] = -t;
    }
  });
  return { strides: w.strides, dilations: w.dilations, pads, group, output_padding: outputPadding, kernel_shape: w.kernel };
}

/**
 * Flat offsets into the padded input's spatial positions of every (output position, kernel
 * position) pair, both row-major: the im2col index map of one window geometry.
 */
function patchOffsets(padded: number[], out: number[], w: Window): number[] {
  const d = padded.length;
  const strideOf = padded.map((_, i) => padded.slice(i + 1).reduce((a, b) => a * b, 1));
  const positions = (dims: number[]) => {
    const all: number[][] = [[]];
    for (const size of dims) all.splice(0, all.length, ...all.flatMap((p) => Array.from({ length: size }, (_, j) => [...p, j])));
    return all;
  };
  const kernelAt = positions(w.kernel);
  const offsets: number[] = [];
  for (const o of positions(out)) {
    for (const k of kernelAt) {
      let flat = 0;
      for (let i = 0; i < d; i++) flat += (o[i] * w.strides[i] + k[i] * w.dilations[i]) * strideOf[i];
      offsets.push(flat);
    }
  }
  return offsets;
}

/**
 * ∂L/∂W of an ungrouped convolution by im2col: x goes channels-last, one Gather collects each
 * output position's window ([N, P, K·C], channels contiguous), and a batched MatMul with dy
 * ([N, M, P]) summed over the batch gives W in [M, ...k, C] order. onnxruntime runs this
 * 2–3× faster than the grouped-Conv form once there are a few input channels.
 */
function convWeightGradientIm2col(ctx: RuleContext, x: string, dy: string, weightShape: number[], w: Window): string {
  const e = ctx.e;
  const [n, c] = e.shape(x);
  const ys = e.shape(dy);
  const m = ys[1];
  const d = ys.length - 2;
  const { src, padded } = paddedInput(ctx, x, w);
  const area = padded.reduce((a, b) => a * b, 1);
  const outArea = ys.slice(2).reduce((a, b) => a * b, 1);
  const k = weightShape.slice(2);
  const kArea = k.reduce((a, b) => a * b, 1);
  const channelsLast = e.reshape(e.transpose(src, [0, ...Array.from({ length: d }, (_, i) => i + 2), 1]), [n, area, c]);
  const patches = e.one('Gather', [channelsLast, e.constI(patchOffsets(padded, ys.slice(2), w), [outArea, kArea])], [n, outArea, kArea, c], { axis: 1 });
  const perSample = e.one('MatMul', [e.reshape(dy, [n, m, outArea]), e.reshape(patches, [n, outArea, kArea * c])], [n, m, kArea * c]);
  return kernelChannelsFirst(ctx, e.reduceSum(perSample, [0], false), m, k, c);
}

/**
 * convWeightGradientIm2col for 2-D convolutions on x in onnxruntime's NCHWc channel blocks of B
 * (`blocked`: ReorderInput of x, memory [N, C/B, H, W, B] — 4–5× faster than the Transpose to
 * channels-last, and shared with the forward Conv where that is lowered to the NCHWc kernel):
 * padded in blocks, the Gather collects each window per block ([N, C/B, P, K·B]) and one
 * MatMul broadcast over the blocks contracts it with dy.
 */
function convWeightGradientBlocked(ctx: RuleContext, blocked: string, dy: string, weightShape: number[], w: Window): string {
  const e = ctx.e;
  const block = ctx.nchwcBlock;
  const [n, c, ...spatial] = e.shape(blocked);
  const ys = e.shape(dy);
  const m = ys[1];
  const blocks = c / block;
  const padded = spatial.map((s0, i) => s0 + w.pads[i] + w.pads[i + 2]);
  const inBlocks = e.reshape(blocked, [n, blocks, ...spatial, block]);
  const src = w.pads.some((p) => p !== 0)
    ? e.one('Pad', [inBlocks, e.constI([0, 0, w.pads[0], w.pads[1], 0, 0, 0, w.pads[2], w.pads[3], 0])], [n, blocks, ...padded, block], { mode: 'constant' })
    : inBlocks;
  const area = padded[0] * padded[1];
  const outArea = ys[2] * ys[3];
  const kArea = weightShape[2] * weightShape[3];
  const windows = e.one('Gather', [e.reshape(src, [n, blocks, area, block]), e.constI(patchOffsets(padded, ys.slice(2), w), [outArea, kArea])], [n, blocks, outArea, kArea, block], { axis: 2 });
  const perSample = e.one('MatMul', [e.reshape(dy, [n, 1, m, outArea]), e.reshape(windows, [n, blocks, outArea, kArea * block])], [n, blocks, m, kArea * block]);
  const summed = e.reshape(e.reduceSum(perSample, [0], false), [blocks, m, kArea, block]);
  return e.reshape(e.transpose(summed, [1, 0, 3, 2]), weightShape);
}

/** x zero-padded by the window's pads (x itself when there are none) and its padded spatial size. */
function paddedInput(ctx: RuleContext, x: string, w: Window): { src: string; padded: number[] } {
  const e = ctx.e;
  const [n, c, ...spatial] = e.shape(x);
  const d = spatial.length;
  const padded = spatial.map((s, i) => s + w.pads[i] + w.pads[i + d]);
  const src = w.pads.some((p) => p !== 0)
    ? e.one('Pad', [x, e.constI([0, 0, ...w.pads.slice(0, d), 0, 0, ...w.pads.slice(d)])], [n, c, ...padded], { mode: 'constant' })
    : x;
  return { src, padded };
}

/** A weight gradient laid out [M, ...k, C] (kernel offsets major, channels minor) as ONNX's [M, C, ...k]. */
function kernelChannelsFirst(ctx: RuleContext, g: string, m: number, k: number[], c: number): string {
  const d = k.length;
  return ctx.e.transpose(ctx.e.reshape(g, [m, ...k, c]), [0, d + 1, ...Array.from({ length: d }, (_, i) => i + 1)]);
}

/**
 * ∂L/∂W of an ungrouped convolution with few input channels (the image-facing layer): one
 * strided Slice of the padded input per kernel offset, stacked on the channel axis
 * ([N, K·C, ...out]), then a single Gemm against dy with the batch folded into the
 * contraction. For 1–3 channels onnxruntime runs this ~2× faster than the im2col Gather or
 * the grouped-Conv form; with more channels the stacked copy costs more than it saves.
 */
function convWeightGradientShifted(ctx: RuleContext, x: string, dy: string, weightShape: number[], w: Window): string {
  const e = ctx.e;
  const [n, c] = e.shape(x);
  const ys = e.shape(dy);
  const m = ys[1];
  const d = ys.length - 2;
  const out = ys.slice(2);
  const { src } = paddedInput(ctx, x, w);
  const k = weightShape.slice(2);
  const axes = Array.from({ length: d }, (_, i) => i + 2);
  const offsets: number[][] = [[]];
  for (const size of k) offsets.splice(0, offsets.length, ...offsets.flatMap((o) => Array.from({ length: size }, (_, j) => [...o, j])));
  const shifted = offsets.map((o) => {
    const starts = o.map((j, i) => j * w.dilations[i]);
    const ends = starts.map((s0, i) => s0 + (out[i] - 1) * w.strides[i] + 1);
    return e.one('Slice', [src, e.constI(starts), e.constI(ends), e.constI(axes), e.constI(w.strides)], [n, c, ...out]);
  });
  const kc = offsets.length * c;
  const stacked = e.one('Concat', shifted, [n, kc, ...out], { axis: 1 });
  const outArea = out.reduce((a, b) => a * b, 1);
  const patches = e.reshape(e.transpose(stacked, [1, 0, ...axes]), [kc, n * outArea]);
  const grad = e.reshape(e.transpose(dy, [1, 0, ...axes]), [m, n * outArea]);
  return kernelChannelsFirst(ctx, e.one('Gemm', [grad, patches], [m, kc], { transB: 1 }), m, k, c);
}

/** Input channels (per group) from which the im2col weight gradient beats the shifted-slices one. */
const IM2COL_MIN_CHANNELS = 4;

/**
 * ∂L/∂W of a convolution with input `x` [N, C, ...], output gradient `dy` [N, M, ...] and
 * weight shape [M, C/group, ...k]: im2col (in NCHWc blocks where the kernels exist and the
 * channels fill them; `blocked` is x already reordered) or shifted slices for ungrouped
 * convolutions, otherwise a grouped Conv of x (batch and channels swapped, grouped
 * channel-major) with dy as its kernel.
 */
function convWeightGradient(ctx: RuleContext, x: string, dy: string, weightShape: number[], w: Window, group: number, blocked?: string): string {
  if (group === 1) {
    const xs = ctx.e.shape(x);
    if (blocked || fillsBlocks(ctx, xs)) {
      return convWeightGradientBlocked(ctx, blocked ?? toBlocks(ctx, x), dy, weightShape, w);
    }
    return xs[1] >= IM2COL_MIN_CHANNELS
      ? convWeightGradientIm2col(ctx, x, dy, weightShape, w)
      : convWeightGradientShifted(ctx, x, dy, weightShape, w);
  }
  const e = ctx.e;
  const xs = e.shape(x);
  const ys = e.shape(dy);
  const [n, c] = xs;
  const spatial = xs.slice(2);
  const m = ys[1];
  const cg = c / group;
  const rank = xs.length;
  const rest = Array.from({ length: rank - 2 }, (_, i) => i + 2);
  // A[c', g·N + n] = x[n, g·cg + c']
  const grouped = e.reshape(x, [n, group, cg, ...spatial]);
  const a = e.reshape(e.transpose(grouped, [2, 1, 0, ...rest.map((r) => r + 1)]), [cg, group * n, ...spatial]);
  const b = e.transpose(dy, [1, 0, ...rest]); // [M, N, ...out]
  const raw = spatial.map((size, i) => Math.floor((size + w.pads[i] + w.pads[i + spatial.length] - ((ys[i + 2] - 1) * w.strides[i] + 1)) / w.dilations[i]) + 1);
  const r = e.one('Conv', [a, b], [cg, m, ...raw], { group, strides: w.dilations, dilations: w.strides, pads: w.pads, kernel_shape: ys.slice(2) });
  const k = weightShape.slice(2);
  const cropped = raw.every((s, i) => s === k[i])
    ? r
    : e.one('Slice', [r, e.constI(k.map(() => 0)), e.constI(k), e.constI(rest)], [cg, m, ...k]);
  return e.transpose(cropped, [1, 0, ...rest]);
}

/**
 * Input channels from which the flipped-kernel input gradient beats ConvTranspose (measured on
 * onnxruntime CPU: 2.4× faster at 16 channels, 3.5× slower at 6 with a 5×5 kernel).
 */
const FLIPPED_MIN_CHANNELS = 16;

/**
 * ∂L/∂x of an ungrouped stride-1 Conv as a Conv of dY with W flipped in space and its channel
 * axes swapped, padded by dilation·(k − 1) − pad on each side; undefined where a pad exceeds
 * that (the ConvTranspose form then applies).
 */
function convInputGradientFlipped(ctx: RuleContext, dy: string, weight: string, xs: number[], win: Window, group: number): string | undefined {
  const d = xs.length - 2;
  if (group !== 1 || xs[1] < FLIPPED_MIN_CHANNELS || win.strides.some((s) => s !== 1)) return undefined;
  const pads = win.pads.map((p, i) => win.dilations[i % d] * (win.kernel[i % d] - 1) - p);
  if (pads.some((p) => p < 0)) return undefined;
  const e = ctx.e;
  const ws = e.shape(weight);
  const axes = Array.from({ length: d }, (_, i) => i + 2);
  const flipped = e.one('Slice', [weight, e.constI(axes.map(() => -1)), e.constI(axes.map(() => Number.MIN_SAFE_INTEGER)), e.constI(axes), e.constI(axes.map(() => -1))], ws);
  const swapped = e.transpose(flipped, [1, 0, ...axes]);
  const attrs = { strides: win.strides, dilations: win.dilations, pads, kernel_shape: win.kernel };
  if (nchwcConvApplies(ctx, e.shape(dy), e.shape(swapped), group)) return blockedConv(ctx, toBlocks(ctx, dy), swapped, undefined, xs, attrs);
  return e.one('Conv', [dy, swapped], xs, attrs);
}

/**
 * Conv and ConvTranspose are adjoint to each other: the input gradient of one is the other op
 * with the same weights, and both weight gradients are convWeightGradient with the conv's
 * (input, output gradient) = (x, dY) for Conv and (dY, x) for ConvTranspose.
 */
function convFamilyBackward(ctx: BackwardContext, transposed: boolean): (string | undefined)[] {
  const e = ctx.e;
  const [x, weight, bias] = ctx.node.input;
  const dy = ctx.dy[0]!;
  const xs = e.shape(x);
  const ws = e.shape(weight);
  const ys = e.shape(dy);
  const group = ctx.attrs.int('group', 1);
  if (transposed && (ctx.attrs.has('output_shape') || ctx.attrs.string('auto_pad', 'NOTSET') !== 'NOTSET')) ctx.fail('output_shape / auto_pad have no gradient rule; give explicit pads');
  const win = windowOf(ctx, xs.slice(2), ctx.attrs.ints('kernel_shape', ws.slice(2)));
  const grads: (string | undefined)[] = [undefined, undefined, undefined];
  if (ctx.needs[0]) {
    grads[0] = transposed
      ? e.one('Conv', [dy, weight], xs, { group, strides: win.strides, dilations: win.dilations, pads: win.pads, kernel_shape: win.kernel })
      : convInputGradientFlipped(ctx, dy, weight, xs, win, group) ?? e.one('ConvTranspose', [dy, weight], xs, transposeAttrs(win, xs.slice(2), ys.slice(2), group));
  }
  if (ctx.needs[1]) grads[1] = transposed ? convWeightGradient(ctx, dy, x, ws, win, group) : convWeightGradient(ctx, x, dy, ws, win, group, ctx.saved?.blocked);
  if (bias && ctx.needs[2]) grads[2] = e.reduceSum(dy, ys.map((_, i) => i).filter((i) => i !== 1), false);
  return grads;
}

/**
 * Tangent of an op bilinear in (x, W) plus a bias broadcast over the output (Conv,
 * ConvTranspose, Gemm): op(tx, W) + op(x, tW) without the bias, plus the bias tangent
 * (`biasTerm` shapes it to the output).
 */
function affineBilinearTangent(ctx: TangentContext, biasTerm: (tb: string, outShape: number[]) => string): (string | undefined)[] {
  const e = ctx.e;
  const [x, w] = ctx.node.input;
  const [tx, tw, tb] = ctx.t;
  const ys = e.shape(ctx.node.output[0]);
  const terms: string[] = [];
  if (tx) terms.push(ctx.replay([tx, w])[0]);
  if (tw) terms.push(ctx.replay([x, tw])[0]);
  if (tb) terms.push(biasTerm(tb, ys));
  return [e.sum(terms)];
}

/** A per-channel [M] bias tangent broadcast over an [N, M, ...] output. */
function channelBias(ctx: TangentContext, tb: string, ys: number[]): string {
  return ctx.e.expand(ctx.e.reshape(tb, [1, ys[1], ...ys.slice(2).map(() => 1)]), ys);
}

/**
 * A 2-D ungrouped Conv whose channels fill the NCHWc blocks runs as the NCHWc kernel (input
 * reordered, weights reordered in the graph, output back to NCHW); the reordered input is kept
 * for the weight gradient's im2col.
 */
function lowerToBlocks(ctx: LowerContext): boolean {
  const [x, weight, bias] = ctx.node.input;
  const xs = ctx.shape(x);
  const ws = ctx.shape(weight);
  const group = ctx.attrs.int('group', 1);
  if (!nchwcConvApplies(ctx, xs, ws, group)) return false;
  const win = windowOf(ctx, xs.slice(2), ctx.attrs.ints('kernel_shape', ws.slice(2)));
  const blocked = toBlocks(ctx, x);
  const y = ctx.node.output[0];
  blockedConv(ctx, blocked, weight, bias || undefined, ctx.shape(y), { strides: win.strides, dilations: win.dilations, pads: win.pads, kernel_shape: win.kernel }, y);
  ctx.saveForBackward({ blocked });
  return true;
}

registerRule({ opType: 'Conv', since: 11, diffInputs: 'all', lower: lowerToBlocks, backward: (ctx) => convFamilyBackward(ctx, false), tangent: (ctx) => affineBilinearTangent(ctx, (tb, ys) => channelBias(ctx, tb, ys)) });
registerRule({ opType: 'ConvTranspose', since: 11, diffInputs: 'all', backward: (ctx) => convFamilyBackward(ctx, true), tangent: (ctx) => affineBilinearTangent(ctx, (tb, ys) => channelBias(ctx, tb, ys)) });

registerRule({
  opType: 'MaxPool',
  since: 12,
  diffInputs: [0],
  lower(ctx) {
    if (ctx.node.output[1]) return false;
    if (ctx.attrs.int('storage_order', 0) !== 0) ctx.fail('storage_order = 1 has no gradient rule');
    const [y] = ctx.node.output;
    const indices = ctx.e.fresh('maxpool_indices');
    const n = ctx.node;
    ctx.e.nodes.push(newNode({ name: n.name, op_type: n.op_type, domain: n.domain, input: [...n.input], output: [y, indices], attribute: [...n.attribute] }));
    ctx.e.shapes.set(indices, ctx.shape(y));
    return true;
  },
  backward(ctx) {
    const e = ctx.e;
    const [x] = ctx.node.input;
    const indices = ctx.node.output[1];
    if (!indices) ctx.fail('MaxPool without an Indices output reached the backward pass');
    const xs = e.shape(x);
    const total = xs.reduce((a, b) => a * b, 1);
    const m = e.shape(indices).reduce((a, b) => a * b, 1);
    // onnxruntime's indices are offsets into the whole NCHW tensor.
    const flatIdx = e.reshape(indices, [m]);
    const flat = e.one('ScatterElements', [e.zeros([total]), flatIdx, e.reshape(ctx.dy[0]!, [m])], [total], { axis: 0, reduction: 'add' });
    return [e.reshape(flat, xs)];
  },
  // The tangent at each window's maximum, read through the same Indices.
  tangent(ctx) {
    const e = ctx.e;
    const indices = ctx.node.output[1];
    if (!indices) ctx.fail('MaxPool without an Indices output reached the tangent pass');
    const total = e.shape(ctx.node.input[0]).reduce((a, b) => a * b, 1);
    return [e.one('Gather', [e.reshape(ctx.t[0]!, [total]), indices], e.shape(ctx.node.output[0]), { axis: 0 }), undefined];
  },
});

/** Per-dimension element counts of each pooling window (the AveragePool divisor). */
function windowCounts(size: number, out: number, k: number, s: number, pb: number, pe: number, includePad: boolean): number[] {
  return Array.from({ length: out }, (_, o) => {
    const start = o * s - pb;
    const end = Math.min(start + k, size + pe);
    const lo = includePad ? start : Math.max(start, 0);
    const hi = includePad ? end : Math.min(end, size);
    return Math.max(hi - lo, 1);
  });
}

registerRule({
  opType: 'AveragePool',
  since: 11,
  diffInputs: [0],
  backward(ctx) {
    const e = ctx.e;
    const [x] = ctx.node.input;
    const dy = ctx.dy[0]!;
    const xs = e.shape(x);
    const ys = e.shape(dy);
    const kernel = ctx.attrs.ints('kernel_shape', []);
    const win = windowOf(ctx, xs.slice(2), kernel);
    if (win.dilations.some((d) => d !== 1)) ctx.fail('dilations have no gradient rule');
    const includePad = ctx.attrs.int('count_include_pad', 0) === 1;
    const d = kernel.length;
    const counts = xs.slice(2).map((size, i) => windowCounts(size, ys[i + 2], kernel[i], win.strides[i], win.pads[i], win.pads[i + d], includePad));
    // 1 / (product of per-dimension counts) at every output position.
    const outSpatial = ys.slice(2);
    const inv = new Float32Array(outSpatial.reduce((a, b) => a * b, 1));
    inv.forEach((_, flat) => {
      let rem = flat;
      let prod = 1;
      for (let i = d - 1; i >= 0; i--) {
        prod *= counts[i][rem % outSpatial[i]];
        rem = Math.floor(rem / outSpatial[i]);
      }
      inv[flat] = 1 / prod;
    });
    const c = xs[1];
    const scaled = e.mul(dy, e.constF(inv, [1, 1, ...outSpatial]));
    const ones = e.constF(new Float32Array(c * kernel.reduce((a, b) => a * b, 1)).fill(1), [c, 1, ...kernel]);
    return [e.one('ConvTranspose', [scaled, ones], xs, transposeAttrs(win, xs.slice(2), outSpatial, c))];
  },
  tangent: 'linear',
});

registerRule({
  opType: 'GlobalAveragePool',
  since: 1,
  diffInputs: [0],
  backward(ctx) {
    const e = ctx.e;
    const xs = e.shape(ctx.node.input[0]);
    const area = xs.slice(2).reduce((a, b) => a * b, 1);
    return [e.expand(e.mul(ctx.dy[0]!, e.scalar(1 / area)), xs)];
  },
  tangent: 'linear',
});

/** 1 where x equals its reduction's extreme `yKeep` (kept dims), else 0. */
function extremeMask(ctx: RuleContext, x: string, yKeep: string): string {
  const xs = ctx.e.shape(x);
  return ctx.e.one('Cast', [ctx.e.one('Equal', [x, yKeep], xs)], xs, { to: 1 });
}

/** The gradient goes to every element equal to its window's maximum. */
function maskedByExtreme(ctx: BackwardContext, x: string, yKeep: string, dyKeep: string): string {
  return ctx.e.mul(extremeMask(ctx, x, yKeep), ctx.e.expand(dyKeep, ctx.e.shape(x)));
}

/** Tangent of a max/min over `axes`: the tangents at the extreme elements, summed (the adjoint of maskedByExtreme). */
function tangentAtExtreme(ctx: TangentContext, x: string, yKeep: string, axes: number[], keepdims: boolean): string {
  return ctx.e.reduceSum(ctx.e.mul(extremeMask(ctx, x, yKeep), ctx.t[0]!), axes, keepdims);
}

registerRule({
  opType: 'GlobalMaxPool',
  since: 1,
  diffInputs: [0],
  backward: (ctx) => [maskedByExtreme(ctx, ctx.node.input[0], ctx.node.output[0], ctx.dy[0]!)],
  tangent(ctx) {
    const x = ctx.node.input[0];
    return [tangentAtExtreme(ctx, x, ctx.node.output[0], ctx.e.shape(x).slice(2).map((_, i) => i + 2), true)];
  },
});

registerRule({
  opType: 'Gemm',
  since: 11,
  diffInputs: 'all',
  backward(ctx) {
    const e = ctx.e;
    const [a, b, c] = ctx.node.input;
    const dy = ctx.dy[0]!;
    const alpha = ctx.attrs.float('alpha', 1);
    const beta = ctx.attrs.float('beta', 1);
    const tA = ctx.attrs.int('transA', 0);
    const tB = ctx.attrs.int('transB', 0);
    const grads: (string | undefined)[] = [undefined, undefined, undefined];
    if (ctx.needs[0]) {
      grads[0] = tA === 0
        ? e.one('Gemm', [dy, b], e.shape(a), { alpha: { float: alpha }, transB: 1 - tB })
        : e.one('Gemm', [b, dy], e.shape(a), { alpha: { float: alpha }, transA: tB, transB: 1 });
    }
    if (ctx.needs[1]) {
      grads[1] = tB === 0
        ? e.one('Gemm', [a, dy], e.shape(b), { alpha: { float: alpha }, transA: 1 - tA })
        : e.one('Gemm', [dy, a], e.shape(b), { alpha: { float: alpha }, transA: 1, transB: tA });
    }
    if (c && ctx.needs[2]) {
      const scaled = beta === 1 ? dy : e.mul(dy, e.scalar(beta));
      grads[2] = e.unbroadcast(scaled, e.shape(c));
    }
    return grads;
  },
  tangent: (ctx) => affineBilinearTangent(ctx, (tc, ys) => ctx.e.expand(ctx.e.mul(tc, ctx.e.scalar(ctx.attrs.float('beta', 1))), ys)),
});

/** The last two axes swapped. */
function swapLast(ctx: RuleContext, t: string): string {
  const r = ctx.e.shape(t).length;
  return ctx.e.transpose(t, [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2]);
}

registerRule({
  opType: 'MatMul',
  since: 13,
  diffInputs: 'all',
  tangent: 'multilinear',
  backward(ctx) {
    const e = ctx.e;
    const [a, b] = ctx.node.input;
    const as = e.shape(a);
    const bs = e.shape(b);
    // Treat vectors as matrices ([K] → [1, K] on the left, [K, 1] on the right).
    const a2 = as.length === 1 ? e.reshape(a, [1, as[0]]) : a;
    const b2 = bs.length === 1 ? e.reshape(b, [bs[0], 1]) : b;
    const a2s = e.shape(a2);
    const b2s = e.shape(b2);
    const batch = (s: number[]) => s.slice(0, -2);
    const outBatch = batch(a2s).length >= batch(b2s).length ? batch(a2s) : batch(b2s);
    const dyShape = [...outBatch.map((d, i) => Math.max(d, batch(a2s)[i - (outBatch.length - batch(a2s).length)] ?? 1, batch(b2s)[i - (outBatch.length - batch(b2s).length)] ?? 1)), a2s[a2s.length - 2], b2s[b2s.length - 1]];
    const dy = e.reshape(ctx.dy[0]!, dyShape);
    const grads: (string | undefined)[] = [undefined, undefined];
    const matmulShape = (x: number[], y: number[]) => [...dyShape.slice(0, -2), x[x.length - 2], y[y.length - 1]];
    if (ctx.needs[0]) {
      const bt = swapLast(ctx, b2);
      const g = e.one('MatMul', [dy, bt], matmulShape(dyShape, e.shape(bt)));
      grads[0] = e.reshape(e.unbroadcast(g, a2s), as);
    }
    if (ctx.needs[1]) {
      const at = swapLast(ctx, a2);
      const g = e.one('MatMul', [at, dy], matmulShape(e.shape(at), dyShape));
      grads[1] = e.reshape(e.unbroadcast(g, b2s), bs);
    }
    return grads;
  },
});

export { maskedByExtreme, tangentAtExtreme };
