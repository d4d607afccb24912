/**
 * Block-domain feature suppression, the term that makes non-transferable pruning hold against an
 * attacker who fine-tunes every weight (pruned ones included). With z the pre-activations of the
 * ReLU that produces the feature tensor (the classifier's input), on a block batch of n images:
 *
 *   L_S = Σ_i Σ_j relu(z_ij + m) / (n·κ)
 *
 * κ = mean L1 norm of the original model's feature rows on keep data (the unit that makes λ_S
 * independent of the model's scale) and m = μ·κ/F, μ the margin factor, F the units per image.
 * Minimizing it drives every unit below −m on the block domain: those ReLUs are then dead on it,
 * pass no gradient to anything upstream, and a fresh head on top sees zeros. Features are not
 * merely shrunk (an attacker's Adam rescales small features away); measured on LeNet-5, 67 % dead
 * block rows without a margin left fine-tuning unhindered, ≥ 99 % with m = κ/F stopped it.
 * When the feature tensor is not a ReLU output the hinge acts on the features themselves.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import type { ImportedGraph } from '../import/graph.js';
import { datasetFeatures } from './source-head.js';

export interface Suppression {
  /** The tensor the hinge acts on: the feature ReLU's input, or the feature tensor itself. */
  tensor: string;
  /** κ: mean L1 norm of the original model's keep-data feature rows. */
  scale: number;
  /** m: the depth below zero the hinge asks of every unit. */
  margin: number;
}

/** The input of the Relu node that outputs `featureTensor`, else `featureTensor`. */
export function suppressionTensor(proto: ModelProto, featureTensor: string): string {
  const relu = proto.graph?.node.find((n) => n.op_type === 'Relu' && n.output[0] === featureTensor);
  return relu?.input[0] || featureTensor;
}

/** κ and m from the original model's features of (up to) the first 1 024 images of `keep`. */
export function measureSuppression(graph: ImportedGraph, featureTensor: string, featureSize: number, keep: Dataset, marginFactor: number): Suppression {
  const n = Math.min(1024, keep.labels.length);
  const per = keep.shape[0] * keep.shape[1] * keep.shape[2];
  const head: Dataset = { ...keep, labels: keep.labels.subarray(0, n), images: keep.images.subarray(0, n * per) };
  const f = datasetFeatures(graph, featureTensor, head, featureSize);
  let l1: number;
  try {
    l1 = tf.tidy(() => tf.sum(tf.abs(f)).dataSync()[0]!) / n;
  } finally {
    f.dispose();
  }
  // A model whose keep features are all zero has nothing to measure against: fall back to unit scale.
  const scale = l1 > 0 ? l1 : 1;
  return { tensor: suppressionTensor(graph.model.proto, featureTensor), scale, margin: (marginFactor * scale) / featureSize };
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
