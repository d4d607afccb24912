/**
 * Gradients of the broadcasting arithmetic ops and the pointwise activations: each input's
 * gradient is computed at the output's shape and summed back over broadcast axes.
 */
import { registerRule, registerRules, type BackwardContext, type RuleContext } from './registry.js';

type Grads = (string | undefined)[];

/** dY times a local derivative, summed back to input i's shape. */
function toInput(ctx: BackwardContext, i: number, g: string): string {
  return ctx.e.unbroadcast(g, ctx.shape(ctx.node.input[i]));
}

registerRules(['Add', 'Sub'], 7, (op) => ({
  diffInputs: 'all',
  tangent: 'linear',
  backward(ctx) {
    const dy = ctx.dy[0]!;
    const e = ctx.e;
    return [
      ctx.needs[0] ? toInput(ctx, 0, dy) : undefined,
      ctx.needs[1] ? toInput(ctx, 1, op === 'Sub' ? e.unary('Neg', dy) : dy) : undefined,
    ];
  },
}));

registerRule({
  opType: 'Sum',
  since: 8,
  diffInputs: 'all',
  tangent: 'linear',
  backward: (ctx) => ctx.node.input.map((_, i) => (ctx.needs[i] ? toInput(ctx, i, ctx.dy[0]!) : undefined)),
});

registerRule({
  opType: 'Mul',
  since: 7,
  diffInputs: 'all',
  tangent: 'multilinear',
  backward(ctx) {
    const [a, b] = ctx.node.input;
    const dy = ctx.dy[0]!;
    return [
      ctx.needs[0] ? toInput(ctx, 0, ctx.e.mul(dy, b)) : undefined,
      ctx.needs[1] ? toInput(ctx, 1, ctx.e.mul(dy, a)) : undefined,
    ];
  },
});

registerRule({
  opType: 'Div',
  since: 7,
  diffInputs: 'all',
  backward(ctx) {
    const b = ctx.node.input[1];
    const y = ctx.node.output[0];
    const e = ctx.e;
    const dy = ctx.dy[0]!;
    const grads: Grads = [undefined, undefined];
    const dyOverB = e.div(dy, b);
    if (ctx.needs[0]) grads[0] = toInput(ctx, 0, dyOverB);
    // d(a/b)/db = −a/b² = −y/b
    if (ctx.needs[1]) grads[1] = toInput(ctx, 1, e.unary('Neg', e.mul(dyOverB, y)));
    return grads;
  },
  // t = (ta − y·tb) / b
  tangent(ctx) {
    const b = ctx.node.input[1];
    const y = ctx.node.output[0];
    const e = ctx.e;
    const [ta, tb] = ctx.t;
    const numerator = ta && tb ? e.sub(ta, e.mul(y, tb)) : ta ? ta : e.unary('Neg', e.mul(y, tb!));
    return [e.expand(e.div(numerator, b), e.shape(y))];
  },
});

registerRule({
  opType: 'Pow',
  since: 7,
  diffInputs: 'all',
  backward(ctx) {
    const [a, b] = ctx.node.input;
    const y = ctx.node.output[0];
    const e = ctx.e;
    const dy = ctx.dy[0]!;
    const grads: Grads = [undefined, undefined];
    // d/da = b·a^(b−1), d/db = ln(a)·a^b
    if (ctx.needs[0]) grads[0] = toInput(ctx, 0, e.mul(dy, e.mul(b, e.binary('Pow', a, e.sub(b, e.scalar(1)), e.shape(y)))));
    if (ctx.needs[1]) grads[1] = toInput(ctx, 1, e.mul(dy, e.mul(y, e.unary('Log', a))));
    return grads;
  },
  tangent(ctx) {
    const [a, b] = ctx.node.input;
    const y = ctx.node.output[0];
    const e = ctx.e;
    const [ta, tb] = ctx.t;
    const terms: string[] = [];
    if (ta) terms.push(e.expand(e.mul(ta, e.mul(b, e.binary('Pow', a, e.sub(b, e.scalar(1)), e.shape(y)))), e.shape(y)));
    if (tb) terms.push(e.expand(e.mul(tb, e.mul(y, e.unary('Log', a))), e.shape(y)));
    return [e.sum(terms)];
  },
});

