import * as tf from '@tensorflow/tfjs-core';
import { registerOp } from '../registry.js';
import { DeviceValue, type Value } from '../values.js';
import { hostToTensor } from '../host.js';
import { plainMatMul } from '../../engine/gradients/matmul.js';

/** MatMul (numpy semantics, batched) and Gemm (2-D, with transposes, alpha, beta and C). */

function tensorOf(v: Value): tf.Tensor {
  return v.kind === 'device' ? v.onnx() : hostToTensor(v);
}

function matmul(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (a.rank === 2 && b.rank === 2) return tf.matMul(a, b);
  // numpy: 1-D operands are promoted and the added axis removed afterwards.
  const a2 = a.rank === 1 ? a.expandDims(0) : a;
  const b2 = b.rank === 1 ? b.expandDims(1) : b;
  let y: tf.Tensor;
  if (b2.rank === 2 && a2.rank > 2) {
    // [.., M, K] × [K, N]: one 2-D product over the flattened leading axes.
    const lead = a2.shape.slice(0, -1);
    y = tf.matMul(a2.reshape([-1, a2.shape[a2.rank - 1]!]), b2).reshape([...lead, b2.shape[1]!]);
  } else {
    // Broadcast the batch axes explicitly, then one batched product over their flattened size.
    const batch = tf.broadcast_util.assertAndGetBroadcastShape(a2.shape.slice(0, -2), b2.shape.slice(0, -2));
    const [m, k] = a2.shape.slice(-2), n = b2.shape[b2.rank - 1]!;
    const a3 = tf.broadcastTo(a2, [...batch, m!, k!]).reshape([-1, m!, k!]) as tf.Tensor3D;
    const b3 = tf.broadcastTo(b2, [...batch, k!, n]).reshape([-1, k!, n]) as tf.Tensor3D;
    y = tf.matMul(a3, b3).reshape([...batch, m!, n]);
  }
  if (a.rank === 1) y = y.squeeze([y.rank - 2]);
  if (b.rank === 1) y = y.squeeze([y.rank - 1]);
  return y;
}

registerOp({
  opType: 'MatMul',
  since: 1,
  weightInputs: [0, 1],
  convert: () => (inputs) => [new DeviceValue(matmul(tensorOf(inputs[0]!), tensorOf(inputs[1]!)))],
});

registerOp({
  opType: 'Gemm',
  since: 1,
  weightInputs: [1, 2],
  convert(node) {
    const a = node.attrs;
    const alpha = a.float('alpha', 1);
    const beta = a.float('beta', 1);
    const transA = a.int('transA', 0) === 1;
    const transB = a.int('transB', 0) === 1;
    if (node.opset < 6) a.int('broadcast', 0);
    return (inputs) => {
      const A = tensorOf(inputs[0]!);
      const B = tensorOf(inputs[1]!);
      if (A.rank !== 2 || B.rank !== 2) node.fail(`inputs must be 2-D, got ranks ${A.rank} and ${B.rank}`);
      let y = plainMatMul(A, B, transA, transB);
      if (alpha !== 1) y = tf.mul(y, alpha);
      if (inputs[2]) {
        const C = tensorOf(inputs[2]);
        y = tf.add(y, beta === 1 ? C : tf.mul(C, beta));
      }
      return [new DeviceValue(y)];
    };
  },
});
