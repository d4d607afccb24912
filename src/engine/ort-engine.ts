/**
 * The ort engine: training graphs generated from the ONNX model (src/engine/ort/autodiff.ts)
 * run by onnxruntime-node. Parameters, running statistics and optimizer state live in float32
 * arrays on the host and are fed every run; sessions are created once per (graph, input
 * shape, mode) and reused.
 */
import * as ort from 'onnxruntime-node';
import { HardenError } from '../errors.js';
import { encodeModel, initializerMap, type OnnxModel } from '../onnx/model.js';
import { hostToFloat32, type HostTensor } from '../onnx/tensor.js';
import { modelParameterRoles } from '../import/roles.js';
import { Random } from '../util/random.js';
import { meanNegEntropy, softmaxRows } from '../util/softmax.js';
import { buildTrainingGraph, type LossSpec, type TrainingGraph } from './ort/autodiff.js';
import { nchwcBlockSize } from './ort/nchwc.js';
import { HostOptimizer } from './host-optimizer.js';
import type { NamedArrays } from './optimizer-state.js';
import type { LossAndGradients, OptimizerSpec, TrainableGraph } from './trainable.js';
import { currentOrtProvider, ortThreads } from '../verify/ort.js';
import { crossEntropyLosses } from '../verify/mia.js';

/** What one run of a training graph computes. */
export interface GraphRequest {
  training: boolean;
  /** Parameters to differentiate (default none). */
  wrt?: readonly string[];
  /** Losses on [N, K] tensors with their target distributions (rows summing to 1). */
  losses?: readonly (LossSpec & { targets: Float32Array })[];
  /** Upstream gradients fed for tensors (custom losses computed elsewhere). */
  upstream?: Map<string, Float32Array>;
  /** Extra tensors to return. */
  outputs?: readonly string[];
  /** Values to use instead of the current parameters (simulated steps). */
  override?: Map<string, Float32Array>;
  /** A direction v over the `wrt` parameters: the run also returns H·v of the loss (exact, forward over reverse). */
  direction?: Map<string, Float32Array>;
}

export interface GraphResult {
  loss?: number;
  tensors: Map<string, HostTensor>;
  gradients: Map<string, Float32Array>;
  statistics: Map<string, Float32Array>;
  /** H·v by parameter, with `direction`. */
  hessianVector: Map<string, Float32Array>;
}

interface Compiled {
  graph: TrainingGraph;
  session: ort.InferenceSession;
}

export interface OrtEngineOptions {
  /** onnxruntime intra-op threads (default: ortThreads(), the machine's cores unless set). */
  threads?: number;
}

/** One-hot target distributions [N, classes] for integer labels (the training graph's loss targets). */
export function oneHotTargets(labels: Int32Array, classes: number, source = 'model'): Float32Array {
  const q = new Float32Array(labels.length * classes);
  labels.forEach((y, i) => {
    if (!(y >= 0 && y < classes)) throw new HardenError(`${source}: label ${y} is outside the model's ${classes} classes`);
    q[i * classes + y] = 1;
  });
  return q;
}

/** into[name] += scale·add[name] for every gradient in `add` (a copy where `into` has none). */
export function accumulateGradients(into: Map<string, Float32Array>, add: Map<string, Float32Array>, scale = 1): void {
  for (const [name, g] of add) {
    const target = into.get(name);
    if (!target) into.set(name, Float32Array.from(g, (v) => v * scale));
    else for (let i = 0; i < g.length; i++) target[i] += scale * g[i];
  }
}

/** Scales `grads` in place so their global L2 norm is at most `maxNorm`; returns the norm before. */
export function clipGlobalNorm(grads: Map<string, Float32Array>, maxNorm: number): number {
  let sum = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) sum += g[i]! * g[i]!;
  const norm = Math.sqrt(sum);
  if (norm > maxNorm) for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i]! *= maxNorm / norm;
  return norm;
}

export class OrtTrainable implements TrainableGraph {
  readonly engine = 'ort' as const;
  readonly inputName: string;
  readonly outputName: string;
  readonly parameterNames: readonly string[];
  readonly statisticNames: ReadonlySet<string>;
  readonly inputShape: (number | string)[];
  private readonly values = new Map<string, Float32Array>();
  private readonly shapes = new Map<string, number[]>();
  private readonly compiled = new Map<string, Promise<Compiled>>();
  private optimizer = new HostOptimizer({ kind: 'sgd', learningRate: 0.01 });
  private trainable: Set<string> | undefined;
  private masks = new Map<string, Uint8Array>();
  private readonly threads: number;
  seed = 0;

