import { writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ExitCode, HardenError } from '../errors.js';
import { sha256 } from '../export/export.js';
import { describeFailures, evaluateGates, type Gate } from '../verify/gates.js';
import { REPORT_SCHEMA, verdictOf, type HardenReport } from '../verify/report.js';
import { writeReport } from '../verify/report-html.js';
import { HARDEN_VERSION } from '../version.js';
import { checkModelTakes } from '../train/fit.js';
import { loadModel, type OnnxModel } from '../onnx/model.js';
import { loadDataset } from '../data/index.js';
import { transferAdvantage } from '../verify/piggyback.js';
import { checkSlcOptions, learningCurveChart, slcAttack, slcJobCount, type LearningCurve, type SlcOptions, type SlcResult } from '../verify/slc.js';
import { withAttackJobs } from '../verify/attack-pool.js';
import type { JobRunner } from '../verify/jobs.js';
import { AttackProgress } from './attack-progress.js';
import type { AttackFigure, ReportCurve } from '../verify/report.js';
import { splitDataset } from '../verify/split.js';
import { svgToPng } from '../verify/charts.js';
import { extractFeatures } from '../verify/features.js';
import { linearProbe } from '../verify/probe.js';
import { fewShotKnn } from '../verify/knn.js';
import { membershipInference } from '../verify/mia.js';
import { reinitialize } from '../verify/reinit.js';
import type { ModelProto } from '../onnx/schema.js';

export interface VerifyCliOptions {
  model: string;
  attacks: string[];
  plData?: string;
  plTest?: string;
  valFraction: number;
  epochs: number;
  batchSize: number;
  learningRates: number[];
  /** pl: equi-normalize the backbone before fine-tuning (verify/balance.ts). */
  plBalance?: boolean;
  seed: number;
  slcData?: string;
  slcTest?: string;
  slcFractions: number[];
  slcSteps: number;
  slcBatchSize: number;
  slcValImages: number;
  plot?: string;
  /** probe / knn: the attacker's labelled data and test set. */
  data?: string;
  testData?: string;
  featureTensor?: string;
  /** mia: forget (training) data and held-out data. */
  members?: string;
  nonMembers?: string;
  /** Worker threads of the pl/slc fine-tuning runs (1: in this process). */
  workers: number;
  json: boolean;
}

const ATTACKS = ['pl', 'slc', 'probe', 'knn', 'mia'];

/**
 * `harden verify`: attacks under onnxruntime.
 * - pl: the attacker keeps the backbone, attaches a fresh head, fine-tunes everything on a small
 *   piggyback set with the best learning rate of a grid (chosen on a held-out part of it),
 *   compared with the same protocol from random initialization (transfer advantage).
 * - slc: the sample-wise learning curve and SLC-AUC (src/verify/slc.ts), dense and masked.
 * - probe / knn: a logistic-regression probe and few-shot k-NN on the model's frozen features
 *   (from onnxruntime), each beside the same attack on the re-initialized architecture.
 * - mia: loss-threshold membership inference, members vs non-members (advantage = TPR − FPR).
 */
export function checkAttackNames(attacks: string[]): void {
  const unknown = attacks.filter((a) => !ATTACKS.includes(a));
  if (unknown.length) throw new HardenError(`unknown attack ${unknown.map((a) => `'${a}'`).join(', ')}; this version has: ${ATTACKS.join(', ')}`);
  if (!attacks.length) throw new HardenError('--attacks names no attack');
}

