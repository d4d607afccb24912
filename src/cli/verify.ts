import { writeFile } from 'node:fs/promises';
import { HardenError } from '../errors.js';
import { loadModel, type OnnxModel } from '../onnx/model.js';
import { loadDataset } from '../data/index.js';
import { transferAdvantage } from '../verify/piggyback.js';
import { checkSlcOptions, learningCurveChart, slcAttack, type SlcOptions, type SlcResult } from '../verify/slc.js';
import { splitDataset } from '../verify/split.js';
import { svgToPng } from '../verify/charts.js';

export interface VerifyCliOptions {
  model: string;
  attacks: string[];
  plData?: string;
  plTest?: string;
  valFraction: number;
  epochs: number;
  batchSize: number;
  learningRates: number[];
  seed: number;
  slcData?: string;
  slcTest?: string;
  slcFractions: number[];
  slcSteps: number;
  slcBatchSize: number;
  slcValImages: number;
  plot?: string;
  json: boolean;
}

const ATTACKS = ['pl', 'slc'];

/**
 * `harden verify`: attacks under onnxruntime.
 * - pl: the attacker keeps the backbone, attaches a fresh head, fine-tunes everything on a small
 *   piggyback set with the best learning rate of a grid (chosen on a held-out part of it),
 *   compared with the same protocol from random initialization (transfer advantage).
 * - slc: the sample-wise learning curve and SLC-AUC (src/verify/slc.ts), dense and masked.
 */
export async function runVerify(o: VerifyCliOptions): Promise<Record<string, unknown>> {
  const unknown = o.attacks.filter((a) => !ATTACKS.includes(a));
  if (unknown.length) throw new HardenError(`unknown attack ${unknown.map((a) => `'${a}'`).join(', ')}; this version has: ${ATTACKS.join(', ')}`);
  if (!o.attacks.length) throw new HardenError('--attacks names no attack');
  if (!o.learningRates.length || o.learningRates.some((lr) => !(lr > 0))) throw new HardenError(`--lr-grid needs positive learning rates, got '${o.learningRates.join(',')}'`);
  if (o.attacks.includes('pl') && !(o.plData && o.plTest)) throw new HardenError('--attacks pl needs --pl-data and --pl-test');
  if (o.attacks.includes('slc') && !(o.slcData && o.slcTest)) throw new HardenError('--attacks slc needs --slc-data and --slc-test');
  if (o.attacks.includes('slc')) checkSlcOptions(slcOptions(o));
  if (o.plot && !/\.(svg|png)$/i.test(o.plot)) throw new HardenError(`--plot must name a .svg or .png file, got '${o.plot}'`);
  const model = await loadModel(o.model);
  const report: Record<string, unknown> = { model: o.model };
  if (o.attacks.includes('pl')) report.pl = await runPl(model, o);
  if (o.attacks.includes('slc')) {
    const slc = await runSlc(model, o);
    report.slc = slc;
    if (o.plot) await writePlot(o.plot, slc.result, o.model);
  }
  return report;
}

async function runPl(model: OnnxModel, o: VerifyCliOptions): Promise<Record<string, unknown>> {
  if (!(o.valFraction > 0 && o.valFraction < 1)) throw new HardenError(`--val-fraction must be in (0, 1), got ${o.valFraction}`);
  for (const name of ['epochs', 'batchSize'] as const) {
    if (!Number.isInteger(o[name]) || o[name] < 1) throw new HardenError(`--${name === 'batchSize' ? 'batch-size' : name} must be a positive integer, got ${o[name]}`);
  }
  const pool = await loadDataset(o.plData!);
  const { train, val } = splitDataset(pool, o.valFraction, o.seed);
  const test = await loadDataset(o.plTest!);
  const r = await transferAdvantage(model, o.seed, { train, val, test }, { epochs: o.epochs, batchSize: o.batchSize, learningRates: o.learningRates, seed: o.seed });
  return {
    protocol: { plData: o.plData, plTest: o.plTest, trainImages: train.labels.length, valImages: val.labels.length, testImages: test.labels.length, epochs: o.epochs, batchSize: o.batchSize, learningRates: o.learningRates, seed: o.seed },
    plAccuracy: r.pl.accuracy,
    scratchAccuracy: r.scratch.accuracy,
    transferAdvantage: r.advantage,
    attack: r.pl,
    scratch: r.scratch,
  };
}