registerRule({
  opType: 'Where',
  since: 9,
  diffInputs: [1, 2],
  tangent: 'linear',
  backward(ctx) {
    const [c] = ctx.node.input;
    const e = ctx.e;
    const dy = ctx.dy[0]!;
    const ys = e.shape(dy);
    const zero = e.scalar(0);
    return [
      undefined,
      ctx.needs[1] ? toInput(ctx, 1, e.one('Where', [c, dy, zero], ys)) : undefined,
      ctx.needs[2] ? toInput(ctx, 2, e.one('Where', [c, zero, dy], ys)) : undefined,
    ];
  },
});

/** Pointwise ops y = f(x): the derivative written from x and y; dX = dY·f'(x), tY = tX·f'(x). */
function pointwise(opType: string, since: number, derivative: (ctx: RuleContext, x: string, y: string) => string): void {
  registerRule({
    opType,
    since,
    diffInputs: [0],
    backward: (ctx) => [ctx.e.mul(ctx.dy[0]!, derivative(ctx, ctx.node.input[0], ctx.node.output[0]))],
    tangent: (ctx) => [ctx.e.mul(ctx.t[0]!, derivative(ctx, ctx.node.input[0], ctx.node.output[0]))],
  });
}

/** 1 where x > 0, else 0 (float). */
function positive(ctx: RuleContext, x: string): string {
  const e = ctx.e;
  return e.one('Cast', [e.one('Greater', [x, e.scalar(0)], e.shape(x))], e.shape(x), { to: 1 });
}

/** 1 where lo < v < hi (open interval), else 0 (float). */
function inside(ctx: RuleContext, v: string, lo: number, hi: number): string {
  const e = ctx.e;
  const s = e.shape(v);
  const above = e.one('Greater', [v, e.scalar(lo)], s);
  const below = e.one('Less', [v, e.scalar(hi)], s);
  return e.one('Cast', [e.one('And', [above, below], s)], s, { to: 1 });
}

pointwise('Neg', 6, (ctx) => ctx.e.scalar(-1));
pointwise('Abs', 6, (ctx, x) => ctx.e.unary('Sign', x));
pointwise('Exp', 6, (_ctx, _x, y) => y);
pointwise('Log', 6, (ctx, x) => ctx.e.unary('Reciprocal', x));
pointwise('Sqrt', 6, (ctx, _x, y) => ctx.e.div(ctx.e.scalar(0.5), y));
pointwise('Reciprocal', 6, (ctx, _x, y) => ctx.e.unary('Neg', ctx.e.mul(y, y)));
pointwise('Relu', 6, (ctx, x) => positive(ctx, x));
pointwise('Sigmoid', 6, (ctx, _x, y) => ctx.e.mul(y, ctx.e.sub(ctx.e.scalar(1), y)));
pointwise('Tanh', 6, (ctx, _x, y) => ctx.e.sub(ctx.e.scalar(1), ctx.e.mul(y, y)));
pointwise('Softplus', 1, (ctx, x) => ctx.e.unary('Sigmoid', x));
pointwise('Erf', 9, (ctx, x) => {
  const e = ctx.e;
  return e.mul(e.scalar(2 / Math.sqrt(Math.PI)), e.unary('Exp', e.unary('Neg', e.mul(x, x))));
});
pointwise('LeakyRelu', 6, (ctx, x) => {
  const alpha = ctx.attrs.float('alpha', 0.01);
  const e = ctx.e;
  return e.one('Where', [e.one('Greater', [x, e.scalar(0)], e.shape(x)), e.scalar(1), e.scalar(alpha)], e.shape(x));
});
pointwise('Elu', 6, (ctx, x, y) => {
  const alpha = ctx.attrs.float('alpha', 1);
  const e = ctx.e;
  return e.one('Where', [e.one('Greater', [x, e.scalar(0)], e.shape(x)), e.scalar(1), e.add(y, e.scalar(alpha))], e.shape(x));
});
pointwise('HardSigmoid', 6, (ctx, x) => {
  const alpha = ctx.attrs.float('alpha', 0.2);
  const beta = ctx.attrs.float('beta', 0.5);
  const e = ctx.e;
  const v = e.add(e.mul(x, e.scalar(alpha)), e.scalar(beta));
  return e.mul(inside(ctx, v, 0, 1), e.scalar(alpha));
});
// HardSwish(x) = x·HardSigmoid(x) with α = 1/6, β = 1/2: derivative x/3 + 1/2 on (−3, 3), 1 above.
pointwise('HardSwish', 14, (ctx, x) => {
  const e = ctx.e;
  const s = e.shape(x);
  const middle = e.mul(inside(ctx, x, -3, 3), e.add(e.mul(x, e.scalar(1 / 3)), e.scalar(0.5)));
  const above = e.one('Cast', [e.one('GreaterOrEqual', [x, e.scalar(3)], s)], s, { to: 1 });
  return e.add(middle, above);
});
pointwise('Gelu', 20, (ctx, x) => {
  const e = ctx.e;
  if (ctx.attrs.string('approximate', 'none') !== 'none') ctx.fail("approximate = 'tanh' has no gradient rule");
  // Φ(x) + x·φ(x)
  const cdf = e.mul(e.scalar(0.5), e.add(e.scalar(1), e.unary('Erf', e.mul(x, e.scalar(Math.SQRT1_2)))));
  const pdf = e.mul(e.scalar(1 / Math.sqrt(2 * Math.PI)), e.unary('Exp', e.mul(e.mul(x, x), e.scalar(-0.5))));
  return e.add(cdf, e.mul(x, pdf));
});

