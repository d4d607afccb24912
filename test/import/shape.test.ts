import { afterEach, describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel } from '../../src/onnx/model.js';
import type { HostTensor } from '../../src/onnx/tensor.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { initBackend } from '../../src/engine/backend.js';
import { expectMatchesOrt, randomTensor, runOrt } from '../helpers/ops.js';

/**
 * Shape, indexing and constant ops: Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Concat,
 * Split, Slice, Gather, Shape, Size, Expand, Tile, Pad, Cast, Constant, ConstantOfShape,
 * Identity, Dropout, Range — on device values in ONNX and NHWC layout and on host values.
 */

const x4 = randomTensor([2, 3, 4, 5], 3);
const x3 = randomTensor([2, 3, 4], 5);
const int64 = (data: number[], shape = [data.length]): HostTensor => ({ dtype: 'int64', shape, data: BigInt64Array.from(data.map(BigInt)) });
const INT64_MAX = 9223372036854775807n, INT64_MIN = -9223372036854775808n;
const bigints = (data: bigint[]): HostTensor => ({ dtype: 'int64', shape: [data.length], data: BigInt64Array.from(data) });

/** A model of host values only (the graph still needs an input, which nothing reads). */
const hostOnly = (build: (g: GraphBuilder) => void, opset?: number) =>
  expectMatchesOrt((g) => {
    g.input('unused', [1]);
    build(g);
  }, { unused: randomTensor([1]) }, { opset });

/** A 1×1 conv in front makes the value NHWC-held (c output channels). */
function convThen(g: GraphBuilder, c = 3, input = 'x'): string {
  const w = `w_${input}_${c}`;
  g.initializer(w, randomTensor([c, 3, 1, 1], 11 + c));
  const [h] = g.node('Conv', [input, w], 1);
  return h;
}

/** One op on `x` (optionally behind a conv), with int64 initializers for the other inputs. */
async function op(
  opType: string,
  opts: { x?: HostTensor; conv?: number; ints?: (number[] | HostTensor | '')[]; attrs?: Record<string, unknown>; outputs?: number; opset?: number; outType?: 'int64' | 'int32' | 'bool' | 'float32' },
): Promise<void> {
  const x = opts.x ?? x4;
  await expectMatchesOrt(
    (g) => {
      g.input('x', x.shape, x.dtype);
      const src = opts.conv ? convThen(g, opts.conv) : 'x';
      const extra = (opts.ints ?? []).map((v, i) => {
        if (v === '') return '';
        return g.initializer(`k${i}`, Array.isArray(v) ? int64(v) : v);
      });
      const outs = Array.from({ length: opts.outputs ?? 1 }, (_, i) => `y${i}`);
      g.node(opType, [src, ...extra], outs, opts.attrs as Record<string, number>);
      for (const o of outs) g.output(o, undefined, opts.outType ?? x.dtype);
    },
    { x },
    { opset: opts.opset },
  );
}

describe('Flatten, Reshape, Squeeze, Unsqueeze', () => {
  for (const axis of [0, 1, 2, -1, 4]) {
    it(`Flatten axis=${axis}`, () => op('Flatten', { attrs: { axis } }));
  }
  it('Flatten of an NHWC value keeps the ONNX element order', () => op('Flatten', { conv: 4 }));
  it('Reshape with 0 and -1', () => op('Reshape', { ints: [[0, -1, 5]], opset: 13 }));
  it('Reshape of an NHWC value', () => op('Reshape', { conv: 4, ints: [[2, 4, -1]], opset: 13 }));
  it('Reshape allowzero=0 copies dims (opset 14)', () => op('Reshape', { ints: [[0, 0, 20]], attrs: { allowzero: 0 }, opset: 14 }));
  it('Reshape allowzero=1 keeps literal zeros (opset 14)', () =>
    op('Reshape', { x: randomTensor([0, 4], 1), ints: [[4, 0]], attrs: { allowzero: 1 }, opset: 14 }));
  it('Squeeze with axes attribute (opset 11)', () => op('Squeeze', { x: randomTensor([2, 1, 3, 1], 2), attrs: { axes: [1, -1] }, opset: 11 }));
  it('Squeeze without axes (opset 13)', () => op('Squeeze', { x: randomTensor([1, 3, 1, 2], 2), opset: 13 }));
  it('Squeeze with axes input (opset 13)', () => op('Squeeze', { x: randomTensor([2, 1, 3, 1], 2), ints: [[-3]], opset: 13 }));
  it('Squeeze of an NHWC value after a global pool shape', () =>
    op('Squeeze', { x: randomTensor([2, 3, 1, 1], 4), conv: 6, ints: [[2, 3]], opset: 13 }));
  it('Unsqueeze with axes attribute (opset 11)', () => op('Unsqueeze', { x: x3, attrs: { axes: [0, -1] }, opset: 11 }));
  it('Unsqueeze with axes input (opset 13)', () => op('Unsqueeze', { x: x3, ints: [[1, 4]], opset: 13 }));
});

