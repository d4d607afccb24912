import { describe, it } from 'vitest';
import { expectMatchesOrt, randomTensor } from '../helpers/ops.js';
import type { GraphBuilder } from '../../src/onnx/builder.js';

/**
 * Whole-block patterns as PyTorch exports them, with a dynamic batch: a multi-head
 * self-attention block whose reshapes compute their target shapes from Shape → Gather →
 * Unsqueeze → Concat, and a patch-embedding stem (Conv → Reshape [0, D, -1] → Transpose).
 */
const D = 8, HEADS = 2, T = 5;

function attention(g: GraphBuilder): void {
  g.input('x', ['batch', T, D]);
  for (const p of ['q', 'k', 'v', 'o']) {
    g.initializer(`${p}_w`, randomTensor([D, D], p.charCodeAt(0), 0.4));
    g.initializer(`${p}_b`, randomTensor([D], p.charCodeAt(0) + 1, 0.1));
  }
  g.initializer('ln_w', randomTensor([D], 3));
  g.initializer('ln_b', randomTensor([D], 4));
  const i64 = (name: string, v: number[], shape: number[] = [v.length]) => g.initializer(name, { data: v, shape, dtype: 'int64' });
  i64('zero', [0], []);
  i64('one', [1], []);
  i64('heads', [HEADS]);
  i64('hd', [D / HEADS]);
  i64('dmodel', [D]);
  i64('ax0', [0]);
  g.initializer('scale', { data: [Math.sqrt(D / HEADS)], shape: [] });

  g.node('Shape', ['x'], ['shape']);
  g.node('Gather', ['shape', 'zero'], ['n']);
  g.node('Gather', ['shape', 'one'], ['t']);
  g.node('Unsqueeze', ['n', 'ax0'], ['n1']);
  g.node('Unsqueeze', ['t', 'ax0'], ['t1']);
  g.node('Concat', ['n1', 't1', 'heads', 'hd'], ['split_shape'], { axis: 0 });
  g.node('Concat', ['n1', 't1', 'dmodel'], ['merge_shape'], { axis: 0 });
  for (const p of ['q', 'k', 'v']) {
    g.node('MatMul', ['x', `${p}_w`], [`${p}_mm`]);
    g.node('Add', [`${p}_mm`, `${p}_b`], [`${p}_lin`]);
    g.node('Reshape', [`${p}_lin`, 'split_shape'], [`${p}_4d`]);
    g.node('Transpose', [`${p}_4d`], [`${p}_h`], { perm: p === 'k' ? [0, 2, 3, 1] : [0, 2, 1, 3] });
  }
  g.node('MatMul', ['q_h', 'k_h'], ['scores']);
  g.node('Div', ['scores', 'scale'], ['scaled']);
  g.node('Softmax', ['scaled'], ['attn'], { axis: -1 });
  g.node('MatMul', ['attn', 'v_h'], ['ctx']);
  g.node('Transpose', ['ctx'], ['ctx_t'], { perm: [0, 2, 1, 3] });
  g.node('Reshape', ['ctx_t', 'merge_shape'], ['ctx_m']);
  g.node('MatMul', ['ctx_m', 'o_w'], ['o_mm']);
  g.node('Add', ['o_mm', 'o_b'], ['o_lin']);
  g.node('Add', ['o_lin', 'x'], ['res']);
  g.node('LayerNormalization', ['res', 'ln_w', 'ln_b'], ['y'], { axis: -1, epsilon: 1e-5 });
  g.output('y');
}

function patchStem(g: GraphBuilder): void {
  g.input('img', ['batch', 3, 8, 8]);
  g.initializer('pw', randomTensor([D, 3, 4, 4], 9, 0.3));
  g.initializer('pb', randomTensor([D], 10, 0.1));
  g.node('Conv', ['img', 'pw', 'pb'], ['patches'], { kernel_shape: [4, 4], strides: [4, 4] });
  g.initializer('tok_shape', { data: [0, D, -1], shape: [3], dtype: 'int64' });
  g.node('Reshape', ['patches', 'tok_shape'], ['flat']);
  g.node('Transpose', ['flat'], ['tokens'], { perm: [0, 2, 1] });
  g.initializer('tok_axis', { data: [1], shape: [1], dtype: 'int64' });
  g.node('ReduceMean', ['tokens', 'tok_axis'], ['pooled'], { keepdims: 0 });
  g.node('Gelu', ['pooled'], ['y']);
  g.output('y');
}

describe('PyTorch export patterns with a dynamic batch', () => {
  for (const batch of [1, 3]) {
    it(`multi-head self-attention block, batch ${batch}`, async () => {
      await expectMatchesOrt(attention, { x: randomTensor([batch, T, D], 20 + batch) }, { opset: 17 });
    });
  }
  it('patch-embedding stem: Reshape with a copied batch dim (0) and -1, token transpose', async () => {
    await expectMatchesOrt(patchStem, { img: randomTensor([2, 3, 8, 8], 30) }, { opset: 20 });
  });
});
