import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import type { GraphBuilder } from '../../src/onnx/builder.js';
import type { HostTensor } from '../../src/onnx/tensor.js';
import { initBackend } from '../../src/engine/backend.js';
import { lossGradientError } from '../helpers/gradcheck.js';
import { expectMatchesOrt, importModel, randomTensor } from '../helpers/ops.js';

type Attrs = Record<string, number | number[] | string | { float: number }>;

const C = 3;
const x4 = randomTensor([2, C, 5, 6], 7, 2);
const positive = (t: HostTensor, offset = 1): HostTensor => ({ ...t, data: (t.data as Float32Array).map((v) => offset + Math.abs(v)) });
const params = {
  scale: randomTensor([C], 21),
  bias: randomTensor([C], 22),
  mean: randomTensor([C], 23, 0.5),
  var: positive(randomTensor([C], 24)),
};

/** x → [1×1 conv →] BatchNormalization(scale, bias, mean, var) → outputs. */
function batchNormModel(g: GraphBuilder, shape: number[], attrs: Attrs, outputs = ['y'], nhwc = false): void {
  g.input('x', shape);
  let x = 'x';
  if (nhwc) {
    // A 1×1 conv in front makes the normalized value NHWC-held.
    g.initializer('w', randomTensor([C, C, 1, 1], 11));
    x = g.node('Conv', ['x', 'w'], 1)[0];
  }
  for (const [name, t] of Object.entries(params)) g.initializer(name, t);
  g.node('BatchNormalization', [x, 'scale', 'bias', 'mean', 'var'], outputs, attrs, { name: 'bn1' });
  for (const o of outputs) if (o) g.output(o);
}

describe('BatchNormalization, inference', () => {
  for (const opset of [7, 9, 14, 15]) {
    it(`NCHW, opset ${opset}`, () =>
      expectMatchesOrt((g) => batchNormModel(g, x4.shape, opset < 9 ? { spatial: 1 } : {}), { x: x4 }, { opset }));
  }
  it('NHWC-held input, epsilon', () =>
    expectMatchesOrt((g) => batchNormModel(g, x4.shape, { epsilon: 0.01 }, ['y'], true), { x: x4 }));
  it('rank 2 [N, C]', () => expectMatchesOrt((g) => batchNormModel(g, [4, C], {}), { x: randomTensor([4, C], 3) }));
  it('rank 3 [N, C, L]', () => expectMatchesOrt((g) => batchNormModel(g, [2, C, 7], {}), { x: randomTensor([2, C, 7], 3) }));
  it('training_mode = 0 given explicitly', () =>
    expectMatchesOrt((g) => batchNormModel(g, x4.shape, { training_mode: 0, momentum: { float: 0.8 } }), { x: x4 }));
});

