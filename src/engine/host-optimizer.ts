/**
 * SGD, momentum and Adam on float32 arrays, for engines that keep parameters on the host (ort).
 * The update rules are tfjs's (tf.train.sgd/momentum/adam with their defaults: Adam β1 0.9,
 * β2 0.999, ε 1e-7, bias correction by running products of β), so the two engines follow the
 * same trajectory up to float rounding.
 */
import { HardenError } from '../errors.js';
import type { OptimizerSpec } from './trainable.js';
import type { NamedArrays } from './optimizer-state.js';

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPSILON = 1e-7;

export class HostOptimizer {
  private readonly first = new Map<string, Float32Array>();
  private readonly second = new Map<string, Float32Array>();
  /** β1^t and β2^t after t steps, as float32 running products (tfjs's accBeta). */
  private accBeta1 = Math.fround(BETA1);
  private accBeta2 = Math.fround(BETA2);
  private steps = 0;

  constructor(public spec: OptimizerSpec) {}

  /** Updates `values[name]` in place from `gradients[name]` for every name given. */
  apply(values: Map<string, Float32Array>, gradients: Map<string, Float32Array>): void {
    const { kind, learningRate: lr } = this.spec;
    const wd = this.spec.weightDecay ?? 0;
    const c1 = 1 - this.accBeta1;
    const c2 = 1 - this.accBeta2;
    for (const [name, g] of gradients) {
      const w = values.get(name)!;
      if (kind === 'sgd') {
        for (let i = 0; i < w.length; i++) w[i] -= lr * (g[i] + wd * w[i]);
      } else if (kind === 'momentum') {
        const mu = this.spec.momentum ?? 0.9;
        const acc = this.slot(this.first, name, w.length);
        for (let i = 0; i < w.length; i++) {
          acc[i] = mu * acc[i] + g[i] + wd * w[i];
          w[i] -= lr * acc[i];
        }
      } else {
        const m = this.slot(this.first, name, w.length);
        const v = this.slot(this.second, name, w.length);
        for (let i = 0; i < w.length; i++) {
          const gi = g[i] + wd * w[i];
          m[i] = m[i] * BETA1 + gi * (1 - BETA1);
          v[i] = v[i] * BETA2 + gi * gi * (1 - BETA2);
          w[i] -= (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + EPSILON);
        }
      }
    }
    if (kind === 'adam') {
      this.accBeta1 = Math.fround(this.accBeta1 * Math.fround(BETA1));
      this.accBeta2 = Math.fround(this.accBeta2 * Math.fround(BETA2));
    }
    this.steps++;
  }

  private slot(map: Map<string, Float32Array>, name: string, n: number): Float32Array {
    let s = map.get(name);
    if (!s) map.set(name, (s = new Float32Array(n)));
    return s;
  }

  state(): NamedArrays {
    const out: NamedArrays = new Map();
    out.set('steps', { shape: [], data: Float32Array.of(this.steps) });
    for (const [name, s] of this.first) out.set(`first:${name}`, { shape: [s.length], data: s.slice() });
    for (const [name, s] of this.second) out.set(`second:${name}`, { shape: [s.length], data: s.slice() });
    return out;
  }

  setState(state: NamedArrays): void {
    this.first.clear();
    this.second.clear();
    for (const [key, { data }] of state) {
      if (key === 'steps') this.steps = data[0];
      else if (key.startsWith('first:')) this.first.set(key.slice(6), data.slice());
      else if (key.startsWith('second:')) this.second.set(key.slice(7), data.slice());
      else throw new HardenError(`optimizer state entry '${key}' was not written by the ort engine (resume with the engine that wrote the checkpoint)`);
    }
    let a1 = Math.fround(BETA1), a2 = Math.fround(BETA2);
    for (let i = 0; i < this.steps; i++) {
      a1 = Math.fround(a1 * Math.fround(BETA1));
      a2 = Math.fround(a2 * Math.fround(BETA2));
    }
    this.accBeta1 = a1;
    this.accBeta2 = a2;
  }
}
