/**
 * Forward-mode differentiation of a generated training graph: given tangents of some tensors
 * (the parameters, direction v), emit the nodes that compute the tangent of every tensor that
 * depends on them — including the gradient outputs, whose tangent is the exact Hessian-vector
 * product H·v ("forward over reverse"). ReLU kinks and max-pool routing are held fixed, as in
 * double backprop, so the product is exact where finite differences of gradients are not.
 */
import { newNode, type NodeProto } from '../../onnx/schema.js';
import type { Emitter } from './emitter.js';
import { findRule, type RuleContext, type TangentContext, type TangentRule } from './rules/registry.js';

export interface TangentPass {
  e: Emitter;
  opset: number;
  /** The rule context of a node (attributes, shapes, constants, errors naming the node). */
  context(node: NodeProto): RuleContext;
  /** Whether a tensor is floating point (integer and boolean tensors carry no tangent). */
  isFloat(name: string): boolean;
}

/** Appends the tangent nodes of `nodes` (in topological order) to `pass.e`; returns tensor → tangent. */
export function emitTangents(pass: TangentPass, nodes: readonly NodeProto[], seeds: ReadonlyMap<string, string>): Map<string, string> {
  const { e } = pass;
  const tangents = new Map(seeds);
  for (const node of nodes) {
    const incoming = node.input.map((name) => (name ? tangents.get(name) : undefined));
    if (incoming.every((t) => !t)) continue;
    const base = pass.context(node);
    const rule = findRule(node.domain ?? '', node.op_type ?? '', pass.opset);
    if (!rule) base.fail('no tangent rule for this op (Hessian-vector products)');
    const diff = rule!.diffInputs === 'all' ? node.input.map((_, i) => i) : rule!.diffInputs;
    const t = node.input.map((_, i) => (diff.includes(i) ? incoming[i] : undefined));
    if (t.every((x) => !x)) continue;
    if (!rule!.tangent) base.fail('no tangent rule for this op (Hessian-vector products)');
    const ctx: TangentContext = { ...base, t, replay: (inputs) => replay(e, node, inputs) };
    const outs = applyTangentRule(ctx, rule!.tangent!, diff);
    node.output.forEach((o, i) => {
      if (o && outs[i] && pass.isFloat(o)) tangents.set(o, outs[i]!);
    });
  }
  return tangents;
}

function applyTangentRule(ctx: TangentContext, rule: TangentRule, diff: readonly number[]): (string | undefined)[] {
  const { node, e, t } = ctx;
  if (typeof rule === 'function') return rule(ctx);
  if (rule === 'linear') {
    const inputs = node.input.map((name, i) => (name && diff.includes(i) ? (t[i] ?? e.zeros(e.shape(name))) : name));
    return ctx.replay(inputs);
  }
  const terms = diff.filter((i) => t[i]).map((i) => ctx.replay(node.input.map((name, j) => (j === i ? t[i]! : name)))[0]);
  return [e.sum(terms)];
}

/** The node once more, on `inputs`, with fresh outputs shaped like the original's. */
function replay(e: Emitter, node: NodeProto, inputs: string[]): string[] {
  const outs = node.output.map((o) => (o ? e.fresh('tangent') : ''));
  e.nodes.push(newNode({ name: e.fresh(`n_tangent_${node.op_type}`), op_type: node.op_type, domain: node.domain, input: inputs, output: outs, attribute: [...node.attribute] }));
  node.output.forEach((o, i) => {
    if (o && e.shapes.has(o)) e.shapes.set(outs[i], e.shape(o));
  });
  return outs;
}