  constructor(readonly model: OnnxModel, readonly source: string = model.path ?? 'model', opts: OrtEngineOptions = {}) {
    const graph = model.proto.graph!;
    const inits = initializerMap(model.proto, model.baseDir);
    const inputs = graph.input.filter((i) => !inits.has(i.name ?? ''));
    if (inputs.length !== 1) throw new HardenError(`${source}: expected one image input, found ${inputs.length}`);
    this.inputName = inputs[0].name ?? '';
    this.inputShape = (inputs[0].type?.tensor_type?.shape?.dim ?? []).map((d) => (d.value === 'dim_value' ? Number(d.dim_value) : d.dim_param || -1));
    this.outputName = graph.output[0].name ?? '';
    const roles = modelParameterRoles(model.proto, inits, source);
    const names: string[] = [];
    const stats = new Set<string>();
    for (const [name, role] of roles) {
      const h = inits.get(name)!;
      const data = hostToFloat32(h);
      const bad = data.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new HardenError(`${source}: initializer '${name}' holds ${data[bad]} at element ${bad}; weights must be finite`);
      this.values.set(name, Float32Array.from(data));
      this.shapes.set(name, h.shape.slice());
      if (role === 'statistic') stats.add(name);
      else names.push(name);
    }
    // Graph order, as the tfjs engine lists them.
    const order = new Map([...inits.keys()].map((n, i) => [n, i]));
    this.parameterNames = names.sort((a, b) => order.get(a)! - order.get(b)!);
    this.statisticNames = stats;
    this.threads = opts.threads ?? ortThreads();
  }

  private checkInput(x: HostTensor): number[] {
    const ok = x.shape.length === this.inputShape.length && this.inputShape.every((d, i) => typeof d !== 'number' || d <= 0 || d === x.shape[i]);
    if (!ok) {
      const want = this.inputShape.map((d) => (typeof d === 'number' && d > 0 ? d : typeof d === 'string' && d ? d : '?'));
      throw new HardenError(`${this.source}: input '${this.inputName}' expects shape [${want.join(', ')}], got [${x.shape.join(', ')}]`);
    }
    return x.shape;
  }

  private compile(shape: number[], req: GraphRequest): Promise<Compiled> {
    const losses = (req.losses ?? []).map(({ tensor, temperature, weight }) => ({ tensor, temperature, weight }));
    const spec = {
      inputName: this.inputName,
      inputShape: shape,
      training: req.training,
      fed: [...this.values.keys()],
      wrt: req.wrt ?? [],
      losses,
      upstream: [...(req.upstream?.keys() ?? [])],
      outputs: req.outputs ?? [],
      hessianVector: !!req.direction,
    };
    const key = JSON.stringify(spec);
    let c = this.compiled.get(key);
    if (!c) {
      c = (async () => {
        const provider = currentOrtProvider();
        // NCHWc kernels are the CPU provider's; under CUDA they would run on the host.
        const nchwcBlock = provider === 'cpu' ? await nchwcBlockSize() : 0;
        const graph = await buildTrainingGraph(this.model, { ...spec, nchwcBlock }, this.source);
        const session = await ort.InferenceSession.create(encodeModel(graph.proto), {
          executionProviders: [provider],
          intraOpNumThreads: this.threads,
          graphOptimizationLevel: 'all',
          // Inference-mode graphs serve the methods that alternate several graphs per step (GC's
          // gradient and Hessian-vector graphs, distillation's teacher): a finished run's pool
          // threads spin and take the cores from the next session's. Without spinning a LeNet-5
          // GC step took 68–77 ms instead of 101–123 (`npm run bench`, ort engine). Training-mode
          // graphs run alone, one per step, and keep onnxruntime's default.
          ...(spec.training ? {} : { extra: { session: { intra_op: { allow_spinning: '0' } } } }),
        });
        return { graph, session };
      })();
      c.catch(() => this.compiled.delete(key));
      this.compiled.set(key, c);
    }
    return c;
  }

  /** The training graph a request runs (for export and inspection). */
  async trainingGraph(shape: number[], req: GraphRequest): Promise<TrainingGraph> {
    return (await this.compile(shape, req)).graph;
  }