export async function runVerify(o: VerifyCliOptions): Promise<Record<string, unknown>> {
  checkAttackNames(o.attacks);
  if (!o.learningRates.length || o.learningRates.some((lr) => !(lr > 0))) throw new HardenError(`--lr-grid needs positive learning rates, got '${o.learningRates.join(',')}'`);
  if (o.attacks.includes('pl') && !(o.plData && o.plTest)) throw new HardenError('--attacks pl needs --pl-data and --pl-test');
  if (o.attacks.includes('slc') && !(o.slcData && o.slcTest)) throw new HardenError('--attacks slc needs --slc-data and --slc-test');
  if (o.attacks.includes('pl')) checkPlOptions(o);
  if (o.attacks.includes('slc')) checkSlcOptions(slcOptions(o));
  if (o.attacks.includes('slc') && !(Number.isInteger(o.slcValImages) && o.slcValImages >= 1)) throw new HardenError(`--slc-val-images must be a positive integer, got ${o.slcValImages}`);
  if ((o.attacks.includes('probe') || o.attacks.includes('knn')) && !(o.data && o.testData)) throw new HardenError('--attacks probe/knn need --data and --test-data');
  if (o.attacks.includes('mia') && !(o.members && o.nonMembers)) throw new HardenError('--attacks mia needs --members and --non-members');
  if (o.plot && !/\.(svg|png)$/i.test(o.plot)) throw new HardenError(`--plot must name a .svg or .png file, got '${o.plot}'`);
  const model = await loadModel(o.model);
  const report: Record<string, unknown> = { model: o.model };
  // pl and slc consist of independent fine-tuning runs: both go to one pool at once.
  const progress = new AttackProgress(!o.json);
  const fineTuning = o.attacks.includes('pl') || o.attacks.includes('slc');
  try {
    if (fineTuning) await withAttackJobs(o.workers, async (run) => {
      const [pl, slc] = await Promise.all([
        o.attacks.includes('pl') ? runPl(model, o, progress.counted('pl', 2 * o.learningRates.length, run)) : undefined,
        o.attacks.includes('slc') ? runSlc(model, o, progress, run) : undefined,
      ]);
      if (pl) report.pl = pl;
      if (slc) report.slc = slc;
    });
  } finally {
    progress.stop();
  }
  if (o.attacks.includes('probe') || o.attacks.includes('knn')) Object.assign(report, await runFeatureAttacks(model, o));
  if (o.attacks.includes('mia')) {
    const [members, nonMembers] = [await loadDataset(o.members!), await loadDataset(o.nonMembers!)];
    checkModelTakes(model.proto, members, `'${o.members}'`);
    checkModelTakes(model.proto, nonMembers, `'${o.nonMembers}'`);
    report.mia = { protocol: { members: o.members, nonMembers: o.nonMembers }, ...(await membershipInference(model.proto, members, nonMembers)) };
  }
  if (o.plot && report.slc) await writePlot(o.plot, (report.slc as { result: SlcResult }).result, o.model);
  // The report's key order does not depend on which attack finished first.
  return Object.fromEntries(['model', 'pl', 'probe', 'knn', 'mia', 'slc'].filter((k) => k in report).map((k) => [k, report[k]]));
}

function checkPlOptions(o: VerifyCliOptions): void {
  if (!(o.valFraction > 0 && o.valFraction < 1)) throw new HardenError(`--val-fraction must be in (0, 1), got ${o.valFraction}`);
  for (const name of ['epochs', 'batchSize'] as const) {
    if (!Number.isInteger(o[name]) || o[name] < 1) throw new HardenError(`--${name === 'batchSize' ? 'batch-size' : name} must be a positive integer, got ${o[name]}`);
  }
}

async function runPl(model: OnnxModel, o: VerifyCliOptions, run: JobRunner): Promise<Record<string, unknown>> {
  const pool = await loadDataset(o.plData!);
  const { train, val } = splitDataset(pool, o.valFraction, o.seed);
  const test = await loadDataset(o.plTest!);
  const r = await transferAdvantage(model, o.seed, { train, val, test }, { epochs: o.epochs, batchSize: o.batchSize, learningRates: o.learningRates, seed: o.seed, balance: o.plBalance }, run);
  return {
    protocol: { plData: o.plData, plTest: o.plTest, trainImages: train.labels.length, valImages: val.labels.length, testImages: test.labels.length, epochs: o.epochs, batchSize: o.batchSize, learningRates: o.learningRates, seed: o.seed, ...(o.plBalance ? { balance: true } : {}) },
    plAccuracy: r.pl.accuracy,
    scratchAccuracy: r.scratch.accuracy,
    transferAdvantage: r.advantage,
    attack: r.pl,
    scratch: r.scratch,
  };
}

