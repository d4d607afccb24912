import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { initBackend } from '../engine/backend.js';
import { selectEngine, type EngineName } from '../engine/create.js';
import { loadModel, type OnnxModel } from '../onnx/model.js';
import { loadDataset } from '../data/index.js';
import { pruneModel, DEFAULT_PRUNE_SETTINGS, type PruneSettings } from '../harden/prune.js';
import { evaluate } from '../verify/evaluate.js';
import { learningCurve, learningCurveChart, pruningMasks, SLC_FRACTIONS, type LearningCurve, type SlcOptions } from '../verify/slc.js';
import { reinitialize, reinitializeOnly } from '../verify/reinit.js';
import { suppressedLayers, suppressionTensor } from '../harden/suppression.js';
import type { ModelProto } from '../onnx/schema.js';
import { splitDataset } from '../verify/split.js';
import { svgToPng } from '../verify/charts.js';
import { findClassifierHead } from '../import/head.js';
import { arg, mean, meanStd, ROOT } from './common.js';

/**
 * `npm run experiment:ntp`: non-transferable pruning on the reference pairs.
 * Authorized (keep) domain: mnist (models/lenet5-mnist.onnx, trained on mnist:split=train).
 * Blocked domain: (a) fashion-mnist, (b) mnist+colorize (converted to 1 channel for LeNet-5).
 * Rows at sparsity 0.9: the original model, magnitude pruning + masked fine-tuning, NTP.
 * Each row: keep-domain test accuracy, and SLC-AUC against the same-seed scratch curve under the
 * dense attacker (pruned weights may regrow) and the masked one. Results are cached per
 * (pair, seed, row) in experiments/<out>.partial.json, so an interrupted run resumes.
 */


const SEEDS = arg('seeds', '0,1,2').split(',').map(Number);
const PAIRS = arg('pairs', 'a,b').split(',');
const OUT = arg('out', 'ntp');
/** Training engine of pruning and of the SLC fine-tuning runs. */
const ENGINE = selectEngine(arg('engine', 'auto') as EngineName | 'auto');
const NTP: Partial<PruneSettings> = JSON.parse(arg('ntp', '{}')) as Partial<PruneSettings>;
const SLC: Omit<SlcOptions, 'seed'> = {
  fractions: arg('fractions', SLC_FRACTIONS.join(',')).split(',').map(Number),
  steps: Number(arg('slc-steps', '100')),
  batchSize: 32,
  learningRates: arg('lr-grid', '1e-3,3e-3').split(',').map(Number),
};
const BLOCK: Record<string, { name: string; spec: string; test: string }> = {
  a: { name: 'mnist → fashion-mnist', spec: 'fashion-mnist:split=train', test: 'fashion-mnist:split=test,limit=2000' },
  b: { name: 'mnist → mnist+colorize', spec: 'mnist+colorize:split=train,channels=1', test: 'mnist+colorize:split=test,channels=1' },
};

type RowName = 'original' | 'magnitude' | 'ntp';
interface Row {
  pair: string;
  seed: number;
  row: RowName;
  keepAccuracy: number;
  dense: LearningCurve;
  masked?: LearningCurve;
  scratch: LearningCurve;
  slcAuc: number;
  slcAucMasked?: number;
  /** The dense attacker who also re-draws the last hidden layer (fc2). */
  redrawn?: LearningCurve;
  slcAucRedrawn?: number;
  /** … and the last two (fc1, fc2): only the convolutions are kept. */
  redrawn2?: LearningCurve;
  slcAucRedrawn2?: number;
  pruneSeconds: number;
}

/** The weights of the layers that feed the last `count` ReLU layers before the classifier (LeNet-5: fc2, then fc1). */
function hiddenLayerWeights(proto: ModelProto, featureTensor: string, count: number): Set<string> {
  const relus = suppressedLayers(proto, featureTensor, count);
  if (relus.length < count) throw new Error(`fewer than ${count} ReLU layers before the classifier`);
  const weights = relus.map((t) => {
    const pre = suppressionTensor(proto, t);
    return proto.graph!.node.find((n) => n.output[0] === pre)!.input.slice(1).filter(Boolean);
  });
  return new Set(weights.flat());
}

const fmt = meanStd;