const slcOptions = (o: VerifyCliOptions): SlcOptions => ({ fractions: o.slcFractions, steps: o.slcSteps, batchSize: o.slcBatchSize, learningRates: o.learningRates, seed: o.seed });

async function runSlc(model: OnnxModel, o: VerifyCliOptions): Promise<{ protocol: Record<string, unknown>; result: SlcResult; slcAuc: number; slcAucMasked?: number }> {
  if (!(Number.isInteger(o.slcValImages) && o.slcValImages >= 1)) throw new HardenError(`--slc-val-images must be a positive integer, got ${o.slcValImages}`);
  const pool = await loadDataset(o.slcData!);
  if (o.slcValImages >= pool.labels.length) throw new HardenError(`--slc-val-images ${o.slcValImages} leaves no training images of the ${pool.labels.length} in '${o.slcData}'`);
  const { train, val } = splitDataset(pool, o.slcValImages / pool.labels.length, o.seed);
  const test = await loadDataset(o.slcTest!);
  const opts = slcOptions(o);
  const log = (line: string) => !o.json && process.stderr.write(line + '\n');
  const result = await slcAttack(model, { train, val, test }, opts, o.seed, {
    onCurve: (name) => log(`slc: ${name} curve`),
    onPoint: (p) => log(`  r = ${p.fraction}: ${p.images} images, test accuracy ${(100 * p.accuracy).toFixed(2)} % (lr ${p.learningRate})`),
  });
  return {
    protocol: { slcData: o.slcData, slcTest: o.slcTest, trainImages: train.labels.length, valImages: val.labels.length, testImages: test.labels.length, ...opts },
    result,
    slcAuc: result.slcAuc,
    ...(result.slcAucMasked !== undefined ? { slcAucMasked: result.slcAucMasked } : {}),
  };
}

async function writePlot(file: string, r: SlcResult, model: string): Promise<void> {
  const curves = [{ name: 'model, dense attacker', curve: r.model }, ...(r.masked ? [{ name: 'model, masked attacker', curve: r.masked }] : []), { name: 'from scratch', curve: r.scratch }];
  const svg = await learningCurveChart(curves, `SLC: ${model}`);
  await writeFile(file, /\.png$/i.test(file) ? await svgToPng(svg) : svg);
}

export function formatVerify(r: Record<string, unknown>): string {
  const pct = (v: number) => `${(100 * v).toFixed(2)} %`;
  const lines = [`model               ${r.model}`];
  const pl = r.pl as { plAccuracy: number; scratchAccuracy: number; transferAdvantage: number } | undefined;
  if (pl) {
    lines.push(
      `piggyback accuracy  ${pct(pl.plAccuracy)}  (fresh head, all layers fine-tuned)`,
      `from scratch        ${pct(pl.scratchAccuracy)}  (same architecture, random init, same protocol)`,
      `transfer advantage  ${(pl.transferAdvantage >= 0 ? '+' : '') + (100 * pl.transferAdvantage).toFixed(2)} points`,
    );
  }
  const slc = r.slc as { result: SlcResult } | undefined;
  if (slc) {
    const { result } = slc;
    lines.push('', 'sample-wise learning curve (test accuracy)', `  fraction   images   model    ${result.masked ? 'masked   ' : ''}scratch`);
    result.model.points.forEach((p, i) => {
      const masked = result.masked ? `${pct(result.masked.points[i]!.accuracy).padStart(8)} ` : '';
      lines.push(`  ${String(p.fraction).padEnd(8)} ${String(p.images).padStart(7)} ${pct(p.accuracy).padStart(8)} ${masked}${pct(result.scratch.points[i]!.accuracy).padStart(8)}`);
    });
    lines.push(`SLC-AUC             ${result.slcAuc.toFixed(4)}  (dense attacker; AUC ${result.model.auc.toFixed(4)} − scratch ${result.scratch.auc.toFixed(4)})`);
    if (result.slcAucMasked !== undefined) lines.push(`SLC-AUC (masked)    ${result.slcAucMasked.toFixed(4)}`);
  }
  return lines.join('\n');
}
