import { describe, it } from 'vitest';
import { expectMatchesOrt, randomTensor } from '../helpers/ops.js';

describe('Gemm', () => {
  for (const [transA, transB] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
    it(`transA=${transA} transB=${transB}, alpha, beta, broadcast C`, async () => {
      await expectMatchesOrt((g) => {
        g.input('a', transA ? [6, 'N'] : ['N', 6]);
        g.initializer('b', randomTensor(transB ? [4, 6] : [6, 4], 41));
        g.initializer('c', randomTensor([4], 42));
        g.node('Gemm', ['a', 'b', 'c'], ['y'], { transA, transB, alpha: 0.5, beta: { float: 2 } });
        g.output('y');
      }, { a: randomTensor(transA ? [6, 3] : [3, 6], 43) });
    });
  }
  it('without C', async () => {
    await expectMatchesOrt((g) => {
      g.input('a', [3, 6]);
      g.initializer('b', randomTensor([6, 4], 44));
      g.node('Gemm', ['a', 'b'], ['y']);
      g.output('y');
    }, { a: randomTensor([3, 6], 45) });
  });
});

describe('MatMul', () => {
  const cases: [number[], number[]][] = [
    [[3, 5], [5, 4]],
    [[2, 3, 5], [5, 4]],
    [[2, 3, 5], [2, 5, 4]],
    [[2, 1, 3, 5], [4, 5, 2]],
    [[5], [5, 4]],
    [[3, 5], [5]],
  ];
  for (const [a, b] of cases) {
    it(`[${a}] × [${b}]`, async () => {
      await expectMatchesOrt((g) => {
        g.input('a', a);
        g.input('b', b);
        g.node('MatMul', ['a', 'b'], ['y']);
        g.output('y');
      }, { a: randomTensor(a, 46), b: randomTensor(b, 47) });
    });
  }
  it('MatMul + Add bias (PyTorch Linear at some opsets)', async () => {
    await expectMatchesOrt((g) => {
      g.input('x', ['N', 8]);
      g.initializer('w', randomTensor([8, 3], 48));
      g.initializer('bias', randomTensor([3], 49));
      g.node('MatMul', ['x', 'w'], ['m']);
      g.node('Add', ['m', 'bias'], ['y']);
      g.output('y');
    }, { x: randomTensor([4, 8], 50) });
  });
});