describe('Transpose', () => {
  it('default perm reverses the axes', () => op('Transpose', { x: x3 }));
  it('perm [1, 0, 2]', () => op('Transpose', { x: x3, attrs: { perm: [1, 0, 2] } }));
  it('of an NHWC value to NHWC order (no transpose at all)', () => op('Transpose', { conv: 4, attrs: { perm: [0, 2, 3, 1] } }));
  it('of an NHWC value, other perm', () => op('Transpose', { conv: 4, attrs: { perm: [3, 1, 0, 2] } }));
  it('of a host value', () =>
    hostOnly((g) => {
      g.initializer('c', int64([1, 2, 3, 4, 5, 6], [2, 3]));
      g.node('Transpose', ['c'], ['y']);
      g.output('y', undefined, 'int64');
    }));
});

describe('Concat, Split', () => {
  it('Concat along channels of NHWC values', () =>
    expectMatchesOrt((g) => {
      g.input('x', [2, 3, 4, 5]);
      g.node('Concat', [convThen(g, 2), convThen(g, 4)], ['y'], { axis: 1 });
      g.output('y');
    }, { x: x4 }));
  for (const axis of [0, 2, -1]) {
    it(`Concat axis=${axis} of an NHWC value with an ONNX-order value`, () =>
      expectMatchesOrt((g) => {
        g.input('x', [2, 3, 4, 5]);
        g.node('Concat', [convThen(g, 3), 'x'], ['y'], { axis });
        g.output('y');
      }, { x: x4 }));
  }
  it('Concat of rank-2 values with a constant (opset 7)', () =>
    expectMatchesOrt((g) => {
      g.input('x', [2, 3]);
      g.initializer('c', randomTensor([2, 2], 9));
      g.node('Concat', ['x', 'c', 'x'], ['y'], { axis: 1 });
      g.output('y');
    }, { x: randomTensor([2, 3], 4) }, { opset: 7 }));
  it('Concat of host values', () =>
    hostOnly((g) => {
      g.initializer('a', int64([1, 2]));
      g.initializer('b', int64([3]));
      g.initializer('e', int64([]));
      g.node('Concat', ['a', 'e', 'b'], ['y'], { axis: 0 });
      g.output('y', undefined, 'int64');
    }));
  it('Split into equal parts (opset 13)', () => op('Split', { attrs: { axis: 1 }, outputs: 3, opset: 13 }));
  it('Split with split input (opset 13)', () => op('Split', { ints: [[1, 3, 1]], attrs: { axis: -1 }, outputs: 3, opset: 13 }));
  it('Split with split attribute (opset 11)', () => op('Split', { attrs: { axis: 2, split: [3, 1] }, outputs: 2, opset: 11 }));
  it('Split with num_outputs, uneven (opset 18)', () => op('Split', { attrs: { axis: 3, num_outputs: 3 }, outputs: 3, opset: 18 }));
  it('Split of an NHWC value along channels', () => op('Split', { conv: 6, ints: [[2, 4]], attrs: { axis: 1 }, outputs: 2, opset: 13 }));
  it('Split of a host value', () =>
    hostOnly((g) => {
      g.initializer('c', int64([1, 2, 3, 4, 5, 6], [3, 2]));
      g.node('Split', ['c'], ['y0', 'y1'], { axis: 0, split: [1, 2] });
      g.output('y0', undefined, 'int64');
      g.output('y1', undefined, 'int64');
    }, 11));
});

describe('Slice', () => {
  const cases: [string, (number[] | HostTensor | '')[]][] = [
    ['positive steps', [[0, 1], [2, 5], [1, 3], [1, 2]]],
    ['negative steps', [[-1, 4], [-100, 0], [2, 3], [-1, -2]]],
    ['INT64_MAX / INT64_MIN sentinels', [[-1, 0], bigints([INT64_MIN, INT64_MAX]), [3, 1], [-1, 1]]],
    ['clamping beyond both ends', [[-100, 2], [100, 100], [0, 1], [1, 1]]],
    ['default axes and steps', [[0, 1, 1], [-1, 3, 100]]],
    ['start after end gives an empty axis', [[3], [1], [2]]],
    ['negative axes with step -3', [[4, 3], [-6, -10], [-1, -2], [-3, -1]]],
  ];
  for (const [name, ints] of cases) {
    it(name, () => op('Slice', { ints, opset: 13 }));
    it(`${name} on an NHWC value`, () => op('Slice', { conv: 3, ints, opset: 13 }));
  }
  it('starts/ends/axes attributes (opset 9)', () => op('Slice', { attrs: { starts: [1, -3], ends: [100, -1], axes: [0, 3] }, opset: 9 }));
  it('of a host value with INT64_MAX end', () =>
    hostOnly((g) => {
      g.initializer('c', int64([5, 6, 7, 8]));
      g.initializer('s', int64([1]));
      g.initializer('e', bigints([INT64_MAX]));
      g.initializer('st', int64([2]));
      g.initializer('a', int64([0]));
      g.node('Slice', ['c', 's', 'e', 'a', 'st'], ['y']);
      g.output('y', undefined, 'int64');
    }));
});

