import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { initBackend } from '../engine/backend.js';
import { selectEngine, type EngineName } from '../engine/create.js';
import { loadModel, type OnnxModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import { loadDataset } from '../data/index.js';
import type { Dataset } from '../data/types.js';
import { applyMethod, type MethodName } from '../harden/apply.js';
import { withNewHead } from '../train/head.js';
import { trainModel } from '../train/trainer.js';
import { evaluate } from '../verify/evaluate.js';
import { extractFeatures } from '../verify/features.js';
import { piggybackAttack } from '../verify/piggyback.js';
import { linearProbe } from '../verify/probe.js';
import { reinitialize } from '../verify/reinit.js';
import { learningCurve, SLC_FRACTIONS, type LearningCurve } from '../verify/slc.js';
import { splitDataset } from '../verify/split.js';
import { arg, meanStd, ROOT } from './common.js';

/**
 * `npm run experiment:methods`: every hardening method on two reference scenarios, scored by the
 * same attacks on the blocked task: a linear probe on frozen features, fresh-head fine-tuning of all
 * layers on 10 images per class (pl), the same at 10 % of the blocked training data (the SLC
 * curve's r = 0.1 point) and SLC-AUC, plus the kept-task accuracy and the method's wall time.
 *
 * dtl: LeNet-5 pretrained on all of fashion-mnist (models/lenet5-fashion-mnist.onnx), transferred
 *      with a new head to classes 0–4 (20 images per class); blocked: classes 5–9. unsir works on
 *      the 10-class source model instead (forget classes 5–9, keep 0–4).
 * colorize: LeNet-5 on mnist (models/lenet5-mnist.onnx); blocked: mnist+colorize (1 channel).
 * Results are cached per (scenario, seed, method) in experiments/<out>.partial.json.
 */
const SEEDS = arg('seeds', '0,1,2').split(',').map(Number);
const SCENARIOS = arg('scenarios', 'dtl,colorize').split(',');
const METHODS = arg('methods', 'none,gc,ntp,ntl,sophon,skd,unsir').split(',') as MethodName[];
const OUT = arg('out', 'methods');
/** Training engine of every method that runs on either one, and of the fine-tuning attacks. */
const ENGINE = selectEngine(arg('engine', 'tfjs') as EngineName | 'auto');
const SLC = { fractions: SLC_FRACTIONS, steps: Number(arg('slc-steps', '100')), batchSize: 32, learningRates: [1e-3, 3e-3] };
const PL = { epochs: 10, batchSize: 10, learningRates: [1e-3, 3e-3] };

interface Setup {
  model: OnnxModel;
  keep: Dataset;
  keepTest: Dataset;
  block: Dataset;
  /** Disposal: forget data in the source model's labels, and that model. */
  forget: Dataset;
  sourceModel?: OnnxModel;
  unsir?: { model: OnnxModel; keep: Dataset; keepTest: Dataset; block: Dataset };
  attack: { probeTrain: Dataset; plTrain: Dataset; plVal: Dataset; slcTrain: Dataset; slcVal: Dataset; test: Dataset };
}

async function setup(scenario: string, seed: number): Promise<Setup> {
  if (scenario === 'dtl') {
    const source = await loadModel(path.join(ROOT, 'models', 'lenet5-fashion-mnist.onnx'));
    const keep = await loadDataset(`fashion-mnist:split=train,classes=0-4,per-class=20,seed=${seed}`);
    const tl = await trainModel({ proto: withNewHead(source.proto, 5, seed, 'source') }, 'TL', keep, undefined, {
      epochs: 20, batchSize: 20, optimizer: { kind: 'adam', learningRate: 1e-3 }, schedule: 'constant', stepEvery: 1, gamma: 1, train: 'all', augment: false, seed,
    });
    const pl = splitDataset(await loadDataset(`fashion-mnist:split=train,classes=5-9,per-class=20,seed=${seed + 30}`), 0.5, seed);
    const slc = await loadDataset('fashion-mnist:split=train,classes=5-9');
    const slcSplit = splitDataset(slc, 500 / slc.labels.length, seed);
    return {
      model: { proto: tl.proto },
      keep,
      keepTest: await loadDataset('fashion-mnist:split=test,classes=0-4'),
      block: await loadDataset(`fashion-mnist:split=train,classes=5-9,per-class=100,seed=${seed + 10}`),
      forget: await loadDataset(`fashion-mnist:split=train,classes=5-9,relabel=false,per-class=100,seed=${seed + 10}`),
      sourceModel: source,
      unsir: {
        model: source,
        keep: await loadDataset(`fashion-mnist:split=train,classes=0-4,relabel=false,per-class=20,seed=${seed}`),
        keepTest: await loadDataset('fashion-mnist:split=test,classes=0-4,relabel=false'),
        block: await loadDataset(`fashion-mnist:split=train,classes=5-9,relabel=false,per-class=100,seed=${seed + 10}`),
      },
      attack: {
        probeTrain: await loadDataset(`fashion-mnist:split=train,classes=5-9,per-class=50,seed=${seed + 20}`),
        plTrain: pl.train, plVal: pl.val, slcTrain: slcSplit.train, slcVal: slcSplit.val,
        test: await loadDataset('fashion-mnist:split=test,classes=5-9'),
      },
    };
  }
  const model = await loadModel(path.join(ROOT, 'models', 'lenet5-mnist.onnx'));
  const colorize = 'mnist+colorize:split=train,channels=1';
  const block = await loadDataset(`${colorize},limit=8000,seed=${seed + 10}`);
  const pl = splitDataset(await loadDataset(`${colorize},per-class=20,seed=${seed + 30}`), 0.5, seed);
  const slc = await loadDataset(colorize);
  const slcSplit = splitDataset(slc, 500 / slc.labels.length, seed);
  return {
    model,
    keep: await loadDataset('mnist:split=train'),
    keepTest: await loadDataset('mnist:split=test'),
    block,
    forget: block,
    attack: {
      probeTrain: await loadDataset(`${colorize},per-class=50,seed=${seed + 20}`),
      plTrain: pl.train, plVal: pl.val, slcTrain: slcSplit.train, slcVal: slcSplit.val,
      test: await loadDataset('mnist+colorize:split=test,channels=1'),
    },
  };
}

interface Row {
  scenario: string;
  seed: number;
  method: string;
  keepAccuracy?: number;
  probe: number;
  pl10: number;
  ft10pct: number;
  slcAuc: number;
  curve: LearningCurve;
  seconds: number;
}

async function attack(proto: ModelProto, s: Setup, seed: number, scratch?: LearningCurve): Promise<Omit<Row, 'scenario' | 'seed' | 'method' | 'seconds' | 'keepAccuracy'>> {
  const [train, test] = [await extractFeatures(proto, s.attack.probeTrain), await extractFeatures(proto, s.attack.test)];
  const probe = linearProbe(train, test, { seed }).accuracy;
  const pl10 = (await piggybackAttack({ proto }, { train: s.attack.plTrain, val: s.attack.plVal, test: s.attack.test }, { ...PL, seed })).accuracy;
  const curve = await learningCurve({ proto }, { train: s.attack.slcTrain, val: s.attack.slcVal, test: s.attack.test }, { ...SLC, seed });
  return { probe, pl10, ft10pct: curve.points.find((p) => p.fraction === 0.1)!.accuracy, slcAuc: curve.auc - (scratch ?? curve).auc, curve };
}

async function main(): Promise<void> {
  await initBackend('auto');
  const file = path.join(ROOT, 'experiments', `${OUT}.partial.json`);
  const rows: Row[] = existsSync(file) ? (JSON.parse(await readFile(file, 'utf8')) as Row[]) : [];
  const save = async () => {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(rows));
  };
  for (const scenario of SCENARIOS) {
    for (const seed of SEEDS) {
      const todo = METHODS.filter((m) => !rows.some((r) => r.scenario === scenario && r.seed === seed && r.method === m) && !(m === 'unsir' && scenario !== 'dtl'));
      if (!todo.length) continue;
      const s = await setup(scenario, seed);
      let scratch = rows.find((r) => r.scenario === scenario && r.seed === seed && r.method === 'scratch');
      if (!scratch) {
        const t0 = performance.now();
        scratch = { scenario, seed, method: 'scratch', ...(await attack(reinitialize(s.model.proto, seed), s, seed)), seconds: (performance.now() - t0) / 1000 };
        rows.push(scratch);
        await save();
      }
      for (const method of todo) {
        const t0 = performance.now();
        const u = method === 'unsir' ? s.unsir! : undefined;
        const base = u ? u.model : s.model;
        const data = method === 'gc' ? { keep: s.keep, block: s.forget } : { keep: u?.keep ?? s.keep, block: u?.block ?? s.block };
        const { proto } = await applyMethod(base, `${scenario} model`, method, data, { seed, sourceModel: method === 'gc' ? s.sourceModel : undefined });
        const seconds = (performance.now() - t0) / 1000;
        const keepAccuracy = (await evaluate(proto, u?.keepTest ?? s.keepTest)).accuracy;
        const row: Row = { scenario, seed, method, keepAccuracy, ...(await attack(proto, s, seed, scratch.curve)), seconds };
        rows.push(row);
        await save();
        process.stderr.write(`${scenario} seed ${seed} ${method}: keep ${(100 * keepAccuracy).toFixed(1)} %, probe ${(100 * row.probe).toFixed(1)}, pl10 ${(100 * row.pl10).toFixed(1)}, ft10% ${(100 * row.ft10pct).toFixed(1)}, SLC-AUC ${row.slcAuc.toFixed(3)} (${seconds.toFixed(0)} s)\n`);
      }
    }
  }
  await report(rows);
}

