/**
 * Gradients and exact Hessian-vector products of a scalar loss by (double) backprop.
 *
 * H v = d/dθ ⟨∇θ L(θ), v⟩: the inner gradient is taken while the outer tape records, so
 * its backward ops are themselves differentiated. This needs every gradient on the path to
 * be built from differentiable ops, which is what src/engine/gradients provides for
 * conv/depthwise/pooling/activations (call initBackend() first). Beware tfjs ops built
 * with tf.customGrad (tf.logSoftmax, tf.losses.softmaxCrossEntropy, tf.fused.*): their
 * gradients are opaque to the outer tape, so H v silently misses their curvature. Write
 * cross-entropy as logits − logSumExp(logits) (see crossEntropy in ./tfjs-engine.ts).
 */
import * as tf from '@tensorflow/tfjs-core';

export type LossFn = (params: tf.Tensor[]) => tf.Scalar;

/**
 * ∂loss/∂params[i] for every i (zeros where the loss does not depend on a parameter).
 * Intermediate tensors are disposed; the caller owns the returned ones.
 */
export function gradients(loss: LossFn, params: tf.Tensor[]): tf.Tensor[] {
  return tf.tidy(() => {
    const { value, grads } = tf.engine().gradients(() => loss(params), params, undefined, true);
    value.dispose();
    return grads.map((g, i) => g ?? tf.zerosLike(params[i]));
  });
}

/**
 * The Hessian of `loss` at `params` applied to `vector` (one tensor per parameter, same
 * shapes), by exact double backprop. The caller owns the returned tensors.
 */
export function hessianVectorProduct(loss: LossFn, params: tf.Tensor[], vector: tf.Tensor[]): tf.Tensor[] {
  if (vector.length !== params.length) {
    throw new Error(`hessianVectorProduct: ${vector.length} vector parts for ${params.length} parameters`);
  }
  params.forEach((p, i) => {
    if (!tf.util.arraysEqual(p.shape, vector[i].shape)) {
      throw new Error(`hessianVectorProduct: vector[${i}] has shape [${vector[i].shape}], parameter has [${p.shape}]`);
    }
  });
  const directional = (): tf.Scalar =>
    tf.addN(gradients(loss, params).map((g, i) => tf.sum(tf.mul(g, vector[i])))) as tf.Scalar;
  return gradients(() => directional(), params);
}