registerRule({
  opType: 'PRelu',
  since: 9,
  diffInputs: 'all',
  backward(ctx) {
    const [x, slope] = ctx.node.input;
    const e = ctx.e;
    const dy = ctx.dy[0]!;
    const s = e.shape(dy);
    const pos = e.one('Greater', [x, e.scalar(0)], e.shape(x));
    return [
      ctx.needs[0] ? toInput(ctx, 0, e.one('Where', [pos, dy, e.mul(dy, slope)], s)) : undefined,
      ctx.needs[1] ? toInput(ctx, 1, e.one('Where', [pos, e.scalar(0), e.mul(dy, x)], s)) : undefined,
    ];
  },
  // t = tx where x > 0, else slope·tx + x·tslope
  tangent(ctx) {
    const [x, slope] = ctx.node.input;
    const e = ctx.e;
    const s = e.shape(ctx.node.output[0]);
    const [tx, ts] = ctx.t;
    const negative = [tx ? e.mul(tx, slope) : undefined, ts ? e.mul(x, ts) : undefined].filter((v): v is string => !!v).map((v) => e.expand(v, s));
    const pos = e.one('Greater', [x, e.scalar(0)], e.shape(x));
    return [e.one('Where', [pos, tx ?? e.scalar(0), e.sum(negative)], s)];
  },
});

/** Clip (limits as inputs since opset 11): derivative 1 where min < x < max, else 0 (undefined: no limits). */
function clipMask(ctx: RuleContext): string | undefined {
  const [x, lo, hi] = ctx.node.input;
  const min = lo ? ctx.requireValue(1, 'min')[0] : -Infinity;
  const max = hi ? ctx.requireValue(2, 'max')[0] : Infinity;
  const e = ctx.e;
  const s = e.shape(x);
  const conds: string[] = [];
  if (Number.isFinite(min)) conds.push(e.one('Greater', [x, e.scalar(min)], s));
  if (Number.isFinite(max)) conds.push(e.one('Less', [x, e.scalar(max)], s));
  if (conds.length === 0) return undefined;
  return e.one('Cast', [conds.length === 2 ? e.one('And', conds, s) : conds[0]], s, { to: 1 });
}

registerRule({
  opType: 'Clip',
  since: 11,
  diffInputs: [0],
  backward(ctx) {
    const mask = clipMask(ctx);
    return [mask ? ctx.e.mul(ctx.dy[0]!, mask) : ctx.dy[0]];
  },
  tangent(ctx) {
    const mask = clipMask(ctx);
    return [mask ? ctx.e.mul(ctx.t[0]!, mask) : ctx.t[0]];
  },
});

/** Ops that carry no gradient: comparisons, shape queries, index producers. */
registerRules(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Shape', 'Size', 'ArgMax', 'ArgMin', 'Range', 'ConstantOfShape', 'Constant', 'Sign', 'Floor', 'Ceil', 'Round'], 1, () => ({ diffInputs: [] }));

/** Cast: float → float passes the gradient; any other target type stops it. */
registerRule({
  opType: 'Cast',
  since: 6,
  diffInputs: [0],
  backward: (ctx) => [ctx.attrs.int('to', 1) === 1 ? ctx.dy[0] : undefined],
  tangent: (ctx) => [ctx.attrs.int('to', 1) === 1 ? ctx.t[0] : undefined],
});