describe('Gather', () => {
  for (const axis of [0, 1, -1]) {
    it(`axis=${axis} with negative indices`, () => op('Gather', { ints: [[0, -1, 1]], attrs: { axis } }));
  }
  it('scalar index', () => op('Gather', { ints: [int64([-2], [])], attrs: { axis: 2 } }));
  it('2-D indices', () => op('Gather', { ints: [int64([0, 2, -1, 1], [2, 2])], attrs: { axis: 1 } }));
  it('along channels of an NHWC value', () => op('Gather', { conv: 4, ints: [[3, 0]], attrs: { axis: 1 } }));
  it('from an NHWC value with a scalar index', () => op('Gather', { conv: 4, ints: [int64([1], [])], attrs: { axis: 3 } }));
  it('with device indices (an int64 graph input)', () =>
    expectMatchesOrt((g) => {
      g.input('x', [2, 3, 4, 5]);
      g.input('i', [2, 2], 'int64');
      g.node('Gather', ['x', 'i'], ['y'], { axis: 2 });
      g.output('y');
    }, { x: x4, i: int64([0, -1, 3, -4], [2, 2]) }));
  it('from a host value with device indices', () =>
    expectMatchesOrt((g) => {
      g.input('i', [3], 'int64');
      g.initializer('c', int64([10, 20, 30, 40]));
      g.node('Gather', ['c', 'i'], ['y']);
      g.output('y', undefined, 'int64');
    }, { i: int64([3, -4, 1]) }));
  it('host fast path', () =>
    hostOnly((g) => {
      g.initializer('c', int64([1, 2, 3, 4, 5, 6], [2, 3]));
      g.initializer('i', int64([-1, 0], [2]));
      g.node('Gather', ['c', 'i'], ['y'], { axis: 1 });
      g.output('y', undefined, 'int64');
    }));
});

describe('Shape, Size, Expand, Tile', () => {
  it('Shape of an NHWC value is the ONNX shape', () => op('Shape', { conv: 7, outType: 'int64' }));
  for (const [start, end] of [[1, undefined], [-3, -1], [0, 100], [3, 1]]) {
    it(`Shape start=${start} end=${end} (opset 15)`, () =>
      op('Shape', { attrs: { start, ...(end === undefined ? {} : { end }) }, opset: 15, outType: 'int64' }));
  }
  it('Size', () => op('Size', { conv: 2, outType: 'int64' }));
  it('Expand to a higher rank', () => op('Expand', { x: randomTensor([3, 1], 2), ints: [[2, 1, 4]] }));
  it('Expand with a smaller target shape', () => op('Expand', { x: randomTensor([2, 1, 4, 1], 2), ints: [[3, 1, 5]] }));
  it('Expand of an NHWC value', () => op('Expand', { x: randomTensor([2, 3, 1, 5], 2), conv: 4, ints: [[1, 1, 3, 1]] }));
  it('Expand of a host value', () =>
    hostOnly((g) => {
      g.initializer('c', int64([1, 2, 3], [3, 1]));
      g.initializer('s', int64([2, 3, 2]));
      g.node('Expand', ['c', 's'], ['y']);
      g.output('y', undefined, 'int64');
    }));
  it('Tile', () => op('Tile', { x: x3, ints: [[2, 1, 3]] }));
  it('Tile of an NHWC value', () => op('Tile', { conv: 2, ints: [[1, 2, 1, 2]] }));
  it('Tile of a host value', () =>
    hostOnly((g) => {
      g.initializer('c', int64([1, 2, 3], [1, 3]));
      g.initializer('r', int64([2, 2]));
      g.node('Tile', ['c', 'r'], ['y']);
      g.output('y', undefined, 'int64');
    }));
});

