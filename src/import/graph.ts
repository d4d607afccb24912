import * as tf from '@tensorflow/tfjs-core';
import { HardenError, ExitCode } from '../errors.js';
import type { NodeProto, ValueInfoProto } from '../onnx/schema.js';
import { toNumber } from '../onnx/schema.js';
import { opsetOf, initializerMap, type OnnxModel } from '../onnx/model.js';
import { hostToFloat32, type HostTensor } from '../onnx/tensor.js';
import { Attributes } from './attributes.js';
import { resolveConverter, type Kernel, type NodeInfo, type RunContext } from './registry.js';
import { isFloatDtype, parameterRoles, type ParameterRole } from './roles.js';
import { DeviceValue, HostValue, toTensor, type Value } from './values.js';
import { hostValueFromTensor } from './host.js';
import './ops/index.js';

let graphCount = 0;

/** Float constants at most this large stay on the host so converters can read them at import. */
const HOST_FLOAT_LIMIT = 64;

export interface InputSpec {
  name: string;
  /** Declared dims; a string or -1 is symbolic (e.g. the batch). */
  shape: (number | string)[];
  dtype: string;
}

interface CompiledNode {
  proto: NodeProto;
  info: NodeInfo;
  kernel: Kernel;
}

export interface RunOptions {
  training?: boolean;
  /** Extra tensors to return besides the graph outputs (e.g. the feature tensor). */
  outputs?: string[];
  seed?: number;
  /**
   * Tensors to use instead of some variables (by initializer name): makes the graph a function
   * of explicit parameters, for higher-order gradients and simulated fine-tuning.
   */
  parameters?: Map<string, tf.Tensor>;
}

export interface RunResult {
  outputs: Map<string, tf.Tensor>;
  /** New running statistics computed in training mode, by variable name. */
  statistics: Map<string, tf.Tensor>;
}

/**
 * An ONNX graph imported as a tfjs program. Float initializers that feed weight slots become
 * `tf.Variable`s (trainable) or statistics variables (BN running mean/var, not trainable);
 * everything else becomes a constant. `run` evaluates the graph eagerly, so tfjs's tape
 * differentiates it; call it inside `tf.tidy` or a gradient function.
 */
export class ImportedGraph {
  readonly opset: number;
  readonly inputs: InputSpec[];
  readonly outputNames: string[];
  /** Learnable weights, by initializer name, in ONNX layout. */
  readonly variables = new Map<string, tf.Variable>();
  /** Which variables are running statistics rather than learnable weights. */
  readonly statisticNames = new Set<string>();
  private readonly hostConstants = new Map<string, HostValue>();
  private readonly deviceConstants = new Map<string, tf.Tensor>();
  private readonly nodes: CompiledNode[] = [];
  private readonly id = ++graphCount;

