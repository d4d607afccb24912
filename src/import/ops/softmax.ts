import * as tf from '@tensorflow/tfjs-core';
import { registerOp, type NodeInfo } from '../registry.js';
import { DeviceValue, type Value } from '../values.js';
import { hostToTensor } from '../host.js';
import { detach } from '../../engine/gradients/util.js';

/**
 * Softmax and LogSoftmax. tfjs normalizes along the last axis only, so other axes are
 * transposed there and back. Before opset 13 the input is coerced to 2-D at `axis` (default 1)
 * and normalized over all the trailing dims together; from 13 on only along `axis` (default −1).
 */

type LastAxisFn = (t: tf.Tensor) => tf.Tensor;

function deviceInput(v: Value): DeviceValue {
  return v.kind === 'host' ? new DeviceValue(hostToTensor(v)) : v;
}

function checkedAxis(node: NodeInfo, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) node.fail(`axis ${axis} is out of range for a rank-${rank} input`);
  return a;
}

/** Opset ≥ 13: normalize along one axis. */
function alongAxis(x: DeviceValue, axis: number, f: LastAxisFn): DeviceValue {
  // An NHWC value's channel axis is already the last one.
  if (x.layout === 'nhwc' && axis === 1) return new DeviceValue(f(x.nhwc()), 'nhwc');
  const t = x.onnx();
  const last = t.rank - 1;
  if (axis === last) return new DeviceValue(f(t));
  const perm = t.shape.map((_, i) => (i === axis ? last : i === last ? axis : i));
  return new DeviceValue(tf.transpose(f(tf.transpose(t, perm)), perm));
}

/** Opset < 13: normalize over the flattened dims from `axis` on. */
function trailing(x: DeviceValue, axis: number, f: LastAxisFn): DeviceValue {
  // Normalizing over all of C, H, W (or everything) does not depend on their order.
  const nhwc = x.layout === 'nhwc' && axis <= 1;
  const t = nhwc ? x.nhwc() : x.onnx();
  const rows = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const y = axis === t.rank - 1 ? f(t) : tf.reshape(f(tf.reshape(t, [rows, -1])), t.shape);
  return new DeviceValue(y, nhwc ? 'nhwc' : 'onnx');
}

function softmaxOp(opType: string, f: LastAxisFn): void {
  for (const [since, defaultAxis, apply] of [
    [1, 1, trailing],
    [13, -1, alongAxis],
  ] as const) {
    registerOp({
      opType,
      since,
      convert(node) {
        const axisAttr = node.attrs.int('axis', defaultAxis);
        return (inputs) => {
          const x = deviceInput(inputs[0]!);
          if (x.dtype !== 'float32') node.fail(`${x.dtype} input is not supported (only float32)`);
          return [apply(x, checkedAxis(node, axisAttr, x.rank), f)];
        };
      },
    });
  }
}

/**
 * Along the last axis, from plain ops: tfjs's Softmax and LogSoftmax gradients cannot be
 * differentiated again (double backprop). The max shift only guards exp against overflow,
 * so it is detached from the tape.
 */
const shifted = (t: tf.Tensor) => tf.sub(t, detach(tf.max(t, -1, true)));

softmaxOp('Softmax', (t) => {
  const e = tf.exp(shifted(t));
  return tf.div(e, tf.sum(e, -1, true));
});
softmaxOp('LogSoftmax', (t) => {
  const s = shifted(t);
  return tf.sub(s, tf.log(tf.sum(tf.exp(s), -1, true)));
});
