import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { hessianVectorProduct } from '../../src/engine/hvp.js';
import { initBackend, type BackendName } from '../../src/engine/backend.js';

/**
 * For L = Σ f(x_i), H v = f''(x) ⊙ v exactly. tfjs's own exp/tanh/sigmoid/elu gradients give 0
 * here because they reuse a detached copy of the op's output.
 */
const cases: [string, (x: tf.Tensor) => tf.Tensor, (x: number) => number][] = [
  ['exp', tf.exp, (x) => Math.exp(x)],
  ['tanh', tf.tanh, (x) => -2 * Math.tanh(x) * (1 - Math.tanh(x) ** 2)],
  ['sigmoid', tf.sigmoid, (x) => {
    const s = 1 / (1 + Math.exp(-x));
    return s * (1 - s) * (1 - 2 * s);
  }],
  ['elu', tf.elu, (x) => (x > 0 ? 0 : Math.exp(x))],
];

describe.each(['wasm', 'cpu'] as BackendName[])('second derivatives of smooth ops on %s', (backend) => {
  for (const [name, f, second] of cases) {
    it(name, async () => {
      await initBackend(backend);
      const xs = [-1.5, -0.3, 0.4, 1.2];
      const v = [0.5, -1, 2, 1];
      const [hv] = hessianVectorProduct((p) => tf.sum(f(p[0])) as tf.Scalar, [tf.tensor1d(xs)], [tf.tensor1d(v)]);
      const got = hv.dataSync();
      xs.forEach((x, i) => expect(got[i]).toBeCloseTo(second(x) * v[i], 4));
    });
  }
});
