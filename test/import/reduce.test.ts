import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import type { GraphBuilder } from '../../src/onnx/builder.js';
import type { HostTensor } from '../../src/onnx/tensor.js';
import { initBackend } from '../../src/engine/backend.js';
import { gradientError } from '../helpers/gradcheck.js';
import { expectMatchesOrt, importModel, randomTensor } from '../helpers/ops.js';

const REDUCE_OPS = ['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceSumSquare', 'ReduceLogSumExp'];
const x4 = randomTensor([2, 3, 4, 5], 3);
const positive = (t: HostTensor): HostTensor => ({ ...t, data: (t.data as Float32Array).map((v) => 1 + v) });
const int64 = (data: number[]): HostTensor => ({ dtype: 'int64', shape: [data.length], data: BigInt64Array.from(data.map(BigInt)) });

/** A 1×1 conv in front makes the reduced value NHWC-held. */
function convThen(g: GraphBuilder, c = 3): string {
  g.initializer('w', randomTensor([c, 3, 1, 1], 11));
  g.node('Conv', ['x', 'w'], ['h']);
  return 'h';
}

describe('Reduce* with axes as attribute (opset 17; ReduceSum opset 11)', () => {
  for (const op of REDUCE_OPS) {
    const opset = op === 'ReduceSum' ? 11 : 17;
    for (const [axes, keepdims] of [[[1], 1], [[2, -1], 0], [undefined, 0], [undefined, 1], [[0, 3], 1]] as const) {
      it(`${op} axes=${axes ?? 'all'} keepdims=${keepdims}`, async () => {
        await expectMatchesOrt(
          (g) => {
            g.input('x', [2, 3, 4, 5]);
            g.node(op, ['x'], ['y'], { keepdims, ...(axes ? { axes: [...axes] } : {}) });
            g.output('y');
          },
          { x: op === 'ReduceProd' ? positive(x4) : x4 },
          { opset },
        );
      });
    }
  }
  it('ReduceLogSum', async () => {
    await expectMatchesOrt(
      (g) => {
        g.input('x', [2, 3, 4, 5]);
        g.node('ReduceLogSum', ['x'], ['y'], { axes: [1, 2], keepdims: 0 });
        g.output('y');
      },
      { x: positive(x4) },
    );
  });
});

describe('Reduce* with axes as input (ReduceSum 13, others 18)', () => {
  for (const op of REDUCE_OPS) {
    const opset = op === 'ReduceSum' ? 13 : 18;
    it(`${op} axes input [-1, 1], keepdims 0`, async () => {
      await expectMatchesOrt(
        (g) => {
          g.input('x', [2, 3, 4, 5]);
          g.initializer('axes', int64([-1, 1]));
          g.node(op, ['x', 'axes'], ['y'], { keepdims: 0 });
          g.output('y');
        },
        { x: op === 'ReduceProd' ? positive(x4) : x4 },
        { opset },
      );
    });
    it(`${op} without axes reduces everything`, async () => {
      await expectMatchesOrt(
        (g) => {
          g.input('x', [2, 3, 4, 5]);
          g.node(op, ['x'], ['y'], {});
          g.output('y');
        },
        { x: op === 'ReduceProd' ? positive(randomTensor([2, 3, 4, 5], 3, 0.1)) : x4 },
        { opset },
      );
    });
  }
  for (const op of ['ReduceSum', 'ReduceMean', 'ReduceL2', 'ReduceSumSquare']) {
    it(`${op} noop_with_empty_axes=1 with empty axes`, async () => {
      await expectMatchesOrt(
        (g) => {
          g.input('x', [2, 3, 4, 5]);
          g.initializer('axes', int64([]));
          g.node(op, ['x', 'axes'], ['y'], { noop_with_empty_axes: 1 });
          g.output('y');
        },
        { x: x4 },
        { opset: 18 },
      );
    });
  }
  it('axes fed at run time', async () => {
    await expectMatchesOrt(
      (g) => {
        g.input('x', [2, 3, 4, 5]);
        g.input('axes', [2], 'int64');
        g.node('ReduceMean', ['x', 'axes'], ['y'], { keepdims: 1 });
        g.output('y');
      },
      { x: x4, axes: int64([1, 3]) },
      { opset: 18 },
    );
  });
});

describe('reductions of NHWC-held values', () => {
  const cases: [string, number[], number][] = [
    ['ReduceMean', [2, 3], 1], // global average pool, stays NHWC
    ['ReduceMean', [2, 3], 0], // flattening global average pool
    ['ReduceMax', [1], 0], // channel max: [N, H, W]
    ['ReduceSum', [1, 3], 0], // kept N, H: a reshape suffices
    ['ReduceL2', [3], 0], // kept N, C, H: needs a transpose
    ['ReduceMin', [0, 2], 1],
  ];
  for (const [op, axes, keepdims] of cases) {
    it(`${op} axes=[${axes}] keepdims=${keepdims}`, async () => {
      await expectMatchesOrt(
        (g) => {
          g.input('x', [2, 3, 4, 5]);
          g.node(op, [convThen(g, 6)], ['y'], { axes, keepdims });
          g.node('Relu', ['y'], ['z']); // something downstream of the reduction
          g.output('z');
        },
        { x: x4 },
        { opset: 11 },
      );
    });
  }
});