describe('Pad', () => {
  const padOp = (mode: string, pads: number[], extra: { conv?: number; value?: number; axes?: number[]; opset?: number; x?: HostTensor } = {}) =>
    expectMatchesOrt((g) => {
      const x = extra.x ?? x4;
      g.input('x', x.shape);
      const src = extra.conv ? convThen(g, extra.conv) : 'x';
      g.initializer('p', int64(pads));
      const ins = [src, 'p'];
      if (extra.value !== undefined || extra.axes) {
        if (extra.value !== undefined) g.initializer('v', { data: [extra.value], shape: [] });
        ins.push(extra.value !== undefined ? 'v' : '');
      }
      if (extra.axes) ins.push(g.initializer('a', int64(extra.axes)));
      g.node('Pad', ins, ['y'], { mode });
      g.output('y');
    }, { x: extra.x ?? x4 }, { opset: extra.opset ?? 13 });
  it('constant with a value', () => padOp('constant', [0, 1, 2, 0, 1, 0, 1, 3], { value: 2.5 }));
  it('constant with negative pads (crop)', () => padOp('constant', [0, 0, -1, 2, 1, -1, 0, -2]));
  it('constant on an NHWC value (spatial pads)', () => padOp('constant', [0, 0, 1, 2, 0, 0, 2, 1], { conv: 4 }));
  it('constant on an NHWC value (channel pads)', () => padOp('constant', [0, 1, 0, 0, 0, 2, 0, 0], { conv: 4, value: -1 }));
  for (const mode of ['reflect', 'edge']) {
    it(`${mode}`, () => padOp(mode, [0, 1, 2, 3, 0, 2, 1, 4]));
    it(`${mode} on an NHWC value`, () => padOp(mode, [0, 0, 1, 2, 0, 0, 3, 1], { conv: 3 }));
  }
  it('reflect on rank 3', () => padOp('reflect', [0, 1, 2, 0, 2, 3], { x: x3 }));
  it('axes input (opset 18)', () => padOp('constant', [1, -2, 2, 3], { axes: [-1, 1], value: 0.5, opset: 18 }));
  it('edge with axes input (opset 18)', () => padOp('edge', [2, 1], { axes: [2], opset: 18 }));
  it('wrap (opset 19)', () => padOp('wrap', [0, 0, 2, 3, 0, 0, 1, 2], { opset: 19 }));
  it('pads and value attributes (opset 10)', () =>
    op('Pad', { attrs: { pads: [0, 0, 1, 2, 0, 1, 0, 1], value: { float: 1.5 } as never }, opset: 10 }));
  it('reflect attribute form (opset 10)', () => op('Pad', { attrs: { pads: [0, 0, 1, 2, 0, 0, 3, 1], mode: 'reflect' }, opset: 10 }));
  it('of a host value', () =>
    hostOnly((g) => {
      g.initializer('c', int64([1, 2, 3, 4, 5, 6], [2, 3]));
      g.initializer('p', int64([1, 2, 0, 1]));
      g.node('Pad', ['c', 'p'], ['y'], { mode: 'reflect' });
      g.output('y', undefined, 'int64');
    }));
});

describe('Cast', () => {
  const mixed: HostTensor = { dtype: 'float32', shape: [2, 4], data: Float32Array.from([-2.7, -0.5, 0, 0.4, 1.5, 3.9, -1, 7]) };
  it('float → int64 truncates', () => op('Cast', { x: mixed, attrs: { to: 7 }, outType: 'int64' }));
  it('float → int32', () => op('Cast', { x: mixed, attrs: { to: 6 }, outType: 'int32' }));
  it('float → bool', () => op('Cast', { x: mixed, attrs: { to: 9 }, outType: 'bool' }));
  it('float → float (no-op), opset 9', () => op('Cast', { x: mixed, attrs: { to: 1 }, opset: 9 }));
  it('int64 input → float', () =>
    expectMatchesOrt((g) => {
      g.input('i', [2, 3], 'int64');
      g.node('Cast', ['i'], ['y'], { to: 1 });
      g.output('y');
    }, { i: int64([-3, 0, 5, 1, 2, 9], [2, 3]) }));
  it('NHWC value → int64', () => op('Cast', { conv: 3, attrs: { to: 7 }, outType: 'int64' }));
  it('host values', () =>
    hostOnly((g) => {
      g.initializer('c', { data: [-2.7, 0.5, 300.2, -1], shape: [4] });
      g.node('Cast', ['c'], ['i'], { to: 7 });
      g.node('Cast', ['c'], ['u'], { to: 2 });
      g.node('Cast', ['c'], ['b'], { to: 9 });
      g.node('Cast', ['i'], ['f'], { to: 1 });
      g.output('i', undefined, 'int64');
      g.output('u', undefined, 'uint8');
      g.output('b', undefined, 'bool');
      g.output('f');
    }));
});