async function main(): Promise<void> {
  await initBackend('auto');
  const source = await loadModel(path.join(ROOT, 'models', 'lenet5-mnist.onnx'));
  const keep = await loadDataset('mnist:split=train');
  const keepTest = await loadDataset('mnist:split=test');
  const partialFile = path.join(ROOT, 'experiments', `${OUT}.partial.json`);
  const done: Row[] = existsSync(partialFile) ? (JSON.parse(await readFile(partialFile, 'utf8')) as Row[]) : [];
  const save = async () => {
    await mkdir(path.dirname(partialFile), { recursive: true });
    await writeFile(partialFile, JSON.stringify(done));
  };
  const settings = { ...DEFAULT_PRUNE_SETTINGS, ...NTP };
  const head = findClassifierHead(source.proto)!;
  const headParams = head.parameters;
  const hidden = [1, 2].map((count) => hiddenLayerWeights(source.proto, head.featureTensor, count));

  for (const pair of PAIRS) {
    const b = BLOCK[pair]!;
    const pool = await loadDataset(b.spec);
    const blockTest = await loadDataset(b.test);
    for (const seed of SEEDS) {
      const cached = (row: RowName) => done.find((r) => r.pair === pair && r.seed === seed && r.row === row);
      // Owner's block data for NTP: 8000 images; the attacker's pool: all of the training split, 500 held out for validation.
      const block = await loadDataset(`${b.spec},limit=8000,seed=${seed + 10}`);
      const { train, val } = splitDataset(pool, 500 / pool.labels.length, seed);
      const data = { train, val, test: blockTest };
      const opts: SlcOptions = { ...SLC, seed };
      let scratch = done.find((r) => r.pair === pair && r.seed === seed)?.scratch;
      const curve = (m: OnnxModel, masks?: Map<string, Uint8Array>) => learningCurve(m, data, opts, masks);
      if (!scratch) {
        scratch = await curve({ proto: reinitialize(source.proto, seed) });
        process.stderr.write(`${pair} seed ${seed} scratch AUC ${scratch.auc.toFixed(4)}\n`);
      }
      for (const row of ['original', 'magnitude', 'ntp'] as RowName[]) {
        if (cached(row)) continue;
        const t0 = performance.now();
        const proto = row === 'original' ? source.proto : (await pruneModel(source, row, { keep, block }, { ...settings, method: row === 'ntp' ? 'ntp' : 'magnitude', seed })).proto;
        const pruneSeconds = (performance.now() - t0) / 1000;
        const keepAccuracy = (await evaluate(proto, keepTest)).accuracy;
        const dense = await curve({ proto });
        const masks = pruningMasks(proto, headParams);
        const masked = masks.size ? await curve({ proto }, masks) : undefined;
        const [redrawn, redrawn2] = [await curve({ proto: reinitializeOnly(proto, hidden[0]!, seed + 100) }), await curve({ proto: reinitializeOnly(proto, hidden[1]!, seed + 100) })];
        const r: Row = {
          pair, seed, row, keepAccuracy, dense, scratch, slcAuc: dense.auc - scratch.auc, pruneSeconds,
          ...(masked ? { masked, slcAucMasked: masked.auc - scratch.auc } : {}),
          redrawn, slcAucRedrawn: redrawn.auc - scratch.auc, redrawn2, slcAucRedrawn2: redrawn2.auc - scratch.auc,
        };
        done.push(r);
        await save();
        process.stderr.write(`${pair} seed ${seed} ${row}: keep ${(100 * keepAccuracy).toFixed(2)} %, SLC-AUC dense ${r.slcAuc.toFixed(4)}` + (masked ? `, masked ${r.slcAucMasked!.toFixed(4)}` : '') + `, fc2 re-drawn ${r.slcAucRedrawn!.toFixed(4)}, fc1+fc2 re-drawn ${r.slcAucRedrawn2!.toFixed(4)}` + ` (prune ${pruneSeconds.toFixed(0)} s)\n`);
      }
    }
  }
  await report(done);
}