describe('host reductions', () => {
  it('integer constants are reduced at import', async () => {
    await expectMatchesOrt(
      (g) => {
        g.input('x', [1]);
        g.initializer('dims', { dtype: 'int64', shape: [2, 3], data: BigInt64Array.from([1n, 2n, 3n, 4n, 5n, 6n]) });
        g.node('ReduceSum', ['dims'], ['s'], { axes: [1], keepdims: 0 });
        g.node('ReduceProd', ['dims'], ['p'], { axes: [0], keepdims: 1 });
        g.node('ReduceMax', ['dims'], ['m'], { keepdims: 0 });
        g.node('ReduceMean', ['dims'], ['a'], { axes: [1], keepdims: 0 });
        g.output('s', undefined, 'int64');
        g.output('p', undefined, 'int64');
        g.output('m', undefined, 'int64');
        g.output('a', undefined, 'int64');
      },
      { x: randomTensor([1], 1) },
      { opset: 11 },
    );
  });
});

describe('ArgMax / ArgMin', () => {
  // Values rounded to a coarse grid so that ties occur.
  const ties = { ...x4, data: (x4.data as Float32Array).map((v) => Math.round(v * 2)) };
  for (const op of ['ArgMax', 'ArgMin']) {
    for (const [axis, keepdims, last] of [[0, 1, 0], [1, 0, 0], [-1, 1, 1], [2, 0, 1]] as const) {
      it(`${op} axis=${axis} keepdims=${keepdims} select_last_index=${last}`, async () => {
        await expectMatchesOrt(
          (g) => {
            g.input('x', [2, 3, 4, 5]);
            g.node(op, ['x'], ['y'], { axis, keepdims, select_last_index: last });
            g.output('y', undefined, 'int64');
          },
          { x: ties },
          { opset: 13 },
        );
      });
    }
  }
  for (const [axis, keepdims] of [[1, 1], [1, 0], [3, 0]] as const) {
    it(`ArgMax of an NHWC-held value, axis=${axis} keepdims=${keepdims}`, async () => {
      await expectMatchesOrt(
        (g) => {
          g.input('x', [2, 3, 4, 5]);
          g.node('ArgMax', [convThen(g, 6)], ['y'], { axis, keepdims });
          g.output('y', undefined, 'int64');
        },
        { x: x4 },
      );
    });
  }
  it('ArgMax with default attributes (opset 11)', async () => {
    await expectMatchesOrt(
      (g) => {
        g.input('x', [4, 6]);
        g.node('ArgMax', ['x'], ['y']);
        g.output('y', undefined, 'int64');
      },
      { x: randomTensor([4, 6], 2) },
      { opset: 11 },
    );
  });
});

describe('unsupported reductions', () => {
  it('axes as an attribute after it became an input', () => {
    const load = () =>
      importModel((g) => {
        g.input('x', [2, 3]);
        g.node('ReduceSum', ['x'], ['y'], { axes: [1] });
        g.output('y');
      }, 13);
    expect(load).toThrow(/node 'ReduceSum_0' \(ReduceSum, opset 13\): attribute 'axes' not supported/);
  });
  it('an axis out of range names the node', async () => {
    await initBackend('cpu');
    const graph = importModel((g) => {
      g.input('x', [2, 3]);
      g.node('ArgMax', ['x'], ['y'], { axis: 2 });
      g.output('y', undefined, 'int64');
    }, 13);
    try {
      expect(() => tf.tidy(() => void graph.run({ x: tf.zeros([2, 3]) }))).toThrow(/node 'ArgMax_0' \(ArgMax, opset 13\): axis 2 is out of range/);
    } finally {
      graph.dispose();
    }
  });
});

describe('gradients of reductions', () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    for (const op of ['ReduceL2', 'ReduceProd', 'ReduceLogSumExp', 'ReduceMean', 'ReduceMax', 'ReduceSumSquare']) {
      for (const order of [1, 2] as const) {
        it(`${op} on ${backend}, ${order === 1 ? 'first order' : 'double backprop'}`, async () => {
          await initBackend(backend);
          const graph = importModel((g) => {
            g.input('x', [2, 3, 4, 5]);
            g.node(op, [convThen(g, 6)], ['y'], { axes: [1, 3], keepdims: 0 });
            g.output('y');
          }, 13);
          const x = tf.tensor(positive(x4).data as Float32Array, x4.shape);
          try {
            // Squared, so that the second derivative of a linear reduction is not trivially zero.
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
