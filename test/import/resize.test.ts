import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import type { AttrValue, GraphBuilder } from '../../src/onnx/builder.js';
import type { HostTensor } from '../../src/onnx/tensor.js';
import { initBackend } from '../../src/engine/backend.js';
import { gradientError } from '../helpers/gradcheck.js';
import { expectMatchesOrt, importModel, randomTensor } from '../helpers/ops.js';

const SHAPE = [2, 3, 5, 7];
const x4 = randomTensor(SHAPE, 3);
const floats = (data: readonly number[]): HostTensor => ({ dtype: 'float32', shape: [data.length], data: Float32Array.from(data) });
const int64 = (data: readonly number[]): HostTensor => ({ dtype: 'int64', shape: [data.length], data: BigInt64Array.from(data.map(BigInt)) });

type Target = { readonly scales: readonly number[] } | { readonly sizes: readonly number[] };

/** A Resize node (opset ≥ 13 input layout: X, roi, scales, sizes), optionally behind a conv. */
function resize(g: GraphBuilder, target: Target, attrs: Record<string, AttrValue>, opts: { nhwc?: boolean; shape?: number[] } = {}): void {
  const shape = opts.shape ?? SHAPE;
  g.input('x', shape);
  let x = 'x';
  if (opts.nhwc) {
    g.initializer('w', randomTensor([shape[1], shape[1], 1, 1], 11));
    g.node('Conv', ['x', 'w'], ['h']);
    x = 'h';
  }
  if ('scales' in target) {
    g.initializer('scales', floats(target.scales));
    g.node('Resize', [x, '', 'scales'], ['y'], attrs);
  } else {
    g.initializer('sizes', int64(target.sizes));
    g.node('Resize', [x, '', '', 'sizes'], ['y'], attrs);
  }
  g.output('y');
}

const TARGETS: [string, Target][] = [
  ['scales ×2', { scales: [1, 1, 2, 2] }],
  ['scales ×1.7 / ×0.6', { scales: [1, 1, 1.7, 0.6] }],
  ['scales ×0.5 / ×3', { scales: [1, 1, 0.5, 3] }],
  ['sizes 8×5', { sizes: [2, 3, 8, 5] }],
  ['sizes 3×13', { sizes: [2, 3, 3, 13] }],
];
const COORDINATE_MODES = ['half_pixel', 'pytorch_half_pixel', 'align_corners', 'asymmetric', 'tf_half_pixel_for_nn'];
const NEAREST_MODES = ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil'];

describe('Resize nearest (opset 13)', () => {
  for (const coordinate_transformation_mode of COORDINATE_MODES) {
    for (const nearest_mode of NEAREST_MODES) {
      for (const [label, target] of TARGETS) {
        it(`${coordinate_transformation_mode} / ${nearest_mode}, ${label}`, async () => {
          await expectMatchesOrt((g) => resize(g, target, { mode: 'nearest', coordinate_transformation_mode, nearest_mode }), { x: x4 }, { opset: 13 });
        });
      }
    }
  }
  it('default attributes (half_pixel, round_prefer_floor)', async () => {
    await expectMatchesOrt((g) => resize(g, { scales: [1, 1, 3, 0.5] }, {}), { x: x4 }, { opset: 13 });
  });
});

describe('Resize linear (opset 13)', () => {
  for (const coordinate_transformation_mode of COORDINATE_MODES.filter((m) => m !== 'tf_half_pixel_for_nn')) {
    for (const [label, target] of TARGETS) {
      it(`${coordinate_transformation_mode}, ${label}`, async () => {
        await expectMatchesOrt((g) => resize(g, target, { mode: 'linear', coordinate_transformation_mode }), { x: x4 }, { opset: 13 });
      });
    }
  }
});

