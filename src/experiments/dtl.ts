import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { initBackend } from '../engine/backend.js';
import { initializerMap, loadModel, type OnnxModel } from '../onnx/model.js';
import { readHardenRecord, withWeights } from '../export/export.js';
import { loadDataset } from '../data/index.js';
import type { Dataset } from '../data/types.js';
import { buildArchitecture } from '../models/index.js';
import { trainModel, type TrainSettings } from '../train/trainer.js';
import { withNewHead } from '../train/head.js';
import { evaluate } from '../verify/evaluate.js';
import { piggybackAttack, type PiggybackOptions } from '../verify/piggyback.js';
import { reinitialize } from '../verify/reinit.js';
import { splitDataset } from '../verify/split.js';
import { disposeModel, DEFAULT_DISPOSE_SETTINGS, PLAIN_DISPOSE_SETTINGS, type DisposeMethod, type DisposeSettings } from '../harden/dispose.js';
import { arg, meanStd, ROOT } from './common.js';
import { selectEngine, type EngineName } from '../engine/create.js';
import { ortThreads, setOrtThreads } from '../verify/ort.js';
import { parseForgetClasses } from '../cli/class-list.js';
import { chosenClassesText } from '../harden/forget-classes.js';
import { sophonModel, DEFAULT_SOPHON_SETTINGS, type SophonSettings } from '../harden/sophon.js';

/**
 * `npm run experiment:dtl`: the disposable-transfer-learning reference scenario.
 * Source: LeNet-5 trained on all of fashion-mnist (models/lenet5-fashion-mnist.onnx). Target:
 * fashion-mnist classes 0–4, 20 images per class. Forget data: fashion-mnist train, 1 000 per
 * class, with the source model's own head as H_s. PL attack: classes 5–9, 10 images per class to
 * train (10 more per class for choosing the learning rate), tested on those classes' test split.
 * Rows: scratch, target-only, TL, RTF, UTF, GC — target accuracy and PL accuracy, mean ± std.
 * Disposal runs with `harden dispose`'s defaults (DEFAULT_DISPOSE_SETTINGS); `--plain` starts
 * instead from the issue's plain loss (PLAIN_DISPOSE_SETTINGS, 300 steps, 100 forget images per
 * class, tfjs), the starting point of the research rows in experiments/dtl-research-*.
 */


