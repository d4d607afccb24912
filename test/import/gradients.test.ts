import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel } from '../../src/onnx/model.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { crossEntropy } from '../../src/engine/tfjs-engine.js';
import { gradients, hessianVectorProduct } from '../../src/engine/hvp.js';
import { initBackend, type BackendName } from '../../src/engine/backend.js';
import { Random } from '../../src/util/random.js';

/**
 * Whole-model gradients of imported graphs against central finite differences, and an exact
 * Hessian-vector product (double backprop) against finite differences of gradients.
 */
function smallConvNet(activation: 'Relu' | 'Tanh'): Uint8Array {
  const rng = new Random(11);
  const g = new GraphBuilder({ opset: 13 });
  const w = (name: string, shape: number[], scale: number) => g.initializer(name, { data: rng.normalArray(shape.reduce((a, b) => a * b, 1), scale), shape });
  g.input('x', ['N', 2, 8, 8]);
  w('c1w', [4, 2, 3, 3], 0.4); w('c1b', [4], 0.1);
  w('bns', [4], 0.2).valueOf(); w('bnb', [4], 0.1);
  g.initializer('bnm', { data: [0.1, -0.1, 0.05, 0], shape: [4] });
  g.initializer('bnv', { data: [1, 0.5, 2, 1.5], shape: [4] });
  w('dw', [4, 1, 3, 3], 0.4);
  w('c2w', [3, 4, 3, 3], 0.3);
  w('fw', [5, 12], 0.3); w('fb', [5], 0.1);
  g.node('Conv', ['x', 'c1w', 'c1b'], ['a'], { pads: [1, 1, 1, 1] });
  g.node('BatchNormalization', ['a', 'bns', 'bnb', 'bnm', 'bnv'], ['b']);
  g.node(activation, ['b'], ['c']);
  g.node('Conv', ['c', 'dw'], ['d'], { group: 4, pads: [1, 1, 1, 1], strides: [2, 2] });
  g.node('MaxPool', ['d'], ['e'], { kernel_shape: [2, 2], strides: [2, 2] });
  g.node('Conv', ['e', 'c2w'], ['f'], { pads: [1, 1, 1, 1] });
  g.node('Flatten', ['f'], ['h']);
  g.node('Gemm', ['h', 'fw', 'fb'], ['logits'], { transB: 1 });
  g.output('logits');
  return g.toBytes();
}

function setup(activation: 'Relu' | 'Tanh') {
  const graph = new ImportedGraph({ proto: decodeModel(smallConvNet(activation), 'net.onnx') }, 'net.onnx');
  const names = [...graph.variables.keys()].filter((n) => !graph.statisticNames.has(n));
  const rng = new Random(5);
  const x = tf.tensor(rng.normalArray(3 * 2 * 8 * 8), [3, 2, 8, 8]);
  const labels = tf.tensor1d([0, 3, 4], 'int32');
  const loss = (params: tf.Tensor[]): tf.Scalar => {
    const { outputs } = graph.run({ x }, { parameters: new Map(names.map((n, i) => [n, params[i]])) });
    return crossEntropy(outputs.get('logits') as tf.Tensor2D, labels);
  };
  const params = names.map((n) => graph.variables.get(n)! as tf.Tensor);
  const direction = params.map((p, i) => tf.tensor(new Random(100 + i).normalArray(p.size), p.shape));
  const dispose = () => {
    graph.dispose();
    tf.dispose([x, labels, ...direction]);
  };
  return { loss, params, direction, dispose };
}

function dot(a: tf.Tensor[], b: tf.Tensor[]): number {
  return a.reduce((acc, t, i) => acc + tf.tidy(() => tf.sum(tf.mul(t, b[i])).dataSync()[0]), 0);
}

function shifted(params: tf.Tensor[], dir: tf.Tensor[], eps: number): tf.Tensor[] {
  return params.map((p, i) => tf.add(p, tf.mul(dir[i], eps)));
}

describe.each(['wasm', 'cpu'] as BackendName[])('model gradients on %s', (backend) => {
  it('directional derivative of the loss matches central finite differences', async () => {
    await initBackend(backend);
    const { loss, params, direction, dispose } = setup('Relu');
    try {
    const grads = gradients(loss, params);
    const analytic = dot(grads, direction);
    const eps = 1e-3;
    const numeric = tf.tidy(() => (loss(shifted(params, direction, eps)).dataSync()[0] - loss(shifted(params, direction, -eps)).dataSync()[0]) / (2 * eps));
    expect(Math.abs(analytic - numeric) / Math.max(1e-3, Math.abs(numeric))).toBeLessThan(1e-2);
    // every parameter gets a gradient
    for (const g of grads) expect(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0])).toBeGreaterThan(0);
    tf.dispose(grads);
    } finally {
      dispose();
    }
  });

  it('Hessian-vector product matches finite differences of gradients', async () => {
    await initBackend(backend);
    const { loss, params, direction, dispose } = setup('Tanh');
    try {
    const before = tf.memory().numTensors;
    const hv = hessianVectorProduct(loss, params, direction);
    const eps = 1e-2;
    const fd = tf.tidy(() => {
      const gp = gradients(loss, shifted(params, direction, eps));
      const gm = gradients(loss, shifted(params, direction, -eps));
      return gp.map((g, i) => tf.div(tf.sub(g, gm[i]), 2 * eps));
    });
    const num = Math.sqrt(hv.reduce((acc, h, i) => acc + tf.tidy(() => tf.sum(tf.square(tf.sub(h, fd[i]))).dataSync()[0]), 0));
    const den = Math.sqrt(dot(hv, hv));
    expect(den).toBeGreaterThan(0);
    expect(num / den).toBeLessThan(1e-2);
    tf.dispose([...hv, ...fd]);
    expect(tf.memory().numTensors).toBe(before);
    } finally {
      dispose();
    }
  });
});
