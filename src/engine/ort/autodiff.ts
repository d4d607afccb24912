/**
 * Reverse-mode autodiff over an ONNX graph, written as another ONNX graph: the training graph.
 *
 * The forward model becomes a function of its parameters (they are graph inputs, fed every
 * step), its nodes are copied (or lowered to primitives by their rules: training-mode
 * BatchNormalization, the other normalizations, MaxPool with Indices), the losses are appended,
 * and each node's vector-Jacobian product is emitted in reverse order. Outputs: the loss, the
 * requested tensors, one gradient per requested parameter, and the new running statistics.
 * The graph is built for one input shape, so every shape in it is a constant (see probe.ts).
 */
import * as ort from 'onnxruntime-node';
import { ExitCode, HardenError } from '../../errors.js';
import { Attributes } from '../../import/attributes.js';
import { cloneModel, encodeModel, initializerMap, opsetOf, type OnnxModel } from '../../onnx/model.js';
import {
  newGraph,
  newModel,
  newNode,
  newOpsetId,
  newTypeProto,
  newValueInfo,
  toNumber,
  type ModelProto,
  type NodeProto,
  type ValueInfoProto,
} from '../../onnx/schema.js';
import { makeTensorProto, type HostTensor } from '../../onnx/tensor.js';
import { Emitter } from './emitter.js';
import { probeModel, type Probe } from './probe.js';
import { emitTangents } from './tangents.js';
import { findRule, type BackwardContext, type GradRule, type LowerContext, type RuleContext } from './rules/registry.js';
import './rules/index.js';

/** Soft-target cross-entropy on a [N, K] tensor: −w·T²/N · Σ Q ⊙ log softmax(z/T). */
export interface LossSpec {
  tensor: string;
  temperature?: number;
  weight?: number;
}

export interface TrainingGraphSpec {
  inputName: string;
  inputShape: number[];
  training: boolean;
  /** Float initializers fed as inputs each run (weights and statistics). */
  fed: readonly string[];
  /** Parameters whose gradients the graph outputs. */
  wrt: readonly string[];
  losses?: readonly LossSpec[];
  /** Tensors that receive a fed upstream gradient (losses computed elsewhere). */
  upstream?: readonly string[];
  /** Extra tensors to output (logits, features). */
  outputs?: readonly string[];
  /**
   * Also output H·v for a fed direction v over the `wrt` parameters (one tangent input per
   * parameter): forward-mode differentiation of the gradient graph (tangents.ts).
   */
  hessianVector?: boolean;
  /**
   * Channel block of onnxruntime's NCHWc kernels on the CPU that will run the graph
   * (nchwcBlockSize()): the rules may then use them, and the graph is then only correct where
   * onnxruntime's block is the same (the weights are reordered for it). Absent or 0: standard
   * ONNX ops only, a portable graph.
   */
  nchwcBlock?: number;
}

export interface FedInput {
  name: string;
  shape: number[];
}

export interface TrainingGraph {
  proto: ModelProto;
  opset: number;
  /** Target distributions, one per loss, [N, K]. */
  targets: FedInput[];
  /** Upstream gradients by tensor. */
  upstream: Map<string, FedInput>;
  /** Dropout masks to feed in training mode (0 or 1/(1 − ratio)). */
  masks: (FedInput & { ratio: number })[];
  loss?: string;
  gradients: Map<string, string>;
  statistics: Map<string, string>;
  tensors: string[];
  /** With `hessianVector`: the fed direction and the H·v output, by parameter. */
  directions: Map<string, FedInput>;
  hessianVector: Map<string, string>;
}

/** Lowest model opset the engine accepts, and the opset it generates at least (ScatterElements reduction). */
const MIN_MODEL_OPSET = 13;
const MIN_GRAPH_OPSET = 17;

