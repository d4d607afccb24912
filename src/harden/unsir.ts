/**
 * UNSIR (Tarun et al., "Fast Yet Effective Machine Unlearning"): forget whole classes with
 * error-maximizing noise, then repair. Three phases:
 *
 * 1. Noise. For each forget class c, a noise image N_c (seeded N(0, 1)) is learned with Adam to
 *    MAXIMIZE CE(M(N_c), c) − λ·mean(N_c²), the model frozen (BatchNorm in inference mode).
 * 2. Impair. One epoch over the keep data; each batch is joined by `noisePerBatch` noise images
 *    (cycled over the forget classes, each labelled with its class) and ALL parameters take an
 *    Adam step on the cross-entropy of the joined batch at `impairLearningRate`.
 * 3. Repair. `repairEpochs` epochs of cross-entropy on the keep data alone at `repairLearningRate`.
 *
 * BatchNorm runs in inference mode throughout (as in ntl.ts): the running statistics stay as they
 * are. Every random choice (noise init, batch order) follows `seed`. The phases run on either
 * engine through TrainableGraph (input gradients for the noise, inference-mode steps).
 *
 * The penalty is a per-pixel mean: the authors' code uses 0.1·Σ_pixels N², i.e. noiseL2 = 0.1·C·H·W
 * here. At λ = 0.1 the noise grows as far as Adam takes it in `noiseSteps` (CE in the hundreds on a
 * small ReLU net), which is what the impair phase then fits to the forget class.
 */
