/**
 * The sample-wise learning curve (SLC) attack. For data fractions r_1 < … < r_m of the attacker's
 * training set, fine-tune the whole model with a freshly initialized head (same step budget for
 * every r, learning rate from a small grid chosen on a validation split) and measure test
 * accuracy a_i. The area under accuracy vs ln r,
 *
 *   AUC = Σ_i (ln r_i − ln r_{i−1})·(a_i + a_{i−1})/2,
 *
 * summarizes how fast an attacker learns from the model. SLC-AUC = AUC(model) − AUC(same
 * architecture from random initialization, same protocol): negative means the model is a worse
 * start than no model at all. The dense attacker may regrow pruned weights; the masked one keeps
 * every exact zero of the model's pruned weights at zero.
 */
import type { OnnxModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import { decodeModel, encodeModel, initializerMap } from '../onnx/model.js';
import { hostToFloat32 } from '../onnx/tensor.js';
import { HardenError } from '../errors.js';
import { findClassifierHead } from '../import/head.js';
import { prunableWeights } from '../harden/admm.js';
import { withNewHead } from '../train/head.js';
import { Random } from '../util/random.js';
import { evaluate } from './evaluate.js';
import { reinitialize } from './reinit.js';
import { bestRun, inThisThread, type AttackJobResult, type JobRunner } from './jobs.js';
import { lineChartSvg } from './charts.js';

export const SLC_FRACTIONS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];

export interface SlcOptions {
  fractions: number[];
  /** Optimizer steps per fine-tuning run, the same for every fraction. */
  steps: number;
  batchSize: number;
  learningRates: number[];
  seed: number;
}

export interface CurvePoint {
  fraction: number;
  images: number;
  /** Test accuracy (a fraction) at the learning rate with the best validation accuracy. */
  accuracy: number;
  learningRate: number;
}

export interface LearningCurve {
  points: CurvePoint[];
  auc: number;
}

export interface SlcResult {
  model: LearningCurve;
  /** Pruned weights held at zero; present when the model has pruned weights. */
  masked?: LearningCurve;
  scratch: LearningCurve;
  slcAuc: number;
  slcAucMasked?: number;
}

/** Trapezoidal area under accuracy vs ln(fraction); points in increasing fraction order. */
export function learningCurveAuc(points: readonly { fraction: number; accuracy: number }[]): number {
  let auc = 0;
  for (let i = 1; i < points.length; i++) {
    const [a, b] = [points[i - 1]!, points[i]!];
    if (!(b.fraction > a.fraction)) throw new Error(`learningCurveAuc: fractions must increase, got ${a.fraction} then ${b.fraction}`);
    auc += (Math.log(b.fraction) - Math.log(a.fraction)) * (a.accuracy + b.accuracy) / 2;
  }
  return auc;
}

/**
 * The attacker's images for each fraction, nested (a smaller fraction's images are part of every
 * larger one's): a seeded shuffle, reordered so that one image of every class comes first. A
 * fraction r takes the first max(#classes present, round(r·N)) of that order.
 */