describe('Resize of an NHWC-held value', () => {
  for (const mode of ['nearest', 'linear']) {
    it(`${mode}, half_pixel ×2 then a conv`, async () => {
      await expectMatchesOrt(
        (g) => {
          resize(g, { scales: [1, 1, 2, 2] }, { mode }, { nhwc: true });
          g.initializer('w2', randomTensor([4, 3, 3, 3], 12));
          g.node('Conv', ['y', 'w2'], ['z']);
          g.output('z');
        },
        { x: x4 },
        { opset: 13 },
      );
    });
  }
});

describe('Resize opset 18/19 attributes', () => {
  it('axes with sizes (opset 18)', async () => {
    await expectMatchesOrt(
      (g) => {
        g.input('x', SHAPE);
        g.initializer('sizes', int64([9, 4]));
        g.node('Resize', ['x', '', '', 'sizes'], ['y'], { mode: 'linear', axes: [2, -1] });
        g.output('y');
      },
      { x: x4 },
      { opset: 18 },
    );
  });
  it('axes with scales, stretch policy, antialias 0 (opset 18)', async () => {
    await expectMatchesOrt(
      (g) => {
        g.input('x', SHAPE);
        g.initializer('scales', floats([2, 1.5]));
        g.node('Resize', ['x', '', 'scales'], ['y'], { mode: 'nearest', axes: [2, 3], keep_aspect_ratio_policy: 'stretch', antialias: 0 });
        g.output('y');
      },
      { x: x4 },
      { opset: 18 },
    );
  });
  for (const mode of ['nearest', 'linear']) {
    // ×0.6 on 7 columns puts a nearest sample exactly half-way in exact arithmetic (0.5); in
    // float32 it is 0.50000018 (onnxruntime's linear mode agrees), yet onnxruntime's nearest
    // mode rounds it as a tie. Known one-pixel difference, left out here.
    for (const [label, target] of TARGETS.filter(([l]) => mode === 'linear' || !l.includes('0.6'))) {
      it(`half_pixel_symmetric ${mode}, ${label} (opset 19)`, async () => {
        await expectMatchesOrt((g) => resize(g, target, { mode, coordinate_transformation_mode: 'half_pixel_symmetric' }), { x: x4 }, { opset: 19 });
      });
    }
  }
});

