import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend.js';
import { gradients, hessianVectorProduct, type LossFn } from '../../src/engine/hvp.js';
import { BACKENDS, dot, random } from './helpers.js';

/** Mean softmax cross-entropy from plain ops (tf.losses' customGrad hides curvature). */
function crossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  const logProbs = tf.sub(logits, tf.logSumExp(logits, -1, true));
  return tf.neg(tf.mean(tf.sum(tf.mul(labels, logProbs), -1))) as tf.Scalar;
}

interface Problem {
  loss: LossFn;
  params: tf.Tensor[];
  dispose(): void;
}

/** conv -> tanh -> max-pool -> conv -> flatten -> dense -> cross-entropy. */
function smallConvNet(): Problem {
  const x = random([3, 8, 8, 2], 31);
  const labels = tf.oneHot(tf.tensor1d([0, 3, 4], 'int32'), 5);
  const params = [
    random([3, 3, 2, 4], 32, 0.5), random([4], 33, 0.1), // conv1
    random([3, 3, 4, 3], 34, 0.4), // conv2, stride 2
    random([12, 5], 35, 0.4), random([5], 36, 0.1), // dense
  ];
  const loss: LossFn = ([w1, b1, w2, wd, bd]) => {
    const h1 = tf.tanh(tf.add(tf.conv2d(x as tf.Tensor4D, w1 as tf.Tensor4D, 1, 'same'), b1));
    const p = tf.maxPool(h1 as tf.Tensor4D, 2, 2, 'valid');
    const h2 = tf.conv2d(p, w2 as tf.Tensor4D, 2, 'same');
    const logits = tf.add(tf.matMul(tf.reshape(h2, [3, -1]), wd), bd);
    return crossEntropy(logits, labels);
  };
  return { loss, params, dispose: () => tf.dispose([x, labels, ...params]) };
}

/**
 * Every layer type on the hardening path: conv + batch norm by ops + relu6, depthwise +
 * hard-sigmoid via clip, add/mul, avg-pool and max-pool, reshape, matmul, cross-entropy.
 */
function hardeningPathNet(): Problem {
  const x = random([4, 8, 8, 3], 41);
  const labels = tf.oneHot(tf.tensor1d([1, 0, 2, 1], 'int32'), 3);
  const params = [
    random([3, 3, 3, 4], 42, 0.5), random([4], 43, 0.2), random([4], 44, 0.2), // conv, bn scale/shift
    random([3, 3, 4, 2], 45, 0.5), // depthwise, M = 2
    random([2 * 2 * 8, 3], 46, 0.3), // dense
  ];
  const loss: LossFn = ([w, gamma, beta, dw, wd]) => {
    const c = tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same');
    const { mean, variance } = tf.moments(c, [0, 1, 2]);
    const bn = tf.add(tf.mul(tf.mul(tf.sub(c, mean), tf.rsqrt(tf.add(variance, 1e-3))), tf.add(gamma, 1)), beta);
    const a = tf.relu6(tf.mul(bn, 3));
    const d = tf.depthwiseConv2d(a as tf.Tensor4D, dw as tf.Tensor4D, 2, 'same');
    const hardSigmoid = tf.clipByValue(tf.add(tf.mul(d, 1 / 6), 0.5), 0, 1);
    const gated = tf.add(tf.mul(d, hardSigmoid), d);
    const pooled = tf.maxPool(tf.avgPool(gated as tf.Tensor4D, 2, 1, 'same'), 2, 2, 'valid');
    return crossEntropy(tf.matMul(tf.reshape(pooled, [4, -1]), wd), labels);
  };
  return { loss, params, dispose: () => tf.dispose([x, labels, ...params]) };
}

function directions(params: tf.Tensor[], seed: number): tf.Tensor[] {
  return params.map((p, i) => random(p.shape, seed + i));
}

