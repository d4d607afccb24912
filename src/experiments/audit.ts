/**
 * `npm run experiment:audit`: lingering source memories of a transfer-learned LeNet-5 and their
 * mitigation.
 * M^s: models/lenet5-fashion-mnist.onnx (all 10 fashion-mnist classes). M^t: M^s fine-tuned with a
 * new head on fashion-mnist classes 0–4 (1 000 train images per class, 3 epochs, Adam 1e-3,
 * batch 32), so 5–9 are candidates for source-only features; baseline: LeNet-5 trained from
 * scratch with the same data and budget. Audit: D^s = fashion-mnist test, 200 per class; D^t =
 * fashion-mnist test classes 0–4 (5 000 images); 50 composites per class. Mitigation: GC disposal
 * (`--forget-classes` = L, source model's head, forget data 100 train images per class, default
 * λ/lr, --steps) and, for comparison, GC on all forget classes and UTF (uniform-target fooling)
 * restricted to L; each is re-audited with --compare against the first audit. The guard
 * built from the first audit is scored on clean target test images and on source test images
 * of the lingering classes. Writes experiments/audit.{json,md}, docs/audit/ (HTML reports + PNGs).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { initBackend } from '../engine/backend.js';
import { loadModel, saveModel, type OnnxModel } from '../onnx/model.js';
import { loadDataset } from '../data/index.js';
import { buildArchitecture } from '../models/index.js';
import { trainModel, type TrainSettings } from '../train/trainer.js';
import { withNewHead } from '../train/head.js';
import { disposeModel, PLAIN_DISPOSE_SETTINGS } from '../harden/dispose.js';
import { extractFeatures } from '../verify/features.js';
import { runAudit, runGuard } from '../cli/audit.js';
import { INTERFERENCE_FLAG } from '../audit/stitch.js';
import type { AuditReport } from '../audit/report.js';
import { arg, ROOT } from './common.js';

const STEPS = Number(arg('steps', '200'));
const SEED = Number(arg('seed', '0'));
const WORK = path.join(ROOT, arg('work', 'demo-out/audit'));
const DOCS = path.join(ROOT, 'docs', 'audit');
const TARGET_TRAIN = `fashion-mnist:split=train,classes=0-4,per-class=1000,seed=${SEED}`;
const TARGET_TEST = 'fashion-mnist:split=test,classes=0-4';
const SOURCE_DATA = `fashion-mnist:split=test,per-class=200,seed=${SEED + 1}`;
const FORGET = `fashion-mnist:split=train,per-class=100,seed=${SEED + 2}`;
const SOURCE = path.join(ROOT, 'models', 'lenet5-fashion-mnist.onnx');
const TRAIN: TrainSettings = { epochs: 3, batchSize: 32, optimizer: { kind: 'adam', learningRate: 1e-3 }, schedule: 'constant', stepEvery: 1, gamma: 1, train: 'all', augment: false, seed: SEED };

const rel = (p: string) => path.relative(ROOT, p);
const log = (s: string) => process.stderr.write(`${s}\n`);

async function save(proto: OnnxModel['proto'], file: string): Promise<string> {
  await saveModel(proto, file, { overwrite: true });
  return file;
}

async function audit(finetuned: string, reportDir: string, compare?: string): Promise<AuditReport> {
  const { report } = await runAudit({
    source: rel(SOURCE), finetuned: rel(finetuned), baseline: rel(path.join(WORK, 'scratch.onnx')), sourceData: SOURCE_DATA, targetData: TARGET_TEST,
    k: 1, composites: 50, galleryClasses: 3, galleryImages: 6, seed: SEED, reportDir, ...(compare ? { compare } : {}),
  });
  log(`audit ${rel(finetuned)}: F {${report.F}}, L {${report.L}}, distraction ${report.meanDistraction?.finetuned.toFixed(3)} vs ${report.meanDistraction?.baseline?.toFixed(3)}`);
  return report;
}

/** Share of images of `spec` the guard flags. */
async function flagRate(guard: string, spec: string): Promise<number> {
  const model = await loadModel(guard);
  const f = await extractFeatures(model.proto, await loadDataset(spec), { featureTensor: INTERFERENCE_FLAG });
  return f.features.reduce((a, b) => a + b, 0) / f.features.length;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const backend = await initBackend('auto');
  await mkdir(WORK, { recursive: true });
  process.chdir(ROOT);
  const source = await loadModel(SOURCE);
  const train = await loadDataset(TARGET_TRAIN);
  const test = await loadDataset(TARGET_TEST);

  const tl = await trainModel({ proto: withNewHead(source.proto, 5, SEED, 'source') }, 'TL', train, test, TRAIN);
  const tlFile = await save(tl.proto, path.join(WORK, 'finetuned.onnx'));
  const scratch = await trainModel({ proto: buildArchitecture('lenet5', { classes: 5, inputShape: [1, 28, 28], seed: SEED }) }, 'scratch', train, test, TRAIN);
  await save(scratch.proto, path.join(WORK, 'scratch.onnx'));
  log(`trained M^t (${(100 * tl.history.at(-1)!.test!.accuracy).toFixed(2)} %) and scratch (${(100 * scratch.history.at(-1)!.test!.accuracy).toFixed(2)} %)`);

  const before = await audit(tlFile, path.join(DOCS, 'before'));
  const guardFile = path.join(WORK, 'guard.onnx');
  const guard = await runGuard({ source: rel(SOURCE), finetuned: rel(tlFile), audit: path.join(DOCS, 'before', 'report.json'), output: guardFile, overwrite: true, seed: SEED, data: TARGET_TEST });
  const lingeringSpec = before.L.length ? `fashion-mnist:split=test,classes=${before.L.join(',')},relabel=false` : undefined;
  const guardRates = { cleanTarget: await flagRate(guardFile, TARGET_TEST), ...(lingeringSpec ? { lingeringSource: await flagRate(guardFile, lingeringSpec) } : {}) };

  const retain = train;
  const forget = await loadDataset(FORGET);
  const variants: { name: string; method: 'gc' | 'utf'; forgetClasses?: number[] }[] = [
    { name: 'gc-lingering', method: 'gc', forgetClasses: before.L },
    { name: 'gc-all', method: 'gc' },
    { name: 'utf-lingering', method: 'utf', forgetClasses: before.L },
  ];
  const after: Record<string, { report: AuditReport; seconds: number }> = {};
  for (const v of variants) {
    if (v.forgetClasses && v.forgetClasses.length < 2) continue; // disposal needs two classes to forget
    const t = performance.now();
    const { proto } = await disposeModel({ ...(await loadModel(tlFile)) }, rel(tlFile), { retain, forget }, { ...PLAIN_DISPOSE_SETTINGS, method: v.method, steps: STEPS, seed: SEED, sourceModel: source, ...(v.forgetClasses ? { forgetClasses: v.forgetClasses } : {}) });
    const seconds = (performance.now() - t) / 1000;
    const file = await save(proto, path.join(WORK, `${v.name}.onnx`));
    log(`disposed ${v.name} in ${seconds.toFixed(0)} s`);
    const dir = v.name === 'gc-lingering' ? DOCS : path.join(DOCS, v.name);
    after[v.name] = { report: await audit(file, dir, rel(path.join(DOCS, 'before', 'report.json'))), seconds };
  }

  const summarize = (r: AuditReport) => ({
    F: r.F, L: r.L,
    recognition: Object.fromEntries(r.classes.filter((c) => c.sourceOnly).map((c) => [c.class, c.recognition])),
    distraction: Object.fromEntries(r.classes.filter((c) => c.sourceOnly).map((c) => [c.class, c.distraction])),
    meanDistraction: r.meanDistraction,
    accuracy: r.accuracy,
  });
  const result = {
    backend, seed: SEED, steps: STEPS,
    setup: { source: rel(SOURCE), targetTrain: TARGET_TRAIN, targetTest: TARGET_TEST, sourceData: SOURCE_DATA, forget: FORGET, train: TRAIN },
    trainedAccuracy: { finetuned: tl.history.at(-1)!.test!.accuracy, scratch: scratch.history.at(-1)!.test!.accuracy },
    before: summarize(before),
    guard: { lingering: guard.lingering, pLo: guard.pLo, runtimes: guard.runtimes, flagRate: guardRates },
    after: Object.fromEntries(Object.entries(after).map(([k, v]) => [k, { ...summarize(v.report), disposeSeconds: v.seconds }])),
    seconds: (performance.now() - t0) / 1000,
  };
  await writeFile(path.join(ROOT, 'experiments', 'audit.json'), JSON.stringify(result, null, 2) + '\n');
  await writeFile(path.join(ROOT, 'experiments', 'audit.md'), markdown(result, before, after));
  log(`done in ${result.seconds.toFixed(0)} s; models in ${rel(WORK)}, reports in ${rel(DOCS)}`);
}