/** probe and knn on the model's features and on the re-initialized architecture's (the scratch reference). */
async function runFeatureAttacks(model: OnnxModel, o: VerifyCliOptions): Promise<Record<string, unknown>> {
  const [train, test] = [await loadDataset(o.data!), await loadDataset(o.testData!)];
  checkModelTakes(model.proto, train, `'${o.data}'`);
  checkModelTakes(model.proto, test, `'${o.testData}'`);
  const scratch = reinitialize(model.proto, o.seed);
  const features = async (proto: ModelProto) => ({
    train: await extractFeatures(proto, train, { featureTensor: o.featureTensor }),
    test: await extractFeatures(proto, test, { featureTensor: o.featureTensor }),
  });
  const [own, ref] = [await features(model.proto), await features(scratch)];
  const protocol = { data: o.data, testData: o.testData, featureTensor: own.train.featureTensor, dim: own.train.dim, trainImages: train.labels.length, testImages: test.labels.length, seed: o.seed };
  const out: Record<string, unknown> = {};
  if (o.attacks.includes('probe')) {
    const [m, s] = [linearProbe(own.train, own.test, { seed: o.seed }), linearProbe(ref.train, ref.test, { seed: o.seed })];
    out.probe = { protocol, accuracy: m.accuracy, scratchAccuracy: s.accuracy, advantage: m.accuracy - s.accuracy, model: m, scratch: s };
  }
  if (o.attacks.includes('knn')) {
    const [m, s] = [fewShotKnn(own.train, own.test, { seed: o.seed }), fewShotKnn(ref.train, ref.test, { seed: o.seed })];
    out.knn = { protocol, shots: m.results.map((r, i) => ({ shots: r.shots, k: r.k, accuracy: r.accuracy, scratchAccuracy: s.results[i]!.accuracy, advantage: r.accuracy - s.results[i]!.accuracy })) };
  }
  return out;
}

const slcOptions = (o: VerifyCliOptions): SlcOptions => ({ fractions: o.slcFractions, steps: o.slcSteps, batchSize: o.slcBatchSize, learningRates: o.learningRates, seed: o.seed });

