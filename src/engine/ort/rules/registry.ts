/**
 * Gradient rules of the ort engine, one per ONNX op family, keyed by (op_type, since-version)
 * and resolved against the model's opset like the importer's converters. A rule may rewrite
 * its forward node into primitive nodes (`lower`: training-mode BatchNormalization, the
 * normalizations, MaxPool with its Indices output) and writes the vector-Jacobian product of
 * the node as standard ONNX nodes (`backward`), and its Jacobian-vector product (`tangent`),
 * which forward-mode differentiation of a whole training graph uses for exact Hessian-vector
 * products (see ../tangents.ts).
 */
import type { Attributes } from '../../../import/attributes.js';
import type { NodeProto } from '../../../onnx/schema.js';
import type { Emitter } from '../emitter.js';

export interface RuleContext {
  readonly node: NodeProto;
  readonly attrs: Attributes;
  readonly e: Emitter;
  readonly opset: number;
  /** The graph runs in training mode (batch statistics, dropout). */
  readonly training: boolean;
  /** Channel block of onnxruntime's NCHWc kernels the rules may use (../nchwc.ts); 0: none. */
  readonly nchwcBlock: number;
  shape(name: string): number[];
  /** Values of a small constant tensor (Slice bounds, Clip limits, axes), if known. */
  value(name: string): number[] | undefined;
  /** Values the rule needs to know: a missing one is an error naming the input. */
  requireValue(inputIndex: number, what: string): number[];
  fail(what: string): never;
}

export interface LowerContext extends RuleContext {
  /** The new value of a running statistic (BatchNormalization in training mode). */
  statistic(variable: string, value: string): void;
  /** A fed dropout mask for a tensor of this shape: 0 or 1/(1 − ratio) per element. */
  dropoutMask(shape: number[], ratio: number): string;
  /**
   * Fuses the lowering's gradient: the emitted nodes are not differentiated one by one; the
   * rule's backward runs for the original node, with these forward tensors in `saved`.
   */
  saveForBackward(tensors: Record<string, string>): void;
}

export interface BackwardContext extends RuleContext {
  /** Gradient arriving at each output (undefined: none flows there). */
  readonly dy: readonly (string | undefined)[];
  /** Whether each input needs a gradient. */
  readonly needs: readonly boolean[];
  /** Index maps computed by running the forward op on numbered inputs (selection ops). */
  indexMap(dataInput: number): Promise<Int32Array>;
  /** What a fused lowering saved for the backward (LowerContext.saveForBackward); else undefined. */
  readonly saved?: Readonly<Record<string, string>>;
}

export interface TangentContext extends RuleContext {
  /** Tangent of each input (undefined: zero or not differentiable). */
  readonly t: readonly (string | undefined)[];
  /** Emit this node again (same op and attributes) on other inputs; returns its outputs. */
  replay(inputs: string[]): string[];
}

/**
 * How a node's output tangents follow from its input tangents:
 * - 'linear': the op is linear in its differentiable inputs jointly (Add, Reshape, Slice, ...):
 *   the node itself applied to the tangents (zeros where an input has none);
 * - 'multilinear': linear in each differentiable input separately (Mul, MatMul): the sum over
 *   inputs with a tangent of the node with that input replaced by its tangent;
 * - a function for everything else.
 */
export type TangentRule = 'linear' | 'multilinear' | ((ctx: TangentContext) => (string | undefined)[]);

export interface GradRule {
  readonly opType: string;
  /** The op's domain; absent: the default ONNX domain. */
  readonly domain?: string;
  readonly since: number;
  /** Inputs a gradient can flow to; the others are integer, shape or constant slots. */
  readonly diffInputs: readonly number[] | 'all';
  /** Replace the forward node by other nodes (which get their own rules); false keeps it. */
  lower?(ctx: LowerContext): boolean;
  /** Gradients for the inputs (undefined where none is needed or defined). */
  backward?(ctx: BackwardContext): Promise<(string | undefined)[]> | (string | undefined)[];
  /** Output tangents from input tangents (forward mode, for Hessian-vector products). */
  tangent?: TangentRule;
}

const rules = new Map<string, GradRule[]>();

/** Registry key: the op type, prefixed by its domain outside the default one. */
function keyOf(domain: string | undefined, opType: string): string {
  return domain && domain !== 'ai.onnx' ? `${domain}:${opType}` : opType;
}

export function registerRule(rule: GradRule): void {
  const key = keyOf(rule.domain, rule.opType);
  const list = rules.get(key) ?? [];
  if (list.some((r) => r.since === rule.since)) throw new Error(`gradient rule for ${key} since ${rule.since} registered twice`);
  list.push(rule);
  list.sort((a, b) => b.since - a.since);
  rules.set(key, list);
}

/** Register the same rule for several versions of an op. */
export function registerRules(opTypes: string[], since: number, make: (opType: string) => Omit<GradRule, 'opType' | 'since'>): void {
  for (const opType of opTypes) registerRule({ opType, since, ...make(opType) });
}

/** The rule for an op at the model's default-domain opset (other domains: version 1 rules). */
export function findRule(domain: string, opType: string, opset: number): GradRule | undefined {
  const key = keyOf(domain, opType);
  return rules.get(key)?.find((r) => r.since <= (key === opType ? opset : 1));
}

export function ruleOpTypes(): string[] {
  return [...rules.keys()].sort();
}