describe('BatchNormalization, training mode', () => {
  // onnxruntime runs training-mode BatchNormalization: batch statistics and updated running stats.
  it('training_mode = 1 outputs Y, running_mean, running_var (opset 15)', () =>
    expectMatchesOrt((g) => batchNormModel(g, x4.shape, { training_mode: 1, momentum: { float: 0.8 } }, ['y', 'rm', 'rv']), { x: x4 }, { opset: 15 }));
  it('training_mode = 1 on an NHWC-held input', () =>
    expectMatchesOrt((g) => batchNormModel(g, x4.shape, { training_mode: 1 }, ['y', 'rm', 'rv'], true), { x: x4 }, { opset: 14 }));
  it('training_mode = 1, rank 3', () =>
    expectMatchesOrt((g) => batchNormModel(g, [4, C, 5], { training_mode: 1 }, ['y', 'rm', 'rv']), { x: randomTensor([4, C, 5], 9) }, { opset: 14 }));
  it('opset 9 with all five outputs (saved_var is 1/sqrt(var + ε))', () =>
    expectMatchesOrt((g) => batchNormModel(g, x4.shape, { momentum: { float: 0.7 } }, ['y', 'rm', 'rv', 'sm', 'sv']), { x: x4 }, { opset: 9 }));

  for (const backend of ['wasm', 'cpu'] as const) {
    it(`run({ training: true }) normalizes with batch stats and reports running stats (${backend})`, async () => {
      await initBackend(backend);
      const momentum = 0.8, epsilon = 1e-3;
      const graph = importModel((g) => batchNormModel(g, x4.shape, { momentum: { float: momentum }, epsilon: { float: epsilon } }), 14);
      try {
        expect([...graph.statisticNames].sort()).toEqual(['mean', 'var']);
        const [n, , h, w] = x4.shape;
        const x = x4.data as Float32Array;
        const { y, stats } = tf.tidy(() => {
          const r = graph.run({ x: tf.tensor(x, x4.shape) }, { training: true });
          const stats = Object.fromEntries([...r.statistics].map(([k, t]) => [k, Array.from(t.dataSync())]));
          return { y: r.outputs.get('y')!.dataSync(), stats };
        });
        // Hand computation, channel by channel.
        const at = (b: number, c: number, i: number) => (b * C + c) * h * w + i;
        for (let c = 0; c < C; c++) {
          const vals: number[] = [];
          for (let b = 0; b < n; b++) for (let i = 0; i < h * w; i++) vals.push(x[at(b, c, i)]);
          const mean = vals.reduce((s, v) => s + v, 0) / vals.length;
          const variance = vals.reduce((s, v) => s + (v - mean) ** 2, 0) / vals.length; // biased
          const [gamma, beta] = [(params.scale.data as Float32Array)[c], (params.bias.data as Float32Array)[c]];
          for (let b = 0; b < n; b++) {
            for (let i = 0; i < h * w; i++) {
              const want = ((x[at(b, c, i)] - mean) / Math.sqrt(variance + epsilon)) * gamma + beta;
              expect(y[at(b, c, i)]).toBeCloseTo(want, 4);
            }
          }
          const runMean = (params.mean.data as Float32Array)[c], runVar = (params.var.data as Float32Array)[c];
          expect(stats.mean[c]).toBeCloseTo(momentum * runMean + (1 - momentum) * mean, 5);
          expect(stats.var[c]).toBeCloseTo(momentum * runVar + (1 - momentum) * variance, 5);
        }
        // Without the flag the same model uses the running statistics and reports nothing.
        const inference = tf.tidy(() => graph.run({ x: tf.tensor(x, x4.shape) }).statistics.size);
        expect(inference).toBe(0);
      } finally {
        graph.dispose();
      }
    });
  }
});

describe('InstanceNormalization', () => {
  const model = (g: GraphBuilder, shape: number[], nhwc = false) => {
    g.input('x', shape);
    let x = 'x';
    if (nhwc) {
      g.initializer('w', randomTensor([shape[1], shape[1], 1, 1], 11));
      x = g.node('Conv', ['x', 'w'], 1)[0];
    }
    g.initializer('scale', params.scale);
    g.initializer('bias', params.bias);
    g.node('InstanceNormalization', [x, 'scale', 'bias'], ['y'], { epsilon: 0.001 });
    g.output('y');
  };
  it('rank 4', () => expectMatchesOrt((g) => model(g, x4.shape), { x: x4 }));
  it('rank 4, NHWC-held input', () => expectMatchesOrt((g) => model(g, x4.shape, true), { x: x4 }));
  it('rank 3', () => expectMatchesOrt((g) => model(g, [2, C, 8]), { x: randomTensor([2, C, 8], 4) }));
  it('opset 6', () => expectMatchesOrt((g) => model(g, x4.shape), { x: x4 }, { opset: 6 }));
});

