import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { expectMatchesOrt, randomTensor } from '../helpers/ops.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel } from '../../src/onnx/model.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { initBackend } from '../../src/engine/backend.js';

const x = randomTensor([2, 3, 4, 4], 21, 4);

describe('activations', () => {
  const cases: [string, Record<string, number | { float: number }>, number?][] = [
    ['Relu', {}],
    ['Sigmoid', {}],
    ['Tanh', {}],
    ['Softplus', {}],
    ['Erf', {}],
    ['LeakyRelu', { alpha: 0.2 }],
    ['Elu', { alpha: 0.7 }],
    ['Elu', {}],
    ['Selu', {}],
    ['HardSigmoid', { alpha: 0.3, beta: 0.4 }],
    ['HardSwish', {}],
    ['Gelu', {}, 20],
  ];
  for (const [op, attrs, opset] of cases) {
    it(`${op} ${JSON.stringify(attrs)}`, async () => {
      await expectMatchesOrt((g) => {
        g.input('x', [2, 3, 4, 4]);
        g.node(op, ['x'], ['y'], attrs);
        g.output('y');
      }, { x }, { opset: opset ?? 17 });
    });
  }

  it('Gelu with the tanh approximation', async () => {
    await expectMatchesOrt((g) => {
      g.input('x', [2, 3, 4, 4]);
      g.node('Gelu', ['x'], ['y'], { approximate: 'tanh' });
      g.output('y');
    }, { x }, { opset: 20 });
  });

  it('PRelu with a per-channel learnable slope', async () => {
    await expectMatchesOrt((g) => {
      g.input('x', [2, 3, 4, 4]);
      g.initializer('slope', randomTensor([3, 1, 1], 22));
      g.node('PRelu', ['x', 'slope'], ['y']);
      g.output('y');
    }, { x });
  });

  it('Clip with constant inputs (ReLU6), one bound, and attributes (opset 6)', async () => {
    await expectMatchesOrt((g) => {
      g.input('x', [2, 3, 4, 4]);
      g.initializer('lo', { data: [0], shape: [] });
      g.initializer('hi', { data: [6], shape: [] });
      g.node('Clip', ['x', 'lo', 'hi'], ['y']);
      g.node('Clip', ['x', '', 'hi'], ['z']);
      g.output('y');
      g.output('z');
    }, { x });
    await expectMatchesOrt((g) => {
      g.input('x', [2, 3, 4, 4]);
      g.node('Clip', ['x'], ['y'], { min: { float: -1 }, max: { float: 2 } });
      g.output('y');
    }, { x }, { opset: 6 });
  });

  it('Clip with bounds computed at run time', async () => {
    await expectMatchesOrt((g) => {
      g.input('x', [2, 3, 4, 4]);
      g.input('lo', []);
      g.node('Clip', ['x', 'lo'], ['y']);
      g.output('y');
    }, { x, lo: { dtype: 'float32', shape: [], data: new Float32Array([-0.5]) } });
  });

  it('an unsupported attribute value names the node', async () => {
    await initBackend('cpu');
    const g = new GraphBuilder({ opset: 20 });
    g.input('x', [2]);
    g.node('Gelu', ['x'], ['y'], { approximate: 'cubic' }, { name: 'gelu_1' });
    g.output('y');
    expect(() => new ImportedGraph({ proto: decodeModel(g.toBytes(), 'g.onnx') }, 'g.onnx')).toThrow(/gelu_1.*Gelu.*approximate/);
  });

  it('HardSwish gradient matches finite differences', async () => {
    await initBackend('cpu');
    const f = (t: tf.Tensor) => tf.mul(t, tf.clipByValue(tf.add(tf.div(t, 6), 0.5), 0, 1)).sum() as tf.Scalar;
    const g = new GraphBuilder({ opset: 14 });
    g.input('x', [6]);
    g.node('HardSwish', ['x'], ['y']);
    g.output('y');
    const graph = new ImportedGraph({ proto: decodeModel(g.toBytes(), 'hs.onnx') }, 'hs.onnx');
    const input = tf.tensor1d([-4, -2, -0.5, 0.7, 2, 4]);
    const grad = tf.grad((t: tf.Tensor) => tf.sum(graph.run({ x: t }).outputs.get('y')!))(input).dataSync();
    const eps = 1e-2;
    const data = input.dataSync();
    for (let i = 0; i < data.length; i++) {
      const p = Float32Array.from(data), m = Float32Array.from(data);
      p[i] += eps;
      m[i] -= eps;
      const numeric = (f(tf.tensor1d(p)).dataSync()[0] - f(tf.tensor1d(m)).dataSync()[0]) / (2 * eps);
      expect(Math.abs(grad[i] - numeric)).toBeLessThan(1e-2 * Math.max(1, Math.abs(numeric)));
    }
    graph.dispose();
  });
});
