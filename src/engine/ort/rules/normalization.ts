/**
 * Normalizations, reductions and softmax. BatchNormalization in inference keeps its node and
 * has a direct rule; in training mode it is lowered to mean/variance primitives (biased batch
 * variance, running = momentum·running + (1 − momentum)·batch, as the tfjs engine does),
 * reports its new running statistics and is differentiated as one node (trainingBackward).
 * LayerNormalization and InstanceNormalization are always lowered; their primitives carry their
 * own rules.
 */
import { maskedByExtreme, tangentAtExtreme } from './conv.js';
import { registerRule, registerRules, type BackwardContext, type LowerContext, type RuleContext } from './registry.js';

/** y = (x − mean)/sqrt(var + ε) over `axes`, emitted as primitives; returns y, mean, var, 1/std. */
function standardize(ctx: LowerContext, x: string, axes: number[], epsilon: number) {
  const e = ctx.e;
  const mean = e.reduceMean(x, axes, true);
  const centered = e.sub(x, mean);
  const variance = e.reduceMean(e.mul(centered, centered), axes, true);
  const invStd = e.unary('Reciprocal', e.unary('Sqrt', e.add(variance, e.scalar(epsilon))));
  return { y: e.mul(centered, invStd), mean, variance, invStd };
}

/** [C] parameters viewed as [1, C, 1, ...] against a rank-r input. */
function perChannel(ctx: LowerContext, t: string, rank: number): string {
  const c = ctx.shape(t)[0];
  return ctx.e.reshape(t, [1, c, ...Array(rank - 2).fill(1)]);
}

function finish(ctx: LowerContext, value: string, output: string): void {
  ctx.e.op('Identity', [value], {}, [output], [ctx.shape(value)]);
}

registerRule({
  opType: 'BatchNormalization',
  since: 9,
  diffInputs: [0, 1, 2],
  lower(ctx) {
    const training = ctx.attrs.int('training_mode', 0) === 1 || ctx.training;
    if (!training) return false;
    const e = ctx.e;
    const [x, scale, bias, runMean, runVar] = ctx.node.input;
    const epsilon = ctx.attrs.float('epsilon', 1e-5);
    const momentum = ctx.attrs.float('momentum', 0.9);
    const rank = ctx.shape(x).length;
    const axes = Array.from({ length: rank }, (_, i) => i).filter((i) => i !== 1);
    const s = standardize(ctx, x, axes, epsilon);
    finish(ctx, e.add(e.mul(s.y, perChannel(ctx, scale, rank)), perChannel(ctx, bias, rank)), ctx.node.output[0]);
    const c = ctx.shape(scale)[0];
    const update = (running: string, batch: string) =>
      e.add(e.mul(running, e.scalar(momentum)), e.mul(e.reshape(batch, [c]), e.scalar(1 - momentum)));
    const newMean = update(runMean, s.mean);
    const newVar = update(runVar, s.variance);
    ctx.statistic(runMean, newMean);
    ctx.statistic(runVar, newVar);
    ctx.saveForBackward({ normalized: s.y, invStd: s.invStd });
    if (ctx.node.output[1]) finish(ctx, newMean, ctx.node.output[1]);
    if (ctx.node.output[2]) finish(ctx, newVar, ctx.node.output[2]);
    return true;
  },
  backward(ctx) {
    if (ctx.saved) return trainingBackward(ctx);
    const e = ctx.e;
    const [x, scale, , mean, variance] = ctx.node.input;
    const dy = ctx.dy[0]!;
    const xs = e.shape(x);
    const rank = xs.length;
    const c = xs[1];
    const view = (t: string) => e.reshape(t, [1, c, ...Array(rank - 2).fill(1)]);
    const invStd = e.unary('Reciprocal', e.unary('Sqrt', e.add(variance, e.scalar(ctx.attrs.float('epsilon', 1e-5)))));
    const axes = Array.from({ length: rank }, (_, i) => i).filter((i) => i !== 1);
    return [
      ctx.needs[0] ? e.mul(dy, view(e.mul(scale, invStd))) : undefined,
      ctx.needs[1] ? e.reduceSum(e.mul(dy, e.mul(e.sub(x, view(mean)), view(invStd))), axes, false) : undefined,
      ctx.needs[2] ? e.reduceSum(dy, axes, false) : undefined,
    ];
  },
  // Inference: y = scale·(x − mean)/σ + B, so t = scale·tx/σ + tscale·(x − mean)/σ + tB.
  tangent(ctx) {
    const e = ctx.e;
    const [x, scale, , mean, variance] = ctx.node.input;
    const [tx, ts, tb] = ctx.t;
    const xs = e.shape(x);
    const c = xs[1];
    const view = (t: string) => e.reshape(t, [1, c, ...Array(xs.length - 2).fill(1)]);
    const invStd = e.unary('Reciprocal', e.unary('Sqrt', e.add(variance, e.scalar(ctx.attrs.float('epsilon', 1e-5)))));
    const terms: string[] = [];
    if (tx) terms.push(e.mul(tx, view(e.mul(scale, invStd))));
    if (ts) terms.push(e.mul(view(ts), e.mul(e.sub(x, view(mean)), view(invStd))));
    if (tb) terms.push(e.expand(view(tb), xs));
    return [e.sum(terms)];
  },
});

