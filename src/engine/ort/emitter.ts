/**
 * Writes the nodes of a generated ONNX graph (training graphs of the ort engine) and keeps the
 * static shape of every tensor it knows: training graphs are built for one batch shape, so
 * broadcast reductions, pads and index maps are constants computed here rather than graph
 * arithmetic on Shape outputs.
 */
import { attribute, type AttrValue } from '../../onnx/builder.js';
import { newNode, type NodeProto, type TensorProto } from '../../onnx/schema.js';
import { makeTensorProto, numel } from '../../onnx/tensor.js';

/** Constants up to this many elements are remembered for constantValue(). */
const SMALL_CONSTANT = 64;

export class Emitter {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private count = 0;
  private readonly scalars = new Map<string, string>();
  /** Values of the small constants it wrote (axes, pads, limits), for rules that read them. */
  private readonly smallConstants = new Map<string, number[]>();

  /** `shapes`: every tensor's static shape; `opset`: the generated graph's ai.onnx version. */
  constructor(readonly shapes: Map<string, number[]>, readonly opset: number) {}

  fresh(hint: string): string {
    return `harden_${hint}_${this.count++}`;
  }

  shape(name: string): number[] {
    const s = this.shapes.get(name);
    if (!s) throw new Error(`ort autodiff: no static shape known for '${name}'`);
    return s;
  }

  /** Appends a node; its outputs get fresh names (or the given ones) and, when given, shapes. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs: number | string[] = 1, shapes?: (number[] | undefined)[], domain?: string): string[] {
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh(opType.toLowerCase())) : outputs;
    this.nodes.push(newNode({
      name: this.fresh(`n_${opType}`),
      op_type: opType,
      ...(domain ? { domain } : {}),
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    }));
    shapes?.forEach((s, i) => s && this.shapes.set(outs[i], s));
    return outs;
  }

  /** A one-output node whose output has the given shape. */
  one(opType: string, inputs: string[], shape: number[], attrs: Record<string, AttrValue> = {}, domain?: string): string {
    return this.op(opType, inputs, attrs, 1, [shape], domain)[0];
  }

  constF(values: ArrayLike<number>, shape: number[]): string {
    if (numel(shape) === 1 && shape.length === 0) {
      const key = String(values[0]);
      const known = this.scalars.get(key);
      if (known) return known;
      const name = this.addInit('c', Float32Array.from(values), shape, 'float32');
      this.scalars.set(key, name);
      return name;
    }
    return this.addInit('c', Float32Array.from(values), shape, 'float32');
  }

  scalar(v: number): string {
    return this.constF([v], []);
  }

  constI(values: number[], shape: number[] = [values.length]): string {
    return this.addInit('i', BigInt64Array.from(values.map((v) => BigInt(v))), shape, 'int64');
  }

  private addInit(hint: string, data: Float32Array | BigInt64Array, shape: number[], dtype: 'float32' | 'int64'): string {
    const name = this.fresh(hint);
    this.initializers.push(makeTensorProto(name, { dtype, shape, data }));
    this.shapes.set(name, shape);
    if (data.length <= SMALL_CONSTANT) this.smallConstants.set(name, Array.from(data as ArrayLike<number | bigint>, Number));
    return name;
  }

  /** The values of a small constant this emitter wrote, if it is one. */
  constantValue(name: string): number[] | undefined {
    return this.smallConstants.get(name);
  }

  reshape(x: string, shape: number[]): string {
    if (sameShape(this.shapes.get(x), shape)) return x;
    return this.one('Reshape', [x, this.constI(shape)], shape);
  }

  transpose(x: string, perm: number[]): string {
    const s = this.shape(x);
    return this.one('Transpose', [x], perm.map((p) => s[p]), { perm });
  }

  binary(op: 'Add' | 'Sub' | 'Mul' | 'Div' | 'Pow', a: string, b: string, shape: number[]): string {
    return this.one(op, [a, b], shape);
  }

  mul(a: string, b: string): string {
    return this.binary('Mul', a, b, broadcastShapes(this.shape(a), this.shape(b)));
  }

  add(a: string, b: string): string {
    return this.binary('Add', a, b, broadcastShapes(this.shape(a), this.shape(b)));
  }

  sub(a: string, b: string): string {
    return this.binary('Sub', a, b, broadcastShapes(this.shape(a), this.shape(b)));
  }

  div(a: string, b: string): string {
    return this.binary('Div', a, b, broadcastShapes(this.shape(a), this.shape(b)));
  }

  unary(op: string, x: string, attrs: Record<string, AttrValue> = {}): string {
    return this.one(op, [x], this.shape(x), attrs);
  }

  /** Sum of several same-shape tensors. */
  sum(xs: string[]): string {
    return xs.length === 1 ? xs[0] : this.one('Sum', xs, this.shape(xs[0]));
  }

  private reduce(op: string, x: string, axes: number[], keepdims: boolean): string {
    const s = this.shape(x);
    const out = keepdims ? s.map((d, i) => (axes.includes(i) ? 1 : d)) : s.filter((_, i) => !axes.includes(i));
    if (axes.length === 0) return x;
    // ReduceSum takes axes as an input from opset 13, the other reductions from opset 18.
    const axesAsInput = op === 'ReduceSum' ? this.opset >= 13 : this.opset >= 18;
    const k = keepdims ? 1 : 0;
    return axesAsInput ? this.one(op, [x, this.constI(axes)], out, { keepdims: k }) : this.one(op, [x], out, { axes, keepdims: k });
  }

  reduceSum(x: string, axes: number[], keepdims = true): string {
    return this.reduce('ReduceSum', x, axes, keepdims);
  }

  reduceMean(x: string, axes: number[], keepdims = true): string {
    return this.reduce('ReduceMean', x, axes, keepdims);
  }

  /** Sums a gradient of broadcast shape `g` back to `target` (numpy broadcasting rules). */
  unbroadcast(g: string, target: number[]): string {
    const gs = this.shape(g);
    if (sameShape(gs, target)) return g;
    const offset = gs.length - target.length;
    const axes = gs.map((_, i) => i).filter((i) => i < offset || (target[i - offset] === 1 && gs[i] !== 1));
    return this.reshape(this.reduceSum(g, axes, true), target);
  }

  /** Broadcasts `x` to `shape`. */
  expand(x: string, shape: number[]): string {
    if (sameShape(this.shape(x), shape)) return x;
    return this.one('Expand', [x, this.constI(shape)], shape);
  }

  zeros(shape: number[]): string {
    return this.expand(this.scalar(0), shape);
  }
}

export function sameShape(a: readonly number[] | undefined, b: readonly number[]): boolean {
  return !!a && a.length === b.length && a.every((d, i) => d === b[i]);
}

export function broadcastShapes(a: number[], b: number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    out.push(x === 1 ? y : x);
  }
  return out;
}