describe('LayerNormalization', () => {
  const model = (g: GraphBuilder, shape: number[], attrs: Attrs, withBias: boolean, outputs = ['y']) => {
    g.input('x', shape);
    const axis = typeof attrs.axis === 'number' ? attrs.axis : -1;
    const normShape = shape.slice(axis < 0 ? axis + shape.length : axis);
    g.initializer('scale', randomTensor(normShape, 31));
    if (withBias) g.initializer('bias', randomTensor(normShape, 32));
    g.node('LayerNormalization', ['x', 'scale', ...(withBias ? ['bias'] : [])], outputs, attrs);
    for (const o of outputs) g.output(o);
  };
  const x3 = randomTensor([2, 4, 6], 5, 3);
  it('last axis, with bias', () => expectMatchesOrt((g) => model(g, [2, 4, 6], {}, true), { x: x3 }));
  it('last axis, no bias, epsilon', () => expectMatchesOrt((g) => model(g, [2, 4, 6], { epsilon: 0.1 }, false), { x: x3 }));
  it('axis 1 of rank 4, Mean and InvStdDev outputs', () =>
    expectMatchesOrt((g) => model(g, x4.shape, { axis: 1 }, true, ['y', 'mean', 'invstd']), { x: x4 }));
  it('axis −2, stash_type = 1 given', () =>
    expectMatchesOrt((g) => model(g, [2, 4, 6], { axis: -2, stash_type: 1 }, true, ['y', 'mean', 'invstd']), { x: x3 }));
  it('broadcast scale ([1, 6] against [4, 6])', () =>
    expectMatchesOrt(
      (g) => {
        g.input('x', [2, 4, 6]);
        g.initializer('scale', randomTensor([1, 6], 33));
        g.node('LayerNormalization', ['x', 'scale'], ['y'], { axis: -2 });
        g.output('y');
      },
      { x: x3 },
    ));
});

describe('unsupported attributes fail at import, naming node and op', () => {
  it('BatchNormalization spatial = 0 (opset 7)', () => {
    expect(() => importModel((g) => batchNormModel(g, x4.shape, { spatial: 0 }), 7)).toThrow(
      /node 'bn1' \(BatchNormalization, opset 7\).*spatial/,
    );
  });
  it('BatchNormalization running stats requested with training_mode = 0', () => {
    expect(() => importModel((g) => batchNormModel(g, x4.shape, {}, ['y', 'rm', 'rv']), 15)).toThrow(
      /node 'bn1' \(BatchNormalization, opset 15\).*training_mode/,
    );
  });
  it('LayerNormalization stash_type = 0', () => {
    const build = (g: GraphBuilder) => {
      g.input('x', [2, 4]);
      g.initializer('scale', randomTensor([4], 1));
      g.node('LayerNormalization', ['x', 'scale'], ['y'], { stash_type: 0 }, { name: 'ln1' });
      g.output('y');
    };
    expect(() => importModel(build)).toThrow(/node 'ln1' \(LayerNormalization, opset 17\).*stash_type/);
  });
});

describe('BatchNormalization gradients in training mode', () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    it(`first and second order match finite differences (${backend})`, async () => {
      await initBackend(backend);
      const graph = importModel((g) => batchNormModel(g, x4.shape, {}), 14);
      try {
        const x0 = tf.tensor(x4.data as Float32Array, x4.shape);
        const w = tf.randomUniform(x4.shape, -1, 1, 'float32', 5);
        const v = tf.randomUniform(x4.shape, -1, 1, 'float32', 6);
        // sum(y · w): batch statistics make dL/dx depend on every element of the channel.
        const loss = (x: tf.Tensor) => tf.sum(tf.mul(graph.run({ x }, { training: true }).outputs.get('y')!, w)) as tf.Scalar;
        expect(lossGradientError(loss, x0)).toBeLessThan(1e-2);
        // Double backprop: d/dx of (dL/dx · v).
        const gradDot = (x: tf.Tensor) => tf.sum(tf.mul(tf.grad(loss)(x), v)) as tf.Scalar;
        expect(lossGradientError(gradDot, x0)).toBeLessThan(1e-2);
        // The learnable scale and bias get gradients too.
        const { grads } = tf.variableGrads(() => loss(x0), graph.trainableVariables());
        expect(Object.keys(grads).map((k) => k.split('/').pop()).sort()).toEqual(['bias', 'scale']);
        tf.dispose([x0, w, v, ...Object.values(grads)]);
      } finally {
        graph.dispose();
      }
    });
  }
});