describe('Constant, ConstantOfShape, Range', () => {
  it('Constant value tensor', () =>
    expectMatchesOrt((g) => {
      g.input('x', [2, 3]);
      g.node('Constant', [], ['c'], { value: randomTensor([2, 3], 8) });
      g.node('Add', ['x', 'c'], ['y']);
      g.output('y');
    }, { x: randomTensor([2, 3], 4) }));
  it('a large Constant float tensor goes to the device', () =>
    expectMatchesOrt((g) => {
      g.input('x', [4, 40]);
      g.node('Constant', [], ['c'], { value: randomTensor([4, 40], 8) });
      g.node('Mul', ['x', 'c'], ['y']);
      g.output('y');
    }, { x: randomTensor([4, 40], 4) }));
  for (const [attr, value, type] of [
    ['value_float', { float: 2 }, 'float32'],
    ['value_floats', { floats: [1, 2.5] }, 'float32'],
    ['value_int', 7, 'int64'],
    ['value_ints', [3, -1], 'int64'],
  ] as const) {
    it(`Constant ${attr} (opset 13)`, () =>
      hostOnly((g) => {
        g.node('Constant', [], ['y'], { [attr]: value as never });
        g.output('y', undefined, type);
      }, 13));
  }
  it('ConstantOfShape default zeros from a Shape', () =>
    expectMatchesOrt((g) => {
      g.input('x', [2, 3, 4, 5]);
      g.node('Shape', ['x'], ['s']);
      g.node('ConstantOfShape', ['s'], ['z']);
      g.node('Add', ['x', 'z'], ['y']);
      g.output('y');
    }, { x: x4 }));
  it('ConstantOfShape with an int64 value', () =>
    hostOnly((g) => {
      g.initializer('s', int64([2, 3]));
      g.node('ConstantOfShape', ['s'], ['y'], { value: int64([-4], [1]) });
      g.output('y', undefined, 'int64');
    }));
  it('Range int64 and float', () =>
    expectMatchesOrt((g) => {
      g.input('x', [2, 3, 4, 5]);
      g.node('Shape', ['x'], ['s']);
      g.initializer('k', int64([3], []));
      g.node('Gather', ['s', 'k'], ['n']);
      g.initializer('one', int64([1], []));
      g.initializer('two', int64([2], []));
      g.node('Range', ['one', 'n', 'two'], ['yi']);
      g.initializer('f0', { data: [1], shape: [] });
      g.initializer('f1', { data: [-2], shape: [] });
      g.initializer('fd', { data: [-0.75], shape: [] });
      g.node('Range', ['f0', 'f1', 'fd'], ['yf']);
      g.output('yi', undefined, 'int64');
      g.output('yf');
    }, { x: x4 }));
});

describe('Identity, Dropout', () => {
  it('Identity of an NHWC value', () => op('Identity', { conv: 3 }));
  it('Dropout (opset 7) of an NHWC value', () =>
    expectMatchesOrt((g) => {
      g.input('x', [2, 3, 4, 5]);
      g.node('Dropout', [convThen(g, 3)], ['y'], { ratio: 0.3 });
      g.output('y');
    }, { x: x4 }, { opset: 7 }));
  it('Dropout (opset 10)', () => op('Dropout', { x: x3, attrs: { ratio: 0.3 }, opset: 10 }));
  // onnxruntime leaves the opset 7–11 mask zero-filled in inference; ONNX's reference (and we) give all true.
  for (const [opset, dtype] of [[7, 'float32'], [10, 'bool'], [12, 'bool']] as const) {
    it(`Dropout (opset ${opset}) inference mask is all true, ${dtype}`, async () => {
      await initBackend('cpu');
      const g = new GraphBuilder({ opset });
      g.input('x', [2, 3, 4, 5]);
      g.node('Dropout', [convThen(g, 3)], ['y', 'm'], opset < 12 ? { ratio: 0.5 } : {});
      g.output('y');
      g.output('m', undefined, dtype);
      const graph = new ImportedGraph({ proto: decodeModel(g.toBytes(), 'd.onnx') }, 'd.onnx');
      const m = tf.tidy(() => graph.run({ x: tf.tensor(x4.data as Float32Array, x4.shape) }).outputs.get('m')!.clone());
      expect(m.dtype).toBe(dtype);
      expect(m.shape).toEqual([2, 3, 4, 5]);
      expect(Array.from(m.dataSync()).every((v) => v === 1)).toBe(true);
      m.dispose();
      graph.dispose();
    });
  }
  it('Dropout (opset 13) with ratio input and mask', () =>
    expectMatchesOrt((g) => {
      g.input('x', [2, 3]);
      g.initializer('r', { data: [0.2], shape: [] });
      g.node('Dropout', ['x', 'r'], ['y', 'm'], { seed: 3 });
      g.output('y');
      g.output('m', undefined, 'bool');
    }, { x: randomTensor([2, 3], 3) }, { opset: 13 }));

  it('Dropout in training drops with the ratio, scales the rest and is seeded', async () => {
    await initBackend('cpu');
    const g = new GraphBuilder({ opset: 13 });
    g.input('x', [64, 64]);
    g.initializer('r', { data: [0.25], shape: [] });
    g.node('Dropout', ['x', 'r'], ['y', 'm']);
    g.output('y');
    g.output('m', undefined, 'bool');
    const graph = new ImportedGraph({ proto: decodeModel(g.toBytes(), 'd.onnx') }, 'd.onnx');
    const run = (seed: number) =>
      tf.tidy(() => {
        const { outputs } = graph.run({ x: tf.ones([64, 64]) }, { training: true, seed });
        return [outputs.get('y')!.dataSync().slice(), outputs.get('m')!.dataSync().slice()];
      });
    const [y, m] = run(1);
    let kept = 0;
    y.forEach((v, i) => {
      expect(v).toBeCloseTo(m[i] ? 1 / 0.75 : 0, 5);
      kept += m[i];
    });
    expect(kept / y.length).toBeGreaterThan(0.7);
    expect(kept / y.length).toBeLessThan(0.8);
    expect(Array.from(run(1)[1])).toEqual(Array.from(m));
    expect(Array.from(run(2)[1])).not.toEqual(Array.from(m));
    graph.dispose();
  });
});