export async function buildTrainingGraph(model: OnnxModel, spec: TrainingGraphSpec, source = model.path ?? 'model'): Promise<TrainingGraph> {
  const graph = model.proto.graph!;
  const modelOpset = opsetOf(model.proto, '');
  if (modelOpset < MIN_MODEL_OPSET) {
    throw new HardenError(`${source}: the ort engine needs opset >= ${MIN_MODEL_OPSET} (the model has ${modelOpset}); use --engine tfjs`, ExitCode.Unsupported);
  }
  const opset = Math.max(modelOpset, MIN_GRAPH_OPSET);
  const inits = initializerMap(model.proto, model.baseDir);
  const probe = await probeModel(model.proto, inits, spec.inputName, spec.inputShape, source);
  const e = new Emitter(new Map(probe.shapes), opset);
  const types = new Map(probe.types);
  const fed = new Set(spec.fed);
  const masks: TrainingGraph['masks'] = [];
  const statistics = new Map<string, string>();

  const where = (node: NodeProto) => `${source}: node '${node.name || node.output[0]}' (${node.op_type}, opset ${modelOpset})`;
  const baseContext = (node: NodeProto): RuleContext => {
    const fail = (what: string): never => {
      throw new HardenError(`${where(node)}: ${what} (ort engine)`, ExitCode.Unsupported);
    };
    return {
      node,
      attrs: new Attributes(node.attribute, fail),
      e,
      opset,
      training: spec.training,
      nchwcBlock: spec.nchwcBlock ?? 0,
      shape: (name) => e.shape(name),
      value: (name) => probe.values.get(name) ?? e.constantValue(name),
      requireValue: (i, what) => {
        const v = node.input[i] ? (probe.values.get(node.input[i]) ?? e.constantValue(node.input[i])) : undefined;
        if (!v) fail(`its ${what} input must be a small constant`);
        return v!;
      },
      fail,
    };
  };

  // Forward: copy or lower every node.
  const rulesByNode = new Map<NodeProto, GradRule | undefined>();
  const savedByNode = new Map<NodeProto, Readonly<Record<string, string>>>();
  // The nodes the backward pass differentiates, in forward order (a fused lowering: its original node).
  const forwardNodes: NodeProto[] = [];
  for (const original of graph.node) {
    const rule = findRule(original.domain ?? '', original.op_type ?? '', opset);
    let saved: Record<string, string> | undefined;
    const lowerCtx: LowerContext = {
      ...baseContext(original),
      saveForBackward: (tensors) => {
        saved = tensors;
      },
      statistic: (variable, value) => {
        if (fed.has(variable)) statistics.set(variable, value);
      },
      dropoutMask: (shape, ratio) => {
        const name = e.fresh('dropout_mask');
        e.shapes.set(name, shape);
        masks.push({ name, shape, ratio });
        return name;
      },
    };
    const start = e.nodes.length;
    const lowered = !!(rule?.lower && rule.lower(lowerCtx));
    if (!lowered) e.nodes.push(original);
    const emitted = e.nodes.slice(start);
    for (const n of emitted) {
      rulesByNode.set(n, findRule(n.domain ?? '', n.op_type ?? '', opset));
      for (const o of n.output) if (o && !types.has(o)) types.set(o, n.op_type === 'MaxPool' && o === n.output[1] ? 'int64' : 'float32');
    }
    // A lowering that saved tensors for its rule's backward is differentiated as the original node.
    if (lowered && saved) {
      rulesByNode.set(original, rule);
      savedByNode.set(original, saved);
      forwardNodes.push(original);
    } else {
      forwardNodes.push(...emitted);
    }
  }

  // Which tensors depend on the parameters we differentiate.
  if (new Set(spec.wrt).size !== spec.wrt.length) throw new Error('buildTrainingGraph: duplicate parameter names');
  const requires = new Set<string>(spec.wrt);
  const isFloat = (name: string) => (types.get(name) ?? 'float32') === 'float32';
  const diffInputs = (node: NodeProto): number[] => {
    const rule = rulesByNode.get(node);
    const all = node.input.map((_, i) => i);
    if (!rule) return all;
    return rule.diffInputs === 'all' ? all : [...rule.diffInputs];
  };
  for (const node of forwardNodes) {
    const hit = diffInputs(node).some((i) => node.input[i] && requires.has(node.input[i]));
    if (hit) for (const o of node.output) if (o && isFloat(o)) requires.add(o);
  }

  // Losses and upstream gradients seed the backward pass.
  const contributions = new Map<string, string[]>();
  const contribute = (name: string, g: string) => {
    const list = contributions.get(name) ?? [];
    list.push(g);
    contributions.set(name, list);
  };
  const targets: FedInput[] = [];
  const lossParts: string[] = [];
  for (const [i, loss] of (spec.losses ?? []).entries()) {
    const z = loss.tensor;
    const zs = e.shape(z);
    if (zs.length !== 2) throw new HardenError(`${source}: loss tensor '${z}' must be [batch, classes], got [${zs}]`);
    const T = loss.temperature ?? 1;
    const w = loss.weight ?? 1;
    const q = `harden_targets_${i}`;
    e.shapes.set(q, zs);
    targets.push({ name: q, shape: zs });
    const scaled = T === 1 ? z : e.div(z, e.scalar(T));
    const logProbs = e.unary('LogSoftmax', scaled, { axis: 1 });
    const total = e.reduceSum(e.mul(q, logProbs), [0, 1], false);
    lossParts.push(e.mul(total, e.scalar((-w * T * T) / zs[0])));
    if (requires.has(z)) contribute(z, e.mul(e.sub(e.unary('Exp', logProbs), q), e.scalar((w * T) / zs[0])));
  }
  const upstream = new Map<string, FedInput>();
  for (const t of spec.upstream ?? []) {
    const name = `harden_upstream_${upstream.size}`;
    const shape = e.shape(t);
    e.shapes.set(name, shape);
    upstream.set(t, { name, shape });
    if (requires.has(t)) contribute(t, name);
  }

  // Backward, in reverse topological order.
  const gradientOf = (name: string): string | undefined => {
    const list = contributions.get(name);
    return list ? e.sum(list) : undefined;
  };
  for (const node of [...forwardNodes].reverse()) {
    const dy = node.output.map((o) => (o && requires.has(o) ? gradientOf(o) : undefined));
    if (dy.every((g) => !g)) continue;
    const allowed = new Set(diffInputs(node));
    const needs = node.input.map((name, i) => !!name && allowed.has(i) && requires.has(name));
    if (!needs.some(Boolean)) continue;
    const rule = rulesByNode.get(node);
    const ctx: BackwardContext = {
      ...baseContext(node),
      dy,
      needs,
      indexMap: (i) => indexMapOf(node, i, e, probe),
      saved: savedByNode.get(node),
    };
    if (!rule?.backward) ctx.fail('no gradient rule for this op');
    const grads = await rule!.backward!(ctx);
    grads.forEach((g, i) => {
      if (g && needs[i]) contribute(node.input[i], g);
    });
  }

  const gradients = new Map<string, string>();
  const outputs: ValueInfoProto[] = [];
  const floatOut = (name: string, shape: number[]) => outputs.push(floatInfo(name, shape));
  let loss: string | undefined;
  if (lossParts.length) {
    loss = 'harden_loss';
    e.op('Identity', [e.sum(lossParts)], {}, [loss], [[]]);
    floatOut(loss, []);
  }
  const tensors = [...new Set(spec.outputs ?? [])];
  for (const t of tensors) floatOut(t, e.shape(t));
  for (const p of spec.wrt) {
    const g = gradientOf(p) ?? e.zeros(e.shape(p));
    const name = `harden_grad_${gradients.size}`;
    e.op('Identity', [g], {}, [name], [e.shape(p)]);
    gradients.set(p, name);
    floatOut(name, e.shape(p));
  }
  const directions = new Map<string, FedInput>();
  const hessianVector = new Map<string, string>();
  if (spec.hessianVector) {
    for (const p of spec.wrt) {
      const d = { name: `harden_direction_${directions.size}`, shape: e.shape(p) };
      e.shapes.set(d.name, d.shape);
      directions.set(p, d);
    }
    const tangents = emitTangents(
      { e, opset, context: baseContext, isFloat },
      e.nodes.slice(),
      new Map([...directions].map(([p, d]) => [p, d.name])),
    );
    for (const p of spec.wrt) {
      const name = `harden_hvp_${hessianVector.size}`;
      e.op('Identity', [tangents.get(gradients.get(p)!) ?? e.zeros(e.shape(p))], {}, [name], [e.shape(p)]);
      hessianVector.set(p, name);
      floatOut(name, e.shape(p));
    }
  }
  for (const [variable, value] of statistics) {
    const name = `harden_stat_${outputs.length}`;
    e.op('Identity', [value], {}, [name], [e.shape(variable)]);
    statistics.set(variable, name);
    floatOut(name, e.shape(variable));
  }

  const inputs: ValueInfoProto[] = [floatInfo(spec.inputName, spec.inputShape)];
  for (const p of spec.fed) inputs.push(floatInfo(p, e.shape(p)));
  for (const t of targets) inputs.push(floatInfo(t.name, t.shape));
  for (const u of upstream.values()) inputs.push(floatInfo(u.name, u.shape));
  for (const m of masks) inputs.push(floatInfo(m.name, m.shape));
  for (const d of directions.values()) inputs.push(floatInfo(d.name, d.shape));
  const kept = [...inits].filter(([name]) => !fed.has(name)).map(([name, t]) => makeTensorProto(name, t as HostTensor));
  const proto = newModel({
    ir_version: Math.max(8, toNumber(model.proto.ir_version)),
    producer_name: 'harden',
    opset_import: [newOpsetId({ domain: '', version: opset }), ...contribDomains(e.nodes, model.proto)],
    graph: newGraph({ name: 'harden_training', node: e.nodes, input: inputs, output: outputs, initializer: [...kept, ...e.initializers] }),
  });
  return { proto: cloneModel(proto), opset, targets, upstream, masks, loss, gradients, statistics, tensors, directions, hessianVector };
}