async function report(rows: Row[]): Promise<void> {
  const dir = path.join(ROOT, 'experiments');
  const settings = { ...DEFAULT_PRUNE_SETTINGS, ...NTP, engine: ENGINE };
  const lines = [
    '# Non-transferable pruning (`npm run experiment:ntp`)',
    '',
    `Model: models/lenet5-mnist.onnx (LeNet-5 on mnist). Sparsity ${settings.sparsity} (${settings.scope}). Seeds ${SEEDS.join(', ')}.`,
    `NTP: α ${settings.alpha}, β ${settings.beta}, λ_F ${settings.fisherWeight}, suppression λ_S ${settings.suppression} with margin μ ${settings.suppressionMargin}, ρ ${settings.rho}, ${settings.iterations} ADMM iterations × ${settings.stepsPerIteration} steps (Adam ${settings.learningRate}), ` +
      `${settings.finetuneSteps} masked fine-tuning steps (Adam ${settings.finetuneLearningRate}; keep CE${settings.suppression > 0 ? ' + λ_S·suppression' : ' alone'}), batches of ${settings.batchSize}, classifier ${settings.keepHeadDense ? 'left dense' : 'pruned too'}; block data: 8000 images of the blocked training split. ` +
      `Magnitude: the same keep-only fine-tuning after one-shot pruning. Engine: ${settings.engine}.`,
    `SLC attack: fractions ${SLC.fractions.join(', ')} of the blocked training split (500 images held out for validation), fresh head, all layers, ` +
      `${SLC.steps} Adam steps of batch ≤ ${SLC.batchSize} for every fraction, learning rate from {${SLC.learningRates.join(', ')}} by validation accuracy, test accuracy under onnxruntime. ` +
      'SLC-AUC = AUC(model) − AUC(scratch), scratch = the same architecture re-initialized (PyTorch default init) with the same seed and protocol. ' +
      '"fc2 re-drawn", "fc1+fc2 re-drawn": stronger dense attackers who also re-initialize the last one or two hidden layers (the layers whose units the suppression kills on the blocked domain), keeping the rest.',
    '',
  ];
  const curveSets: Record<string, { name: string; curve: LearningCurve }[]> = {};
  for (const pair of PAIRS) {
    const of = (row: RowName) => rows.filter((r) => r.pair === pair && r.row === row);
    lines.push(`## ${BLOCK[pair]!.name}`, '', '| row | keep acc (%) | AUC dense | SLC-AUC dense | SLC-AUC masked | SLC-AUC, fc2 re-drawn | SLC-AUC, fc1+fc2 re-drawn | prune time (s) |', '| --- | --- | --- | --- | --- | --- | --- | --- |');
    const scratch = of('original').map((r) => r.scratch.auc);
    lines.push(`| scratch | – | ${fmt(scratch)} | 0 | – | – | – | – |`);
    for (const row of ['original', 'magnitude', 'ntp'] as RowName[]) {
      const rs = of(row);
      if (!rs.length) continue;
      const masked = rs.filter((r) => r.slcAucMasked !== undefined).map((r) => r.slcAucMasked!);
      const redrawn = rs.filter((r) => r.slcAucRedrawn !== undefined).map((r) => r.slcAucRedrawn!);
      const redrawn2 = rs.filter((r) => r.slcAucRedrawn2 !== undefined).map((r) => r.slcAucRedrawn2!);
      lines.push(`| ${row} | ${fmt(rs.map((r) => r.keepAccuracy), 100, 2)} | ${fmt(rs.map((r) => r.dense.auc))} | ${fmt(rs.map((r) => r.slcAuc))} | ${fmt(masked)} | ${fmt(redrawn)} | ${fmt(redrawn2)} | ${fmt(rs.map((r) => r.pruneSeconds), 1, 0)} |`);
    }
    lines.push('', 'Mean test accuracy (%) per fraction:', '', `| row | ${SLC.fractions.join(' | ')} |`, `| --- | ${SLC.fractions.map(() => '---').join(' | ')} |`);
    const meanCurve = (curves: LearningCurve[]): LearningCurve => {
      const points = curves[0]!.points.map((p, i) => ({ ...p, accuracy: mean(curves.map((c) => c.points[i]!.accuracy)) }));
      return { points, auc: mean(curves.map((c) => c.auc)) };
    };
    const series: { name: string; curve: LearningCurve }[] = [];
    const add = (name: string, curves: LearningCurve[]) => {
      if (!curves.length) return;
      const c = meanCurve(curves);
      series.push({ name, curve: c });
      lines.push(`| ${name} | ${c.points.map((p) => (100 * p.accuracy).toFixed(1)).join(' | ')} |`);
    };
    add('scratch', of('original').map((r) => r.scratch));
    add('original', of('original').map((r) => r.dense));
    add('magnitude, dense attacker', of('magnitude').map((r) => r.dense));
    add('magnitude, masked attacker', of('magnitude').flatMap((r) => (r.masked ? [r.masked] : [])));
    add('NTP, dense attacker', of('ntp').map((r) => r.dense));
    add('NTP, masked attacker', of('ntp').flatMap((r) => (r.masked ? [r.masked] : [])));
    add('NTP, fc2 re-drawn', of('ntp').flatMap((r) => (r.redrawn ? [r.redrawn] : [])));
    add('NTP, fc1+fc2 re-drawn', of('ntp').flatMap((r) => (r.redrawn2 ? [r.redrawn2] : [])));
    curveSets[pair] = series;
    lines.push('', `![learning curves](${OUT}-${pair}.svg)`, '');
  }
  await writeFile(path.join(dir, `${OUT}.md`), lines.join('\n'));
  await writeFile(path.join(dir, `${OUT}.json`), JSON.stringify({ settings, slc: SLC, seeds: SEEDS, rows }, null, 1));
  for (const [pair, series] of Object.entries(curveSets)) {
    const svg = await learningCurveChart(series, `SLC, ${BLOCK[pair]!.name} (mean of ${SEEDS.length} seeds)`);
    await writeFile(path.join(dir, `${OUT}-${pair}.svg`), svg);
    await writeFile(path.join(dir, `${OUT}-${pair}.png`), await svgToPng(svg));
  }
  process.stderr.write(`wrote experiments/${OUT}.md, .json, -{${PAIRS.join(',')}}.svg/.png\n`);
}

void main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
