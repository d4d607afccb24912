import { describe, it, expect } from 'vitest';
import { expectMatchesOrt, randomTensor } from '../helpers/ops.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel } from '../../src/onnx/model.js';
import { ImportedGraph } from '../../src/import/graph.js';

const positive = (shape: number[], seed: number) => {
  const t = randomTensor(shape, seed);
  (t.data as Float32Array).forEach((v, i, a) => (a[i] = Math.abs(v) + 0.1));
  return t;
};

describe('binary arithmetic with broadcasting', () => {
  for (const op of ['Add', 'Sub', 'Mul', 'Div', 'Max', 'Min']) {
    it(`${op}: [2,3,4,5] with [3,1,1] initializer and with a [5] input`, async () => {
      await expectMatchesOrt((g) => {
        g.input('a', [2, 3, 4, 5]);
        g.input('b', [5]);
        g.initializer('c', randomTensor([3, 1, 1], 3));
        g.node(op, ['a', 'c'], ['t']);
        g.node(op, ['t', 'b'], ['y']);
        g.output('y');
      }, { a: positive([2, 3, 4, 5], 1), b: positive([5], 2) });
    });
  }

  it('Pow with a scalar and with a tensor exponent', async () => {
    await expectMatchesOrt((g) => {
      g.input('a', [2, 3]);
      g.input('e', [2, 3]);
      g.initializer('two', { data: [2], shape: [] });
      g.node('Pow', ['a', 'two'], ['sq']);
      g.node('Pow', ['a', 'e'], ['y']);
      g.output('sq');
      g.output('y');
    }, { a: positive([2, 3], 4), e: randomTensor([2, 3], 5) });
  });

  it('elementwise ops after a conv run in NHWC and agree with onnxruntime', async () => {
    await expectMatchesOrt((g) => {
      g.input('x', ['N', 3, 6, 6]);
      g.initializer('w', randomTensor([4, 3, 3, 3], 6, 0.5));
      g.initializer('scale', randomTensor([1, 4, 1, 1], 7));
      g.node('Conv', ['x', 'w'], ['c'], { pads: [1, 1, 1, 1] });
      g.node('Mul', ['c', 'scale'], ['m']);
      g.node('Add', ['m', 'c'], ['y']);
      g.output('y');
    }, { x: randomTensor([2, 3, 6, 6], 8) });
  });
});

describe('unary ops', () => {
  for (const op of ['Neg', 'Abs', 'Sqrt', 'Exp', 'Log', 'Reciprocal', 'Floor', 'Ceil', 'Sign']) {
    it(op, async () => {
      await expectMatchesOrt((g) => {
        g.input('x', [3, 4]);
        g.node(op, ['x'], ['y']);
        g.output('y');
      }, { x: op === 'Sqrt' || op === 'Log' || op === 'Reciprocal' ? positive([3, 4], 9) : randomTensor([3, 4], 9, 3) });
    });
  }
});

describe('comparison and logic', () => {
  it('Equal, Less, Greater, Not, And, Or, Where', async () => {
    await expectMatchesOrt((g) => {
      g.input('a', [2, 5]);
      g.input('b', [5]);
      g.node('Less', ['a', 'b'], ['lt']);
      g.node('Greater', ['a', 'b'], ['gt']);
      g.node('Equal', ['a', 'a'], ['eq']);
      g.node('Not', ['lt'], ['nlt']);
      g.node('And', ['nlt', 'eq'], ['and']);
      g.node('Or', ['gt', 'lt'], ['or']);
      g.node('Where', ['lt', 'a', 'b'], ['y']);
      g.output('y');
      g.output('and', undefined, 'bool');
      g.output('or', undefined, 'bool');
    }, { a: randomTensor([2, 5], 10), b: randomTensor([5], 11) });
  });
});

describe('host arithmetic folds shape computations at import', () => {
  it('Shape → Gather → Mul → Unsqueeze → Concat → Reshape with a dynamic batch', async () => {
    const build = (g: GraphBuilder) => {
      g.input('x', ['N', 2, 3, 4]);
      g.initializer('i0', { data: [0], shape: [], dtype: 'int64' });
      g.initializer('i2', { data: [2], shape: [], dtype: 'int64' });
      g.initializer('two', { data: [2], shape: [], dtype: 'int64' });
      g.initializer('neg1', { data: [-1], shape: [1], dtype: 'int64' });
      g.initializer('ax0', { data: [0], shape: [1], dtype: 'int64' });
      g.node('Shape', ['x'], ['s']);
      g.node('Gather', ['s', 'i0'], ['n']);
      g.node('Mul', ['n', 'two'], ['n2']);
      g.node('Unsqueeze', ['n2', 'ax0'], ['n2v']);
      g.node('Concat', ['n2v', 'neg1'], ['shape'], { axis: 0 });
      g.node('Reshape', ['x', 'shape'], ['y']);
      g.output('y');
    };
    await expectMatchesOrt(build, { x: randomTensor([3, 2, 3, 4], 12) });
    await expectMatchesOrt(build, { x: randomTensor([1, 2, 3, 4], 13) });
  });

  it('a node whose inputs are all constants is folded', () => {
    const g = new GraphBuilder({ opset: 13 });
    g.input('x', [2]);
    g.initializer('a', { data: [3], shape: [1], dtype: 'int64' });
    g.initializer('b', { data: [4], shape: [1], dtype: 'int64' });
    g.node('Add', ['a', 'b'], ['c']);
    g.node('Cast', ['c'], ['cf'], { to: 1 });
    g.node('Mul', ['x', 'cf'], ['y']);
    g.output('y');
    const graph = new ImportedGraph({ proto: decodeModel(g.toBytes(), 'fold.onnx') }, 'fold.onnx');
    expect((graph as unknown as { nodes: unknown[] }).nodes).toHaveLength(1);
    graph.dispose();
  });
});
