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
 * are. Every random choice (noise init, batch order) follows `seed`.
 *
 * The penalty is a per-pixel mean: the authors' code uses 0.1·Σ_pixels N², i.e. noiseL2 = 0.1·C·H·W
 * here. At λ = 0.1 the noise grows as far as Adam takes it in `noiseSteps` (CE in the hundreds on a
 * small ReLU net), which is what the impair phase then fits to the forget class.
 */
import * as tf from '@tensorflow/tfjs-core';
import { HardenError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import { batches } from '../data/loader.js';
import { crossEntropy } from '../engine/tfjs-engine.js';
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

/** Per-row cross-entropy of logits [N, C] against labels: logsumexp(z) − z_y. */
function rowCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => tf.sub(tf.squeeze(tf.logSumExp(logits, 1, true), [1]), tf.sum(tf.mul(logits, tf.oneHot(labels, logits.shape[1])), 1)) as tf.Tensor1D);
}

export async function unsirModel(
  model: OnnxModel,
  source: string,
  data: { keep: Dataset; forgetClasses: number[] },
  settings: UnsirSettings,
  progress: UnsirProgress = {},
): Promise<{ proto: ModelProto; noise: Float32Array; history: UnsirHistory }> {
  const s = settings;
  validateUnsirSettings(s);
  const keep = data.keep;
  const forget = [...data.forgetClasses];
  const graph = new ImportedGraph(model, source);
  const optimizers: tf.Optimizer[] = [];
  let noiseVar: tf.Variable | undefined;
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
    const inputName = graph.inputs[0]!.name;
    const outputName = graph.outputNames[0]!;
    const logitsOf = (x: tf.Tensor): tf.Tensor2D => graph.run({ [inputName]: x }).outputs.get(outputName)! as tf.Tensor2D;
    const K = forget.length;
    const per = keep.shape[0] * keep.shape[1] * keep.shape[2];

    // 1. Error-maximizing noise, one image per forget class, learned jointly (the model is frozen
    // and BN runs in inference mode, so each image's objective depends on that image alone).
    const rng = new Random(s.seed);
    noiseVar = tf.tidy(() => tf.variable(tf.tensor(rng.normalArray(K * per), [K, ...keep.shape], 'float32'), true));
    const nv = noiseVar;
    const forgetLabels = tf.tensor1d(Int32Array.from(forget), 'int32');
    const noiseLoss = (): Float32Array => tf.tidy(() => rowCrossEntropy(logitsOf(nv), forgetLabels).dataSync() as Float32Array);
    let before: Float32Array, after: Float32Array;
    try {
      before = noiseLoss();
      progress.onPhase?.('noise', s.noiseSteps);
      const noiseOptimizer: tf.Optimizer = tf.train.adam(s.noiseLearningRate);
      optimizers.push(noiseOptimizer);
      for (let step = 0; step < s.noiseSteps; step++) {
        tf.tidy(() => {
          const { grads } = tf.variableGrads(() => {
            const ce = rowCrossEntropy(logitsOf(nv), forgetLabels);
            const l2 = tf.mean(tf.reshape(tf.square(nv), [K, per]), 1);
            // Minimize −(CE − λ·mean N²), summed over the classes.
            return tf.sum(tf.sub(tf.mul(l2, s.noiseL2), ce)) as tf.Scalar;
          }, [nv]);
          noiseOptimizer.applyGradients(grads);
        });
      }
      after = noiseLoss();
    } finally {
      forgetLabels.dispose();
    }
    const noise = nv.dataSync().slice() as Float32Array;
    if (!noise.every(Number.isFinite)) fail('the noise diverged; lower the noise learning rate or raise the noise L2 weight');
    const noiseRecords: UnsirNoiseRecord[] = forget.map((c, k) => ({ forgetClass: c, before: before[k]!, after: after[k]! }));
    progress.onNoise?.(noiseRecords);

    // 2. Impair (one epoch, keep + noise) and 3. repair (keep only), all parameters, Adam.
    const variables = graph.trainableVariables();
    const steps: UnsirStepRecord[] = [];
    const stepsPerEpoch = Math.ceil(n / s.batchSize);
    let noiseCursor = 0;
    const epochs: { phase: 'impair' | 'repair'; epoch: number; optimizer: tf.Optimizer }[] = [];
    const impairOptimizer = tf.train.adam(s.impairLearningRate);
    optimizers.push(impairOptimizer);
    epochs.push({ phase: 'impair', epoch: 1, optimizer: impairOptimizer });
    if (s.repairEpochs > 0) {
      const repairOptimizer = tf.train.adam(s.repairLearningRate);
      optimizers.push(repairOptimizer);
      for (let e = 1; e <= s.repairEpochs; e++) epochs.push({ phase: 'repair', epoch: e, optimizer: repairOptimizer });
    }
    let lastPhase: string | undefined;
    for (const [index, { phase, epoch, optimizer }] of epochs.entries()) {
      if (phase !== lastPhase) progress.onPhase?.(phase, phase === 'impair' ? stepsPerEpoch : stepsPerEpoch * s.repairEpochs);
      lastPhase = phase;
      let step = 0;
      for (const b of batches(keep, { batchSize: s.batchSize, seed: s.seed, epoch: index })) {
        step++;
        const m = phase === 'impair' ? s.noisePerBatch : 0;
        const picks = Int32Array.from({ length: m }, () => noiseCursor++ % K);
        const values = tf.tidy(() => {
          let x: tf.Tensor = tf.tensor(b.x.data as Float32Array, b.x.shape, 'float32');
          let y = tf.tensor1d(b.y, 'int32');
          if (m > 0) {
            x = tf.concat([x, tf.gather(nv, tf.tensor1d(picks, 'int32'))], 0);
            y = tf.concat([y, tf.tensor1d(Int32Array.from(picks, (k) => forget[k]!), 'int32')]);
          }
          const parts: tf.Scalar[] = [];
          const { value, grads } = tf.variableGrads(() => {
            const logits = logitsOf(x);
            const loss = crossEntropy(logits, y);
            if (m > 0) {
              const rows = rowCrossEntropy(logits, y);
              parts.push(tf.keep(tf.mean(tf.slice(rows, 0, b.y.length)) as tf.Scalar), tf.keep(tf.mean(tf.slice(rows, b.y.length, m)) as tf.Scalar));
            }
            return loss;
          }, variables);
          optimizer.applyGradients(grads);
          return [value, ...parts];
        });
        const [loss, keepLoss, noiseLossValue] = await Promise.all(values.map(async (t) => (await t.data())[0]!));
        tf.dispose(values);
        const record: UnsirStepRecord = { phase, epoch, step, loss: loss!, keep: keepLoss ?? loss! };
        if (noiseLossValue !== undefined) record.noise = noiseLossValue;
        if (!Number.isFinite(record.loss)) fail(`diverged in the ${phase} phase at step ${step} (loss ${record.loss}); lower the ${phase} learning rate`);
        steps.push(record);
        progress.onStep?.(record);
      }
    }

    const proto = withWeights(model, graph.readWeights());
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
    for (const o of optimizers) o.dispose();
    noiseVar?.dispose();
    graph.dispose();
  }
}
