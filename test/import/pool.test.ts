import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import type { ImportedGraph } from '../../src/import/graph.js';
import { initBackend } from '../../src/engine/backend.js';
import { lossGradientError } from '../helpers/gradcheck.js';
import { expectMatchesOrt, importModel, randomTensor } from '../helpers/ops.js';

type Attrs = Record<string, number | number[] | string>;

const x4 = randomTensor([2, 3, 9, 10], 7);

/** One pooling node on x → y, compared with onnxruntime. */
async function pool(op: string, attrs: Attrs, opts: { shape?: number[]; opset?: number; nhwc?: boolean } = {}): Promise<void> {
  const shape = opts.shape ?? x4.shape;
  await expectMatchesOrt(
    (g) => {
      g.input('x', shape);
      let x = 'x';
      if (opts.nhwc) {
        // A 1×1 conv in front makes the pooled value NHWC-held.
        g.initializer('w', randomTensor([shape[1], shape[1], 1, 1], 11));
        x = g.node('Conv', ['x', 'w'], 1)[0];
      }
      g.node(op, [x], ['y'], attrs);
      g.output('y');
    },
    { x: opts.shape ? randomTensor(shape, 5) : x4 },
    { opset: opts.opset ?? 17 },
  );
}

describe('MaxPool', () => {
  it('3×3 stride 2 pads 1 (ResNet stem)', () => pool('MaxPool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }));
  it('2×2 stride 2, no pads, odd input (floor)', () => pool('MaxPool', { kernel_shape: [2, 2], strides: [2, 2] }));
  it('asymmetric pads, non-square kernel', () => pool('MaxPool', { kernel_shape: [2, 3], strides: [1, 2], pads: [0, 1, 1, 2] }));
  it('NHWC-held input', () => pool('MaxPool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, { nhwc: true }));
  for (const ceil_mode of [0, 1]) {
    it(`ceil_mode=${ceil_mode} with pads`, () => pool('MaxPool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode }));
    it(`ceil_mode=${ceil_mode}, last window dropped when it would start in the padding`, () =>
      pool('MaxPool', { kernel_shape: [2, 2], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode }, { shape: [1, 2, 7, 8] }));
    it(`ceil_mode=${ceil_mode} with dilations`, () =>
      pool('MaxPool', { kernel_shape: [3, 2], strides: [2, 3], pads: [1, 0, 1, 1], dilations: [2, 3], ceil_mode }));
  }
  for (const auto_pad of ['SAME_UPPER', 'SAME_LOWER', 'VALID']) {
    it(`auto_pad=${auto_pad}`, () => pool('MaxPool', { kernel_shape: [3, 2], strides: [2, 2], auto_pad }));
  }
  it('1-D', () => pool('MaxPool', { kernel_shape: [3], strides: [2], pads: [1, 1], ceil_mode: 1 }, { shape: [2, 4, 11] }));
  it('opset 8 (storage_order = 0 given)', () => pool('MaxPool', { kernel_shape: [2, 2], strides: [2, 2], storage_order: 0 }, { opset: 8 }));
  it('opset 1', () => pool('MaxPool', { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, { opset: 1 }));
});

describe('AveragePool', () => {
  for (const count_include_pad of [0, 1]) {
    describe(`count_include_pad=${count_include_pad}`, () => {
      it('3×3 stride 2 pads 1', () => pool('AveragePool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad }));
      it('asymmetric pads', () => pool('AveragePool', { kernel_shape: [2, 3], strides: [2, 1], pads: [1, 0, 0, 2], count_include_pad }));
      it('ceil_mode with pads', () =>
        pool('AveragePool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad }));
      it('ceil_mode without pads (window past the input)', () =>
        pool('AveragePool', { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1, count_include_pad }, { shape: [1, 2, 8, 7] }));
      it('ceil_mode, last window dropped', () =>
        pool('AveragePool', { kernel_shape: [2, 2], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad }, { shape: [1, 2, 7, 8] }));
      it('dilations (opset 19)', () =>
        pool('AveragePool', { kernel_shape: [2, 3], strides: [3, 2], pads: [1, 1, 1, 0], dilations: [3, 2], ceil_mode: 1, count_include_pad }, { opset: 19 }));
      for (const auto_pad of ['SAME_UPPER', 'SAME_LOWER']) {
        it(`auto_pad=${auto_pad}`, () => pool('AveragePool', { kernel_shape: [4, 3], strides: [3, 2], auto_pad, count_include_pad }));
      }
      it('1-D', () => pool('AveragePool', { kernel_shape: [3], strides: [2], pads: [1, 2], ceil_mode: 1, count_include_pad }, { shape: [2, 4, 10] }));
      it('NHWC-held input', () => pool('AveragePool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], count_include_pad }, { nhwc: true }));
    });
  }
  it('no padding: plain average (opset 7)', () => pool('AveragePool', { kernel_shape: [2, 2], strides: [2, 2] }, { opset: 7 }));
});

describe('global pools', () => {
  for (const op of ['GlobalAveragePool', 'GlobalMaxPool']) {
    it(`${op} rank 4`, () => pool(op, {}));
    it(`${op} rank 4, NHWC-held input`, () => pool(op, {}, { nhwc: true }));
    it(`${op} rank 3`, () => pool(op, {}, { shape: [2, 5, 7] }));
  }
  it('a chain stays NHWC: MaxPool → AveragePool → GlobalMaxPool', async () => {
    await expectMatchesOrt(
      (g) => {
        g.input('x', x4.shape);
        const [a] = g.node('MaxPool', ['x'], 1, { kernel_shape: [2, 2], pads: [1, 1, 0, 0] });
        const [b] = g.node('AveragePool', [a], 1, { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
        g.node('GlobalMaxPool', [b], ['y']);
        g.output('y');
      },
      { x: x4 },
    );
  });
});

/** One pooling node named pool1 on x, imported. */
function importOne(op: string, attrs: Attrs, outputs: string[] = ['y'], opset = 17): ImportedGraph {
  return importModel((g) => {
    g.input('x', x4.shape);
    g.node(op, ['x'], outputs, attrs, { name: 'pool1' });
    for (const o of outputs) g.output(o);
  }, opset);
}

describe('unsupported attributes fail at import, naming node and op', () => {
  const cases: [string, Attrs, string[], RegExp][] = [
    ['MaxPool', { kernel_shape: [2, 2], storage_order: 1 }, ['y'], /storage_order/],
    ['MaxPool', { kernel_shape: [2, 2] }, ['y', 'indices'], /Indices/],
    ['MaxPool', { kernel_shape: [3, 3], auto_pad: 'SAME_UPPER', dilations: [2, 2] }, ['y'], /dilations/],
    ['AveragePool', { kernel_shape: [2, 2], auto_pad: 'SAME_SIDEWAYS' }, ['y'], /auto_pad/],
    ['AveragePool', { kernel_shape: [2, 2, 2] }, ['y'], /3-D/],
    ['AveragePool', { kernel_shape: [2, 2], p: 2 }, ['y'], /'p' not supported/],
  ];
  for (const [op, attrs, outputs, why] of cases) {
    it(`${op} ${JSON.stringify(attrs)} → ${outputs.join(', ')}`, () => {
      expect(() => importOne(op, attrs, outputs)).toThrow(new RegExp(`node 'pool1' \\(${op}, opset 17\\).*${why.source}`));
    });
  }
});

describe('gradients', () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    it(`AveragePool count_include_pad=0 with pads and ceil_mode (${backend})`, async () => {
      await initBackend(backend);
      const graph = importOne('AveragePool', { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad: 0 });
      try {
        const x0 = tf.tensor(x4.data as Float32Array, x4.shape);
        const w = tf.randomUniform([2, 3, 5, 6], -1, 1, 'float32', 3);
        // sum(y · w): every output position weighs its window differently.
        const loss = (x: tf.Tensor) => tf.sum(tf.mul(graph.run({ x }).outputs.get('y')!, w)) as tf.Scalar;
        expect(lossGradientError(loss, x0)).toBeLessThan(1e-2);
        tf.dispose([x0, w]);
      } finally {
        graph.dispose();
      }
    });
  }
});
