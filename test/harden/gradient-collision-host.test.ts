import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { OrtTrainable } from '../../src/engine/ort-engine.js';
import { TfjsTrainable, crossEntropy } from '../../src/engine/tfjs-engine.js';
import { initBackend } from '../../src/engine/backend.js';
import { gradientCollision } from '../../src/harden/losses.js';
import { gradientCollisionHost } from '../../src/harden/gradient-collision-host.js';
import { Random } from '../../src/util/random.js';

// A smooth (Tanh, average-pool) conv net: central differences of gradients approximate the
// exact Hessian-vector products only where the loss is smooth in θ.
function smoothConvNet() {
  const g = new GraphBuilder({ opset: 17 });
  g.input('input', ['N', 2, 8, 8]);
  const rng = new Random(11);
  g.initializer('c.weight', { data: rng.normalArray(4 * 2 * 9, 0.4), shape: [4, 2, 3, 3] });
  g.initializer('c.bias', { data: rng.normalArray(4, 0.1), shape: [4] });
  g.initializer('fc.weight', { data: rng.normalArray(5 * 4, 0.5), shape: [5, 4] });
  g.initializer('fc.bias', { data: rng.normalArray(5, 0.1), shape: [5] });
  g.node('Conv', ['input', 'c.weight', 'c.bias'], ['h'], { pads: [1, 1, 1, 1] });
  g.node('Tanh', ['h'], ['t']);
  g.node('GlobalAveragePool', ['t'], ['p']);
  g.node('Flatten', ['p'], ['f']);
  g.node('Gemm', ['f', 'fc.weight', 'fc.bias'], ['logits'], { transB: 1 });
  g.output('logits');
  return { proto: g.build() };
}

function relError(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

describe('Gradient Collision on the ort engine (host-side, finite-difference HVPs)', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  for (const normalized of [false, true]) {
    it(`${normalized ? 'NGC' : 'GC'} value and gradient equal tfjs's exact double backprop (k = 3, rel. error < 1e-2)`, async () => {
      const model = smoothConvNet();
      const ortEngine = new OrtTrainable(model, 'smooth', { threads: 1 });
      const tfjsEngine = new TfjsTrainable(model, 'smooth');
      const rng = new Random(12);
      const chunks = Array.from({ length: 3 }, () => ({
        x: { dtype: 'float32' as const, shape: [8, 2, 8, 8], data: rng.normalArray(8 * 2 * 64) },
        labels: Int32Array.from({ length: 8 }, () => rng.int(5)),
      }));
      const wrt = ['c.weight', 'c.bias']; // the backbone: the head is not differentiated
      const host = await gradientCollisionHost(ortEngine, chunks, wrt, { normalized });

      const exact = tf.tidy(() => {
        const params = wrt.map((n) => tfjsEngine.graph.variables.get(n)! as tf.Tensor);
        const loss = (ps: tf.Tensor[], i: number) => {
          const out = tfjsEngine.graph.run({ [tfjsEngine.inputName]: tf.tensor(chunks[i].x.data, chunks[i].x.shape) }, { parameters: new Map(wrt.map((n, j) => [n, ps[j]])) });
          return crossEntropy(out.outputs.get(tfjsEngine.outputName) as tf.Tensor2D, tf.tensor1d(chunks[i].labels, 'int32'));
        };
        const { value, gradient } = gradientCollision(loss, params, 3, { normalized });
        return { value: value.dataSync()[0], gradient: gradient.map((t) => t.dataSync() as Float32Array) };
      });
      expect(Math.abs(host.value - exact.value)).toBeLessThan(1e-4 * Math.max(1, Math.abs(exact.value)));
      const flat = (parts: Float32Array[]) => Float32Array.from(parts.flatMap((p) => Array.from(p)));
      const err = relError(flat(wrt.map((n) => host.gradient.get(n)!)), flat(exact.gradient));
      expect(err).toBeLessThan(1e-2);
      ortEngine.dispose();
      tfjsEngine.dispose();
    });
  }

  it('refuses a single chunk', async () => {
    const ortEngine = new OrtTrainable(smoothConvNet(), 'smooth', { threads: 1 });
    const x = { dtype: 'float32' as const, shape: [2, 2, 8, 8], data: new Float32Array(256) };
    await expect(gradientCollisionHost(ortEngine, [{ x, labels: new Int32Array(2) }], ['c.weight'])).rejects.toThrow(/at least 2 chunks/);
    ortEngine.dispose();
  });
});
