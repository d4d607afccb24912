import * as tf from '@tensorflow/tfjs-core';
import { registerOp, type Kernel } from '../registry.js';
import { HostValue, type HostDType, type Value } from '../values.js';
import { hostBroadcast, hostBroadcastN } from '../host.js';
import { elementwise } from '../layout.js';

/**
 * Elementwise arithmetic, comparisons and logic with numpy broadcasting. When every input is
 * a host value (shape arithmetic), the op is computed on the host; otherwise on the device,
 * in NHWC when an operand already is.
 */

type HostFn = (x: number, y: number) => number;
type DeviceFn = (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

function allHost(inputs: (Value | undefined)[]): inputs is HostValue[] {
  return inputs.every((v) => v !== undefined && v.kind === 'host');
}

function binary(opType: string, since: number, host: HostFn, device: DeviceFn, result: 'same' | 'bool'): void {
  const kernel: Kernel = (inputs) => {
    const [a, b] = inputs as Value[];
    if (allHost([a, b])) {
      const ha = a as HostValue, hb = b as HostValue;
      const dtype: HostDType = result === 'bool' ? 'bool' : ha.dtype;
      const isInt = dtype === 'int64' || dtype === 'int32';
      const f: HostFn = isInt && opType === 'Div' ? (x, y) => Math.trunc(x / y) : host;
      return [hostBroadcast(ha, hb, f, dtype)];
    }
    return [elementwise([a, b], device)];
  };
  // Arithmetic operands may be learnable (e.g. a bias added after MatMul, a scale in a Mul).
  const weightInputs = result === 'same' && opType !== 'Pow' ? [0, 1] : opType === 'Pow' ? [0] : [];
  registerOp({ opType, since, weightInputs, convert: () => kernel });
}

binary('Add', 7, (x, y) => x + y, tf.add, 'same');
binary('Sub', 7, (x, y) => x - y, tf.sub, 'same');
binary('Mul', 7, (x, y) => x * y, tf.mul, 'same');
binary('Div', 7, (x, y) => x / y, (a, b) => (a.dtype === 'int32' ? tf.floorDiv(a, b) : tf.div(a, b)), 'same');
binary('Pow', 7, (x, y) => Math.pow(x, y), powDevice, 'same');
binary('Equal', 7, (x, y) => Number(x === y), tf.equal, 'bool');
binary('Less', 7, (x, y) => Number(x < y), tf.less, 'bool');
binary('Greater', 7, (x, y) => Number(x > y), tf.greater, 'bool');
binary('LessOrEqual', 12, (x, y) => Number(x <= y), tf.lessEqual, 'bool');
binary('GreaterOrEqual', 12, (x, y) => Number(x >= y), tf.greaterEqual, 'bool');
binary('And', 7, (x, y) => Number(Boolean(x) && Boolean(y)), tf.logicalAnd, 'bool');
binary('Or', 7, (x, y) => Number(Boolean(x) || Boolean(y)), tf.logicalOr, 'bool');
binary('Max', 8, Math.max, tf.maximum, 'same');
binary('Min', 8, Math.min, tf.minimum, 'same');

/** x^2 and x^0.5 are common in exported LayerNorms; dedicated ops have better gradients at 0. */
function powDevice(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (b.size === 1 && b.dtype === 'float32') {
    const e = b.dataSync()[0];
    if (e === 2) return tf.square(a);
    if (e === 1) return a;
    if (e === 0.5) return tf.sqrt(a);
  }
  return tf.pow(a, b.dtype === a.dtype ? b : tf.cast(b, a.dtype));
}

function unary(opType: string, since: number, host: (x: number) => number, device: (t: tf.Tensor) => tf.Tensor, out?: HostDType): void {
  registerOp({
    opType,
    since,
    convert: () => (inputs) => {
      const x = inputs[0]!;
      if (x.kind === 'host') return [new HostValue(out ?? x.dtype, x.shape, x.data.map(host))];
      return [elementwise([x], device)];
    },
  });
}

unary('Neg', 6, (x) => -x, tf.neg);
unary('Abs', 6, Math.abs, tf.abs);
unary('Sqrt', 6, Math.sqrt, tf.sqrt);
unary('Exp', 6, Math.exp, tf.exp);
unary('Log', 6, Math.log, tf.log);
unary('Reciprocal', 6, (x) => 1 / x, tf.reciprocal);
unary('Floor', 6, Math.floor, tf.floor);
unary('Ceil', 6, Math.ceil, tf.ceil);
unary('Sign', 9, Math.sign, tf.sign);
unary('Not', 1, (x) => Number(!x), tf.logicalNot, 'bool');

registerOp({
  opType: 'Where',
  since: 9,
  weightInputs: [1, 2],
  convert: () => (inputs) => {
    const [c, x, y] = inputs as Value[];
    if (allHost([c, x, y])) {
      return [hostBroadcastN([c, x, y] as HostValue[], (cv, xv, yv) => (cv ? xv : yv), (x as HostValue).dtype)];
    }
    return [
      elementwise([c, x, y], (ct, xt, yt) => {
        const shape = tf.broadcast_util.assertAndGetBroadcastShape(tf.broadcast_util.assertAndGetBroadcastShape(ct.shape, xt.shape), yt.shape);
        return tf.where(tf.broadcastTo(tf.cast(ct, 'bool'), shape), tf.broadcastTo(xt, shape), tf.broadcastTo(yt, shape));
      }),
    ];
  },
});
