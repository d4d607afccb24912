/**
 * Softmax gradient recomputed from the saved logits. tfjs's version multiplies by the
 * op's saved output, a copy the outer tape does not connect to the logits, so second
 * derivatives through tf.softmax came out as zero.
 */
import * as tf from '@tensorflow/tfjs-core';

export const softmaxGradient: tf.GradConfig = {
  kernelName: tf.Softmax,
  inputsToSave: ['logits'],
  gradFunc: (dy, saved, attrs) => {
    const { dim } = attrs as unknown as tf.SoftmaxAttrs;
    return {
      logits: () => {
        const y = tf.softmax(saved[0], dim);
        const dyTimesY = tf.mul(dy as tf.Tensor, y);
        return tf.sub(dyTimesY, tf.mul(tf.sum(dyTimesY, dim, true), y));
      },
    };
  },
};
