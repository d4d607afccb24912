/**
 * The unit of work the fine-tuning attacks (pl, slc) are made of: train one model from its start
 * weights on one data set with one learning rate, and score it on the validation split. Jobs are
 * independent of each other, so attack-pool.ts runs them on worker threads; runAttackJob is the
 * same code in-process (one worker, or inside a worker).
 */
import type { Dataset } from '../data/types.js';
import { decodeModel, encodeModel } from '../onnx/model.js';
import { trainModel, type TrainSettings } from '../train/trainer.js';
import { fineTune, type FineTuneOptions } from './finetune.js';
import { evaluate } from './evaluate.js';
import { subsetDataset } from '../data/subset.js';

/** A data set, optionally narrowed to some of its images (subsets are taken where the job runs). */
export interface JobData {
  dataset: Dataset;
  indices?: readonly number[];
}

interface JobBase {
  /** Start weights, as ONNX bytes. */
  model: Uint8Array;
  /** What error messages call the model. */
  source: string;
  train: JobData;
  val: Dataset;
}

/** fineTune (a fixed step budget; finetune.ts) with masks as plain pairs. */
export interface FineTuneJob extends JobBase {
  kind: 'fine-tune';
  options: Omit<FineTuneOptions, 'masks'> & { masks?: [string, Uint8Array][] };
}

/** trainModel (epochs over the data; trainer.ts). */
export interface TrainJob extends JobBase {
  kind: 'train';
  settings: TrainSettings;
}

export type AttackJob = FineTuneJob | TrainJob;

export interface AttackJobResult {
  /** The trained model, as ONNX bytes. */
  model: Uint8Array;
  valAccuracy: number;
}

/** Runs one job: runAttackJob here, or an attack pool's worker (attack-pool.ts). */
export type JobRunner = (job: AttackJob) => Promise<AttackJobResult>;

/**
 * runAttackJob one job at a time in submission order: attacks submit all their jobs at once,
 * and in one thread they must not all hold engines and sessions together.
 */
export function inThisThread(): JobRunner {
  let tail: Promise<unknown> = Promise.resolve();
  return (job) => {
    const result = tail.then(() => runAttackJob(job));
    tail = result.catch(() => undefined);
    return result;
  };
}

/** Index of the run with the best validation accuracy (the earliest on ties; missing runs skipped). */
export function bestRun(runs: readonly (AttackJobResult | undefined)[]): number | undefined {
  let best: number | undefined;
  runs.forEach((r, k) => {
    if (r && (best === undefined || r.valAccuracy > runs[best]!.valAccuracy)) best = k;
  });
  return best;
}

function jobData({ dataset, indices }: JobData): Dataset {
  return indices ? subsetDataset(dataset, indices) : dataset;
}

export async function runAttackJob(job: AttackJob): Promise<AttackJobResult> {
  const model = { proto: decodeModel(job.model, job.source) };
  const train = jobData(job.train);
  const proto = job.kind === 'fine-tune'
    ? await fineTune(model, job.source, train, { ...job.options, masks: job.options.masks ? new Map(job.options.masks) : undefined })
    : (await trainModel(model, job.source, train, undefined, job.settings)).proto;
  return { model: encodeModel(proto), valAccuracy: (await evaluate(proto, job.val)).accuracy };
}