/**
 * Training mode, fused: with x̂ = (x − μ_B)·σ_B⁻¹ over the m = N·(spatial) values of a channel and
 * y = γ·x̂ + β, dβ = Σ dy, dγ = Σ dy·x̂ and dx = γσ⁻¹·(dy − dβ/m − x̂·dγ/m), emitted as
 * dx = a·dy + b·x̂ + c with per-channel a = γσ⁻¹, b = −a·dγ/m, c = −a·dβ/m: four full-size
 * passes and two reductions, where differentiating the lowered primitives one by one takes
 * about fifteen.
 */
function trainingBackward(ctx: BackwardContext): (string | undefined)[] {
  const e = ctx.e;
  const [x, scale] = ctx.node.input;
  const { normalized, invStd } = ctx.saved!;
  const dy = ctx.dy[0]!;
  const xs = e.shape(x);
  const c = xs[1];
  const m = xs.reduce((a, b) => a * b, 1) / c;
  const view = (t: string) => e.reshape(t, [1, c, ...Array(xs.length - 2).fill(1)]);
  const axes = Array.from({ length: xs.length }, (_, i) => i).filter((i) => i !== 1);
  const dBeta = ctx.needs[0] || ctx.needs[2] ? e.reduceSum(dy, axes, false) : undefined;
  const dGamma = ctx.needs[0] || ctx.needs[1] ? e.reduceSum(e.mul(dy, normalized), axes, false) : undefined;
  let dx: string | undefined;
  if (ctx.needs[0]) {
    const a = e.mul(view(scale), invStd);
    const b = e.mul(a, view(e.mul(dGamma!, e.scalar(-1 / m))));
    const cc = e.mul(a, view(e.mul(dBeta!, e.scalar(-1 / m))));
    dx = e.add(e.add(e.mul(dy, a), e.mul(normalized, b)), cc);
  }
  return [dx, ctx.needs[1] ? dGamma : undefined, ctx.needs[2] ? dBeta : undefined];
}

/**
 * Instance and layer normalization, lowered: standardize over `axes`, then scale and shift
 * (per channel for InstanceNormalization, broadcast over the normalized axes for Layer).
 */
function lowerStandardization(ctx: LowerContext, axes: (rank: number) => number[], perChannelAffine: boolean): boolean {
  const e = ctx.e;
  const [x, scale, bias] = ctx.node.input;
  const rank = ctx.shape(x).length;
  const s = standardize(ctx, x, axes(rank), ctx.attrs.float('epsilon', 1e-5));
  const affine = (t: string) => (perChannelAffine ? perChannel(ctx, t, rank) : t);
  let y = e.mul(s.y, affine(scale));
  if (bias) y = e.add(y, affine(bias));
  finish(ctx, y, ctx.node.output[0]);
  if (ctx.node.output[1]) finish(ctx, s.mean, ctx.node.output[1]);
  if (ctx.node.output[2]) finish(ctx, s.invStd, ctx.node.output[2]);
  return true;
}

registerRule({
  opType: 'InstanceNormalization',
  since: 6,
  diffInputs: [],
  lower: (ctx) => lowerStandardization(ctx, (rank) => Array.from({ length: rank - 2 }, (_, i) => i + 2), true),
});

registerRule({
  opType: 'LayerNormalization',
  since: 17,
  diffInputs: [],
  lower(ctx) {
    const axis = ctx.attrs.int('axis', -1);
    return lowerStandardization(ctx, (rank) => {
      const from = axis < 0 ? axis + rank : axis;
      return Array.from({ length: rank - from }, (_, i) => i + from);
    }, false);
  },
});