/** Imports for the non-default domains the graph's nodes use (the model's own versions where it imports them). */
function contribDomains(nodes: readonly NodeProto[], model: ModelProto) {
  const domains = new Set(nodes.map((n) => n.domain ?? '').filter((d) => d && d !== 'ai.onnx'));
  return [...domains].map((domain) => newOpsetId({ domain, version: opsetOf(model, domain) || 1 }));
}

function floatInfo(name: string, shape: number[]): ValueInfoProto {
  return newValueInfo({ name, type: newTypeProto({ tensor_type: { elem_type: 1, shape: { dim: shape.map((d) => ({ dim_value: d })) } } }) });
}

/**
 * For a selection op (Slice, Gather, Pad, Resize nearest, Tile, ...): the flat input index each
 * output element copies, or −1 where it is a constant. Found by running the node on the numbers
 * 1..n (exact in float32 below 2^24) with its other inputs at their probed values.
 */
async function indexMapOf(node: NodeProto, dataInput: number, e: Emitter, probe: Probe): Promise<Int32Array> {
  const xShape = e.shape(node.input[dataInput]);
  const n = xShape.reduce((a, b) => a * b, 1);
  if (n >= 1 << 24) throw new HardenError(`node '${node.name}' (${node.op_type}): input too large for an index map (ort engine)`);
  const g = newGraph({ name: 'index_map', node: [], input: [floatInfo('x', xShape)], output: [newValueInfo({ name: 'y' })], initializer: [] });
  const inputs = node.input.map((name, i) => {
    if (!name) return '';
    if (i === dataInput) return 'x';
    const v = probe.values.get(name);
    const t = probe.types.get(name) ?? 'float32';
    if (!v) throw new HardenError(`node '${node.name}' (${node.op_type}): input '${name}' must be a small constant for its gradient (ort engine)`);
    const shape = probe.shapes.get(name)!;
    const host: HostTensor = t === 'int64'
      ? { dtype: 'int64', shape, data: BigInt64Array.from(v.map((x) => BigInt(x))) }
      : t === 'int32'
        ? { dtype: 'int32', shape, data: Int32Array.from(v) }
        : { dtype: 'float32', shape, data: Float32Array.from(v) };
    g.initializer.push(makeTensorProto(`c${i}`, host));
    return `c${i}`;
  });
  g.node.push(newNode({ ...node, input: inputs, output: ['y', ...node.output.slice(1).map(() => '')], name: 'select' }));
  const m = newModel({ ir_version: 8, opset_import: [newOpsetId({ domain: '', version: e.opset })], graph: g });
  const session = await ort.InferenceSession.create(encodeModel(m));
  try {
    const numbered = Float32Array.from({ length: n }, (_, i) => i + 1);
    const out = await session.run({ x: new ort.Tensor('float32', numbered, xShape) });
    const y = out.y.data as Float32Array;
    return Int32Array.from(y, (v) => Math.round(v) - 1);
  } finally {
    await session.release();
  }
}