describe('Resize inputs', () => {
  it('opset 11: roi and empty scales given, sizes used; unused cubic/extrapolation attributes', async () => {
    await expectMatchesOrt(
      (g) => {
        g.input('x', SHAPE);
        g.initializer('roi', floats([]));
        g.initializer('scales', floats([]));
        g.initializer('sizes', int64([2, 3, 10, 4]));
        g.node('Resize', ['x', 'roi', 'scales', 'sizes'], ['y'], { mode: 'linear', cubic_coeff_a: { float: -0.5 }, exclude_outside: 0, extrapolation_value: { float: 0 } });
        g.output('y');
      },
      { x: x4 },
      { opset: 11 },
    );
  });
  it('sizes known only at run time', async () => {
    await expectMatchesOrt(
      (g) => {
        g.input('x', SHAPE);
        g.input('sizes', [4], 'int64');
        g.node('Resize', ['x', '', '', 'sizes'], ['y'], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
        g.output('y');
      },
      { x: x4, sizes: int64([2, 3, 10, 14]) },
      { opset: 13 },
    );
  });
  it('rank-3 input, linear over the last axis', async () => {
    await expectMatchesOrt((g) => resize(g, { scales: [1, 1, 2.5] }, { mode: 'linear' }, { shape: [2, 3, 6] }), { x: randomTensor([2, 3, 6], 9) }, { opset: 13 });
  });
  it('batch and channel axes can be resized too (nearest)', async () => {
    await expectMatchesOrt((g) => resize(g, { sizes: [3, 5, 5, 7] }, { mode: 'nearest' }), { x: x4 }, { opset: 13 });
  });
});

describe('legacy Resize-10 and Upsample', () => {
  for (const mode of ['nearest', 'linear']) {
    for (const scales of [[1, 1, 2, 3], [1, 1, 0.5, 0.75], [1, 1, 1.5, 2.5]]) {
      it(`Resize-10 ${mode} scales [${scales}]`, async () => {
        await expectMatchesOrt(
          (g) => {
            g.input('x', SHAPE);
            g.initializer('scales', floats(scales));
            g.node('Resize', ['x', 'scales'], ['y'], { mode });
            g.output('y');
          },
          { x: x4 },
          { opset: 10 },
        );
      });
    }
    it(`Upsample-9 ${mode} (scales input)`, async () => {
      await expectMatchesOrt(
        (g) => {
          g.input('x', SHAPE);
          g.initializer('scales', floats([1, 1, 2, 1.5]));
          g.node('Upsample', ['x', 'scales'], ['y'], { mode });
          g.output('y');
        },
        { x: x4 },
        { opset: 9 },
      );
    });
    it(`Upsample-7 ${mode} (scales attribute)`, async () => {
      await expectMatchesOrt(
        (g) => {
          g.input('x', SHAPE);
          g.node('Upsample', ['x'], ['y'], { mode, scales: { floats: [1, 1, 2, 3] } });
          g.output('y');
        },
        { x: x4 },
        { opset: 7 },
      );
    });
  }
});

describe('unsupported Resize', () => {
  const cases: [string, number, Record<string, AttrValue>, RegExp][] = [
    ['cubic mode', 13, { mode: 'cubic' }, /mode 'cubic' is not supported/],
    ['tf_crop_and_resize', 13, { coordinate_transformation_mode: 'tf_crop_and_resize' }, /coordinate_transformation_mode 'tf_crop_and_resize' is not supported/],
    ['an unknown nearest_mode', 13, { nearest_mode: 'simple' }, /nearest_mode 'simple' is not supported/],
    ['antialias on linear', 18, { mode: 'linear', antialias: 1 }, /antialias=1 is not supported/],
    ['keep_aspect_ratio_policy not_larger', 18, { keep_aspect_ratio_policy: 'not_larger' }, /keep_aspect_ratio_policy 'not_larger' is not supported/],
    ['opset-18 attributes at opset 13', 13, { antialias: 0 }, /attribute 'antialias' not supported/],
  ];
  for (const [label, opset, attrs, message] of cases) {
    it(`${label} fails at import, naming the node`, () => {
      expect(() => importModel((g) => resize(g, { scales: [1, 1, 2, 2] }, attrs), opset)).toThrow(
        new RegExp(`node 'Resize_0' \\(Resize, opset ${opset}\\): ${message.source}`),
      );
    });
  }
  it('both scales and sizes fail at run time, naming the node', async () => {
    await initBackend('cpu');
    const graph = importModel((g) => {
      g.input('x', SHAPE);
      g.initializer('scales', floats([1, 1, 2, 2]));
      g.initializer('sizes', int64([2, 3, 10, 14]));
      g.node('Resize', ['x', '', 'scales', 'sizes'], ['y']);
      g.output('y');
    }, 13);
    try {
      expect(() => tf.tidy(() => void graph.run({ x: tf.zeros(SHAPE) }))).toThrow(/node 'Resize_0' \(Resize, opset 13\): exactly one of scales and sizes/);
    } finally {
      graph.dispose();
    }
  });
});

describe('gradients of Resize', () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    for (const [mode, target] of [['linear', { scales: [1, 1, 1.7, 0.6] }], ['nearest', { sizes: [2, 3, 8, 5] }]] as const) {
      for (const order of [1, 2] as const) {
        it(`${mode} on ${backend}, ${order === 1 ? 'first order' : 'double backprop'}`, async () => {
          await initBackend(backend);
          const graph = importModel((g) => resize(g, target, { mode }, { nhwc: true }), 13);
          const x = tf.tensor(x4.data as Float32Array, x4.shape);
          try {
            // Squared, so that the second derivative of the (linear) resize is not trivially zero.
            const f = (t: tf.Tensor) => tf.square(graph.run({ x: t }).outputs.get('y')!);
            expect(gradientError(f, x, order)).toBeLessThan(1e-2);
          } finally {
            graph.dispose();
            x.dispose();
          }
        });
      }
    }
  }
});