const PLAIN = process.argv.includes('--plain');
/** What every flag below defaults to. */
const BASE: DisposeSettings = PLAIN ? { ...PLAIN_DISPOSE_SETTINGS, steps: 300 } : DEFAULT_DISPOSE_SETTINGS;
const flag = (name: string, fallback: boolean): boolean => (process.argv.includes(`--no-${name}`) ? false : process.argv.includes(`--${name}`) || fallback);
const SEEDS = arg('seeds', '0,1,2').split(',').map(Number);
const STEPS = Number(arg('steps', String(BASE.steps)));
const LAMBDA = Number(arg('lambda', String(BASE.lambda)));
const LR = Number(arg('lr', String(BASE.learningRate)));
/** Disposal methods, and `sophon` (simulated fine-tuning, src/harden/sophon.ts) for comparison. */
const METHODS = arg('methods', 'rtf,utf,gc').split(',') as (DisposeMethod | 'sophon')[];
/** SOPHON settings over its defaults, as JSON (e.g. '{"suppressionWeight": 0.5}'). */
const SOPHON: Partial<SophonSettings> = JSON.parse(arg('sophon', '{}')) as Partial<SophonSettings>;
const CHUNKS = Number(arg('chunks', String(BASE.chunks)));
/** H_s trained along at this SGD rate (0: fixed). */
const HEAD_LR = Number(arg('source-head-lr', '0'));
/** θ of the forget term: parameter-name prefixes (e.g. conv for LeNet-5's convolutions). */
const FORGET_PARAMS = arg('forget-params', '') ? arg('forget-params', '').split(',') : undefined;
/** Optimizer of the disposal steps (adam, sgd, momentum). */
const OPTIMIZER = arg('optimizer', 'adam') as 'adam' | 'sgd' | 'momentum';
/** Global gradient-norm clip of the disposal steps (0: none). */
const MAX_GRAD_NORM = Number(arg('max-grad-norm', '0')) || undefined;
/** Dispose of these source classes only (e.g. 5-9), 'auto' (those the target task does not use) or 'all'. */
const FORGET_CLASSES = parseForgetClasses('forget-classes', arg('forget-classes', BASE.forgetClasses === 'auto' ? 'auto' : 'all'));
/** gc/ngc chunks: random, class (one class per chunk) or fixed (one batch, the same chunks every step). */
const CHUNKING = arg('chunking', BASE.chunking ?? 'random') as 'random' | 'class' | 'fixed';
/** gc/ngc: no collision gradient while L_GC is below this (absent: unbounded). */
const COLLISION_FLOOR = arg('collision-floor', '') === '' ? undefined : Number(arg('collision-floor', ''));
/** Distil on augmented target batches (crop and flip). */
const RETAIN_AUGMENT = flag('retain-augment', BASE.retainAugment ?? false);
/** Keep each θ weight tensor's norm at most its norm in the TL model. */
const CAP_NORMS = flag('cap-norms', BASE.capNorms ?? false);
/** Clip of the forget term's gradient alone (DisposeSettings.forgetGradNorm; 'none' or 0: no clip). */
const FORGET_GRAD_NORM_ARG = arg('forget-grad-norm', String(BASE.forgetGradNorm ?? 'none'));
const FORGET_GRAD_NORM = FORGET_GRAD_NORM_ARG === 'none' || Number(FORGET_GRAD_NORM_ARG) === 0 ? undefined : Number(FORGET_GRAD_NORM_ARG);
/** Project the forget gradient off its conflict with L_KD's (DisposeSettings.projectForget; --no-project-forget: don't). */
const PROJECT_FORGET = flag('project-forget', BASE.projectForget ?? false);
/** Distillation-only steps after the disposal steps (DisposeSettings.repairSteps). */
const REPAIR_STEPS = Number(arg('repair-steps', '0'));
/** Forget-set size per class (N = 10× this): E[L_GC] rewards per-example variance by 1/(N − 1). */
const FORGET_PER_CLASS = Number(arg('forget-per-class', PLAIN ? '100' : '1000'));
/** Research: also evaluate TL + α·(disposed − TL) at these α (e.g. 0.5,0.75). */
const INTERPOLATE = arg('interpolate', '') ? arg('interpolate', '').split(',').map(Number) : [];
if (INTERPOLATE.some((a) => !Number.isFinite(a))) throw new Error(`--interpolate: comma-separated numbers, got '${arg('interpolate', '')}'`);
/** Distillation temperature T of L_KD = T²·KL(softmax(z₀/T) ‖ softmax(z/T)). */
const TEMPERATURE = Number(arg('temperature', String(BASE.temperature)));
/** Forget batch size (a multiple of --chunks). */
const FORGET_BATCH = Number(arg('forget-batch-size', String(BASE.forgetBatchSize)));
/**
 * Images L_KD is computed on: 'target' (the 100 target images) or 'target+forget' (those and
 * the forget set's images, unlabelled: the teacher M₀'s outputs are the targets).
 */
const DISTIL_ON = arg('distil-on', BASE.distilOnForget ? 'target+forget' : 'target') as 'target' | 'target+forget';
if (!['target', 'target+forget'].includes(DISTIL_ON)) throw new Error(`--distil-on: target or target+forget, got '${DISTIL_ON}'`);
/** Every disposal row's settings but its method and seed. */
const DISPOSAL: DisposeSettings = {
  ...BASE, steps: STEPS, lambda: LAMBDA, learningRate: LR, chunks: CHUNKS, temperature: TEMPERATURE, forgetClasses: FORGET_CLASSES, sourceHeadLearningRate: HEAD_LR,
  forgetParameters: FORGET_PARAMS, optimizer: OPTIMIZER, maxGradNorm: MAX_GRAD_NORM, chunking: CHUNKING, collisionFloor: COLLISION_FLOOR, retainAugment: RETAIN_AUGMENT,
  capNorms: CAP_NORMS, forgetBatchSize: FORGET_BATCH, repairSteps: REPAIR_STEPS, forgetGradNorm: FORGET_GRAD_NORM, projectForget: PROJECT_FORGET, distilOnForget: DISTIL_ON === 'target+forget',
};
/** Output name in experiments/ (variants write beside the reference table). */
const OUT = arg('out', 'dtl');
/** Training engine of every row (TL, target-only, disposal, PL attacks). */
const ENGINE = selectEngine(arg('engine', PLAIN ? 'tfjs' : 'auto') as EngineName | 'auto');
/** onnxruntime intra-op threads (0: every core), e.g. 1 to run one seed per core in parallel processes. */
const THREADS = Number(arg('threads', '0'));
if (!Number.isInteger(THREADS) || THREADS < 0) throw new Error(`--threads: a whole number ≥ 0, got '${arg('threads', '0')}'`);
setOrtThreads(THREADS);
const PL: Omit<PiggybackOptions, 'seed'> = { epochs: 10, batchSize: 10, learningRates: [1e-3, 3e-3] };
const TARGET_TRAIN = (epochs: number, seed: number): TrainSettings => ({
  epochs, batchSize: 20, optimizer: { kind: 'adam', learningRate: 1e-3 }, schedule: 'constant', stepEvery: 1, gamma: 1, train: 'all', augment: false, seed,
});

