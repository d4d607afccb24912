import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { HardenError } from '../errors.js';
import { initializerMap, loadModel } from '../onnx/model.js';
import { hostToFloat32 } from '../onnx/tensor.js';

/** What a training run needs to continue exactly where it stopped (after a whole epoch). */
export interface CheckpointState {
  version: 1;
  /** Epochs completed. */
  epoch: number;
  /** The settings the run started with; resuming with different ones is refused. */
  settings: Record<string, unknown>;
  history: Record<string, unknown>[];
  optimizer: { key: string; shape: number[]; data: string }[];
  /** Other named arrays a method carries between steps (e.g. ADMM's Z and U), same encoding. */
  tensors?: { key: string; shape: number[]; data: string }[];
}

/** How a step-based method run checkpoints and reports progress (`P`: its progress callbacks). */
export interface StepRun<P> {
  checkpointDir?: string;
  resume?: boolean;
  progress?: P;
  /** Checkpoint every this many steps (and at the end); default 50. */
  checkpointEvery?: number;
}

export const CHECKPOINT_MODEL = 'model.onnx';
const STATE = 'state.json';

export function checkpointModelPath(dir: string): string {
  return path.join(dir, CHECKPOINT_MODEL);
}

export function encodeOptimizer(state: Map<string, { shape: number[]; data: Float32Array }>): CheckpointState['optimizer'] {
  return [...state].map(([key, { shape, data }]) => ({ key, shape, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') }));
}

export function decodeOptimizer(entries: CheckpointState['optimizer']): Map<string, { shape: number[]; data: Float32Array }> {
  return new Map(
    entries.map(({ key, shape, data }) => {
      const bytes = Buffer.from(data, 'base64');
      const f = new Float32Array(bytes.length / 4);
      new Uint8Array(f.buffer).set(bytes);
      return [key, { shape, data: f }];
    }),
  );
}

/** Written last and atomically: a state file always describes a complete model file. */
export async function writeState(dir: string, state: CheckpointState): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `${STATE}.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify(state));
  await rename(tmp, path.join(dir, STATE));
}

export async function readState(dir: string): Promise<CheckpointState | undefined> {
  const file = path.join(dir, STATE);
  if (!existsSync(file)) return undefined;
  try {
    const state = JSON.parse(await readFile(file, 'utf8')) as CheckpointState;
    if (state.version !== 1 || !existsSync(checkpointModelPath(dir))) throw new Error('incomplete');
    return state;
  } catch {
    throw new HardenError(`${file}: not a readable Harden checkpoint (delete the folder to start over)`);
  }
}

/**
 * The checkpoint to resume from, if `dir` holds one: its state and the saved weights by
 * initializer name. A checkpoint made with other settings is refused.
 */
export async function openCheckpoint(dir: string, settings: Record<string, unknown>): Promise<{ state: CheckpointState; weights: Map<string, Float32Array> } | undefined> {
  const state = await readState(dir);
  if (!state) return undefined;
  if (JSON.stringify(state.settings) !== JSON.stringify(settings)) {
    throw new HardenError(`${dir}: checkpoint was made with other settings; start over without --resume or use the same settings`);
  }
  const saved = await loadModel(checkpointModelPath(dir));
  const weights = new Map([...initializerMap(saved.proto, saved.baseDir)].map(([name, h]) => [name, hostToFloat32(h)] as const));
  return { state, weights };
}
