/**
 * Zero gradients for comparison and logical kernels. They are piecewise constant, but tfjs
 * registers no gradient for most of them, so any tape path through a mask (tfjs's own
 * Max/Maximum/Minimum/Select gradients, user-written `where(greater(x, 0), ...)`) made
 * double backprop throw "gradient function not found". TensorFlow treats them the same way.
 */
import * as tf from '@tensorflow/tfjs-core';

const binary = [tf.Equal, tf.NotEqual, tf.Less, tf.LessEqual, tf.Greater, tf.GreaterEqual, tf.LogicalAnd, tf.LogicalOr];
const unary = [tf.LogicalNot];

function zeroGradient(kernelName: string, inputs: string[]): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: inputs,
    gradFunc: (_dy, saved) =>
      Object.fromEntries(inputs.map((name, i) => [name, () => tf.zeros(saved[i].shape, 'float32')])),
  };
}

export const nonDifferentiableGradients: tf.GradConfig[] = [
  ...binary.map((k) => zeroGradient(k, ['a', 'b'])),
  ...unary.map((k) => zeroGradient(k, ['x'])),
];
