/**
 * The piggyback-learning (PL) attack: an attacker who obtained the released model keeps its
 * backbone, attaches a fresh classifier for their own task and fine-tunes every layer on a small
 * labelled set, choosing the learning rate on a validation split. transferAdvantage compares that
 * with the same protocol on the same architecture from random initialization (reinit.ts): a
 * hardened model should give the attacker no advantage over training from scratch.
 */
import type { OnnxModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import { withNewHead } from '../train/head.js';
import { trainModel, type TrainSettings } from '../train/trainer.js';
import { evaluate } from './evaluate.js';
import { reinitialize } from './reinit.js';

export interface PiggybackData {
  train: Dataset;
  val: Dataset;
  test: Dataset;
}

export interface PiggybackOptions {
  epochs: number;
  batchSize: number;
  /** The grid the attacker searches; the best on data.val wins (ties: the earlier one). */
  learningRates: number[];
  seed: number;
  /** Default 'adam'. */
  optimizer?: 'adam' | 'sgd' | 'momentum';
}

export interface PiggybackResult {
  /** Test accuracy (onnxruntime) of the model fine-tuned at bestLearningRate. */
  accuracy: number;
  bestLearningRate: number;
  perLearningRate: { learningRate: number; valAccuracy: number }[];
}

export interface TransferAdvantage {
  pl: PiggybackResult;
  scratch: PiggybackResult;
  /** pl.accuracy − scratch.accuracy. */
  advantage: number;
}

function checkOptions(opts: PiggybackOptions): void {
  if (opts.learningRates.length === 0) throw new Error('piggybackAttack: learningRates is empty');
  for (const lr of opts.learningRates) if (!(lr > 0) || !Number.isFinite(lr)) throw new Error(`piggybackAttack: bad learning rate ${lr}`);
  if (!(Number.isInteger(opts.epochs) && opts.epochs >= 1)) throw new Error(`piggybackAttack: epochs must be a positive integer, got ${opts.epochs}`);
  if (!(Number.isInteger(opts.batchSize) && opts.batchSize >= 1)) throw new Error(`piggybackAttack: batchSize must be a positive integer, got ${opts.batchSize}`);
}

/**
 * Fine-tune `model` with a new head (data.train.classes outputs, always freshly initialized from
 * opts.seed) on data.train, training all layers with a constant learning rate, once per rate of
 * the grid; pick the rate with the best data.val accuracy and report that model's data.test
 * accuracy. All evaluation runs under onnxruntime.
 */
export async function piggybackAttack(model: OnnxModel, data: PiggybackData, opts: PiggybackOptions, source = model.path ?? 'model'): Promise<PiggybackResult> {
  checkOptions(opts);
  const classes = data.train.classes;
  const start = withNewHead(model.proto, classes, opts.seed, source);
  const perLearningRate: PiggybackResult['perLearningRate'] = [];
  let best: { learningRate: number; valAccuracy: number; proto: ModelProto } | undefined;
  for (const learningRate of opts.learningRates) {
    const settings: TrainSettings = {
      epochs: opts.epochs,
      batchSize: opts.batchSize,
      optimizer: { kind: opts.optimizer ?? 'adam', learningRate },
      schedule: 'constant',
      stepEvery: 1,
      gamma: 1,
      train: 'all',
      augment: false,
      seed: opts.seed,
    };
    const { proto } = await trainModel({ ...model, proto: start }, source, data.train, undefined, settings);
    const valAccuracy = (await evaluate(proto, data.val)).accuracy;
    perLearningRate.push({ learningRate, valAccuracy });
    if (!best || valAccuracy > best.valAccuracy) best = { learningRate, valAccuracy, proto };
  }
  const accuracy = (await evaluate(best!.proto, data.test)).accuracy;
  return { accuracy, bestLearningRate: best!.learningRate, perLearningRate };
}

/**
 * The attacker's gain from the released weights: PL on `model` against the same protocol on
 * reinitialize(model.proto, scratchSeed) (same data, budget, grid and seed).
 */
export async function transferAdvantage(model: OnnxModel, scratchSeed: number, data: PiggybackData, opts: PiggybackOptions): Promise<TransferAdvantage> {
  const source = model.path ?? 'model';
  const pl = await piggybackAttack(model, data, opts, source);
  const scratch = await piggybackAttack({ ...model, proto: reinitialize(model.proto, scratchSeed) }, data, opts, `${source} (reinitialized)`);
  return { pl, scratch, advantage: pl.accuracy - scratch.accuracy };
}
