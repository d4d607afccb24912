/**
 * The attacker's fine-tuning with a fixed step budget: every data size gets the same number of
 * optimizer steps (batches of min(batchSize, n) from a seeded endless stream), so learning curves
 * compare data, not compute. Optional masks keep pruned weights at zero (the masked attacker).
 */
import type { OnnxModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import { StepSampler } from '../data/loader.js';
import { createTrainable } from '../engine/create.js';
import { withWeights } from '../export/export.js';
import { HardenError } from '../errors.js';
import { checkModelTakes } from '../train/fit.js';

export interface FineTuneOptions {
  steps: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  optimizer?: 'adam' | 'sgd' | 'momentum';
  /** Pruning masks by parameter name (1 keeps, 0 holds the weight at zero). */
  masks?: Map<string, Uint8Array>;
}

/** Fine-tune every layer of `model` on `train` with cross-entropy; returns the new model. */
export async function fineTune(model: OnnxModel, source: string, train: Dataset, o: FineTuneOptions): Promise<ModelProto> {
  const engine = createTrainable(model, source);
  try {
    checkModelTakes(model.proto, train, 'fine-tuning data');
    engine.setOptimizer({ kind: o.optimizer ?? 'adam', learningRate: o.learningRate });
    if (o.masks) engine.setMasks(o.masks);
    const sampler = new StepSampler(train, Math.min(o.batchSize, train.labels.length), o.seed);
    for (let step = 0; step < o.steps; step++) {
      engine.seed = o.seed * 100_003 + step;
      const { x, y } = sampler.batch(step);
      const loss = await engine.trainStep(x, y);
      if (!Number.isFinite(loss)) throw new HardenError(`fine-tuning diverged at step ${step + 1} (learning rate ${o.learningRate})`);
    }
    return withWeights(model, engine.weights());
  } finally {
    engine.dispose();
  }
}
