import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { OrtTrainable } from '../../src/engine/ort-engine.js';
import { TfjsTrainable, crossEntropy } from '../../src/engine/tfjs-engine.js';
import { initBackend } from '../../src/engine/backend.js';
import { gradientCollision } from '../../src/harden/losses.js';
import { gradientCollisionHost } from '../../src/harden/gradient-collision-host.js';
import { Random } from '../../src/util/random.js';
import { relError, smoothConvNet } from '../helpers/tiny.js';
import { loadModel } from '../../src/onnx/model.js';
import { findClassifierHead } from '../../src/import/head.js';

describe('Gradient Collision on the ort engine (host-side, exact HVPs from the tangent pass)', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  const problems = {
    smooth: async () => ({ model: smoothConvNet(5, 11), shape: [2, 8, 8], classes: 5 }),
    lenet5_mnist: async () => ({ model: await loadModel(path.join(__dirname, '..', 'fixtures', 'onnx', 'lenet5_mnist.onnx')), shape: [1, 28, 28], classes: 10 }),
  };
  for (const [name, make] of Object.entries(problems)) for (const normalized of [false, true]) {
    it(`${name}: ${normalized ? 'NGC' : 'GC'} value and gradient equal tfjs's exact double backprop (k = 3, rel. error < 1e-3)`, async () => {
      const { model, shape, classes } = await make();
      const ortEngine = new OrtTrainable(model, name, { threads: 1 });
      const tfjsEngine = new TfjsTrainable(model, name);
      const rng = new Random(12);
      const size = shape.reduce((a, b) => a * b, 1);
      const chunks = Array.from({ length: 3 }, () => ({
        x: { dtype: 'float32' as const, shape: [8, ...shape], data: rng.normalArray(8 * size) },
        labels: Int32Array.from({ length: 8 }, () => rng.int(classes)),
      }));
      // The backbone: the head is not differentiated.
      const head = new Set(findClassifierHead(model.proto)?.parameters ?? []);
      const wrt = ortEngine.parameterNames.filter((n) => !head.has(n));
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
      expect(err).toBeLessThan(1e-3);
      ortEngine.dispose();
      tfjsEngine.dispose();
    });
  }

  // The identity behind the README's analysis of GC: over all ways of drawing two disjoint chunks
  // of m examples from N, mean L_GC = (N²‖μ‖² − Σ_a ‖s_a‖²)/(N(N−1)), s_a the per-example gradients.
  it.each([[6, 1], [4, 2]])('mean L_GC over all disjoint chunk pairs (N = %i, m = %i) is the per-example-gradient formula', async (N, m) => {
    const model = smoothConvNet(5, 11);
    const engine = new OrtTrainable(model, 'smooth', { threads: 1 });
    const rng = new Random(5);
    const size = 2 * 8 * 8;
    const x = rng.normalArray(N * size);
    const labels = Int32Array.from({ length: N }, () => rng.int(5));
    const rows = (idx: number[]) => ({ x: { dtype: 'float32' as const, shape: [idx.length, 2, 8, 8], data: Float32Array.from(idx.flatMap((a) => Array.from(x.subarray(a * size, (a + 1) * size)))) }, labels: Int32Array.from(idx, (a) => labels[a]!) });
    const head = new Set(findClassifierHead(model.proto)?.parameters ?? []);
    const wrt = engine.parameterNames.filter((n) => !head.has(n));
    const flat = (g: Map<string, Float32Array>) => Float64Array.from(wrt.flatMap((n) => Array.from(g.get(n)!)));
    const perExample: Float64Array[] = [];
    for (let a = 0; a < N; a++) perExample.push(flat((await engine.crossEntropyGradients(rows([a]).x, rows([a]).labels, { wrt })).gradients));
    const dot = (u: Float64Array, v: Float64Array) => u.reduce((s, ui, i) => s + ui * v[i]!, 0);
    const total = perExample.reduce((acc, g) => acc.map((v, i) => v + g[i]!), new Float64Array(perExample[0]!.length));
    const formula = (dot(total, total) - perExample.reduce((s, g) => s + dot(g, g), 0)) / (N * (N - 1));
    // Every ordered pair of disjoint m-subsets.
    const subsets = (from: number[], k: number): number[][] => (k === 0 ? [[]] : from.flatMap((a, i) => subsets(from.slice(i + 1), k - 1).map((rest) => [a, ...rest])));
    const all = [...Array(N).keys()];
    let sum = 0, count = 0;
    for (const A of subsets(all, m)) for (const B of subsets(all.filter((a) => !A.includes(a)), m)) {
      sum += (await gradientCollisionHost(engine, [rows(A), rows(B)], wrt)).value;
      count++;
    }
    expect(Math.abs(sum / count - formula)).toBeLessThan(1e-4 * Math.max(1, Math.abs(formula)));
    engine.dispose();
  });

  it('refuses a single chunk', async () => {
    const ortEngine = new OrtTrainable(smoothConvNet(5, 11), 'smooth', { threads: 1 });
    const x = { dtype: 'float32' as const, shape: [2, 2, 8, 8], data: new Float32Array(256) };
    await expect(gradientCollisionHost(ortEngine, [{ x, labels: new Int32Array(2) }], ['c.weight'])).rejects.toThrow(/at least 2 chunks/);
    ortEngine.dispose();
  });
});
