/**
 * Checkpoints of step-based method runs (a method's own optimizer loop over an ImportedGraph):
 * the model file with the current weights, then state.json with the position in the step
 * schedule, the history, the optimizer state and any extra named arrays.
 */
import { mkdir } from 'node:fs/promises';
import type * as tf from '@tensorflow/tfjs-core';
import type { OnnxModel } from '../onnx/model.js';
import type { ImportedGraph } from '../import/graph.js';
import { exportModel } from '../export/export.js';
import { readOptimizerState, restoreOptimizerState, type NamedArrays } from '../engine/optimizer-state.js';
import { checkpointModelPath, decodeOptimizer, encodeOptimizer, openCheckpoint, writeState } from './checkpoint.js';

export interface StepCheckpoint {
  position: number;
  history: Record<string, unknown>[];
  tensors: NamedArrays;
}

export async function saveStepCheckpoint(dir: string, model: OnnxModel, graph: ImportedGraph, optimizer: tf.Optimizer | undefined, settings: Record<string, unknown>, checkpoint: StepCheckpoint): Promise<void> {
  await mkdir(dir, { recursive: true });
  await exportModel(model, graph.readWeights(), checkpointModelPath(dir), { overwrite: true });
  await writeState(dir, {
    version: 1,
    epoch: checkpoint.position,
    settings,
    history: checkpoint.history,
    optimizer: encodeOptimizer(optimizer ? await readOptimizerState(optimizer, graph) : new Map()),
    tensors: encodeOptimizer(checkpoint.tensors),
  });
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
