import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel } from '../../src/onnx/model.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { crossEntropy } from '../../src/engine/tfjs-engine.js';
import { gradients } from '../../src/engine/hvp.js';
import { initBackend, type BackendName } from '../../src/engine/backend.js';
import { Random } from '../../src/util/random.js';
import { distillationLoss, gradientCollision } from '../../src/harden/losses.js';

/**
 * Gradient Collision (plain and normalized) against brute-force pairwise sums of separately
 * computed per-chunk gradients, its exact double-backprop gradient against central finite
 * differences, and the distillation loss against a hand computation.
 */
function tinyConvNet(pool: 'AveragePool' | 'MaxPool'): Uint8Array {
  const rng = new Random(21);
  const g = new GraphBuilder({ opset: 13 });
  const w = (name: string, shape: number[], scale: number) => g.initializer(name, { data: rng.normalArray(shape.reduce((a, b) => a * b, 1), scale), shape });
  g.input('x', ['N', 2, 6, 6]);
  w('cw', [3, 2, 3, 3], 0.4); w('cb', [3], 0.1);
  w('fw', [4, 27], 0.3); w('fb', [4], 0.1);
  g.node('Conv', ['x', 'cw', 'cb'], ['a'], { pads: [1, 1, 1, 1] });
  g.node('Tanh', ['a'], ['b']);
  g.node(pool, ['b'], ['c'], { kernel_shape: [2, 2], strides: [2, 2] });
  g.node('Flatten', ['c'], ['f']);
  g.node('Gemm', ['f', 'fw', 'fb'], ['logits'], { transB: 1 });
  g.output('logits');
  return g.toBytes();
}

const PER_CHUNK = 3;

function setup(pool: 'AveragePool' | 'MaxPool', chunks: number) {
  const graph = new ImportedGraph({ proto: decodeModel(tinyConvNet(pool), 'tiny.onnx') }, 'tiny.onnx');
  const names = [...graph.variables.keys()].filter((n) => !graph.statisticNames.has(n));
  const rng = new Random(7);
  const xs = Array.from({ length: chunks }, () => tf.tensor(rng.normalArray(PER_CHUNK * 2 * 6 * 6), [PER_CHUNK, 2, 6, 6]));
  const ys = Array.from({ length: chunks }, (_, i) => tf.tensor1d(Array.from({ length: PER_CHUNK }, (_, j) => (i * PER_CHUNK + j) % 4), 'int32'));
  const chunkLoss = (params: tf.Tensor[], i: number): tf.Scalar => {
    const { outputs } = graph.run({ x: xs[i] }, { parameters: new Map(names.map((n, p) => [n, params[p]])) });
    return crossEntropy(outputs.get('logits') as tf.Tensor2D, ys[i]);
  };
  const params = names.map((n) => graph.variables.get(n)! as tf.Tensor);
  const dispose = () => {
    graph.dispose();
    tf.dispose([...xs, ...ys]);
  };
  return { chunkLoss, params, dispose };
}

function dot(a: tf.Tensor[], b: tf.Tensor[]): number {
  return a.reduce((acc, t, i) => acc + tf.tidy(() => tf.sum(tf.mul(t, b[i])).dataSync()[0]), 0);
}

function shifted(params: tf.Tensor[], dir: tf.Tensor[], eps: number): tf.Tensor[] {
  return tf.tidy(() => params.map((p, i) => tf.add(p, tf.mul(dir[i], eps))));
}

/** Σ_{i<j} ⟨g_i, g_j⟩ (or cosines), from per-chunk gradients computed one by one, in float64. */
function bruteForce(chunkLoss: (p: tf.Tensor[], i: number) => tf.Scalar, params: tf.Tensor[], chunks: number, normalized: boolean): number {
  const g = Array.from({ length: chunks }, (_, i) => gradients((p) => chunkLoss(p, i), params));
  const flat = g.map((gi) => gi.flatMap((t) => Array.from(t.dataSync())));
  tf.dispose(g.flat());
  const d = (a: number[], b: number[]) => a.reduce((s, x, n) => s + x * b[n], 0);
  let total = 0;
  for (let i = 0; i < chunks; i++) {
    for (let j = i + 1; j < chunks; j++) {
      const ip = d(flat[i], flat[j]);
      total += normalized ? ip / Math.sqrt(d(flat[i], flat[i]) * d(flat[j], flat[j])) : ip;
    }
  }
  return total;
}

function valueAt(chunkLoss: (p: tf.Tensor[], i: number) => tf.Scalar, params: tf.Tensor[], chunks: number, normalized: boolean): number {
  const { value, gradient } = gradientCollision(chunkLoss, params, chunks, { normalized });
  const v = value.dataSync()[0];
  tf.dispose([value, ...gradient]);
  return v;
}

