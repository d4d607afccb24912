/**
 * Checkpoints of step-based method runs (a method's own optimizer loop, on an ImportedGraph or
 * on an engine that keeps its weights on the host): the model file with the current weights,
 * then state.json with the position in the step schedule, the history, the optimizer state and
 * any extra named arrays.
 */
import { mkdir } from 'node:fs/promises';
import type * as tf from '@tensorflow/tfjs-core';
import type { OnnxModel } from '../onnx/model.js';
import type { ImportedGraph } from '../import/graph.js';
import { exportModel } from '../export/export.js';
import { HardenError } from '../errors.js';
import { readOptimizerState, restoreOptimizerState, type NamedArrays } from '../engine/optimizer-state.js';
import { checkpointModelPath, decodeOptimizer, encodeOptimizer, openCheckpoint, writeState } from './checkpoint.js';

export interface StepCheckpoint {
  position: number;
  history: Record<string, unknown>[];
  tensors: NamedArrays;
}

export async function saveStepCheckpoint(dir: string, model: OnnxModel, graph: ImportedGraph, optimizer: tf.Optimizer | undefined, settings: Record<string, unknown>, checkpoint: StepCheckpoint): Promise<void> {
  const state = optimizer ? await readOptimizerState(optimizer, graph) : new Map();
  await saveArraysCheckpoint(dir, model, graph.readWeights(), state, settings, checkpoint);
}

/** The same checkpoint from host arrays: the model's weights by initializer name and the optimizer state. */
export async function saveArraysCheckpoint(dir: string, model: OnnxModel, weights: Map<string, Float32Array>, optimizer: NamedArrays, settings: Record<string, unknown>, checkpoint: StepCheckpoint): Promise<void> {
  await mkdir(dir, { recursive: true });
  await exportModel(model, weights, checkpointModelPath(dir), { overwrite: true });
  await writeState(dir, {
    version: 1,
    epoch: checkpoint.position,
    settings,
    history: checkpoint.history,
    optimizer: encodeOptimizer(optimizer),
    tensors: encodeOptimizer(checkpoint.tensors),
  });
}

/**
 * A checkpoint as host arrays: the saved weights of `names` (each must be there), the
 * optimizer state and the rest; undefined when `dir` holds none. Other settings are refused.
 */
export async function openArraysCheckpoint(
  dir: string,
  settings: Record<string, unknown>,
  names: Iterable<string>,
): Promise<(StepCheckpoint & { weights: Map<string, Float32Array>; optimizer: NamedArrays }) | undefined> {
  const checkpoint = await openCheckpoint(dir, settings);
  if (!checkpoint) return undefined;
  const { state, weights } = checkpoint;
  const wanted = new Map<string, Float32Array>();
  for (const name of names) {
    const w = weights.get(name);
    if (!w) throw new HardenError(`${dir}: checkpoint has no weight '${name}' (delete the folder to start over)`);
    wanted.set(name, w);
  }
  return { position: state.epoch, history: state.history, tensors: decodeOptimizer(state.tensors ?? []), weights: wanted, optimizer: decodeOptimizer(state.optimizer) };
}

/**
 * Restore the weights into `graph` and the optimizer state into the optimizer (`optimizer`, or the
 * one `optimizer(position)` makes for the restored position; slots are created on `variables`
 * first); undefined when `dir` holds no checkpoint. Other settings are refused.
 */
export async function loadStepCheckpoint(
  dir: string,
  graph: ImportedGraph,
  optimizer: tf.Optimizer | ((position: number) => tf.Optimizer),
  variables: tf.Variable[],
  settings: Record<string, unknown>,
): Promise<(StepCheckpoint & { optimizer: tf.Optimizer }) | undefined> {
  const checkpoint = await openCheckpoint(dir, settings);
  if (!checkpoint) return undefined;
  const { state, weights } = checkpoint;
  graph.writeWeights(weights);
  const opt = typeof optimizer === 'function' ? optimizer(state.epoch) : optimizer;
  await restoreOptimizerState(opt, graph, variables, decodeOptimizer(state.optimizer));
  return { position: state.epoch, history: state.history, tensors: decodeOptimizer(state.tensors ?? []), optimizer: opt };
}
