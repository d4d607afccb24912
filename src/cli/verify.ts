import { HardenError } from '../errors.js';
import { loadModel } from '../onnx/model.js';
import { loadDataset } from '../data/index.js';
import { transferAdvantage } from '../verify/piggyback.js';
import { splitDataset } from '../verify/split.js';

export interface VerifyCliOptions {
  model: string;
  attacks: string[];
  plData: string;
  plTest: string;
  valFraction: number;
  epochs: number;
  batchSize: number;
  learningRates: number[];
  seed: number;
}

const ATTACKS = ['pl'];

/**
 * `harden verify` (first version): the piggyback-learning attack. The attacker keeps the backbone,
 * attaches a fresh head, fine-tunes everything on a small piggyback set with the best learning
 * rate of a grid (chosen on a held-out part of it), and is compared with the same protocol from
 * random initialization. Transfer advantage = PL accuracy − scratch accuracy.
 */
export async function runVerify(o: VerifyCliOptions): Promise<Record<string, unknown>> {
  const unknown = o.attacks.filter((a) => !ATTACKS.includes(a));
  if (unknown.length) throw new HardenError(`unknown attack ${unknown.map((a) => `'${a}'`).join(', ')}; this version has: ${ATTACKS.join(', ')}`);
  if (!(o.valFraction > 0 && o.valFraction < 1)) throw new HardenError(`--val-fraction must be in (0, 1), got ${o.valFraction}`);
  if (!o.learningRates.length || o.learningRates.some((lr) => !(lr > 0))) throw new HardenError(`--lr-grid needs positive learning rates, got '${o.learningRates.join(',')}'`);
  const model = await loadModel(o.model);
  const pool = await loadDataset(o.plData);
  const { train, val } = splitDataset(pool, o.valFraction, o.seed);
  const test = await loadDataset(o.plTest);
  const r = await transferAdvantage(model, o.seed, { train, val, test }, { epochs: o.epochs, batchSize: o.batchSize, learningRates: o.learningRates, seed: o.seed });
  return {
    model: o.model,
    attack: 'pl',
    protocol: { plData: o.plData, plTest: o.plTest, trainImages: train.labels.length, valImages: val.labels.length, testImages: test.labels.length, epochs: o.epochs, batchSize: o.batchSize, learningRates: o.learningRates, seed: o.seed },
    plAccuracy: r.pl.accuracy,
    scratchAccuracy: r.scratch.accuracy,
    transferAdvantage: r.advantage,
    pl: r.pl,
    scratch: r.scratch,
  };
}

export function formatVerify(r: Record<string, unknown>): string {
  const pct = (v: unknown) => `${(100 * (v as number)).toFixed(2)} %`;
  return [
    `model               ${r.model}`,
    `piggyback accuracy  ${pct(r.plAccuracy)}  (fresh head, all layers fine-tuned)`,
    `from scratch        ${pct(r.scratchAccuracy)}  (same architecture, random init, same protocol)`,
    `transfer advantage  ${((100 * (r.transferAdvantage as number)) >= 0 ? '+' : '') + (100 * (r.transferAdvantage as number)).toFixed(2)} points`,
  ].join('\n');
}