  async run(x: HostTensor, req: GraphRequest): Promise<GraphResult> {
    const shape = this.checkInput(x);
    const { graph, session } = await this.compile(shape, req);
    const feeds: Record<string, ort.Tensor> = { [this.inputName]: new ort.Tensor('float32', x.data as Float32Array, shape) };
    for (const [name, v] of this.values) feeds[name] = new ort.Tensor('float32', req.override?.get(name) ?? v, this.shapes.get(name)!);
    (req.losses ?? []).forEach((l, i) => {
      const t = graph.targets[i];
      feeds[t.name] = new ort.Tensor('float32', l.targets, t.shape);
    });
    for (const [tensor, fed] of graph.upstream) feeds[fed.name] = new ort.Tensor('float32', req.upstream!.get(tensor)!, fed.shape);
    for (const [p, fed] of graph.directions) {
      const v = req.direction!.get(p);
      if (!v) throw new Error(`OrtTrainable.run: the direction has no entry for '${p}'`);
      feeds[fed.name] = new ort.Tensor('float32', v, fed.shape);
    }
    if (graph.masks.length) {
      const rng = new Random(this.seed++);
      for (const m of graph.masks) {
        const n = m.shape.reduce((a, b) => a * b, 1);
        const keep = 1 / (1 - m.ratio);
        feeds[m.name] = new ort.Tensor('float32', Float32Array.from({ length: n }, () => (rng.next() < m.ratio ? 0 : keep)), m.shape);
      }
    }
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      out = await session.run(feeds);
    } catch (e) {
      throw new HardenError(`${this.source}: onnxruntime failed to run the training graph: ${String((e as Error).message).split('\n')[0]}`);
    }
    const read = (name: string) => (out[name] as ort.Tensor).data as Float32Array;
    const result: GraphResult = { tensors: new Map(), gradients: new Map(), statistics: new Map(), hessianVector: new Map() };
    if (graph.loss) result.loss = read(graph.loss)[0];
    for (const t of graph.tensors) result.tensors.set(t, { dtype: 'float32', shape: [...(out[t] as ort.Tensor).dims], data: read(t) });
    for (const [p, name] of graph.gradients) result.gradients.set(p, read(name));
    for (const [s, name] of graph.statistics) result.statistics.set(s, read(name));
    for (const [p, name] of graph.hessianVector) result.hessianVector.set(p, read(name));
    return result;
  }

  private classCount?: number;

  /** The logits' class count (the same for every batch shape: read once from a forward graph). */
  private async classes(x: HostTensor): Promise<number> {
    if (this.classCount !== undefined) return this.classCount;
    const { graph } = await this.compile(this.checkInput(x), { training: false, outputs: [this.outputName] });
    const shape = graph.proto.graph!.output.find((o) => o.name === this.outputName)!.type!.tensor_type!.shape!.dim;
    if (shape.length !== 2) throw new HardenError(`${this.source}: output '${this.outputName}' must be [batch, classes], got rank ${shape.length}`);
    return (this.classCount = Number(shape[1].dim_value));
  }

  async forward(x: HostTensor, opts: { outputs?: string[]; training?: boolean } = {}): Promise<Map<string, HostTensor>> {
    const r = await this.run(x, { training: opts.training ?? false, outputs: [this.outputName, ...(opts.outputs ?? [])] });
    return r.tensors;
  }

  /** Cross-entropy of the logits and its gradients, in inference or training mode, optionally at other weights. */
  async crossEntropyGradients(x: HostTensor, labels: Int32Array, opts: { training?: boolean; wrt?: readonly string[]; override?: Map<string, Float32Array> } = {}): Promise<GraphResult> {
    const targets = oneHotTargets(labels, await this.classes(x), this.source);
    return this.run(x, { training: opts.training ?? false, wrt: opts.wrt ?? this.parameterNames, losses: [{ tensor: this.outputName, targets }], override: opts.override });
  }

  /**
   * T²·KL(softmax(z₀/T) ‖ softmax(z/T)) of the logits against the same graph at `teacher` weights,
   * and its gradients (inference mode). The graph's loss is T²·CE to the teacher's probabilities;
   * the teacher's entropy term makes it the KL.
   */
  async distillationGradients(x: HostTensor, teacher: Map<string, Float32Array>, opts: { wrt: readonly string[]; temperature: number }): Promise<GraphResult> {
    const T = opts.temperature;
    const logits = (await this.run(x, { training: false, outputs: [this.outputName], override: teacher })).tensors.get(this.outputName)!;
    const q = softmaxRows(logits.data as Float32Array, logits.shape[1]!, T);
    const r = await this.run(x, { training: false, wrt: opts.wrt, losses: [{ tensor: this.outputName, targets: q, temperature: T }] });
    return { ...r, loss: r.loss! + T * T * meanNegEntropy(q, logits.shape[0]!) };
  }

  async lossAndGradients(x: HostTensor, labels: Int32Array): Promise<LossAndGradients> {
    const r = await this.crossEntropyGradients(x, labels);
    return { loss: r.loss!, gradients: r.gradients };
  }

  /**
   * H·v of the cross-entropy (inference mode) over the parameters in `v`, exact: the tangent of
   * the generated gradient graph in direction v (forward over reverse, src/engine/ort/tangents.ts).
   */
  async hessianVectorProduct(x: HostTensor, labels: Int32Array, v: Map<string, Float32Array>): Promise<Map<string, Float32Array>> {
    const targets = oneHotTargets(labels, await this.classes(x), this.source);
    const r = await this.run(x, { training: false, wrt: [...v.keys()], losses: [{ tensor: this.outputName, targets }], direction: v });
    return r.hessianVector;
  }

  setOptimizer(spec: OptimizerSpec): void {
    this.optimizer = new HostOptimizer(spec);
  }

  setLearningRate(learningRate: number): void {
    this.optimizer.spec = { ...this.optimizer.spec, learningRate };
  }

  private trainableNames(): string[] {
    return this.trainable ? this.parameterNames.filter((n) => this.trainable!.has(n)) : [...this.parameterNames];
  }

  async trainStep(x: HostTensor, labels: Int32Array, opts: { training?: boolean } = {}): Promise<number> {
    const r = await this.crossEntropyGradients(x, labels, { training: opts.training ?? true, wrt: this.trainableNames() });
    for (const [name, data] of r.statistics) this.values.get(name)!.set(data);
    this.optimizer.apply(this.values, r.gradients);
    this.applyMasks();
    return r.loss!;
  }

  async inputGradient(x: HostTensor, labels: Int32Array): Promise<{ losses: Float32Array; gradient: Float32Array }> {
    const classes = await this.classes(x);
    const rows = labels.length;
    // The graph's loss is the mean over rows: weight `rows` makes its gradient the sum's.
    const r = await this.run(x, { training: false, wrt: [this.inputName], outputs: [this.outputName], losses: [{ tensor: this.outputName, targets: oneHotTargets(labels, classes, this.source), weight: rows }] });
    const logits = r.tensors.get(this.outputName)!;
    return { losses: Float32Array.from(crossEntropyLosses(logits.data as Float32Array, labels, classes)), gradient: r.gradients.get(this.inputName)! };
  }

  /** Apply an optimizer step with gradients computed elsewhere (custom losses). */
  applyGradients(gradients: Map<string, Float32Array>): void {
    this.optimizer.apply(this.values, gradients);
    this.applyMasks();
  }

  setTrainable(names: readonly string[] | 'all'): void {
    if (names === 'all') {
      this.trainable = undefined;
      return;
    }
    const unknown = names.filter((n) => !this.parameterNames.includes(n));
    if (unknown.length) throw new HardenError(`${this.source}: no learnable parameter named ${unknown.map((n) => `'${n}'`).join(', ')}`);
    this.trainable = new Set(names);
  }

  setMasks(masks: Map<string, Uint8Array> | undefined): void {
    this.masks = new Map();
    for (const [name, mask] of masks ?? []) {
      const v = this.values.get(name);
      if (!v || !this.parameterNames.includes(name)) throw new HardenError(`${this.source}: no learnable parameter named '${name}' to mask`);
      if (mask.length !== v.length) throw new HardenError(`${this.source}: mask of '${name}' has ${mask.length} entries for ${v.length} weights`);
      this.masks.set(name, mask);
    }
    this.applyMasks();
  }

  private applyMasks(): void {
    for (const [name, mask] of this.masks) {
      const v = this.values.get(name)!;
      for (let i = 0; i < v.length; i++) if (!mask[i]) v[i] = 0;
    }
  }

  async optimizerState(): Promise<NamedArrays> {
    return this.optimizer.state();
  }

  async setOptimizerState(state: NamedArrays): Promise<void> {
    this.optimizer.setState(state);
  }

  weights(): Map<string, Float32Array> {
    return new Map([...this.values].map(([k, v]) => [k, v.slice()]));
  }

  setWeights(weights: Map<string, Float32Array>): void {
    for (const [name, data] of weights) {
      const v = this.values.get(name);
      if (!v) throw new HardenError(`${this.source}: no variable named '${name}'`);
      if (v.length !== data.length) throw new HardenError(`${this.source}: '${name}' needs ${v.length} values, got ${data.length}`);
      v.set(data);
    }
  }

  dispose(): void {
    for (const c of this.compiled.values()) c.then((x) => x.session.release()).catch(() => {});
    this.compiled.clear();
  }
}