type Method = 'RTF' | 'UTF' | 'GC' | 'NGC' | 'SOPHON';
type Row = 'scratch' | 'target-only' | 'TL' | Method | `${Method} at α ${number}`;
const interpolationRow = (row: Row, alpha: number) => `${row as Method} at α ${alpha}` as Row;
/** forgetClasses: what forgetClasses 'auto' chose for a disposal row (its Harden record). */
interface Result { row: Row; seed: number; target?: number; pl: number; plBalanced: number; seconds: number; forgetClasses?: unknown }

const stats = (xs: number[]): string => meanStd(xs, 100, 1);

async function runSeed(seed: number, source: OnnxModel, sets: { targetTest: Dataset; forget: Dataset; plTest: Dataset }): Promise<Result[]> {
  const target = await loadDataset(`fashion-mnist:split=train,classes=0-4,per-class=20,seed=${seed}`);
  const plPool = await loadDataset(`fashion-mnist:split=train,classes=5-9,per-class=20,seed=${seed + 100}`);
  const { train: plTrain, val: plVal } = splitDataset(plPool, 0.5, seed);
  // PL as released, and after the attacker equi-normalizes the backbone (verify/balance.ts).
  const pl = async (m: OnnxModel) => {
    const attack = (balance: boolean) => piggybackAttack(m, { train: plTrain, val: plVal, test: sets.plTest }, { ...PL, seed, balance });
    return { pl: (await attack(false)).accuracy, plBalanced: (await attack(true)).accuracy };
  };
  const results: Result[] = [];
  const timed = async (row: Row, f: () => Promise<Omit<Result, 'row' | 'seed' | 'seconds'>>) => {
    const t0 = performance.now();
    const r = await f();
    results.push({ row, seed, ...r, seconds: (performance.now() - t0) / 1000 });
    process.stderr.write(`seed ${seed} ${row}: target ${r.target === undefined ? '-' : (100 * r.target).toFixed(1)} %, PL ${(100 * r.pl).toFixed(1)} %, balanced ${(100 * r.plBalanced).toFixed(1)} %\n`);
  };

  await timed('scratch', async () => ({ ...(await pl({ proto: reinitialize(source.proto, seed) })) }));
  let tl!: OnnxModel;
  await timed('target-only', async () => {
    const fresh = { proto: buildArchitecture('lenet5', { classes: 5, inputShape: [1, 28, 28], seed }) };
    const { proto } = await trainModel(fresh, 'target-only', target, undefined, TARGET_TRAIN(30, seed));
    return { target: (await evaluate(proto, sets.targetTest)).accuracy, ...(await pl({ proto })) };
  });
  await timed('TL', async () => {
    const { proto } = await trainModel({ proto: withNewHead(source.proto, 5, seed, 'source') }, 'TL', target, undefined, TARGET_TRAIN(20, seed));
    tl = { proto };
    return { target: (await evaluate(proto, sets.targetTest)).accuracy, ...(await pl(tl)) };
  });
  for (const method of METHODS) {
    const row = method.toUpperCase() as Row;
    if (method === 'sophon') {
      // Suppression on the source task's classes 5–9 (relabeled, as the attacker sees them), retention on the target data.
      const block = await loadDataset(`fashion-mnist:split=train,classes=5-9,per-class=100,seed=${seed + 10}`);
      await timed(row, async () => {
        const { proto } = await sophonModel(tl, 'TL', { keep: target, block }, { ...DEFAULT_SOPHON_SETTINGS, ...SOPHON, seed });
        return { target: (await evaluate(proto, sets.targetTest)).accuracy, ...(await pl({ proto })) };
      });
      continue;
    }
    let disposed!: OnnxModel;
    await timed(row, async () => {
      const { proto } = await disposeModel(tl, 'TL', { retain: target, forget: sets.forget }, { ...DISPOSAL, method, seed, sourceModel: source });
      disposed = { proto };
      const chosen = readHardenRecord(proto)?.figures?.forgetClasses;
      return { target: (await evaluate(proto, sets.targetTest)).accuracy, ...(await pl({ proto })), ...(chosen !== undefined ? { forgetClasses: chosen } : {}) };
    });
    for (const alpha of INTERPOLATE) {
      await timed(interpolationRow(row, alpha), async () => {
        const proto = interpolated(tl, disposed, alpha);
        return { target: (await evaluate(proto, sets.targetTest)).accuracy, ...(await pl({ proto })) };
      });
    }
  }
  return results;
}