describe("PyTorch's x.view(x.size(0), -1)", () => {
  /** Conv (NHWC-held) → Shape → Gather(0) → Unsqueeze → Concat(-1) → Reshape, with a dynamic batch. */
  function viewFlatten(opset: number): Uint8Array {
    const g = new GraphBuilder({ opset });
    g.input('input', ['N', 3, 4, 4]);
    g.initializer('w', randomTensor([5, 3, 3, 3], 2));
    g.node('Conv', ['input', 'w'], ['h'], { pads: [1, 1, 1, 1] });
    g.node('Shape', ['h'], ['s']);
    g.initializer('zero', int64([0], []));
    g.node('Gather', ['s', 'zero'], ['n'], { axis: 0 });
    if (opset >= 13) {
      g.initializer('ax', int64([0]));
      g.node('Unsqueeze', ['n', 'ax'], ['n1']);
    } else {
      g.node('Unsqueeze', ['n'], ['n1'], { axes: [0] });
    }
    g.initializer('minus1', int64([-1]));
    g.node('Concat', ['n1', 'minus1'], ['shape'], { axis: 0 });
    g.node('Reshape', ['h', 'shape'], ['logits']);
    g.output('logits', ['N', 80]);
    return g.toBytes();
  }

  afterEach(() => vi.restoreAllMocks());

  for (const opset of [11, 13]) {
    it(`one imported graph serves batch 2 and 5 (opset ${opset}), reading no device data`, async () => {
      const bytes = viewFlatten(opset);
      for (const backend of ['wasm', 'cpu'] as const) {
        await initBackend(backend);
        const graph = new ImportedGraph({ proto: decodeModel(bytes, 'view.onnx') }, 'view.onnx');
        try {
          for (const batch of [2, 5]) {
            const input = randomTensor([batch, 3, 4, 4], batch);
            const ref = (await runOrt(bytes, { input })).logits;
            const reads = vi.spyOn(tf.Tensor.prototype, 'dataSync');
            const got = tf.tidy(() => {
              const out = graph.run({ input: tf.tensor(input.data as Float32Array, input.shape) }).outputs.get('logits')!;
              expect(reads).not.toHaveBeenCalled();
              return { dims: out.shape, data: out.dataSync().slice() };
            });
            reads.mockRestore();
            expect(got.dims).toEqual(ref.dims);
            expect(got.dims).toEqual([batch, 80]);
            let worst = 0;
            ref.data.forEach((r, i) => (worst = Math.max(worst, Math.abs(got.data[i] - r))));
            expect(worst).toBeLessThan(1e-4);
          }
        } finally {
          graph.dispose();
        }
      }
    });
  }
});

describe('NHWC values stay NHWC', () => {
  /** Transposes run by conv → middle → conv, against the same chain with an Identity in the middle. */
  async function extraTransposes(middle: (g: GraphBuilder, h: string) => [string, number]): Promise<number> {
    await initBackend('cpu');
    const count = async (mid: typeof middle) => {
      const g = new GraphBuilder({ opset: 18 });
      g.input('x', [1, 3, 6, 6]);
      const [m, c] = mid(g, convThen(g, 4));
      g.initializer('w2', randomTensor([2, c, 1, 1], 3));
      g.node('Conv', [m, 'w2'], ['y']);
      g.output('y');
      const graph = new ImportedGraph({ proto: decodeModel(g.toBytes(), 'n.onnx') }, 'n.onnx');
      const x = tf.tensor(randomTensor([1, 3, 6, 6], 1).data as Float32Array, [1, 3, 6, 6]);
      const info = await tf.profile(() => graph.run({ x }).outputs.get('y')!);
      tf.dispose([x, info.result as tf.Tensor]);
      graph.dispose();
      return info.kernels.filter((k) => k.name === 'Transpose').length;
    };
    return (await count(middle)) - (await count((g, h) => [g.node('Identity', [h], 1)[0], 4]));
  }
  const ints = (g: GraphBuilder, name: string, data: number[]) => g.initializer(name, int64(data));
  const cases: [string, (g: GraphBuilder, h: string) => [string, number]][] = [
    ['Concat along channels', (g, h) => [g.node('Concat', [h, h], 1, { axis: 1 })[0], 8]],
    ['Split along channels', (g, h) => [g.node('Split', [h], 2, { axis: 1, num_outputs: 2 })[1], 2]],
    ['Slice', (g, h) => [g.node('Slice', [h, ints(g, 's', [1, -1]), ints(g, 'e', [4, 0]), ints(g, 'a', [1, 3]), ints(g, 't', [1, -2])], 1)[0], 3]],
    ['Pad', (g, h) => [g.node('Pad', [h, ints(g, 'p', [0, 0, 1, 2, 0, 0, 2, 1])], 1, { mode: 'reflect' })[0], 4]],
    ['Gather along channels', (g, h) => [g.node('Gather', [h, ints(g, 'i', [3, 0])], 1, { axis: 1 })[0], 2]],
    ['Tile', (g, h) => [g.node('Tile', [h, ints(g, 'r', [1, 1, 2, 1])], 1)[0], 4]],
    ['Dropout', (g, h) => [g.node('Dropout', [h], 1)[0], 4]],
    ['Cast to float', (g, h) => [g.node('Cast', [h], 1, { to: 1 })[0], 4]],
  ];
  for (const [name, middle] of cases) it(name, async () => expect(await extraTransposes(middle)).toBe(0));
});