  constructor(readonly model: OnnxModel, readonly source: string = model.path ?? 'model') {
    const graph = model.proto.graph;
    if (!graph) throw new HardenError(`${source}: model has no graph`);
    this.opset = opsetOf(model.proto, '');
    const inits = initializerMap(model.proto, model.baseDir);
    this.inputs = graph.input
      .filter((i: ValueInfoProto) => !inits.has(i.name ?? ''))
      .map((i: ValueInfoProto) => inputSpec(i));
    this.outputNames = graph.output.map((o: ValueInfoProto) => o.name ?? '');

    try {
      const roles = this.assignRoles(graph.node, inits);
      this.createParameters(inits, roles);
      this.compile(graph.node);
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** Decide for each float initializer whether it is a weight, a statistic or a constant. */
  private assignRoles(nodes: NodeProto[], inits: Map<string, HostTensor>): Map<string, ParameterRole> {
    return parameterRoles(nodes, inits, (n) => this.opsetFor(n), (n) => this.where(n));
  }

  private createParameters(inits: Map<string, HostTensor>, roles: Map<string, ParameterRole>): void {
    for (const [name, h] of inits) {
      const role = roles.get(name);
      if (isFloatDtype(h.dtype)) {
        const data = hostToFloat32(h);
        const bad = data.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) {
          throw new HardenError(`${this.source}: initializer '${name}' holds ${data[bad]} at element ${bad}; weights must be finite`);
        }
        if (role) {
          // tfjs variable names are global: prefix them so several graphs of one model can coexist.
          // tidy frees the initial tensor (the variable keeps its own reference to the data).
          this.variables.set(name, tf.tidy(() => tf.variable(tf.tensor(data, h.shape, 'float32'), role === 'weight', `g${this.id}/${name}`)));
          if (role === 'statistic') this.statisticNames.add(name);
        } else if (data.length <= HOST_FLOAT_LIMIT) {
          this.hostConstants.set(name, new HostValue('float32', [...h.shape], Array.from(data)));
        } else {
          this.deviceConstants.set(name, tf.keep(tf.tensor(data, h.shape, 'float32')));
        }
      } else {
        this.hostConstants.set(name, hostValueFromTensor(h));
      }
    }
  }

  private compile(nodes: NodeProto[]): void {
    const foldCtx: RunContext = { training: false, updateStatistic: () => {}, nextSeed: () => 0 };
    for (const node of nodes) {
      const opset = this.opsetFor(node);
      const where = this.where(node);
      const fail = (what: string): never => {
        throw new HardenError(`${where}: ${what}`, ExitCode.Unsupported);
      };
      const attrs = new Attributes(node.attribute, fail);
      const info: NodeInfo = {
        name: node.name ?? '',
        opType: (node.op_type ?? ''),
        domain: node.domain ?? '',
        opset,
        inputs: [...node.input],
        outputs: [...node.output],
        attrs,
        constInputs: node.input.map((n: string) => (n ? this.hostConstants.get(n) : undefined)),
        variableInputs: node.input.map((n: string) => (n && this.variables.has(n) ? n : undefined)),
        fail,
      };
      const converter = resolveConverter(info.domain, (node.op_type ?? ''), opset, where);
      const kernel = converter.convert(info);
      const unknown = attrs.names().filter((a) => !attrs.used.has(a));
      if (unknown.length) fail(`attribute${unknown.length > 1 ? 's' : ''} ${unknown.map((a) => `'${a}'`).join(', ')} not supported`);

      // Nodes whose inputs are all known at import (Constant, shape arithmetic on constants) are folded.
      const allConst = node.input.every((n: string, i: number) => !n || info.constInputs[i]);
      if (allConst && !node.input.some((n: string) => n && this.variables.has(n))) {
        let folded: Value[] = [];
        tf.tidy(() => {
          folded = kernel(info.constInputs, foldCtx);
        });
        if (folded.every((v) => v.kind === 'host')) {
          folded.forEach((v, i) => this.hostConstants.set(node.output[i], v as HostValue));
          continue;
        }
      }
      this.nodes.push({ proto: node, info, kernel });
    }
  }

  private opsetFor(node: NodeProto): number {
    return opsetOf(this.model.proto, node.domain ?? '');
  }

  private where(node: NodeProto): string {
    return `${this.source}: node '${node.name || node.output[0]}' (${(node.op_type ?? '')}, opset ${this.opsetFor(node)})`;
  }

  /** Check a feed against the declared input; wrong rank or fixed dims are user errors. */
  private checkFeed(spec: InputSpec, t: tf.Tensor): void {
    const ok = t.rank === spec.shape.length && spec.shape.every((d, i) => typeof d !== 'number' || d <= 0 || d === t.shape[i]);
    if (!ok) {
      const want = spec.shape.map((d) => (typeof d === 'number' && d > 0 ? d : typeof d === 'string' && d ? d : '?'));
      throw new HardenError(`${this.source}: input '${spec.name}' expects shape [${want.join(', ')}], got [${t.shape.join(', ')}]`);
    }
  }

  /** Evaluate the graph. Tensors returned are in ONNX layout; the caller owns their lifetime (use tf.tidy). */
  run(feeds: Record<string, tf.Tensor>, opts: RunOptions = {}): RunResult {
    const env = new Map<string, Value>();
    for (const spec of this.inputs) {
      const t = feeds[spec.name];
      if (!t) throw new HardenError(`${this.source}: missing input '${spec.name}'`);
      this.checkFeed(spec, t);
      env.set(spec.name, new DeviceValue(t));
    }
    for (const [name, v] of this.hostConstants) env.set(name, v);
    for (const [name, t] of this.deviceConstants) env.set(name, new DeviceValue(t));
    for (const [name, v] of this.variables) env.set(name, new DeviceValue(opts.parameters?.get(name) ?? v));

    const statistics = new Map<string, tf.Tensor>();
    let seed = opts.seed ?? 0;
    const ctx: RunContext = {
      training: opts.training ?? false,
      updateStatistic: (name, value) => statistics.set(name, value),
      nextSeed: () => seed++,
    };
    for (const { proto, kernel } of this.nodes) {
      const ins = proto.input.map((n: string) => (n ? env.get(n) : undefined));
      const outs = kernel(ins, ctx);
      proto.output.forEach((name: string, i: number) => {
        if (name && outs[i]) env.set(name, outs[i]);
      });
    }
    const outputs = new Map<string, tf.Tensor>();
    for (const name of [...this.outputNames, ...(opts.outputs ?? [])]) {
      const v = env.get(name);
      if (!v) throw new HardenError(`${this.source}: tensor '${name}' is not produced by the graph`);
      outputs.set(name, toTensor(v));
    }
    return { outputs, statistics };
  }

  /** Current values of all variables (weights and statistics) as float32 arrays, by initializer name. */
  readWeights(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.variables) out.set(name, v.dataSync() as Float32Array);
    return out;
  }

  /** Assign the variables named in `weights` (checkpoints: names the graph lacks are ignored). */
  writeWeights(weights: Map<string, Float32Array>): void {
    for (const [name, data] of weights) {
      const v = this.variables.get(name);
      if (v) tf.tidy(() => v.assign(tf.tensor(data, v.shape, 'float32')));
    }
  }

  trainableVariables(): tf.Variable[] {
    return [...this.variables.entries()].filter(([n]) => !this.statisticNames.has(n)).map(([, v]) => v);
  }

  dispose(): void {
    for (const v of this.variables.values()) v.dispose();
    for (const t of this.deviceConstants.values()) t.dispose();
    this.variables.clear();
    this.deviceConstants.clear();
  }
}


function inputSpec(i: ValueInfoProto): InputSpec {
  const tt = i.type?.tensor_type;
  const dims = tt?.shape?.dim ?? [];
  return {
    name: i.name ?? '',
    shape: dims.map((d) => (d.value === 'dim_value' ? toNumber(d.dim_value) : d.dim_param || -1)),
    dtype: String(tt?.elem_type ?? 1),
  };
}