/** The lines saying which classes forgetClasses 'auto' chose, per row and seed (none where it was not asked). */
function autoClasses(results: Result[]): string[] {
  const chosen = results.filter((r) => r.forgetClasses !== undefined);
  if (!chosen.length) return [];
  return [`Forget classes chosen by \`forgetClasses: 'auto'\`: ${chosen.map((r) => `${r.row} seed ${r.seed}: ${chosenClassesText(r.forgetClasses)}`).join('; ')}.`, ''];
}

/** TL + α·(disposed − TL), every float initializer (weights and BN statistics). */
function interpolated(tl: OnnxModel, disposed: OnnxModel, alpha: number) {
  const a = initializerMap(tl.proto);
  const b = initializerMap(disposed.proto);
  const weights = new Map<string, Float32Array>();
  for (const [name, t] of a) {
    const u = b.get(name);
    if (t.dtype !== 'float32' || !u) continue;
    const x = t.data as Float32Array, y = u.data as Float32Array;
    weights.set(name, Float32Array.from(x, (v, i) => v + alpha * (y[i] - v)));
  }
  return withWeights(tl, weights);
}

async function main(): Promise<void> {
  const backend = await initBackend('auto');
  const source = await loadModel(path.join(ROOT, 'models', 'lenet5-fashion-mnist.onnx'));
  const sets = {
    targetTest: await loadDataset('fashion-mnist:split=test,classes=0-4'),
    forget: await loadDataset(`fashion-mnist:split=train,per-class=${FORGET_PER_CLASS},seed=7`),
    plTest: await loadDataset('fashion-mnist:split=test,classes=5-9'),
  };
  const results: Result[] = [];
  for (const seed of SEEDS) results.push(...(await runSeed(seed, source, sets)));
  const rows: Row[] = ['scratch', 'target-only', 'TL', ...METHODS.flatMap((m) => {
    const row = m.toUpperCase() as Row;
    return [row, ...(m === 'sophon' ? [] : INTERPOLATE.map((a) => interpolationRow(row, a)))];
  })];
  const table = rows.map((row) => {
    const rs = results.filter((r) => r.row === row);
    return { row, target: stats(rs.flatMap((r) => (r.target === undefined ? [] : [r.target]))), pl: stats(rs.map((r) => r.pl)), plBalanced: stats(rs.map((r) => r.plBalanced)), seconds: rs.reduce((a, r) => a + r.seconds, 0) / rs.length };
  });
  // onnxruntime's intra-op thread count changes its float sums, and the GC runaway amplifies that.
  const settings = { backend, engine: ENGINE, ortThreads: ortThreads(), seeds: SEEDS, methods: METHODS, disposal: { ...DISPOSAL, forgetPerClass: FORGET_PER_CLASS }, ...(METHODS.includes('sophon') ? { sophon: { ...DEFAULT_SOPHON_SETTINGS, ...SOPHON } } : {}), piggyback: PL, targetTraining: TARGET_TRAIN(20, 0), ...(INTERPOLATE.length ? { interpolate: INTERPOLATE } : {}) };
  const md = [
    '# Disposable transfer learning: reference scenario',
    '',
    'Source LeNet-5 on all of fashion-mnist; target fashion-mnist classes 0–4 (20/class); PL attack on classes 5–9 (10/class, LR chosen on 10/class), accuracy in %, mean ± std over seeds ' + SEEDS.join(', ') + '.',
    '',
    '"PL balanced": the same attack after equi-normalizing the backbone (the function-preserving rescaling that minimizes its summed squared weight norm, src/verify/balance.ts), which undoes any rescaling of the layers by the hardening.',
    '',
    '| row | target acc | PL acc | PL balanced | s per run |',
    '| --- | --- | --- | --- | --- |',
    ...table.map((t) => `| ${t.row} | ${t.target} | ${t.pl} | ${t.plBalanced} | ${t.seconds.toFixed(0)} |`),
    '',
    ...autoClasses(results),
    'Settings: `' + JSON.stringify(settings) + '`',
    '',
  ].join('\n');
  await mkdir(path.join(ROOT, 'experiments'), { recursive: true });
  await writeFile(path.join(ROOT, 'experiments', `${OUT}.json`), JSON.stringify({ settings, results, table }, null, 2));
  await writeFile(path.join(ROOT, 'experiments', `${OUT}.md`), md);
  process.stdout.write(md);
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`experiment failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