import { HardenError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import { batches } from '../data/loader.js';
import { createTrainable, selectedEngine, type EngineName } from '../engine/create.js';
import { HostOptimizer } from '../engine/host-optimizer.js';
import type { TrainableGraph } from '../engine/trainable.js';
import type { HostTensor } from '../onnx/tensor.js';
import { crossEntropyLosses } from '../verify/mia.js';
import { ImportedGraph } from '../import/graph.js';
import { HARDEN_METADATA_KEY, setMetadata, withWeights } from '../export/export.js';
import { checkImagesFit } from '../train/fit.js';
import { Random } from '../util/random.js';
import { HARDEN_VERSION } from '../version.js';
import { targetLayout } from './source-head.js';

export interface UnsirSettings {
  /** Adam steps that learn the error-maximizing noise. */
  noiseSteps: number;
  noiseLearningRate: number;
  /** λ: weight of the mean(N²) penalty that keeps the noise bounded. */
  noiseL2: number;
  /** Keep images per impair / repair batch. */
  batchSize: number;
  /** Noise images added to each impair batch (cycled over the forget classes). */
  noisePerBatch: number;
  impairLearningRate: number;
  repairEpochs: number;
  repairLearningRate: number;
  seed: number;
  /** Training engine (default: the one selectEngine chose). */
  engine?: EngineName;
}

/** As the UNSIR paper: 100 noise steps (Adam 0.1, λ 0.1), one impair epoch (Adam 0.02), one repair epoch. */
export const DEFAULT_UNSIR_SETTINGS: UnsirSettings = {
  noiseSteps: 100,
  noiseLearningRate: 0.1,
  noiseL2: 0.1,
  batchSize: 64,
  noisePerBatch: 16,
  impairLearningRate: 0.02,
  repairEpochs: 1,
  repairLearningRate: 1e-2, // with 1e-3 one repair epoch left the forgotten class intact on the test net
  seed: 0,
};

/** CE(M(N_c), c) of one forget class's noise before and after the noise phase. */
export interface UnsirNoiseRecord {
  forgetClass: number;
  before: number;
  after: number;
}

export interface UnsirStepRecord {
  phase: 'impair' | 'repair';
  /** 1 for impair; 1..repairEpochs for repair. */
  epoch: number;
  /** Step within the phase, from 1. */
  step: number;
  /** Cross-entropy of the whole (joined) batch: the loss that was minimized. */
  loss: number;
  /** Cross-entropy on the batch's keep images. */
  keep: number;
  /** Cross-entropy on the batch's noise images (impair only). */
  noise?: number;
}

export interface UnsirHistory {
  noise: UnsirNoiseRecord[];
  steps: UnsirStepRecord[];
}

export interface UnsirProgress {
  onPhase?(phase: 'noise' | 'impair' | 'repair', steps: number): void;
  onNoise?(records: UnsirNoiseRecord[]): void;
  onStep?(r: UnsirStepRecord): void;
}

function fail(what: string): never {
  throw new HardenError(`unsir: ${what}`);
}

export function validateUnsirSettings(s: UnsirSettings): void {
  for (const [name, v] of [['noise steps', s.noiseSteps], ['noise per batch', s.noisePerBatch], ['repair epochs', s.repairEpochs]] as const) {
    if (!(Number.isInteger(v) && v >= 0)) fail(`${name} must be an integer ≥ 0, got ${v}`);
  }
  if (!(Number.isInteger(s.batchSize) && s.batchSize >= 1)) fail(`batch size must be a positive integer, got ${s.batchSize}`);
  for (const [name, v] of [['noise', s.noiseLearningRate], ['impair', s.impairLearningRate], ['repair', s.repairLearningRate]] as const) {
    if (!(Number.isFinite(v) && v > 0)) fail(`${name} learning rate must be > 0, got ${v}`);
  }
  if (!(Number.isFinite(s.noiseL2) && s.noiseL2 >= 0)) fail(`noise L2 weight must be a finite number ≥ 0, got ${s.noiseL2}`);
  if (!Number.isInteger(s.seed)) fail(`seed must be an integer, got ${s.seed}`);
}

/** Forget classes: distinct integers in 0..classes−1, leaving at least one class kept. */
function checkForgetClasses(forget: number[], classes: number): void {
  if (forget.length === 0) fail('no forget classes given');
  const seen = new Set<number>();
  for (const c of forget) {
    if (!(Number.isInteger(c) && c >= 0 && c < classes)) fail(`forget class ${c} is out of range: the model has ${classes} classes (0..${classes - 1})`);
    if (seen.has(c)) fail(`forget class ${c} is listed twice`);
    seen.add(c);
  }
  if (seen.size >= classes) fail(`forgetting classes ${forget.join(', ')} leaves no class of the model's ${classes} to keep`);
}

export async function unsirModel(
  model: OnnxModel,
  source: string,
  data: { keep: Dataset; forgetClasses: number[] },
  settings: UnsirSettings,
  progress: UnsirProgress = {},
): Promise<{ proto: ModelProto; noise: Float32Array; history: UnsirHistory }> {
  const s: UnsirSettings = { ...settings, engine: settings.engine ?? selectedEngine() };
  validateUnsirSettings(s);
  const keep = data.keep;
  const forget = [...data.forgetClasses];
  const graph = new ImportedGraph(model, source);
  let engine: TrainableGraph | undefined;
  try {
    checkImagesFit(graph, keep, 'keep data');
    const classes = targetLayout(graph).classes;
    checkForgetClasses(forget, classes);
    const n = keep.labels.length;
    if (n === 0) fail('the keep data is empty');
    const forgetSet = new Set(forget);
    const counts = new Map<number, number>();
    for (const l of keep.labels) {
      if (l >= classes) fail(`keep data has label ${l} but the model has ${classes} classes`);
      if (forgetSet.has(l)) counts.set(l, (counts.get(l) ?? 0) + 1);
    }
    if (counts.size) {
      fail(`keep data must hold only kept classes but has ${[...counts].map(([c, k]) => `${k} image${k === 1 ? '' : 's'} of forget class ${c}`).join(', ')}`);
    }
    engine = createTrainable(model, source, s.engine);
    const K = forget.length;
    const per = keep.shape[0] * keep.shape[1] * keep.shape[2];
    const images = (data: Float32Array, rows: number): HostTensor => ({ dtype: 'float32', shape: [rows, ...keep.shape], data });

    // 1. Error-maximizing noise, one image per forget class, learned jointly with Adam on the host
    // (the model is frozen and BN runs in inference mode, so each image's objective depends on
    // that image alone): minimize Σ_c λ·mean(N_c²) − CE(M(N_c), c).
    const noise = new Random(s.seed).normalArray(K * per);
    const forgetLabels = Int32Array.from(forget);
    const before = (await engine.inputGradient(images(noise, K), forgetLabels)).losses;
    progress.onPhase?.('noise', s.noiseSteps);
    const noiseOptimizer = new HostOptimizer({ kind: 'adam', learningRate: s.noiseLearningRate });
    const values = new Map([['noise', noise]]);
    for (let step = 0; step < s.noiseSteps; step++) {
      const { gradient } = await engine.inputGradient(images(noise, K), forgetLabels);
      noiseOptimizer.apply(values, new Map([['noise', Float32Array.from(gradient, (g, i) => (2 * s.noiseL2 * noise[i]!) / per - g)]]));
    }
    const after = (await engine.inputGradient(images(noise, K), forgetLabels)).losses;
    if (!noise.every(Number.isFinite)) fail('the noise diverged; lower the noise learning rate or raise the noise L2 weight');
    const noiseRecords: UnsirNoiseRecord[] = forget.map((c, k) => ({ forgetClass: c, before: before[k]!, after: after[k]! }));
    progress.onNoise?.(noiseRecords);

    // 2. Impair (one epoch, keep + noise) and 3. repair (keep only), all parameters, Adam, BN in inference mode.
    const steps: UnsirStepRecord[] = [];
    const stepsPerEpoch = Math.ceil(n / s.batchSize);
    let noiseCursor = 0;
    const epochs: { phase: 'impair' | 'repair'; epoch: number }[] = [{ phase: 'impair', epoch: 1 }];
    for (let e = 1; e <= s.repairEpochs; e++) epochs.push({ phase: 'repair', epoch: e });
    let lastPhase: string | undefined;
    for (const [index, { phase, epoch }] of epochs.entries()) {
      if (phase !== lastPhase) {
        progress.onPhase?.(phase, phase === 'impair' ? stepsPerEpoch : stepsPerEpoch * s.repairEpochs);
        // One Adam per phase: the repair epochs share theirs.
        engine.setOptimizer({ kind: 'adam', learningRate: phase === 'impair' ? s.impairLearningRate : s.repairLearningRate });
      }
      lastPhase = phase;
      let step = 0;
      for (const b of batches(keep, { batchSize: s.batchSize, seed: s.seed, epoch: index })) {
        step++;
        const m = phase === 'impair' ? s.noisePerBatch : 0;
        const picks = Array.from({ length: m }, () => noiseCursor++ % K);
        const rows = b.y.length + m;
        const x = new Float32Array(rows * per);
        x.set(b.x.data as Float32Array);
        picks.forEach((k, i) => x.set(noise.subarray(k * per, (k + 1) * per), (b.y.length + i) * per));
        const y = Int32Array.from([...b.y, ...picks.map((k) => forget[k]!)]);
        // The batch's keep and noise cross-entropies before the step (the step's own loss is their mean).
        const parts = m > 0 ? await rowLosses(engine, images(x, rows), y) : undefined;
        const loss = await engine.trainStep(images(x, rows), y, { training: false });
        const record: UnsirStepRecord = { phase, epoch, step, loss, keep: loss };
        if (parts) {
          record.keep = mean(parts.subarray(0, b.y.length));
          record.noise = mean(parts.subarray(b.y.length));
        }
        if (!Number.isFinite(record.loss)) fail(`diverged in the ${phase} phase at step ${step} (loss ${record.loss}); lower the ${phase} learning rate`);
        steps.push(record);
        progress.onStep?.(record);
      }
    }

    const proto = withWeights(model, engine.weights());
    const keepLoss = epochs.map(({ phase, epoch }) => {
      const rs = steps.filter((r) => r.phase === phase && r.epoch === epoch);
      return { phase, epoch, loss: rs.reduce((t, r) => t + r.keep, 0) / Math.max(rs.length, 1) };
    });
    setMetadata(
      proto,
      HARDEN_METADATA_KEY,
      JSON.stringify({
        version: HARDEN_VERSION,
        operation: 'unsir',
        settings: { ...s, forgetClasses: forget },
        figures: { noiseLoss: noiseRecords, keepLoss, steps: steps.length },
      }),
    );
    return { proto, noise, history: { noise: noiseRecords, steps } };
  } finally {
    engine?.dispose();
    graph.dispose();
  }
}

const mean = (xs: Float64Array): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Per-row cross-entropy of the model's logits (inference mode). */
async function rowLosses(engine: TrainableGraph, x: HostTensor, labels: Int32Array): Promise<Float64Array> {
  const logits = (await engine.forward(x)).get(engine.outputName)!;
  return crossEntropyLosses(logits.data as Float32Array, labels, logits.shape[1]!);
}
