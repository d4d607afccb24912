/**
 * The source head H_s used by disposal: a linear classifier on the transfer-learned model's
 * backbone features (the input of its final classifier layer). Taken from a source model's
 * classifier initializers when one is given (its feature size must match), otherwise fitted as a
 * linear probe (softmax regression, Adam, a few epochs) on the frozen features of the forget data.
 *
 * Tensors use tfjs; call initBackend() first. The caller owns the returned head (dispose()).
 */
import * as tf from '@tensorflow/tfjs-core';
import { HardenError } from '../errors.js';
import type { Dataset } from '../data/types.js';
import { epochOrder } from '../data/loader.js';
import { crossEntropy } from '../engine/tfjs-engine.js';
import type { ImportedGraph } from '../import/graph.js';
import { findClassifierHead, type ClassifierHead } from '../import/head.js';
import { initializerMap, type OnnxModel } from '../onnx/model.js';
import { toNumber, type ModelProto } from '../onnx/schema.js';
import { hostToFloat32 } from '../onnx/tensor.js';

export interface SourceHead {
  /** [features, classes]. */
  weight: tf.Tensor2D;
  /** [classes]. */
  bias: tf.Tensor1D;
  featureSize: number;
  classes: number;
  /** Where it came from. */
  origin: 'source-model' | 'probe';
  /** features ([N, F], or anything that flattens to it) → logits [N, classes]. Differentiable. */
  logits(features: tf.Tensor): tf.Tensor2D;
  dispose(): void;
}

export interface ProbeSettings {
  epochs: number;
  learningRate: number;
  batchSize: number;
  seed: number;
}

/** Linear-probe defaults: 5 epochs of Adam at 1e-2, batches of 64 (enough for a softmax regression on LeNet-5 features). */
export const DEFAULT_PROBE: ProbeSettings = { epochs: 5, learningRate: 1e-2, batchSize: 64, seed: 0 };

/** The classifier layer of a model and the layout of its weight. */
export interface HeadLayout {
  head: ClassifierHead;
  weightName: string;
  biasName?: string;
  /** Weight stored [classes, features] (Gemm transB = 1) rather than [features, classes]. */
  transposed: boolean;
  featureSize: number;
  classes: number;
}

export function headLayout(proto: ModelProto, weightShape: readonly number[], source: string): HeadLayout {
  const head = findClassifierHead(proto);
  if (!head) throw new HardenError(`${source}: no final Gemm/MatMul classifier found (needed to locate the backbone features)`);
  const layer = head.nodes[0];
  if (weightShape.length !== 2) throw new HardenError(`${source}: the classifier weight '${layer.input[1]}' is not 2-D`);
  const transposed = layer.op_type === 'Gemm' && layer.attribute.some((a) => a.name === 'transB' && toNumber(a.i) === 1);
  const [d0, d1] = weightShape as [number, number];
  return {
    head,
    weightName: layer.input[1],
    biasName: head.parameters[1],
    transposed,
    featureSize: transposed ? d1 : d0,
    classes: transposed ? d0 : d1,
  };
}

function makeHead(weight: tf.Tensor2D, bias: tf.Tensor1D, origin: SourceHead['origin']): SourceHead {
  const [featureSize, classes] = weight.shape;
  return {
    weight,
    bias,
    featureSize,
    classes,
    origin,
    logits: (features) => tf.add(tf.matMul(tf.reshape(features, [features.shape[0], featureSize]), weight), bias) as tf.Tensor2D,
    dispose: () => tf.dispose([weight, bias]),
  };
}

/** The transfer-learned model's classifier layout (feature tensor and feature size). */
export function targetLayout(graph: ImportedGraph): HeadLayout {
  const head = findClassifierHead(graph.model.proto);
  if (!head) throw new HardenError(`${graph.source}: no final Gemm/MatMul classifier found (needed to locate the backbone features)`);
  const w = graph.variables.get(head.nodes[0].input[1]);
  const shape = w ? w.shape : (initializerMap(graph.model.proto, graph.model.baseDir).get(head.nodes[0].input[1])?.shape ?? []);
  return headLayout(graph.model.proto, shape, graph.source);
}

/** H_s from a source model's classifier initializers; its feature size must match the TL model's. */
export function sourceHeadFromModel(graph: ImportedGraph, sourceModel: OnnxModel, sourceName = sourceModel.path ?? 'source model'): SourceHead {
  const target = targetLayout(graph);
  const inits = initializerMap(sourceModel.proto, sourceModel.baseDir);
  const head = findClassifierHead(sourceModel.proto);
  const w = head ? inits.get(head.nodes[0].input[1]) : undefined;
  if (!head || !w) throw new HardenError(`${sourceName}: no final Gemm/MatMul classifier with an initializer weight found`);
  const layout = headLayout(sourceModel.proto, w.shape, sourceName);
  if (layout.featureSize !== target.featureSize) {
    throw new HardenError(`${sourceName}: backbone does not match: its classifier takes ${layout.featureSize} features, ${graph.source} has ${target.featureSize}`);
  }
  const data = hostToFloat32(w);
  const b = layout.biasName ? inits.get(layout.biasName) : undefined;
  const biasData = b ? hostToFloat32(b) : new Float32Array(layout.classes);
  if (biasData.length !== layout.classes) throw new HardenError(`${sourceName}: classifier bias has ${biasData.length} values for ${layout.classes} classes`);
  const weight = tf.tidy(() => {
    const raw = tf.tensor2d(data, w.shape as [number, number]);
    return layout.transposed ? tf.transpose(raw) : raw;
  });
  return makeHead(weight, tf.tensor1d(biasData), 'source-model');
}