const VARIANT_NAMES: Record<string, string> = { 'gc-lingering': 'GC, --forget-classes L', 'gc-all': 'GC, all classes', 'utf-lingering': 'UTF, --forget-classes L' };

function markdown(r: { seconds: number; steps: number; trainedAccuracy: { finetuned: number; scratch: number }; guard: { lingering: number[]; pLo: number; flagRate: { cleanTarget: number; lingeringSource?: number }; runtimes: { maxAbsDiff: number } } },
  before: AuditReport, after: Record<string, { report: AuditReport; seconds: number }>): string {
  const p = (v: number | undefined | null) => (v === undefined || v === null ? '–' : `${(100 * v).toFixed(1)} %`);
  const f = (v: number | undefined | null) => (v === undefined || v === null ? '–' : v.toFixed(3));
  const reports: [string, AuditReport][] = [['M^t (fine-tuned)', before], ...Object.entries(after).map(([k, v]): [string, AuditReport] => [VARIANT_NAMES[k] ?? k, v.report])];
  const F = before.F;
  const lines = [
    '# Audit: lingering source memories (`npm run experiment:audit`)',
    '',
    `M^s = models/lenet5-fashion-mnist.onnx (10 classes); M^t = M^s fine-tuned with a new head on fashion-mnist classes 0–4 ` +
      `(1 000 train images per class, 3 epochs; test accuracy ${p(r.trainedAccuracy.finetuned)}); baseline = LeNet-5 from scratch, same data and budget (${p(r.trainedAccuracy.scratch)}). ` +
      `D^s = fashion-mnist test, 200 per class; D^t = fashion-mnist test, classes 0–4. k = 1, v_lo = ${before.settings.vLo} (1 % of D^t), p_lo = ${before.settings.pLo}; ` +
      `50 composites per class, Grad-CAM at the last Conv. GC disposal: ${r.steps} steps, default settings, source model's head, forget data fashion-mnist train 100 per class. Total ${Math.round(r.seconds)} s on this machine.`,
    '',
    `Source-only features F = {${F.join(', ')}}; lingering memories L = {${before.L.join(', ')}}.`,
    '',
    `| model | L | ${F.map((c) => `s(${c})`).join(' | ')} | distraction on F (model / scratch) | acc. clean | acc. composites |`,
    `| --- | --- | ${F.map(() => '---').join(' | ')} | --- | --- | --- |`,
    ...reports.map(([name, rep]) => `| ${name} | {${rep.L.join(', ')}} | ${F.map((c) => f(rep.classes[c]!.recognition)).join(' | ')} | ${f(rep.meanDistraction?.finetuned)} / ${f(rep.meanDistraction?.baseline)} | ${p(rep.accuracy.finetuned.clean)} | ${p(rep.accuracy.finetuned.composites)} |`),
    `| scratch baseline | | ${F.map(() => '').join(' | ')} | | ${p(before.accuracy.baseline?.clean)} | ${p(before.accuracy.baseline?.composites)} |`,
    '',
    `Distraction per source-only class (M^t / scratch): ${F.map((c) => `${c}: ${f(before.classes[c]!.distraction?.finetuned)} / ${f(before.classes[c]!.distraction?.baseline)}`).join('; ')}.`,
    '',
    `Guard (classes {${r.guard.lingering.join(', ')}}, p_lo ${r.guard.pLo}; onnxruntime-node vs -web max |diff| ${r.guard.runtimes.maxAbsDiff.toExponential(1)}): ` +
      `flags ${p(r.guard.flagRate.cleanTarget)} of the clean target test images and ${p(r.guard.flagRate.lingeringSource)} of the source test images of the lingering classes.`,
    '',
    'Reports: `docs/audit/before/report.html` (M^t), `docs/audit/report.html` (after GC with --forget-classes, compared with before), `docs/audit/gc-all/`, `docs/audit/utf-lingering/`.',
    '',
  ];
  return lines.join('\n');
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
