import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel } from '../../src/onnx/model.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { initBackend } from '../../src/engine/backend.js';
import { expectMatchesOrt, randomTensor } from '../helpers/ops.js';

const x4 = randomTensor([2, 3, 4, 5], 3, 3);

/** A 1×1 conv in front makes the normalized value NHWC-held. */
function convThen(g: GraphBuilder): string {
  g.initializer('w', randomTensor([6, 3, 1, 1], 11));
  g.node('Conv', ['x', 'w'], ['h']);
  return 'h';
}

function importModel(opset: number, build: (g: GraphBuilder) => void): ImportedGraph {
  const g = new GraphBuilder({ opset });
  build(g);
  return new ImportedGraph({ proto: decodeModel(g.toBytes(), 'x.onnx') }, 'x.onnx');
}

for (const op of ['Softmax', 'LogSoftmax']) {
  describe(`${op} before opset 13 (coerced to 2-D at axis)`, () => {
    for (const axis of [undefined, 0, 2, 3, -1]) {
      it(`axis=${axis ?? 'default (1)'}`, async () => {
        await expectMatchesOrt(
          (g) => {
            g.input('x', [2, 3, 4, 5]);
            g.node(op, ['x'], ['y'], axis === undefined ? {} : { axis });
            g.output('y');
          },
          { x: x4 },
          { opset: 11 },
        );
      });
    }
    for (const axis of [1, 2]) {
      it(`NHWC-held input, axis=${axis}`, async () => {
        await expectMatchesOrt(
          (g) => {
            g.input('x', [2, 3, 4, 5]);
            g.node(op, [convThen(g)], ['y'], { axis });
            g.output('y');
          },
          { x: x4 },
          { opset: 11 },
        );
      });
    }
    it('rank-2 logits (opset 1 converter at opset 9)', async () => {
      await expectMatchesOrt(
        (g) => {
          g.input('x', [4, 10]);
          g.node(op, ['x'], ['y']);
          g.output('y');
        },
        { x: randomTensor([4, 10], 5, 4) },
        { opset: 9 },
      );
    });
  });

  describe(`${op} from opset 13 (along axis)`, () => {
    for (const axis of [undefined, 0, 1, 2, -3]) {
      it(`axis=${axis ?? 'default (-1)'}`, async () => {
        await expectMatchesOrt(
          (g) => {
            g.input('x', [2, 3, 4, 5]);
            g.node(op, ['x'], ['y'], axis === undefined ? {} : { axis });
            g.output('y');
          },
          { x: x4 },
          { opset: 13 },
        );
      });
    }
    for (const axis of [1, 3]) {
      it(`NHWC-held input, axis=${axis}`, async () => {
        await expectMatchesOrt(
          (g) => {
            g.input('x', [2, 3, 4, 5]);
            g.node(op, [convThen(g)], ['y'], { axis });
            g.output('y');
          },
          { x: x4 },
          { opset: 13 },
        );
      });
    }
  });
}

describe('unsupported softmax', () => {
  it('an unknown attribute fails at import, naming the node', () => {
    expect(() =>
      importModel(13, (g) => {
        g.input('x', [2, 3]);
        g.node('Softmax', ['x'], ['y'], { axis: 1, temperature: 2 });
        g.output('y');
      }),
    ).toThrow(/node 'Softmax_0' \(Softmax, opset 13\): attribute 'temperature' not supported/);
  });
  it('an axis out of range names the node', async () => {
    await initBackend('cpu');
    const graph = importModel(13, (g) => {
      g.input('x', [2, 3]);
      g.node('LogSoftmax', ['x'], ['y'], { axis: -3 });
      g.output('y');
    });
    expect(() => tf.tidy(() => graph.run({ x: tf.zeros([2, 3]) }))).toThrow(/node 'LogSoftmax_0' \(LogSoftmax, opset 13\): axis -3 is out of range/);
    graph.dispose();
  });
});

/**
 * Largest error of tf.grad against central differences at a few coordinates, relative to the
 * largest gradient entry, for the loss sum(f(x) · w); with order 2, for the loss
 * sum(∇(that loss)(x) · v), which checks double backprop.
 */
function gradientError(f: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor, order: 1 | 2, eps = 1e-2, probes = 16): number {
  return tf.tidy(() => {
    const wave = (shape: number[], phase: number) => tf.sin(tf.add(tf.reshape(tf.range(0, shape.reduce((a, b) => a * b, 1)), shape), phase));
    const w = wave(f(x).shape, 0);
    const v = wave(x.shape, 1);
    const first = (t: tf.Tensor) => tf.sum(tf.mul(f(t), w));
    const loss = order === 1 ? first : (t: tf.Tensor) => tf.sum(tf.mul(tf.grad(first)(t), v));
    const g = tf.grad(loss)(x).dataSync();
    const scale = Math.max(1e-6, ...Array.from(g, Math.abs));
    const base = x.dataSync();
    let worst = 0;
    for (let k = 0; k < probes; k++) {
      const i = Math.floor(((k + 0.5) / probes) * base.length);
      const at = (d: number) => {
        const p = Float32Array.from(base);
        p[i] += d;
        return loss(tf.tensor(p, x.shape)).dataSync()[0];
      };
      worst = Math.max(worst, Math.abs((at(eps) - at(-eps)) / (2 * eps) - g[i]) / scale);
    }
    return worst;
  });
}

describe('gradients of softmax', () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    for (const [op, opset, axis] of [['Softmax', 13, 2], ['LogSoftmax', 13, 1], ['Softmax', 11, 1], ['LogSoftmax', 11, 2]] as const) {
      for (const order of [1, 2] as const) {
        it(`${op} opset ${opset} axis ${axis} on ${backend}, ${order === 1 ? 'first order' : 'double backprop'}`, async () => {
          await initBackend(backend);
          const graph = importModel(opset, (g) => {
            g.input('x', [2, 3, 4, 5]);
            g.node(op, ['x'], ['y'], { axis });
            g.output('y');
          });
          const x = tf.tensor(x4.data as Float32Array, x4.shape);
          try {
            expect(gradientError((t) => graph.run({ x: t }).outputs.get('y')!, x, order)).toBeLessThan(1e-2);
          } finally {
            graph.dispose();
            x.dispose();
          }
        });
      }
    }
  }
});