export function nestedSubsets(labels: Int32Array, fractions: readonly number[], seed: number): number[][] {
  const order = Array.from(labels, (_, i) => i);
  const rng = new Random(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const seen = new Set<number>();
  const firsts: number[] = [], rest: number[] = [];
  for (const i of order) {
    if (seen.has(labels[i]!)) rest.push(i);
    else seen.add(labels[i]!), firsts.push(i);
  }
  const ranked = [...firsts, ...rest];
  return fractions.map((r) => ranked.slice(0, Math.min(ranked.length, Math.max(firsts.length, Math.round(r * labels.length)))).sort((a, b) => a - b));
}

/**
 * Masks of the pruned weights: every prunable weight (Conv/Gemm/MatMul kernel) holding exact
 * zeros, except `exclude` (the classifier, which the attacker replaces). Empty if nothing is pruned.
 */
export function pruningMasks(proto: ModelProto, exclude: readonly string[] = []): Map<string, Uint8Array> {
  const inits = initializerMap(proto);
  const names = prunableWeights(proto, [...inits.keys()], exclude);
  const masks = new Map<string, Uint8Array>();
  for (const name of names) {
    const w = hostToFloat32(inits.get(name)!);
    if (w.some((v) => v === 0)) masks.set(name, Uint8Array.from(w, (v) => (v === 0 ? 0 : 1)));
  }
  return masks;
}

export function checkSlcOptions(o: SlcOptions): void {
  if (!o.fractions.length || o.fractions.some((r, i) => !(r > 0 && r <= 1) || (i > 0 && r <= o.fractions[i - 1]!))) {
    throw new HardenError(`slc: fractions must increase within (0, 1], got ${o.fractions.join(',')}`);
  }
  if (!(Number.isInteger(o.steps) && o.steps >= 1)) throw new HardenError(`slc: steps must be a positive integer, got ${o.steps}`);
  if (!(Number.isInteger(o.batchSize) && o.batchSize >= 1)) throw new HardenError(`slc: batch size must be a positive integer, got ${o.batchSize}`);
  if (!o.learningRates.length || o.learningRates.some((lr) => !(lr > 0))) throw new HardenError(`slc: learning rates must be > 0, got ${o.learningRates.join(',')}`);
}

export interface SlcData {
  train: Dataset;
  val: Dataset;
  test: Dataset;
}

export interface CurveProgress {
  /** A point of the named curve is measured (points of concurrent curves interleave). */
  onPoint?(point: CurvePoint, curve: string): void;
}

export interface CurveRun {
  /** Runs the fine-tuning jobs (default: in this thread; attack-pool.ts: on workers). */
  run?: JobRunner;
  progress?: CurveProgress;
  /** The curve's name in progress reports. */
  name?: string;
}

/**
 * The learning curve of `model` under the SLC protocol (optionally with masks). Every
 * (fraction, learning rate) run is an independent job; a rate that diverges is simply not chosen.
 */
export async function learningCurve(model: OnnxModel, data: SlcData, o: SlcOptions, masks?: Map<string, Uint8Array>, source = model.path ?? 'model', { run = inThisThread(), progress = {}, name = 'model' }: CurveRun = {}): Promise<LearningCurve> {
  checkSlcOptions(o);
  const start = encodeModel(withNewHead(model.proto, data.train.classes, o.seed, source));
  const subsets = nestedSubsets(data.train.labels, o.fractions, o.seed);
  const options = { steps: o.steps, batchSize: o.batchSize, seed: o.seed, ...(masks ? { masks: [...masks] } : {}) };
  const fineTuned = (indices: number[], learningRate: number): Promise<AttackJobResult | undefined> =>
    run({ kind: 'fine-tune', model: start, source, train: { dataset: data.train, indices }, val: data.val, options: { ...options, learningRate } })
      .catch((e: unknown) => {
        if (e instanceof HardenError && /diverged/.test(e.message)) return undefined;
        throw e;
      });
  const points = await Promise.all(o.fractions.map(async (fraction, i): Promise<CurvePoint> => {
    const runs = await Promise.all(o.learningRates.map((lr) => fineTuned(subsets[i]!, lr)));
    const best = bestRun(runs);
    const accuracy = best === undefined ? 1 / data.test.classes : (await evaluate(decodeModel(runs[best]!.model, source), data.test)).accuracy;
    const point = { fraction, images: subsets[i]!.length, accuracy, learningRate: best === undefined ? Number.NaN : o.learningRates[best]! };
    progress.onPoint?.(point, name);
    return point;
  }));
  return { points, auc: learningCurveAuc(points) };
}

/**
 * SLC-AUC of `model`: its dense (and, if it has pruned weights, masked) learning curve against
 * the same protocol on reinitialize(model, scratchSeed). The curves' runs are independent jobs.
 */
export async function slcAttack(model: OnnxModel, data: SlcData, o: SlcOptions, scratchSeed: number, { run = inThisThread(), progress }: Omit<CurveRun, 'name'> = {}): Promise<SlcResult> {
  const source = model.path ?? 'model';
  const head = findClassifierHead(model.proto);
  if (!head) throw new HardenError(`${source}: no final Gemm/MatMul classifier found (the attacker replaces it)`);
  const masks = pruningMasks(model.proto, head.parameters);
  const [dense, masked, scratch] = await Promise.all([
    learningCurve(model, data, o, undefined, source, { run, progress, name: 'model' }),
    masks.size ? learningCurve(model, data, o, masks, source, { run, progress, name: 'masked' }) : undefined,
    learningCurve({ ...model, proto: reinitialize(model.proto, scratchSeed) }, data, o, undefined, `${source} (reinitialized)`, { run, progress, name: 'scratch' }),
  ]);
  return {
    model: dense,
    scratch,
    slcAuc: dense.auc - scratch.auc,
    ...(masked ? { masked, slcAucMasked: masked.auc - scratch.auc } : {}),
  };
}

/** Jobs slcAttack submits: curves × fractions × learning rates (for progress totals). */
export function slcJobCount(model: ModelProto, o: SlcOptions): number {
  const head = findClassifierHead(model);
  const curves = head && pruningMasks(model, head.parameters).size ? 3 : 2;
  return curves * o.fractions.length * o.learningRates.length;
}

/** Accuracy vs data fraction for the model (dense, masked) and the scratch reference. */
export async function learningCurveChart(curves: { name: string; curve: LearningCurve }[], title: string): Promise<string> {
  return lineChartSvg(
    curves.map(({ name, curve }) => ({ name: `${name} (AUC ${curve.auc.toFixed(3)})`, points: curve.points.map((p) => ({ x: p.fraction, y: p.accuracy })) })),
    { title, xLabel: 'fraction of the attacker’s training data (log scale)', yLabel: 'test accuracy', xScale: 'log', yDomain: [0, 1] },
  );
}
