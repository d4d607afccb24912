import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor } from '../onnx/tensor.js';
import type { OnnxModel } from '../onnx/model.js';
import { HardenError } from '../errors.js';
import { ImportedGraph } from '../import/graph.js';
import type { LossAndGradients, OptimizerSpec, TrainableGraph } from './trainable.js';
import { readOptimizerState, restoreOptimizerState, type NamedArrays } from './optimizer-state.js';

/** Mean softmax cross-entropy written with plain ops, so it is differentiable to second order. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const logProbs = tf.sub(logits, tf.logSumExp(logits, 1, true));
  const picked = tf.sum(tf.mul(logProbs, tf.oneHot(labels, logits.shape[1])), 1);
  return tf.neg(tf.mean(picked)) as tf.Scalar;
}

export function makeOptimizer(spec: OptimizerSpec): tf.Optimizer {
  switch (spec.kind) {
    case 'sgd':
      return tf.train.sgd(spec.learningRate);
    case 'momentum':
      return tf.train.momentum(spec.learningRate, spec.momentum ?? 0.9);
    case 'adam':
      return tf.train.adam(spec.learningRate);
  }
}

/** The tfjs engine: the imported graph evaluated eagerly, differentiated by tfjs's tape. */
export class TfjsTrainable implements TrainableGraph {
  readonly engine = 'tfjs' as const;
  readonly graph: ImportedGraph;
  readonly inputName: string;
  readonly outputName: string;
  readonly parameterNames: readonly string[];
  private optimizer?: tf.Optimizer;
  private optimizerSpec: OptimizerSpec = { kind: 'sgd', learningRate: 0.01 };
  private trainable: Set<string> | undefined;
  private masks = new Map<string, tf.Tensor>();
  seed = 0;

  constructor(model: OnnxModel, source?: string) {
    this.graph = new ImportedGraph(model, source);
    if (this.graph.inputs.length !== 1) throw new HardenError(`${this.graph.source}: expected one image input, found ${this.graph.inputs.length}`);
    this.inputName = this.graph.inputs[0].name;
    this.outputName = this.graph.outputNames[0];
    this.parameterNames = [...this.graph.variables.keys()].filter((n) => !this.graph.statisticNames.has(n));
  }

  private feed(x: HostTensor): Record<string, tf.Tensor> {
    return { [this.inputName]: tf.tensor(x.data as Float32Array, x.shape, 'float32') };
  }

  async forward(x: HostTensor, opts: { outputs?: string[]; training?: boolean } = {}): Promise<Map<string, HostTensor>> {
    const tensors = tf.tidy(() => {
      const { outputs } = this.graph.run(this.feed(x), { training: opts.training, outputs: opts.outputs, seed: this.seed });
      return [...outputs.entries()].map(([k, t]) => [k, t.toFloat()] as const);
    });
    const result = new Map<string, HostTensor>();
    for (const [k, t] of tensors) {
      result.set(k, { dtype: 'float32', shape: [...t.shape], data: (await t.data()) as Float32Array });
      t.dispose();
    }
    return result;
  }

  /** Loss of the graph in training or inference mode; new BN statistics are returned kept. */
  private lossFn(x: HostTensor, labels: Int32Array, training: boolean, stats: Map<string, tf.Tensor>): () => tf.Scalar {
    return () => {
      const { outputs, statistics } = this.graph.run(this.feed(x), { training, seed: this.seed++ });
      for (const [k, t] of statistics) stats.set(k, tf.keep(t));
      const logits = outputs.get(this.outputName)!;
      if (logits.rank !== 2) throw new HardenError(`${this.graph.source}: output '${this.outputName}' must be [batch, classes], got [${logits.shape}]`);
      return crossEntropy(logits as tf.Tensor2D, tf.tensor1d(labels, 'int32'));
    };
  }

  async lossAndGradients(x: HostTensor, labels: Int32Array): Promise<LossAndGradients> {
    const stats = new Map<string, tf.Tensor>();
    const { value, grads } = tf.variableGrads(this.lossFn(x, labels, false, stats), this.graph.trainableVariables());
    stats.forEach((t) => t.dispose());
    const gradients = new Map<string, Float32Array>();
    for (const name of this.parameterNames) {
      const g = grads[this.graph.variables.get(name)!.name];
      gradients.set(name, g ? ((await g.data()) as Float32Array) : new Float32Array(this.graph.variables.get(name)!.size));
    }
    const loss = (await value.data())[0];
    value.dispose();
    Object.values(grads).forEach((g) => g.dispose());
    return { loss, gradients };
  }

