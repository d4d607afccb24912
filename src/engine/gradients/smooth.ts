/**
 * Gradients of smooth pointwise ops rewritten in terms of the saved input x. tfjs's versions
 * use the op's saved *output*, a detached copy, so a second derivative through exp, tanh,
 * sigmoid or elu silently comes out as zero (measured: the Hessian-vector product of
 * sum(exp(x)) was exactly 0). Recomputing from x keeps the curvature on the tape.
 */
import * as tf from '@tensorflow/tfjs-core';
import { detach } from './util.js';

function fromInput(kernelName: string, derivative: (x: tf.Tensor) => tf.Tensor): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => ({ x: () => tf.mul(dy as tf.Tensor, derivative(saved[0])) }),
  };
}

export const smoothGradients: tf.GradConfig[] = [
  fromInput(tf.Exp, (x) => tf.exp(x)),
  fromInput(tf.Tanh, (x) => tf.sub(1, tf.square(tf.tanh(x)))),
  fromInput(tf.Sigmoid, (x) => {
    const s = tf.sigmoid(x);
    return tf.mul(s, tf.sub(1, s));
  }),
  fromInput(tf.Elu, (x) => tf.where(tf.greater(detach(x), 0), tf.onesLike(x), tf.exp(x))),
];
