/**
 * Gradients of piecewise-linear activations (ReLU, ReLU6, clip/hard-sigmoid, leaky ReLU)
 * with their masks computed on a detached copy of x. tfjs's own versions build the mask
 * from comparison kernels on the tape, which have no gradient (double backprop throws)
 * or push zeros through Step/Cast (wasted work). Boundary conventions match tfjs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { detach } from './util.js';

/** dL/dx = dy * slope(x); `slope` sees a detached x and returns a float32 tensor. */
function slopeGradient(kernelName: string, slope: (x: tf.Tensor, attrs: tf.NamedAttrMap) => tf.Tensor): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => ({
      x: () => tf.mul(dy as tf.Tensor, slope(detach(saved[0]), attrs)),
    }),
  };
}

const asFloat = (mask: tf.Tensor) => tf.cast(mask, 'float32');

export const activationGradients: tf.GradConfig[] = [
  // step(x) is one kernel; greater + cast is two and 3× slower on wasm.
  slopeGradient(tf.Relu, (x) => tf.step(x)),
  slopeGradient(tf.Relu6, (x) => asFloat(tf.logicalAnd(tf.greater(x, 0), tf.lessEqual(x, 6)))),
  slopeGradient(tf.ClipByValue, (x, attrs) => {
    const { clipValueMin, clipValueMax } = attrs as unknown as tf.ClipByValueAttrs;
    return asFloat(tf.logicalAnd(tf.greaterEqual(x, clipValueMin), tf.lessEqual(x, clipValueMax)));
  }),
  slopeGradient(tf.LeakyRelu, (x, attrs) => {
    const { alpha } = attrs as unknown as tf.LeakyReluAttrs;
    return tf.where(tf.greater(x, 0), tf.scalar(1), tf.scalar(alpha));
  }),
];
