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
import { initializerMap } from '../onnx/model.js';
import { hostToFloat32 } from '../onnx/tensor.js';
import { HardenError } from '../errors.js';
import { findClassifierHead } from '../import/head.js';
import { prunableWeights } from '../harden/admm.js';
import { withNewHead } from '../train/head.js';
import { Random } from '../util/random.js';
import { evaluate } from './evaluate.js';
import { fineTune } from './finetune.js';
import { reinitialize } from './reinit.js';
import { subsetDataset } from './split.js';
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
  onPoint?(point: CurvePoint): void;
}

/** The learning curve of `model` under the SLC protocol (optionally with masks). */
export async function learningCurve(model: OnnxModel, data: SlcData, o: SlcOptions, masks?: Map<string, Uint8Array>, source = model.path ?? 'model', progress: CurveProgress = {}): Promise<LearningCurve> {
  checkSlcOptions(o);
  const start: OnnxModel = { ...model, proto: withNewHead(model.proto, data.train.classes, o.seed, source) };
  const subsets = nestedSubsets(data.train.labels, o.fractions, o.seed);
  const points: CurvePoint[] = [];
  for (const [i, fraction] of o.fractions.entries()) {
    const train = subsetDataset(data.train, subsets[i]!);
    let best: { val: number; learningRate: number; proto: ModelProto } | undefined;
    for (const learningRate of o.learningRates) {
      let proto: ModelProto;
      try {
        proto = await fineTune(start, source, train, { steps: o.steps, batchSize: o.batchSize, learningRate, seed: o.seed, masks });
      } catch (e) {
        if (e instanceof HardenError && /diverged/.test(e.message)) continue; // a rate that diverges is simply not chosen
        throw e;
      }
      const val = (await evaluate(proto, data.val)).accuracy;
      if (!best || val > best.val) best = { val, learningRate, proto };
    }
    const accuracy = best ? (await evaluate(best.proto, data.test)).accuracy : 1 / data.test.classes;
    const point = { fraction, images: train.labels.length, accuracy, learningRate: best?.learningRate ?? Number.NaN };
    points.push(point);
    progress.onPoint?.(point);
  }
  return { points, auc: learningCurveAuc(points) };
}

/**
 * SLC-AUC of `model`: its dense (and, if it has pruned weights, masked) learning curve against
 * the same protocol on reinitialize(model, scratchSeed).
 */
export async function slcAttack(model: OnnxModel, data: SlcData, o: SlcOptions, scratchSeed: number, progress: { onCurve?(name: string): void } & CurveProgress = {}): Promise<SlcResult> {
  const source = model.path ?? 'model';
  const head = findClassifierHead(model.proto);
  if (!head) throw new HardenError(`${source}: no final Gemm/MatMul classifier found (the attacker replaces it)`);
  const masks = pruningMasks(model.proto, head.parameters);
  progress.onCurve?.('model');
  const dense = await learningCurve(model, data, o, undefined, source, progress);
  let masked: LearningCurve | undefined;
  if (masks.size) {
    progress.onCurve?.('masked');
    masked = await learningCurve(model, data, o, masks, source, progress);
  }
  progress.onCurve?.('scratch');
  const scratch = await learningCurve({ ...model, proto: reinitialize(model.proto, scratchSeed) }, data, o, undefined, `${source} (reinitialized)`, progress);
  return {
    model: dense,
    scratch,
    slcAuc: dense.auc - scratch.auc,
    ...(masked ? { masked, slcAucMasked: masked.auc - scratch.auc } : {}),
  };
}

/** Accuracy vs data fraction for the model (dense, masked) and the scratch reference. */
export async function learningCurveChart(curves: { name: string; curve: LearningCurve }[], title: string): Promise<string> {
  return lineChartSvg(
    curves.map(({ name, curve }) => ({ name: `${name} (AUC ${curve.auc.toFixed(3)})`, points: curve.points.map((p) => ({ x: p.fraction, y: p.accuracy })) })),
    { title, xLabel: 'fraction of the attacker’s training data (log scale)', yLabel: 'test accuracy', xScale: 'log', yDomain: [0, 1] },
  );
}
