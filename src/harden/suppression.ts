/**
 * Block-domain feature suppression, the term that makes non-transferable pruning hold against an
 * attacker who fine-tunes every weight (pruned ones included). For one ReLU layer, with z its
 * pre-activations on a block batch of n images:
 *
 *   L_S = Σ_i Σ_j relu(z_ij + m) / (n·κ)
 *
 * κ = mean L1 norm of the original model's outputs of that ReLU on keep data (the unit that makes
 * λ_S independent of the layer's scale) and m = μ·κ/F, μ the margin factor, F the units per image.
 * Minimizing it drives every unit below −m on the block domain: those ReLUs are then dead on it,
 * pass no gradient to anything upstream, and what follows sees zeros. Features are not merely
 * shrunk (an attacker's Adam rescales small features away); measured on LeNet-5, 67 % dead block
 * rows without a margin left fine-tuning unhindered, ≥ 99 % with one stopped it. Pruning sums it
 * over the last few ReLU layers before the classifier (`suppressedLayers`), so that an attacker who
 * re-draws the last layer still meets dead units below it. When the feature tensor is not a ReLU
 * output the hinge acts on the features themselves.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelProto, NodeProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import type { ImportedGraph } from '../import/graph.js';
import { datasetFeatures } from './source-head.js';

export interface Suppression {
  /** The tensor the hinge acts on: the layer's ReLU input, or the layer's output when it is no ReLU. */
  tensor: string;
  /** κ: mean L1 norm per image of the original model's outputs of the layer on keep data. */
  scale: number;
  /** m: the depth below zero the hinge asks of every unit. */
  margin: number;
}

/** The input of the Relu node that outputs `featureTensor`, else `featureTensor`. */
export function suppressionTensor(proto: ModelProto, featureTensor: string): string {
  const relu = proto.graph?.node.find((n) => n.op_type === 'Relu' && n.output[0] === featureTensor);
  return relu?.input[0] || featureTensor;
}

/** Ops between one ReLU layer and the next layer's weights that keep an all-zero input all-zero. */
const ZERO_PRESERVING = new Set(['Flatten', 'Reshape', 'MaxPool', 'Identity', 'Dropout']);

/**
 * The outputs of the last `layers` ReLU layers ending at `featureTensor`: from each ReLU back
 * through the Conv/Gemm/MatMul that feeds it and zero-preserving ops to the ReLU before. Fewer
 * when the chain ends (the first entry is always `featureTensor`).
 */
export function suppressedLayers(proto: ModelProto, featureTensor: string, layers: number): string[] {
  const producer = new Map<string, NodeProto>();
  for (const n of proto.graph?.node ?? []) for (const o of n.output) producer.set(o, n);
  const out = [featureTensor];
  for (let t = featureTensor; out.length < layers; ) {
    const relu = producer.get(t);
    const layer = relu?.op_type === 'Relu' ? producer.get(relu.input[0]!) : undefined;
    if (!layer || !['Gemm', 'Conv', 'MatMul'].includes(layer.op_type ?? '')) break;
    let x = layer.input[0]!;
    while (ZERO_PRESERVING.has(producer.get(x)?.op_type ?? '')) x = producer.get(x)!.input[0]!;
    if (producer.get(x)?.op_type !== 'Relu') break;
    out.push((t = x));
  }
  return out;
}

/** κ and m of one layer (its ReLU output `tensor`) from the original model on (up to) the first 1 024 images of `keep`. */
export function measureSuppression(graph: ImportedGraph, tensor: string, keep: Dataset, marginFactor: number): Suppression {
  const n = Math.min(1024, keep.labels.length);
  const per = keep.shape[0] * keep.shape[1] * keep.shape[2];
  const head: Dataset = { ...keep, labels: keep.labels.subarray(0, n), images: keep.images.subarray(0, n * per) };
  const f = datasetFeatures(graph, tensor, head, -1);
  let l1: number;
  const units = f.shape[1];
  try {
    l1 = tf.tidy(() => tf.sum(tf.abs(f)).dataSync()[0]!) / n;
  } finally {
    f.dispose();
  }
  // A model whose keep features are all zero has nothing to measure against: fall back to unit scale.
  const scale = l1 > 0 ? l1 : 1;
  return { tensor: suppressionTensor(graph.model.proto, tensor), scale, margin: (marginFactor * scale) / units };
}

/** L_S of the pre-activations z ([n, ...] row-major, n images) and its gradient in z (host arrays). */
export function suppressionHinge(z: Float32Array, n: number, s: Suppression): { value: number; gradient: Float32Array } {
  const unit = 1 / (n * s.scale);
  let value = 0;
  const gradient = new Float32Array(z.length);
  for (let i = 0; i < z.length; i++) {
    const v = z[i]! + s.margin;
    if (v > 0) {
      value += v;
      gradient[i] = unit;
    }
  }
  return { value: value * unit, gradient };
}

/** L_S as a differentiable tfjs scalar. */
export function suppressionHingeTf(z: tf.Tensor, s: Suppression): tf.Scalar {
  return tf.tidy(() => tf.div(tf.sum(tf.relu(tf.add(z, s.margin))), z.shape[0]! * s.scale) as tf.Scalar);
}