/** Backbone features [N, F] of a whole dataset, inference mode (BN statistics as stored). */
export function datasetFeatures(graph: ImportedGraph, featureTensor: string, data: Dataset, featureSize: number, batchSize = 256): tf.Tensor2D {
  const per = data.shape[0] * data.shape[1] * data.shape[2];
  const n = data.labels.length;
  const parts: tf.Tensor[] = [];
  try {
    for (let s = 0; s < n; s += batchSize) {
      const b = Math.min(batchSize, n - s);
      parts.push(
        tf.tidy(() => {
          const x = tf.tensor(data.images.subarray(s * per, (s + b) * per), [b, ...data.shape], 'float32');
          const f = graph.run({ [graph.inputs[0].name]: x }, { outputs: [featureTensor] }).outputs.get(featureTensor)!;
          return tf.reshape(f, [b, featureSize]);
        }),
      );
    }
    return tf.concat(parts, 0) as tf.Tensor2D;
  } finally {
    tf.dispose(parts);
  }
}

/**
 * Fit H_s as a linear probe: softmax regression from zero weights, Adam, on the frozen features of
 * the forget data (`classes` defaults to the dataset's class count). Deterministic for a seed.
 */
export async function fitLinearProbe(graph: ImportedGraph, forget: Dataset, settings: Partial<ProbeSettings> = {}, classes = forget.classes): Promise<SourceHead> {
  const target = targetLayout(graph);
  checkLabels(forget, classes, 'forget data');
  const features = datasetFeatures(graph, target.head.featureTensor, forget, target.featureSize);
  try {
    return fitProbeOnFeatures(features, forget.labels, settings, classes);
  } finally {
    features.dispose();
  }
}

/** fitLinearProbe on features already computed ([N, F], one row per label; the caller keeps them). */
export function fitProbeOnFeatures(features: tf.Tensor2D, forgetLabels: Int32Array, settings: Partial<ProbeSettings>, classes: number): SourceHead {
  const s = { ...DEFAULT_PROBE, ...settings };
  const F = features.shape[1];
  const labels = tf.tensor1d(forgetLabels, 'int32');
  const weight = tf.tidy(() => tf.variable(tf.zeros([F, classes]), true));
  const bias = tf.tidy(() => tf.variable(tf.zeros([classes]), true));
  const optimizer: tf.Optimizer = tf.train.adam(s.learningRate);
  try {
    const n = forgetLabels.length;
    const bs = Math.min(s.batchSize, n);
    for (let epoch = 0; epoch < s.epochs; epoch++) {
      const order = epochOrder(n, s.seed, epoch);
      for (let start = 0; start + bs <= n; start += bs) {
        tf.tidy(() => {
          const idx = tf.tensor1d(order.slice(start, start + bs), 'int32');
          const f = tf.gather(features, idx);
          const y = tf.gather(labels, idx) as tf.Tensor1D;
          const { grads } = tf.variableGrads(() => crossEntropy(tf.add(tf.matMul(f, weight), bias) as tf.Tensor2D, y), [weight, bias]);
          optimizer.applyGradients(grads);
        });
      }
    }
    return makeHead(tf.clone(weight) as tf.Tensor2D, tf.clone(bias) as tf.Tensor1D, 'probe');
  } finally {
    optimizer.dispose();
    tf.dispose([labels, weight, bias]);
  }
}

export function checkLabels(data: Dataset, classes: number, what: string): void {
  const max = data.labels.reduce((m, v) => Math.max(m, v), -1);
  if (max >= classes) throw new HardenError(`${what} has label ${max} but the source head has ${classes} classes`);
}

/**
 * Build H_s: from `sourceModel` when given (forget labels must be below its class count),
 * otherwise a linear probe fitted on the forget data.
 */
export async function buildSourceHead(graph: ImportedGraph, forget: Dataset, opts: { sourceModel?: OnnxModel; sourceName?: string; probe?: Partial<ProbeSettings> } = {}): Promise<SourceHead> {
  if (opts.sourceModel) {
    const head = sourceHeadFromModel(graph, opts.sourceModel, opts.sourceName);
    try {
      checkLabels(forget, head.classes, 'forget data');
    } catch (e) {
      head.dispose();
      throw e;
    }
    return head;
  }
  return fitLinearProbe(graph, forget, opts.probe);
}
