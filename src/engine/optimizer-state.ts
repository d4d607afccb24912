/**
 * tfjs optimizer state as named arrays keyed by ONNX initializer names, for checkpoints.
 * tfjs names an optimizer's slots after its variables, whose names carry a per-process graph
 * prefix (`g<id>/<name>`): the state is stored under the ONNX names so another process can
 * restore it. Several slots per variable (Adam's two moments) share a name: the key keeps them
 * apart by position (`<index>:<onnx name>`).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ImportedGraph } from '../import/graph.js';

export type NamedArrays = Map<string, { shape: number[]; data: Float32Array }>;

export async function readOptimizerState(optimizer: tf.Optimizer, graph: ImportedGraph): Promise<NamedArrays> {
  const state: NamedArrays = new Map();
  const toOnnx = new Map([...graph.variables].map(([onnx, v]) => [v.name, onnx]));
  for (const [i, { name, tensor }] of (await optimizer.getWeights()).entries()) {
    state.set(`${i}:${toOnnx.get(name) ?? name}`, { shape: [...tensor.shape], data: Float32Array.from((await tensor.data()) as Float32Array) });
  }
  return state;
}

/**
 * Restore a state written by readOptimizerState. Slots exist only after a first step, so when
 * `variables` are given, a zero-gradient step on them creates the slots first (Adam: moments of
 * zero, then overwritten here).
 */
export async function restoreOptimizerState(optimizer: tf.Optimizer, graph: ImportedGraph, variables: tf.Variable[] | undefined, state: NamedArrays): Promise<void> {
  if (variables?.length) tf.tidy(() => optimizer.applyGradients(Object.fromEntries(variables.map((v) => [v.name, tf.zerosLike(v)]))));
  const named = [...state].map(([key, { shape, data }]) => {
    const onnx = key.slice(key.indexOf(':') + 1);
    return { name: graph.variables.get(onnx)?.name ?? onnx, tensor: tf.tensor(data, shape, 'float32') };
  });
  await optimizer.setWeights(named);
  tf.dispose(named.map((n) => n.tensor));
  replayAdamDecay(optimizer);
}

/**
 * tfjs's Adam keeps β^t by multiplying once per step (float32) but restores it as pow(β, t + 1),
 * which rounds differently: replay the multiplications so a resumed run is bit-identical.
 */
function replayAdamDecay(optimizer: tf.Optimizer): void {
  const adam = optimizer as unknown as { accBeta1?: tf.Variable; accBeta2?: tf.Variable; beta1: number; beta2: number; iterations_: number };
  if (!adam.accBeta1 || !adam.accBeta2) return;
  const chain = (beta: number) => {
    const b = Math.fround(beta);
    let acc = b;
    for (let i = 0; i < adam.iterations_; i++) acc = Math.fround(acc * b);
    return acc;
  };
  tf.tidy(() => {
    adam.accBeta1!.assign(tf.scalar(chain(adam.beta1)));
    adam.accBeta2!.assign(tf.scalar(chain(adam.beta2)));
  });
}
