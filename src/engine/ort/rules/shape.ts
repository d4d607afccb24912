/**
 * Gradients of the data-movement ops. Reshape-like ops reshape the gradient back; Transpose
 * inverts its permutation; Concat and Split swap roles; Expand and Tile sum over the copies;
 * constant Pad and unit-step Slice crop or pad. Every other selection (strided or negative
 * Slice, Gather, reflect/edge Pad, nearest Resize) scatters the gradient through the op's
 * index map (see indexMapOf in ../autodiff.ts).
 */
import { registerRule, registerRules, type BackwardContext } from './registry.js';

/** dX = the upstream gradient with the input's shape. */
registerRules(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity'], 1, () => ({
  diffInputs: [0],
  tangent: 'linear',
  backward: (ctx) => [ctx.e.reshape(ctx.dy[0]!, ctx.shape(ctx.node.input[0]))],
}));

/** Dropout in inference is the identity (training mode is lowered to a fed mask). */
registerRule({
  opType: 'Dropout',
  since: 12,
  diffInputs: [0],
  tangent: 'linear',
  lower(ctx) {
    if (!ctx.training) return false;
    const [x, ratioInput] = ctx.node.input;
    const ratio = ratioInput ? ctx.requireValue(1, 'ratio')[0] : 0.5;
    const mask = ctx.dropoutMask(ctx.shape(x), ratio);
    ctx.e.op('Mul', [x, mask], {}, [ctx.node.output[0]], [ctx.shape(x)]);
    if (ctx.node.output[1]) ctx.fail('the mask output in training mode is not supported');
    return true;
  },
  backward: (ctx) => [ctx.e.reshape(ctx.dy[0]!, ctx.shape(ctx.node.input[0]))],
});

registerRule({
  opType: 'Transpose',
  since: 1,
  diffInputs: [0],
  tangent: 'linear',
  backward(ctx) {
    const rank = ctx.shape(ctx.node.input[0]).length;
    const perm = ctx.attrs.ints('perm', Array.from({ length: rank }, (_, i) => rank - 1 - i));
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [ctx.e.transpose(ctx.dy[0]!, inverse)];
  },
});