async function report(rows: Row[]): Promise<void> {
  const fmt = meanStd;
  const lines = [
    '# Hardening methods compared (`npm run experiment:methods`)',
    '',
    `Seeds run: ${[...new Set(rows.map((r) => r.seed))].join(', ')} (n per cell in brackets). Attacks on the blocked task: linear probe on frozen features (50 images per class), ` +
      'fresh-head fine-tuning of all layers on 10 images per class (pl10; 10 epochs, learning rate from {1e-3, 3e-3} on 10 more per class), ' +
      `the SLC curve (${SLC.steps} Adam steps per fraction, fresh head) and its r = 0.1 point (ft10%), SLC-AUC against the scratch row's curve. Accuracies in %, tests under onnxruntime. ` +
      'Method settings: the defaults of each method (README). unsir (dtl) works on the 10-class source model, forgetting classes 5–9.',
    `The time column is the method's wall time on this 2-core machine (wasm backend). Engine of the methods that run on either and of the fine-tuning attacks: ${ENGINE}.`,
    '',
  ];
  for (const scenario of [...new Set(rows.map((r) => r.scenario))]) {
    lines.push(`## ${scenario}`, '', '| method | n | kept acc | probe | pl10 | ft10% | SLC-AUC | time (s) |', '| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const method of ['scratch', ...METHODS]) {
      const rs = rows.filter((r) => r.scenario === scenario && r.method === method);
      if (!rs.length) continue;
      const keep = rs.flatMap((r) => (r.keepAccuracy === undefined ? [] : [r.keepAccuracy]));
      lines.push(`| ${method} | ${rs.length} | ${fmt(keep, 100, 1)} | ${fmt(rs.map((r) => r.probe), 100, 1)} | ${fmt(rs.map((r) => r.pl10), 100, 1)} | ${fmt(rs.map((r) => r.ft10pct), 100, 1)} | ${method === 'scratch' ? '0' : fmt(rs.map((r) => r.slcAuc), 1, 3)} | ${method === 'scratch' ? '–' : fmt(rs.map((r) => r.seconds), 1, 0)} |`);
    }
    lines.push('');
  }
  await writeFile(path.join(ROOT, 'experiments', `${OUT}.md`), lines.join('\n'));
  await writeFile(path.join(ROOT, 'experiments', `${OUT}.json`), JSON.stringify({ slc: SLC, pl: PL, rows }, null, 1));
  process.stderr.write(`wrote experiments/${OUT}.md and .json\n`);
}

void main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