describe('gradients', () => {
  /** Central differences of sum(w ⊙ f(x)) against tf.grad through the imported graph. */
  async function gradCheck(build: (g: GraphBuilder) => void, shape: number[], opset = 17): Promise<void> {
    await initBackend('cpu');
    const g = new GraphBuilder({ opset });
    g.input('x', shape);
    build(g);
    g.output('y');
    const graph = new ImportedGraph({ proto: decodeModel(g.toBytes(), 'g.onnx') }, 'g.onnx');
    try {
      const x0 = tf.tensor(randomTensor(shape, 5).data as Float32Array, shape);
      const yShape = tf.tidy(() => graph.run({ x: x0 }).outputs.get('y')!.shape);
      const w = tf.tensor(randomTensor(yShape, 9).data as Float32Array, yShape);
      const f = (x: tf.Tensor) => tf.sum(tf.mul(graph.run({ x }).outputs.get('y')!, w));
      const grad = tf.tidy(() => tf.grad(f)(x0).dataSync().slice());
      const xs = x0.dataSync();
      const eps = 1e-2;
      for (let i = 0; i < xs.length; i++) {
        const at = (d: number) => tf.tidy(() => f(tf.tensor(xs.map((v, j) => (j === i ? v + d : v)), shape)).dataSync()[0]);
        const fd = (at(eps) - at(-eps)) / (2 * eps);
        expect(Math.abs(fd - grad[i]) / Math.max(1, Math.abs(fd))).toBeLessThan(1e-2);
      }
      x0.dispose();
      w.dispose();
    } finally {
      graph.dispose();
    }
  }
  const ints = (g: GraphBuilder, name: string, data: number[], shape?: number[]) => g.initializer(name, int64(data, shape));

  it('Slice with negative and strided steps (NHWC)', () =>
    gradCheck((g) => {
      g.node('Slice', [convThen(g, 3), ints(g, 's', [-1, 3]), ints(g, 'e', [0, -100]), ints(g, 'a', [1, 3]), ints(g, 'st', [-2, -2])], ['y']);
    }, [1, 3, 3, 4]));
  it('Pad reflect and edge', () =>
    gradCheck((g) => {
      g.node('Pad', ['x', ints(g, 'p', [0, 1, 2, 0, 2, 1])], ['a'], { mode: 'reflect' });
      g.node('Pad', ['a', ints(g, 'q', [1, 0, 1, 0, 0, 2])], ['y'], { mode: 'edge' });
    }, [2, 3, 4]));
  it('Gather with repeated indices', () =>
    gradCheck((g) => {
      g.node('Gather', ['x', ints(g, 'i', [1, -1, 1, 0], [2, 2])], ['y'], { axis: 1 });
    }, [2, 3, 2]));
  it('Expand, Tile and Transpose', () =>
    gradCheck((g) => {
      g.node('Expand', ['x', ints(g, 's', [2, 3, 4])], ['a']);
      g.node('Tile', ['a', ints(g, 'r', [1, 2, 1])], ['b']);
      g.node('Transpose', ['b'], ['y'], { perm: [2, 0, 1] });
    }, [3, 1]));
  it('Concat and Split of NHWC values', () =>
    gradCheck((g) => {
      g.node('Concat', [convThen(g, 2), 'x'], ['c'], { axis: 1 });
      g.node('Split', ['c', ints(g, 'sp', [4, 1])], ['a', 'b'], { axis: 1 });
      g.node('Mul', ['a', 'a'], ['a2']);
      g.node('Concat', ['b', 'a2'], ['y'], { axis: 1 });
    }, [1, 3, 2, 2]));
});