async function runSlc(model: OnnxModel, o: VerifyCliOptions, progress: AttackProgress, run: JobRunner): Promise<{ protocol: Record<string, unknown>; result: SlcResult; slcAuc: number; slcAucMasked?: number }> {
  const pool = await loadDataset(o.slcData!);
  if (o.slcValImages >= pool.labels.length) throw new HardenError(`--slc-val-images ${o.slcValImages} leaves no training images of the ${pool.labels.length} in '${o.slcData}'`);
  const { train, val } = splitDataset(pool, o.slcValImages / pool.labels.length, o.seed);
  const test = await loadDataset(o.slcTest!);
  const opts = slcOptions(o);
  const result = await slcAttack(model, { train, val, test }, opts, o.seed, {
    run: progress.counted('slc', slcJobCount(model.proto, opts), run),
    progress: { onPoint: (p, curve) => progress.log(`slc: ${curve} curve, r = ${p.fraction}: ${p.images} images, test accuracy ${(100 * p.accuracy).toFixed(2)} % (lr ${p.learningRate})`) },
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
  const signed = (v: number) => `${v >= 0 ? '+' : ''}${(100 * v).toFixed(2)} points`;
  const probe = r.probe as { accuracy: number; scratchAccuracy: number; advantage: number } | undefined;
  if (probe) lines.push(`linear probe        ${pct(probe.accuracy)}  (scratch features ${pct(probe.scratchAccuracy)}; advantage ${signed(probe.advantage)})`);
  const knn = r.knn as { shots: { shots: number; accuracy: number; scratchAccuracy: number; advantage: number }[] } | undefined;
  for (const k of knn?.shots ?? []) lines.push(`k-NN ${String(k.shots).padStart(2)}-shot        ${pct(k.accuracy)}  (scratch features ${pct(k.scratchAccuracy)}; advantage ${signed(k.advantage)})`);
  const mia = r.mia as { advantage: number; auc: number } | undefined;
  if (mia) lines.push(`membership (MIA)    advantage ${mia.advantage.toFixed(4)} (TPR − FPR), ROC AUC ${mia.auc.toFixed(4)}`);
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

/** The attack table and curves of a runVerify result, in the report's form (src/verify/report.ts). */
export function attackFigures(raw: Record<string, unknown>): { attacks: AttackFigure[]; curves: ReportCurve[] } {
  const attacks: AttackFigure[] = [];
  const curves: ReportCurve[] = [];
  type Compared = { protocol: Record<string, unknown>; accuracy?: number; plAccuracy?: number; scratchAccuracy: number; advantage?: number; transferAdvantage?: number };
  const pl = raw.pl as Compared | undefined;
  if (pl) attacks.push({ attack: 'pl', key: 'pl', metric: 'accuracy', model: pl.plAccuracy!, scratch: pl.scratchAccuracy, advantage: pl.transferAdvantage!, protocol: pl.protocol });
  const probe = raw.probe as Compared | undefined;
  if (probe) attacks.push({ attack: 'probe', key: 'probe', metric: 'accuracy', model: probe.accuracy!, scratch: probe.scratchAccuracy, advantage: probe.advantage!, protocol: probe.protocol });
  const knn = raw.knn as { protocol: Record<string, unknown>; shots: { shots: number; k: number; accuracy: number; scratchAccuracy: number; advantage: number }[] } | undefined;
  for (const s of knn?.shots ?? []) {
    attacks.push({ attack: 'knn', key: `knn_${s.shots}shot`, metric: 'accuracy', model: s.accuracy, scratch: s.scratchAccuracy, advantage: s.advantage, protocol: { ...knn!.protocol, shots: s.shots, k: s.k } });
  }
  const mia = raw.mia as { protocol: Record<string, unknown>; advantage: number; auc: number; threshold: number } | undefined;
  if (mia) attacks.push({ attack: 'mia', key: 'mia', metric: 'advantage', model: mia.advantage, protocol: { ...mia.protocol, rocAuc: mia.auc, threshold: mia.threshold } });
  const slc = raw.slc as { protocol: Record<string, unknown>; result: SlcResult } | undefined;
  if (slc) {
    const { result, protocol } = slc;
    attacks.push({ attack: 'slc', key: 'slc', metric: 'slc_auc', model: result.slcAuc, protocol: { ...protocol, attacker: 'dense', auc: result.model.auc, scratchAuc: result.scratch.auc } });
    if (result.masked) attacks.push({ attack: 'slc', key: 'slc_masked', metric: 'slc_auc', model: result.slcAucMasked!, protocol: { ...protocol, attacker: 'masked', auc: result.masked.auc, scratchAuc: result.scratch.auc } });
    const series = (name: string, c: LearningCurve) => ({ name, points: c.points.map((p) => ({ x: p.fraction, y: p.accuracy })) });
    curves.push({
      title: 'Sample-wise learning curve',
      xLabel: 'fraction of the attacker’s training data',
      yLabel: 'test accuracy',
      xScale: 'log',
      series: [series('model, dense attacker', result.model), ...(result.masked ? [series('model, masked attacker', result.masked)] : []), series('from scratch', result.scratch)],
    });
  }
  return { attacks, curves };
}

/**
 * `harden verify --report-dir / --fail-if`: the report of a runVerify result (no hardening, so no
 * undefended column), its gates, and the files written. Returns the exit code (5: a gate failed).
 */
export async function verifyReport(raw: Record<string, unknown>, modelPath: string, seed: number, gates: Gate[] | undefined, expression: string | undefined, reportDir: string | undefined): Promise<{ code: number; files?: Record<string, unknown> }> {
  const { attacks, curves } = attackFigures(raw);
  const report: HardenReport = {
    schema: REPORT_SCHEMA,
    harden: HARDEN_VERSION,
    createdAt: new Date().toISOString(),
    model: { path: path.resolve(modelPath), sha256: sha256(readFileSync(modelPath)) },
    data: {},
    seed,
    attacks,
    curves,
    verdict: verdictOf(attacks),
  };
  let code = 0;
  if (gates) {
    const results = evaluateGates(report, gates);
    report.gates = { expression: expression!, results, passed: results.every((r) => !r.failed) };
    for (const line of describeFailures(results)) process.stderr.write(`harden: ${line}\n`);
    if (!report.gates.passed) code = ExitCode.GateFailed;
  }
  raw.verdict = report.verdict;
  if (report.gates) raw.gates = report.gates;
  return { code, ...(reportDir ? { files: await writeReport(reportDir, report) } : {}) };
}
