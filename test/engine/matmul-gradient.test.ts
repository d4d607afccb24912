import { describe, it, expect } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend.js';
import { BACKENDS, gradientErrors, random } from './helpers.js';

/** Harden's BatchMatMul gradient (explicit transposes) against central finite differences. */
describe.each(BACKENDS)('BatchMatMul gradient on %s', (backend) => {
  const cases: [string, number[], number[], boolean, boolean][] = [
    ['plain', [5, 4], [4, 3], false, false],
    ['transposeB', [5, 4], [3, 4], false, true],
    ['transposeA', [4, 5], [4, 3], true, false],
    ['both', [4, 5], [3, 4], true, true],
    ['batched', [2, 5, 4], [2, 4, 3], false, false],
    ['broadcast batch', [2, 5, 4], [1, 4, 3], false, false],
  ];
  for (const [name, sa, sb, ta, tb] of cases) {
    it(name, async () => {
      await initBackend(backend);
      const a = random(sa, 1), b = random(sb, 2);
      const errors = gradientErrors((x, y) => tf.sum(tf.square(tf.matMul(x, y, ta, tb))), [a, b]);
      for (const e of errors) expect(e).toBeLessThan(1e-2);
    });
  }
});
