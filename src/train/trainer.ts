import { mkdir } from 'node:fs/promises';
import { HardenError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { toNumber, type ModelProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import { batches } from '../data/loader.js';
import { createTrainable } from '../engine/create.js';
import type { OptimizerSpec } from '../engine/trainable.js';
import { exportModel, withWeights } from '../export/export.js';
import { evaluate, type Evaluation } from '../verify/evaluate.js';
import { Random } from '../util/random.js';
import { cropAndFlip } from './augment.js';
import { checkModelTakes } from './fit.js';
import { selectTrainable } from './head.js';
import { checkpointModelPath, decodeOptimizer, encodeOptimizer, openCheckpoint, writeState } from './checkpoint.js';

export interface TrainSettings {
  epochs: number;
  batchSize: number;
  optimizer: OptimizerSpec;
  schedule: 'constant' | 'step' | 'cosine';
  /** For 'step': multiply the rate by `gamma` every `stepEvery` epochs. */
  stepEvery: number;
  gamma: number;
  /** all | head | last-K */
  train: string;
  augment: boolean;
  seed: number;
}

export interface EpochRecord {
  epoch: number;
  learningRate: number;
  trainLoss: number;
  test?: Evaluation;
  seconds: number;
}

export interface TrainProgress {
  onEpochStart?(epoch: number, totalBatches: number): void;
  onBatch?(epoch: number, batch: number, loss: number): void;
  onEpochEnd?(record: EpochRecord): void;
  onResume?(epoch: number): void;
}

export interface TrainRun {
  checkpointDir?: string;
  resume?: boolean;
  progress?: TrainProgress;
}

export function learningRateAt(s: TrainSettings, epoch: number): number {
  const lr = s.optimizer.learningRate;
  if (s.schedule === 'step') return lr * s.gamma ** Math.floor(epoch / s.stepEvery);
  if (s.schedule === 'cosine') return (lr * (1 + Math.cos((Math.PI * epoch) / s.epochs))) / 2;
  return lr;
}

function checkLabels(data: Dataset, classes: number, what: string): void {
  const max = data.labels.reduce((m, v) => Math.max(m, v), -1);
  if (max >= classes) throw new HardenError(`${what} has label ${max} but the model has ${classes} classes (choose classes= or --classes)`);
}

/**
 * Train (or fine-tune) a model with cross-entropy. Checkpoints after every epoch; with `resume`,
 * continues from the last completed epoch: batches depend only on (seed, epoch), and weights, BN
 * statistics and optimizer state are restored, so an interrupted run ends where an uninterrupted one would.
 */
export async function trainModel(model: OnnxModel, source: string, trainSet: Dataset, testSet: Dataset | undefined, s: TrainSettings, run: TrainRun = {}): Promise<{ proto: ModelProto; history: EpochRecord[] }> {
  const engine = createTrainable(model, source);
  try {
    checkModelTakes(model.proto, trainSet, 'training data');
    if (testSet) checkModelTakes(model.proto, testSet, 'test data');
    const classDim = model.proto.graph?.output[0].type?.tensor_type?.shape?.dim?.at(-1);
    const classes = classDim?.value === 'dim_value' ? toNumber(classDim.dim_value) : trainSet.classes;
    checkLabels(trainSet, classes, 'training data');
    if (testSet) checkLabels(testSet, classes, 'test data');
    engine.setTrainable(selectTrainable(model.proto, engine.parameterNames, s.train, source));
    engine.setOptimizer(s.optimizer);

    const settingsKey = JSON.parse(JSON.stringify(s)) as Record<string, unknown>;
    let history: EpochRecord[] = [];
    let start = 0;
    if (run.checkpointDir && run.resume) {
      const checkpoint = await openCheckpoint(run.checkpointDir, settingsKey);
      if (checkpoint) {
        const { state, weights } = checkpoint;
        engine.setWeights(new Map([...engine.weights().keys()].map((n) => [n, weights.get(n)!])));
        await engine.setOptimizerState(decodeOptimizer(state.optimizer));
        history = state.history as unknown as EpochRecord[];
        start = state.epoch;
        run.progress?.onResume?.(start);
      }
    }

    for (let epoch = start; epoch < s.epochs; epoch++) {
      const t0 = performance.now();
      const learningRate = learningRateAt(s, epoch);
      engine.setLearningRate(learningRate);
      engine.seed = s.seed * 100_003 + epoch * 1_009;
      const total = Math.floor(trainSet.labels.length / s.batchSize) || 1;
      run.progress?.onEpochStart?.(epoch, total);
      let lossSum = 0, count = 0;
      // Every random choice of an epoch derives from (seed, epoch), so a resumed run repeats it exactly.
      const augmentRng = new Random((s.seed * 7919 + epoch * 104_729 + 1) >>> 0);
      for (const { x, y } of batches(trainSet, { batchSize: s.batchSize, seed: s.seed, epoch, shuffle: true, dropLast: trainSet.labels.length >= s.batchSize })) {
        const input = s.augment ? cropAndFlip(x, augmentRng) : x;
        const loss = await engine.trainStep(input, y);
        if (!Number.isFinite(loss)) throw new HardenError(`training diverged in epoch ${epoch + 1} (loss ${loss}); lower --lr`);
        lossSum += loss;
        run.progress?.onBatch?.(epoch, ++count, loss);
      }
      const proto = withWeights(model, engine.weights());
      const test = testSet ? await evaluate(proto, testSet) : undefined;
      const record: EpochRecord = { epoch: epoch + 1, learningRate, trainLoss: lossSum / Math.max(1, count), test, seconds: (performance.now() - t0) / 1000 };
      history.push(record);
      if (run.checkpointDir) {
        await mkdir(run.checkpointDir, { recursive: true });
        await exportModel(model, engine.weights(), checkpointModelPath(run.checkpointDir), { overwrite: true });
        const optimizer = encodeOptimizer(await engine.optimizerState());
        await writeState(run.checkpointDir, { version: 1, epoch: epoch + 1, settings: settingsKey, history: history as unknown as Record<string, unknown>[], optimizer });
      }
      run.progress?.onEpochEnd?.(record);
    }
    return { proto: withWeights(model, engine.weights()), history };
  } finally {
    engine.dispose();
  }
}