/** ‖Hv − (∇L(θ+εv) − ∇L(θ−εv))/2ε‖ / ‖Hv‖, in float64. */
function hvpFiniteDifferenceError(problem: Problem, v: tf.Tensor[], eps: number): number {
  const hv = hessianVectorProduct(problem.loss, problem.params, v);
  const gradAt = (sign: number) => {
    const moved = problem.params.map((p, i) => tf.add(p, tf.mul(v[i], sign * eps)));
    const g = gradients(problem.loss, moved);
    tf.dispose(moved);
    return g;
  };
  const [plus, minus] = [gradAt(1), gradAt(-1)];
  const fd = tf.tidy(() => plus.map((g, i) => tf.div(tf.sub(g, minus[i]), 2 * eps)));
  const residual = tf.tidy(() => hv.map((h, i) => tf.sub(h, fd[i])));
  const error = Math.sqrt(dot(residual, residual) / dot(hv, hv));
  tf.dispose([...hv, ...plus, ...minus, ...fd, ...residual]);
  return error;
}

describe.each(BACKENDS)('Hessian-vector products on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  it('conv net with max-pool: H v equals finite differences of gradients', () => {
    const problem = smallConvNet();
    const v = directions(problem.params, 50);
    expect(hvpFiniteDifferenceError(problem, v, 1e-3)).toBeLessThan(1e-2);
    tf.dispose(v);
    problem.dispose();
  });

  it('hardening-path net (relu6, clip, batch norm, depthwise, pools): H v equals finite differences', () => {
    const problem = hardeningPathNet();
    const v = directions(problem.params, 60);
    // Small steps: relu6, clip and max-pool are piecewise linear, and steps of 1e-3 already
    // carry some activations across a kink (the smooth variant agrees at 1e-3 too).
    expect(hvpFiniteDifferenceError(problem, v, 1e-4)).toBeLessThan(1e-2);
    tf.dispose(v);
    problem.dispose();
  });

  it('H is symmetric: ⟨u, H v⟩ = ⟨v, H u⟩', () => {
    const problem = hardeningPathNet();
    const [u, v] = [directions(problem.params, 70), directions(problem.params, 80)];
    const [hu, hv] = [hessianVectorProduct(problem.loss, problem.params, u), hessianVectorProduct(problem.loss, problem.params, v)];
    const [uHv, vHu] = [dot(u, hv), dot(v, hu)];
    expect(Math.abs(uHv - vHu) / Math.abs(uHv)).toBeLessThan(1e-3);
    tf.dispose([...u, ...v, ...hu, ...hv]);
    problem.dispose();
  });

  it('softmax keeps its curvature', () => {
    const [x, c] = [random([2, 5], 90, 2), random([2, 5], 91)];
    const loss: LossFn = ([p]) => tf.sum(tf.mul(tf.softmax(p), c));
    const v = [random([2, 5], 92)];
    const error = hvpFiniteDifferenceError({ loss, params: [x], dispose: () => {} }, v, 1e-3);
    expect(error).toBeLessThan(1e-2);
    tf.dispose([x, c, ...v]);
  });

  it('leaves no tensors behind', () => {
    const problem = smallConvNet();
    const v = directions(problem.params, 100);
    tf.dispose(hessianVectorProduct(problem.loss, problem.params, v)); // warm-up
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) tf.dispose(hessianVectorProduct(problem.loss, problem.params, v));
    for (let i = 0; i < 5; i++) tf.dispose(gradients(problem.loss, problem.params));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(v);
    problem.dispose();
  });

  it('gives zeros for parameters the loss does not use, and checks shapes', () => {
    const [a, unused] = [random([3], 110), random([2], 111)];
    const loss: LossFn = ([p]) => tf.sum(tf.square(p));
    const [ha, hu] = hessianVectorProduct(loss, [a, unused], [tf.ones([3]), tf.ones([2])]);
    expect(Array.from(ha.dataSync())).toEqual([2, 2, 2]);
    expect(Array.from(hu.dataSync())).toEqual([0, 0]);
    expect(() => hessianVectorProduct(loss, [a], [tf.ones([2])])).toThrow(/shape/);
    tf.dispose([a, unused, ha, hu]);
  });
});
