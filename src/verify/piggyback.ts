/**
 * The piggyback-learning (PL) attack: an attacker who obtained the released model keeps its
 * backbone, attaches a fresh classifier for their own task and fine-tunes every layer on a small
 * labelled set, choosing the learning rate on a validation split. transferAdvantage compares that
 * with the same protocol on the same architecture from random initialization (reinit.ts): a
 * hardened model should give the attacker no advantage over training from scratch.
 */
import type { OnnxModel } from '../onnx/model.js';
import { decodeModel, encodeModel } from '../onnx/model.js';
import type { Dataset } from '../data/types.js';
import { withNewHead } from '../train/head.js';
import type { TrainSettings } from '../train/trainer.js';
import { bestRun, inThisThread, type JobRunner } from './jobs.js';
import { evaluate } from './evaluate.js';
import { reinitialize } from './reinit.js';
import { balanceScales } from './balance.js';

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
  /**
   * Equi-normalize the backbone before fine-tuning (balance.ts, backboneOnly): the attacker undoes
   * any function-preserving rescaling of the layers, which changes fine-tuning but not the model.
   */
  balance?: boolean;
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
 * accuracy. All evaluation runs under onnxruntime. The grid's runs are independent jobs for
 * `run` (attack-pool.ts runs them on worker threads).
 */
export async function piggybackAttack(model: OnnxModel, data: PiggybackData, opts: PiggybackOptions, source = model.path ?? 'model', run: JobRunner = inThisThread()): Promise<PiggybackResult> {
  checkOptions(opts);
  const released = opts.balance ? balanceScales(model.proto, { backboneOnly: true }).proto : model.proto;
  const start = encodeModel(withNewHead(released, data.train.classes, opts.seed, source));
  const settings = (learningRate: number): TrainSettings => ({
    epochs: opts.epochs,
    batchSize: opts.batchSize,
    optimizer: { kind: opts.optimizer ?? 'adam', learningRate },
    schedule: 'constant',
    stepEvery: 1,
    gamma: 1,
    train: 'all',
    augment: false,
    seed: opts.seed,
  });
  const runs = await Promise.all(opts.learningRates.map((learningRate) =>
    run({ kind: 'train', model: start, source, train: { dataset: data.train }, val: data.val, settings: settings(learningRate) })));
  const perLearningRate = opts.learningRates.map((learningRate, i) => ({ learningRate, valAccuracy: runs[i]!.valAccuracy }));
  const bestIndex = bestRun(runs)!;
  const accuracy = (await evaluate(decodeModel(runs[bestIndex]!.model, source), data.test)).accuracy;
  return { accuracy, bestLearningRate: opts.learningRates[bestIndex]!, perLearningRate };
}

/**
 * The attacker's gain from the released weights: PL on `model` against the same protocol on
 * reinitialize(model.proto, scratchSeed) (same data, budget, grid and seed).
 */
export async function transferAdvantage(model: OnnxModel, scratchSeed: number, data: PiggybackData, opts: PiggybackOptions, run: JobRunner = inThisThread()): Promise<TransferAdvantage> {
  const source = model.path ?? 'model';
  const [pl, scratch] = await Promise.all([
    piggybackAttack(model, data, opts, source, run),
    piggybackAttack({ ...model, proto: reinitialize(model.proto, scratchSeed) }, data, opts, `${source} (reinitialized)`, run),
  ]);
  return { pl, scratch, advantage: pl.accuracy - scratch.accuracy };
}
