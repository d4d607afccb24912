import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import type { GraphBuilder } from '../../src/onnx/builder.js';
import { initBackend } from '../../src/engine/backend.js';
import { gradientError } from '../helpers/gradcheck.js';
import { expectMatchesOrt, importModel, randomTensor } from '../helpers/ops.js';

const x4 = randomTensor([2, 3, 4, 5], 3, 3);

/** A 1×1 conv in front makes the normalized value NHWC-held. */
function convThen(g: GraphBuilder): string {
  g.initializer('w', randomTensor([6, 3, 1, 1], 11));
  g.node('Conv', ['x', 'w'], ['h']);
  return 'h';
}

/** x → [1×1 conv →] op(axis) → y. */
function softmaxModel(g: GraphBuilder, op: string, axis: number | undefined, nhwc = false): void {
  g.input('x', [2, 3, 4, 5]);
  g.node(op, [nhwc ? convThen(g) : 'x'], ['y'], axis === undefined ? {} : { axis });
  g.output('y');
}

const SEMANTICS = [
  { title: 'before opset 13 (coerced to 2-D at axis)', opset: 11, defaultAxis: 1, axes: [undefined, 0, 2, 3, -1], nhwcAxes: [1, 2] },
  { title: 'from opset 13 (along axis)', opset: 13, defaultAxis: -1, axes: [undefined, 0, 1, 2, -3], nhwcAxes: [1, 3] },
];

for (const op of ['Softmax', 'LogSoftmax']) {
  for (const { title, opset, defaultAxis, axes, nhwcAxes } of SEMANTICS) {
    describe(`${op} ${title}`, () => {
      for (const axis of axes) {
        it(`axis=${axis ?? `default (${defaultAxis})`}`, () => expectMatchesOrt((g) => softmaxModel(g, op, axis), { x: x4 }, { opset }));
      }
      for (const axis of nhwcAxes) {
        it(`NHWC-held input, axis=${axis}`, () => expectMatchesOrt((g) => softmaxModel(g, op, axis, true), { x: x4 }, { opset }));
      }
      if (opset < 13) {
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
      }
    });
  }
}

describe('unsupported softmax', () => {
  it('an unknown attribute fails at import, naming the node', () => {
    expect(() =>
      importModel((g) => {
        g.input('x', [2, 3]);
        g.node('Softmax', ['x'], ['y'], { axis: 1, temperature: 2 });
        g.output('y');
      }, 13),
    ).toThrow(/node 'Softmax_0' \(Softmax, opset 13\): attribute 'temperature' not supported/);
  });
  it('an axis out of range names the node', async () => {
    await initBackend('cpu');
    const graph = importModel((g) => {
      g.input('x', [2, 3]);
      g.node('LogSoftmax', ['x'], ['y'], { axis: -3 });
      g.output('y');
    }, 13);
    try {
      expect(() => tf.tidy(() => void graph.run({ x: tf.zeros([2, 3]) }))).toThrow(/node 'LogSoftmax_0' \(LogSoftmax, opset 13\): axis -3 is out of range/);
    } finally {
      graph.dispose();
    }
  });
});

describe('gradients of softmax', () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    for (const [op, opset, axis] of [['Softmax', 13, 2], ['LogSoftmax', 13, 1], ['Softmax', 11, 1], ['LogSoftmax', 11, 2]] as const) {
      for (const order of [1, 2] as const) {
        it(`${op} opset ${opset} axis ${axis} on ${backend}, ${order === 1 ? 'first order' : 'double backprop'}`, async () => {
          await initBackend(backend);
          const graph = importModel((g) => softmaxModel(g, op, axis), opset);
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