describe('unsupported', () => {
  const importOf = (build: (g: GraphBuilder) => void, opset = 17) => {
    const g = new GraphBuilder({ opset });
    build(g);
    return () => new ImportedGraph({ proto: decodeModel(g.toBytes(), 'x.onnx') }, 'x.onnx');
  };
  it("Pad mode 'wrap' before opset 19", () => {
    expect(importOf((g) => {
      g.input('x', [2, 3]);
      g.initializer('p', int64([1, 1, 1, 1]));
      g.node('Pad', ['x', 'p'], ['y'], { mode: 'wrap' }, { name: 'pad_wrap' });
      g.output('y');
    }, 18)).toThrow(/'pad_wrap' \(Pad, opset 18\).*mode 'wrap'/);
  });
  it('Cast to string', () => {
    expect(importOf((g) => {
      g.input('x', [2, 3]);
      g.node('Cast', ['x'], ['y'], { to: 8 }, { name: 'to_str' });
      g.output('y', undefined, 'string');
    })).toThrow(/'to_str' \(Cast, opset 17\).*STRING/);
  });
  it('Constant sparse_value', () => {
    const g = new GraphBuilder({ opset: 17 });
    g.input('x', [1]);
    g.node('Constant', [], ['y'], { sparse_value: randomTensor([2], 1) }, { name: 'sparse' });
    g.output('y');
    expect(() => new ImportedGraph({ proto: decodeModel(g.toBytes(), 'x.onnx') }, 'x.onnx')).toThrow(/'sparse' \(Constant, opset 17\).*sparse_value/);
  });
  it('an unknown attribute', () => {
    expect(importOf((g) => {
      g.input('x', [2, 3]);
      g.node('Flatten', ['x'], ['y'], { axis: 1, mystery: 2 }, { name: 'flat' });
      g.output('y');
    })).toThrow(/'flat' \(Flatten, opset 17\).*'mystery' not supported/);
  });
  it('Split with num_outputs that does not match the outputs', () => {
    expect(importOf((g) => {
      g.input('x', [6]);
      g.node('Split', ['x'], ['a', 'b'], { num_outputs: 3 }, { name: 'sp' });
      g.output('a');
    }, 18)).toThrow(/'sp' \(Split, opset 18\).*num_outputs 3/);
  });
});

describe('opset-1 forms onnxruntime no longer runs', () => {
  const runOne = async (build: (g: GraphBuilder) => void, x: HostTensor, opset: number) => {
    await initBackend('cpu');
    const g = new GraphBuilder({ opset });
    g.input('x', x.shape);
    build(g);
    g.output('y');
    const graph = new ImportedGraph({ proto: decodeModel(g.toBytes(), 'o.onnx') }, 'o.onnx');
    try {
      return tf.tidy(() => {
        const y = graph.run({ x: tf.tensor(x.data as Float32Array, x.shape) }).outputs.get('y')!;
        return { shape: y.shape, data: Array.from(y.dataSync()) };
      });
    } finally {
      graph.dispose();
    }
  };
  const x: HostTensor = { dtype: 'float32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) };
  it('Reshape with a shape attribute', async () => {
    expect(await runOne((g) => g.node('Reshape', ['x'], ['y'], { shape: [3, -1] }), x, 1)).toEqual({ shape: [3, 2], data: [1, 2, 3, 4, 5, 6] });
  });
  it('Pad with a paddings attribute', async () => {
    expect(await runOne((g) => g.node('Pad', ['x'], ['y'], { paddings: [0, 1, 0, 0], value: { float: 9 } as never }), x, 1))
      .toEqual({ shape: [2, 4], data: [9, 1, 2, 3, 9, 4, 5, 6] });
  });
  it('Cast with a string type name', async () => {
    expect(await runOne((g) => g.node('Cast', ['x'], ['y'], { to: 'INT32' }), { ...x, data: Float32Array.from([1.5, -2.5, 3, 4, 5, 6]) }, 1))
      .toEqual({ shape: [2, 3], data: [1, -2, 3, 4, 5, 6] });
  });
  it('Tile with tiles and axis inputs', async () => {
    const out = await runOne((g) => {
      g.initializer('t', int64([2], []));
      g.initializer('a', int64([1], []));
      g.node('Tile', ['x', 't', 'a'], ['y']);
    }, x, 1);
    expect(out).toEqual({ shape: [2, 6], data: [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6] });
  });
  it('Split with a split input', async () => {
    const out = await runOne((g) => {
      g.initializer('s', int64([1, 2]));
      g.node('Split', ['x', 's'], ['y', 'z'], { axis: 1 });
    }, x, 1);
    expect(out).toEqual({ shape: [2, 1], data: [1, 4] });
  });
  it('Dropout with is_test (opset 6) is the identity', async () => {
    expect(await runOne((g) => g.node('Dropout', ['x'], ['y'], { is_test: 1, ratio: 0.2 }), x, 6)).toEqual({ shape: [2, 3], data: [1, 2, 3, 4, 5, 6] });
  });
  it('Concat with the default axis 1', async () => {
    expect(await runOne((g) => g.node('Concat', ['x', 'x'], ['y']), x, 1)).toEqual({ shape: [2, 6], data: [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6] });
  });
});
