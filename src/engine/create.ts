/**
 * Which training engine builds a TrainableGraph. Trainer, attacks and the methods that train
 * through TrainableGraph call createTrainable and never name an engine themselves.
 *
 *   ort   training graphs generated from the ONNX model, run by onnxruntime (src/engine/ort-engine.ts)
 *   tfjs  the imported graph under tfjs's eager autodiff on the selected tfjs backend
 *
 * `auto` is ort: on this project's CPU runners `npm run bench` measures its train step
 * faster than tfjs's fastest available backend (wasm) on every fixture model.
 */
import type { OnnxModel } from '../onnx/model.js';
import { OrtTrainable } from './ort-engine.js';
import { TfjsTrainable } from './tfjs-engine.js';
import type { TrainableGraph } from './trainable.js';

export type EngineName = TrainableGraph['engine'];
export const ENGINE_CHOICES = ['auto', 'ort', 'tfjs'] as const;

let selected: EngineName = 'tfjs';

/** Sets the engine later createTrainable calls use; returns the resolved name. */
export function selectEngine(name: EngineName | 'auto'): EngineName {
  selected = name === 'auto' ? 'ort' : name;
  return selected;
}

/** The engine selectEngine last chose (tfjs when it was never called). */
export function selectedEngine(): EngineName {
  return selected;
}

export function createTrainable(model: OnnxModel, source?: string, engine: EngineName = selected): TrainableGraph {
  return engine === 'ort' ? new OrtTrainable(model, source) : new TfjsTrainable(model, source);
}