function axisOf(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

registerRule({
  opType: 'Concat',
  since: 13,
  diffInputs: 'all',
  tangent: 'linear',
  backward(ctx) {
    const e = ctx.e;
    const ys = ctx.shape(ctx.node.output[0]);
    const axis = axisOf(ctx.attrs.int('axis', 0), ys.length);
    const sizes = ctx.node.input.map((x) => ctx.shape(x)[axis]);
    const shapes = ctx.node.input.map((x) => ctx.shape(x));
    const parts = e.op('Split', [ctx.dy[0]!, e.constI(sizes)], { axis }, sizes.length, shapes);
    return parts.map((p, i) => (ctx.needs[i] ? p : undefined));
  },
});

registerRule({
  opType: 'Split',
  since: 13,
  diffInputs: [0],
  tangent: 'linear',
  backward(ctx) {
    const e = ctx.e;
    const xs = ctx.shape(ctx.node.input[0]);
    const axis = axisOf(ctx.attrs.int('axis', 0), xs.length);
    const parts = ctx.node.output.map((o, i) => ctx.dy[i] ?? e.zeros(ctx.shape(o)));
    return [e.one('Concat', parts, xs, { axis })];
  },
});

/** Expand: sum the gradient over the broadcast copies. */
registerRule({
  opType: 'Expand',
  since: 8,
  diffInputs: [0],
  tangent: 'linear',
  backward: (ctx) => [ctx.e.unbroadcast(ctx.dy[0]!, ctx.shape(ctx.node.input[0]))],
});

/** Tile: view the gradient as [r0, d0, r1, d1, ...] and sum over the repeat axes. */
registerRule({
  opType: 'Tile',
  since: 6,
  diffInputs: [0],
  tangent: 'linear',
  backward(ctx) {
    const e = ctx.e;
    const xs = ctx.shape(ctx.node.input[0]);
    const repeats = ctx.requireValue(1, 'repeats');
    const split = xs.flatMap((d, i) => [repeats[i], d]);
    const summed = e.reduceSum(e.reshape(ctx.dy[0]!, split), xs.map((_, i) => 2 * i), false);
    return [e.reshape(summed, xs)];
  },
});

/** Scatter the gradient through an index map: dX[map[j]] += dY[j] (entries of −1 are constants). */
async function scatterThroughMap(ctx: BackwardContext, dataInput = 0): Promise<string> {
  const e = ctx.e;
  const map = await ctx.indexMap(dataInput);
  const xs = ctx.shape(ctx.node.input[dataInput]);
  const total = xs.reduce((a, b) => a * b, 1);
  const flatDy = e.reshape(ctx.dy[0]!, [map.length]);
  const valid: number[] = [];
  const targets: number[] = [];
  map.forEach((m, j) => {
    if (m >= 0) {
      valid.push(j);
      targets.push(m);
    }
  });
  const updates = valid.length === map.length ? flatDy : e.one('Gather', [flatDy, e.constI(valid)], [valid.length], { axis: 0 });
  const unique = new Set(targets).size === targets.length;
  const flat = e.one('ScatterElements', [e.zeros([total]), e.constI(targets), updates], [total], { axis: 0, ...(unique ? {} : { reduction: 'add' }) });
  return e.reshape(flat, xs);
}

registerRule({
  opType: 'Slice',
  since: 13,
  diffInputs: [0],
  tangent: 'linear',
  async backward(ctx) {
    const xs = ctx.shape(ctx.node.input[0]);
    const ys = ctx.shape(ctx.node.output[0]);
    const steps = ctx.node.input[4] ? ctx.requireValue(4, 'steps') : undefined;
    if (!steps || steps.every((s) => s === 1)) {
      // Unit steps: pad the gradient back to the input's extent.
      const starts = ctx.requireValue(1, 'starts');
      const axes = ctx.node.input[3] ? ctx.requireValue(3, 'axes').map((a) => (a < 0 ? a + xs.length : a)) : starts.map((_, i) => i);
      const begin = xs.map(() => 0);
      axes.forEach((a, i) => {
        let s = starts[i] < 0 ? starts[i] + xs[a] : starts[i];
        s = Math.min(Math.max(s, 0), xs[a]);
        begin[a] = s;
      });
      const end = xs.map((d, a) => d - begin[a] - ys[a]);
      if (begin.every((b) => b === 0) && end.every((b) => b === 0)) return [ctx.dy[0]];
      return [ctx.e.one('Pad', [ctx.dy[0]!, ctx.e.constI([...begin, ...end])], xs, { mode: 'constant' })];
    }
    return [await scatterThroughMap(ctx)];
  },
});

registerRule({
  opType: 'Pad',
  since: 13,
  diffInputs: [0],
  async backward(ctx) {
    const mode = ctx.attrs.string('mode', 'constant');
    const xs = ctx.shape(ctx.node.input[0]);
    const pads = ctx.requireValue(1, 'pads');
    const axes = ctx.node.input[3] ? ctx.requireValue(3, 'axes').map((a) => (a < 0 ? a + xs.length : a)) : xs.map((_, i) => i);
    if (mode === 'constant' && pads.every((p) => p >= 0)) {
      const starts = axes.map((_, i) => pads[i]);
      const ends = axes.map((a, i) => pads[i] + xs[a]);
      return [ctx.e.one('Slice', [ctx.dy[0]!, ctx.e.constI(starts), ctx.e.constI(ends), ctx.e.constI(axes)], xs)];
    }
    return [await scatterThroughMap(ctx)];
  },
  // Linear in the data; constant padding pads the tangent with zeros whatever the pad value.
  tangent: (ctx) => ctx.replay(ctx.node.input.map((name, i) => (i === 0 ? ctx.t[0]! : i === 2 ? '' : name))),
});

registerRule({
  opType: 'Gather',
  since: 13,
  diffInputs: [0],
  tangent: 'linear',
  backward: async (ctx) => [await scatterThroughMap(ctx)],
});

registerRule({
  opType: 'Resize',
  since: 13,
  diffInputs: [0],
  tangent: 'linear',
  async backward(ctx) {
    if (ctx.attrs.string('mode', 'nearest') !== 'nearest') ctx.fail(`mode '${ctx.attrs.string('mode')}' has no gradient rule (only nearest)`);
    return [await scatterThroughMap(ctx)];
  },
});

/**
 * ScatterElements appears in generated backward graphs (max-pool and index-map gradients):
 * linear in its data and updates, so only its tangent is needed.
 */
registerRule({
  opType: 'ScatterElements',
  since: 16,
  diffInputs: [0, 2],
  tangent: 'linear',
});