  async inputGradient(x: HostTensor, labels: Int32Array): Promise<{ losses: Float32Array; gradient: Float32Array }> {
    const [losses, gradient] = tf.tidy(() => {
      let rows: tf.Tensor1D | undefined;
      // One forward pass: the per-row losses are kept from inside the differentiated function.
      const summed = (input: tf.Tensor): tf.Scalar => {
        const logits = this.graph.run({ [this.inputName]: input }).outputs.get(this.outputName)! as tf.Tensor2D;
        const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), logits.shape[1]);
        rows = tf.keep(tf.sub(tf.squeeze(tf.logSumExp(logits, 1, true), [1]), tf.sum(tf.mul(logits, onehot), 1)) as tf.Tensor1D);
        return tf.sum(rows) as tf.Scalar;
      };
      const gradient = tf.grad(summed)(tf.tensor(x.data as Float32Array, x.shape, 'float32'));
      return [rows!, gradient];
    });
    const out = { losses: Float32Array.from((await losses.data()) as Float32Array), gradient: Float32Array.from((await gradient.data()) as Float32Array) };
    tf.dispose([losses, gradient]);
    return out;
  }

  setOptimizer(spec: OptimizerSpec): void {
    this.optimizer?.dispose();
    this.optimizerSpec = spec;
    this.optimizer = makeOptimizer(spec);
  }

  async trainStep(x: HostTensor, labels: Int32Array, opts: { training?: boolean } = {}): Promise<number> {
    this.optimizer ??= makeOptimizer(this.optimizerSpec);
    const stats = new Map<string, tf.Tensor>();
    const vars = this.trainableVariables();
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(this.lossFn(x, labels, opts.training ?? true, stats), vars);
      const wd = this.optimizerSpec.weightDecay ?? 0;
      if (wd > 0) for (const v of vars) if (grads[v.name]) grads[v.name] = tf.add(grads[v.name], tf.mul(v, wd));
      this.optimizer!.applyGradients(grads);
      return value;
    });
    for (const [name, t] of stats) {
      this.graph.variables.get(name)!.assign(t);
      t.dispose();
    }
    this.applyMasks();
    const value = (await loss.data())[0];
    loss.dispose();
    return value;
  }

  private trainableVariables(): tf.Variable[] {
    const names = this.trainable ? this.parameterNames.filter((n) => this.trainable!.has(n)) : this.parameterNames;
    return names.map((n) => this.graph.variables.get(n)!);
  }

  setTrainable(names: readonly string[] | 'all'): void {
    if (names === 'all') {
      this.trainable = undefined;
      return;
    }
    const unknown = names.filter((n) => !this.parameterNames.includes(n));
    if (unknown.length) throw new HardenError(`${this.graph.source}: no learnable parameter named ${unknown.map((n) => `'${n}'`).join(', ')}`);
    this.trainable = new Set(names);
  }

  setMasks(masks: Map<string, Uint8Array> | undefined): void {
    tf.dispose([...this.masks.values()]);
    this.masks.clear();
    for (const [name, mask] of masks ?? []) {
      const v = this.graph.variables.get(name);
      if (!v || !this.parameterNames.includes(name)) throw new HardenError(`${this.graph.source}: no learnable parameter named '${name}' to mask`);
      if (mask.length !== v.size) throw new HardenError(`${this.graph.source}: mask of '${name}' has ${mask.length} entries for ${v.size} weights`);
      this.masks.set(name, tf.tensor(Float32Array.from(mask), v.shape, 'float32'));
    }
    this.applyMasks();
  }

  private applyMasks(): void {
    for (const [name, mask] of this.masks) {
      const v = this.graph.variables.get(name)!;
      // + 0 turns the −0 of negative weights times 0 into +0: pruned weights are plain zeros.
      tf.tidy(() => v.assign(tf.add(tf.mul(v, mask), 0)));
    }
  }

  setLearningRate(learningRate: number): void {
    this.optimizerSpec = { ...this.optimizerSpec, learningRate };
    if (!this.optimizer) return;
    // tfjs optimizers read `learningRate` on every step; only SGD/momentum expose a setter.
    (this.optimizer as unknown as { learningRate: number }).learningRate = learningRate;
    const sgd = this.optimizer as unknown as { setLearningRate?: (lr: number) => void };
    if (typeof sgd.setLearningRate === 'function') sgd.setLearningRate(learningRate);
  }

  async optimizerState(): Promise<NamedArrays> {
    return this.optimizer ? readOptimizerState(this.optimizer, this.graph) : new Map();
  }

  async setOptimizerState(state: NamedArrays): Promise<void> {
    this.optimizer ??= makeOptimizer(this.optimizerSpec);
    await restoreOptimizerState(this.optimizer, this.graph, undefined, state);
  }

  weights(): Map<string, Float32Array> {
    return this.graph.readWeights();
  }

  setWeights(weights: Map<string, Float32Array>): void {
    for (const [name, data] of weights) {
      const v = this.graph.variables.get(name);
      if (!v) throw new HardenError(`${this.graph.source}: no variable named '${name}'`);
      if (v.size !== data.length) throw new HardenError(`${this.graph.source}: '${name}' needs ${v.size} values, got ${data.length}`);
      tf.tidy(() => v.assign(tf.tensor(data, v.shape, 'float32')));
    }
  }

  dispose(): void {
    this.setMasks(undefined);
    this.optimizer?.dispose();
    this.graph.dispose();
  }
}