/** The reduced axes of a Reduce* node (attribute, or input 1 where the opset takes it). */
function reducedAxes(ctx: RuleContext, axesAsInput: boolean): number[] {
  const rank = ctx.shape(ctx.node.input[0]).length;
  const given = axesAsInput ? (ctx.node.input[1] ? ctx.requireValue(1, 'axes') : undefined) : ctx.attrs.ints('axes');
  if (!given || given.length === 0) {
    if (ctx.attrs.int('noop_with_empty_axes', 0) === 1) return [];
    return Array.from({ length: rank }, (_, i) => i);
  }
  return given.map((a) => (a < 0 ? a + rank : a));
}

/** Reduce* gradients: dY (and Y) broadcast back over the reduced axes. */
function registerReduce(opType: string, since: number, axesAsInput: boolean): void {
  registerRule({
    opType,
    since,
    diffInputs: [0],
    backward(ctx) {
      const e = ctx.e;
      const [x] = ctx.node.input;
      const y = ctx.node.output[0];
      const xs = e.shape(x);
      const axes = reducedAxes(ctx, axesAsInput);
      const keepShape = xs.map((d, i) => (axes.includes(i) ? 1 : d));
      const dy = e.reshape(ctx.dy[0]!, keepShape);
      const yKeep = e.reshape(y, keepShape);
      const count = axes.reduce((p, a) => p * xs[a], 1);
      switch (opType) {
        case 'ReduceSum':
          return [e.expand(dy, xs)];
        case 'ReduceMean':
          return [e.expand(e.mul(dy, e.scalar(1 / count)), xs)];
        case 'ReduceMax':
        case 'ReduceMin':
          return [maskedByExtreme(ctx, x, yKeep, dy)];
        case 'ReduceL2':
          return [e.mul(x, e.div(dy, yKeep))];
        case 'ReduceSumSquare':
          return [e.mul(e.mul(x, e.scalar(2)), dy)];
        default:
          return ctx.fail('no gradient rule');
      }
    },
    tangent(ctx) {
      const e = ctx.e;
      const [x] = ctx.node.input;
      const y = ctx.node.output[0];
      const tx = ctx.t[0]!;
      const axes = reducedAxes(ctx, axesAsInput);
      const keep = ctx.attrs.int('keepdims', 1) === 1;
      const keepShape = e.shape(x).map((d, i) => (axes.includes(i) ? 1 : d));
      switch (opType) {
        case 'ReduceSum':
        case 'ReduceMean':
          return ctx.replay(axesAsInput ? [tx, ...ctx.node.input.slice(1)] : [tx]);
        case 'ReduceMax':
        case 'ReduceMin':
          return [tangentAtExtreme(ctx, x, e.reshape(y, keepShape), axes, keep)];
        case 'ReduceL2': // Σ x·tx / y
          return [e.div(e.reduceSum(e.mul(x, tx), axes, keep), y)];
        case 'ReduceSumSquare':
          return [e.reduceSum(e.mul(e.mul(x, e.scalar(2)), tx), axes, keep)];
        default:
          return ctx.fail('no tangent rule');
      }
    },
  });
}

registerReduce('ReduceSum', 13, true);
for (const op of ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceL2', 'ReduceSumSquare']) {
  registerReduce(op, 1, false);
  registerReduce(op, 18, true);
}

registerRules(['Softmax', 'LogSoftmax'], 13, (op) => ({
  diffInputs: [0],
  backward: (ctx) => [softmaxJacobianProduct(ctx, op, ctx.dy[0]!, true)],
  tangent: (ctx) => [softmaxJacobianProduct(ctx, op, ctx.t[0]!, false)],
}));

/**
 * Jᵀ·v (`transposed`, the gradient) or J·v (the tangent) of Softmax / LogSoftmax at its output y,
 * p = softmax: Softmax's Jacobian diag(p) − p pᵀ is symmetric, LogSoftmax's is I − 1 pᵀ.
 */
function softmaxJacobianProduct(ctx: RuleContext, op: string, v: string, transposed: boolean): string {
  const e = ctx.e;
  const y = ctx.node.output[0];
  const axis = [softmaxAxis(ctx)];
  if (op === 'Softmax') return e.mul(y, e.sub(v, e.reduceSum(e.mul(v, y), axis, true)));
  const p = e.unary('Exp', y);
  return transposed ? e.sub(v, e.mul(p, e.reduceSum(v, axis, true))) : e.sub(v, e.reduceSum(e.mul(p, v), axis, true));
}

function softmaxAxis(ctx: RuleContext): number {
  const rank = ctx.shape(ctx.node.output[0]).length;
  const axis = ctx.attrs.int('axis', -1);
  return axis < 0 ? axis + rank : axis;
}