describe.each(['wasm', 'cpu'] as BackendName[])('gradient collision on %s', (backend) => {
  describe.each([
    { normalized: false, chunks: 3 },
    { normalized: true, chunks: 4 },
  ])('normalized=$normalized, k=$chunks', ({ normalized, chunks }) => {
    it.each(['AveragePool', 'MaxPool'] as const)('value equals the brute-force pairwise sum (%s)', async (pool) => {
      await initBackend(backend);
      const { chunkLoss, params, dispose } = setup(pool, chunks);
      try {
        const before = tf.memory().numTensors;
        const { value, gradient } = gradientCollision(chunkLoss, params, chunks, { normalized });
        const got = value.dataSync()[0];
        expect(gradient).toHaveLength(params.length);
        gradient.forEach((g, i) => expect(g.shape).toEqual(params[i].shape));
        tf.dispose([value, ...gradient]);
        expect(tf.memory().numTensors).toBe(before);
        const want = bruteForce(chunkLoss, params, chunks, normalized);
        expect(Math.abs(want)).toBeGreaterThan(1e-3);
        expect(Math.abs(got - want) / Math.abs(want)).toBeLessThan(1e-4);
        expect(tf.memory().numTensors).toBe(before);
      } finally {
        dispose();
      }
    });

    it('gradient matches central finite differences along random directions', async () => {
      await initBackend(backend);
      const { chunkLoss, params, dispose } = setup('AveragePool', chunks);
      try {
        const before = tf.memory().numTensors;
        const { value, gradient } = gradientCollision(chunkLoss, params, chunks, { normalized });
        value.dispose();
        for (const g of gradient) expect(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0])).toBeGreaterThan(0);
        // eps = 1e-3: truncation error ~eps² is then well below float32 cancellation noise.
        const eps = 1e-3;
        for (let r = 0; r < 3; r++) {
          const dir = params.map((p, i) => tf.tensor(new Random(300 + 10 * r + i).normalArray(p.size), p.shape));
          const analytic = dot(gradient, dir);
          const plus = shifted(params, dir, eps);
          const minus = shifted(params, dir, -eps);
          const numeric = (valueAt(chunkLoss, plus, chunks, normalized) - valueAt(chunkLoss, minus, chunks, normalized)) / (2 * eps);
          tf.dispose([...dir, ...plus, ...minus]);
          // Relative error, floored for a direction nearly orthogonal to the gradient.
          expect(Math.abs(analytic - numeric) / Math.max(Math.abs(numeric), 0.05)).toBeLessThan(1e-2);
        }
        tf.dispose(gradient);
        expect(tf.memory().numTensors).toBe(before);
      } finally {
        dispose();
      }
    });
  });

  it('rejects fewer than two chunks', async () => {
    await initBackend(backend);
    const { chunkLoss, params, dispose } = setup('AveragePool', 2);
    try {
      expect(() => gradientCollision(chunkLoss, params, 1)).toThrow(/chunks/);
    } finally {
      dispose();
    }
  });
});

describe.each(['wasm', 'cpu'] as BackendName[])('distillation loss on %s', (backend) => {
  const student = [[1, 2, 0.5], [-1, 0, 3]];
  const teacher = [[0.5, 1.5, -0.5], [2, -1, 1]];

  function byHand(s: number[][], t: number[][], T: number): number {
    const softmax = (z: number[]) => {
      const e = z.map((v) => Math.exp(v / T));
      const sum = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / sum);
    };
    let total = 0;
    s.forEach((row, n) => {
      const q = softmax(row);
      const p = softmax(t[n]);
      total += p.reduce((acc, pc, c) => acc + pc * Math.log(pc / q[c]), 0);
    });
    return (T * T * total) / s.length;
  }

  it.each([1, 2.5])('equals a hand computation at T=%s and is 0 when student = teacher', async (T) => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    const s = tf.tensor2d(student);
    const t = tf.tensor2d(teacher);
    const got = tf.tidy(() => distillationLoss(s, t, T).dataSync()[0]);
    const want = byHand(student, teacher, T);
    expect(want).toBeGreaterThan(0.01);
    expect(Math.abs(got - want) / want).toBeLessThan(1e-5);
    expect(Math.abs(tf.tidy(() => distillationLoss(t, t, T).dataSync()[0]))).toBeLessThan(1e-6);
    tf.dispose([s, t]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('gradient matches finite differences, and the teacher gets none', async () => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    const s = tf.tensor2d(student);
    const t = tf.tensor2d(teacher);
    const T = 2;
    const [gs, gt] = gradients(([a, b]) => distillationLoss(a, b, T), [s, t]);
    expect(tf.tidy(() => tf.max(tf.abs(gt)).dataSync()[0])).toBe(0);
    const grad = gs.arraySync() as number[][];
    const eps = 1e-2;
    for (let n = 0; n < 2; n++) {
      for (let c = 0; c < 3; c++) {
        const at = (d: number) => byHand(student.map((row, i) => row.map((v, j) => (i === n && j === c ? v + d : v))), teacher, T);
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        expect(Math.abs(grad[n][c] - numeric)).toBeLessThan(1e-4 + 1e-3 * Math.abs(numeric));
      }
    }
    // Twice differentiable in the student: the Hessian-vector product matches FD of the tfjs gradient.
    const dir = tf.tensor2d([[0.3, -0.2, 0.5], [-0.4, 0.1, 0.2]]);
    const hv = gradients(([a]) => tf.sum(tf.mul(gradients(([b]) => distillationLoss(b, t, T), [a])[0], dir)) as tf.Scalar, [s])[0];
    const fd = tf.tidy(() => {
      const h = 1e-2;
      const gp = gradients(([a]) => distillationLoss(a, t, T), [tf.add(s, tf.mul(dir, h))])[0];
      const gm = gradients(([a]) => distillationLoss(a, t, T), [tf.sub(s, tf.mul(dir, h))])[0];
      return tf.div(tf.sub(gp, gm), 2 * h);
    });
    const err = tf.tidy(() => tf.norm(tf.sub(hv, fd)).dataSync()[0] / tf.norm(fd).dataSync()[0]);
    expect(tf.tidy(() => tf.norm(fd).dataSync()[0])).toBeGreaterThan(1e-3);
    expect(err).toBeLessThan(1e-2);
    tf.dispose([s, t, gs, gt, dir, hv, fd]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
