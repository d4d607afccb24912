import * as tf from '@tensorflow/tfjs-core';
import { registerOp, type NodeInfo } from '../registry.js';
import { HostValue, type Value } from '../values.js';
import { elementwise } from '../layout.js';

/** Pointwise activations; all keep their input's layout. */

function activation(opType: string, since: number, make: (node: NodeInfo) => (x: tf.Tensor) => tf.Tensor): void {
  registerOp({
    opType,
    since,
    convert(node) {
      const f = make(node);
      return (inputs) => [elementwise([inputs[0]], f)];
    },
  });
}

activation('Relu', 6, () => tf.relu);
activation('Sigmoid', 6, () => tf.sigmoid);
activation('Tanh', 6, () => tf.tanh);
activation('Softplus', 1, () => tf.softplus);
activation('Erf', 9, () => tf.erf);
activation('LeakyRelu', 6, (node) => {
  const alpha = node.attrs.float('alpha', 0.01);
  return (x) => tf.leakyRelu(x, alpha);
});
activation('Elu', 6, (node) => {
  const alpha = node.attrs.float('alpha', 1);
  return (x) => (alpha === 1 ? tf.elu(x) : tf.where(tf.greater(x, 0), x, tf.mul(alpha, tf.expm1(x))));
});
activation('Selu', 6, (node) => {
  const alpha = node.attrs.float('alpha', 1.67326319217681884765625);
  const gamma = node.attrs.float('gamma', 1.05070102214813232421875);
  return (x) => tf.mul(gamma, tf.where(tf.greater(x, 0), x, tf.mul(alpha, tf.expm1(x))));
});
activation('HardSigmoid', 6, (node) => {
  const alpha = node.attrs.float('alpha', 0.2);
  const beta = node.attrs.float('beta', 0.5);
  return (x) => hardSigmoid(x, alpha, beta);
});
activation('HardSwish', 14, () => (x) => tf.mul(x, hardSigmoid(x, 1 / 6, 0.5)));
activation('Gelu', 20, (node) => {
  const approximate = node.attrs.string('approximate', 'none');
  if (approximate !== 'none' && approximate !== 'tanh') node.fail(`approximate='${approximate}' is not supported`);
  return approximate === 'tanh' ? geluTanh : geluErf;
});

function hardSigmoid(x: tf.Tensor, alpha: number, beta: number): tf.Tensor {
  return tf.clipByValue(tf.add(tf.mul(x, alpha), beta), 0, 1);
}

function geluErf(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
}

function geluTanh(x: tf.Tensor): tf.Tensor {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner)));
}

registerOp({
  opType: 'PRelu',
  since: 7,
  weightInputs: [1],
  convert: () => (inputs) => [elementwise([inputs[0], inputs[1]], (x, slope) => tf.where(tf.greater(x, 0), x, tf.mul(x, slope)))],
});

/** Clip: bounds are attributes before opset 11 and optional (usually constant) inputs after. */
function clip(x: Value, lo: number, hi: number): Value {
  if (x.kind === 'host') return new HostValue(x.dtype, x.shape, x.data.map((v) => Math.min(hi, Math.max(lo, v))));
  // ReLU6 exported as Clip(0, 6) keeps tfjs's fused relu6 kernel.
  return elementwise([x], (t) => (lo === 0 && hi === 6 ? tf.relu6(t) : tf.clipByValue(t, lo, hi)));
}

registerOp({
  opType: 'Clip',
  since: 6,
  convert(node) {
    const lo = node.attrs.float('min', -3.4028234663852886e38);
    const hi = node.attrs.float('max', 3.4028234663852886e38);
    return (inputs) => [clip(inputs[0]!, lo, hi)];
  },
});

registerOp({
  opType: 'Clip',
  since: 11,
  convert(node) {
    const bound = (i: number, fallback: number): number | undefined => {
      if (!node.inputs[i]) return fallback;
      const c = node.constInputs[i];
      return c ? c.data[0] : undefined;
    };
    const lo = bound(1, -Infinity);
    const hi = bound(2, Infinity);
    return (inputs) => {
      if (lo !== undefined && hi !== undefined) return [clip(inputs[0]!, lo, hi)];
      // Bounds computed at run time: elementwise max/min with broadcasting.
      let y = inputs[0]!;
      if (inputs[1]) y = elementwise([y, inputs[1]], tf.maximum);
      if (inputs[2]) y = elementwise([y, inputs[2]], tf.minimum);
      return [y];
    };
  },
});
