/**
 * Non-transferable learning (NTL, target-specified): train the whole model so it keeps the source
 * (authorized) task and fails on the target (unauthorized) domain, with the two domains' features
 * pushed apart. Per step, with a keep batch (x_s, y_s) and a block batch (x_t, y_t):
 *
 *   L = KL_s − min(1, α·KL_t) · min(1, β·MMD(φ_s, φ_t))
 *
 * KL_s / KL_t: KL divergence of the model's predictions from the one-hot labels, i.e. the
 * cross-entropy; φ: the features at `layer` (default: the classifier's input); MMD: mmd.ts.
 * Both clips (at 1) stop the target term from growing without bound. BatchNorm runs in inference
 * mode (as in prune.ts): the authorized statistics stay as they are.
 */
import * as tf from '@tensorflow/tfjs-core';
import { HardenError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import { StepSampler } from '../data/loader.js';
import { crossEntropy } from '../engine/tfjs-engine.js';
import { ImportedGraph } from '../import/graph.js';
import { HARDEN_METADATA_KEY, setMetadata, withWeights } from '../export/export.js';
import type { StepRun } from '../train/checkpoint.js';
import { checkImagesFit } from '../train/fit.js';
import { loadStepCheckpoint, saveStepCheckpoint } from '../train/step-checkpoint.js';
import { HARDEN_VERSION } from '../version.js';
import { mmd } from './mmd.js';
import { targetLayout } from './source-head.js';

export interface NtlSettings {
  alpha: number;
  beta: number;
  /** Tensor whose features MMD compares; default the classifier's input. */
  layer?: string;
  learningRate: number;
  steps: number;
  batchSize: number;
  seed: number;
}

/** α = β = 0.1 as in the NTL paper; Adam 1e-4 for 500 steps of 32 + 32 images. */
export const DEFAULT_NTL_SETTINGS: NtlSettings = { alpha: 0.1, beta: 0.1, learningRate: 1e-4, steps: 500, batchSize: 32, seed: 0 };

export interface NtlStepRecord {
  step: number;
  keep: number;
  block: number;
  mmd: number;
  loss: number;
}

export type NtlRun = StepRun<{ onStart?(steps: number): void; onStep?(r: NtlStepRecord): void; onResume?(step: number): void }>;

function fail(what: string): never {
  throw new HardenError(`ntl: ${what}`);
}

export function validateNtlSettings(s: NtlSettings, graph: ImportedGraph): void {
  for (const [name, v] of [['alpha', s.alpha], ['beta', s.beta]] as const) if (!(Number.isFinite(v) && v >= 0)) fail(`${name} must be a finite number ≥ 0, got ${v}`);
  if (!(s.learningRate > 0)) fail(`learning rate must be > 0, got ${s.learningRate}`);
  if (!(Number.isInteger(s.steps) && s.steps >= 0)) fail(`steps must be an integer ≥ 0, got ${s.steps}`);
  if (!(Number.isInteger(s.batchSize) && s.batchSize >= 2)) fail(`batch size must be an integer ≥ 2 (MMD needs pairs), got ${s.batchSize}`);
  if (s.layer !== undefined && !graph.model.proto.graph?.node.some((n) => n.output.includes(s.layer!))) {
    fail(`the MMD layer '${s.layer}' is not a tensor of the model (see harden inspect)`);
  }
}

export async function ntlModel(model: OnnxModel, source: string, data: { keep: Dataset; block: Dataset }, settings: NtlSettings, run: NtlRun = {}): Promise<{ proto: ModelProto; history: NtlStepRecord[] }> {
  const s = settings;
  const graph = new ImportedGraph(model, source);
  let optimizer: tf.Optimizer | undefined;
  try {
    validateNtlSettings(s, graph);
    checkImagesFit(graph, data.keep, 'keep data');
    checkImagesFit(graph, data.block, 'block data');
    const head = targetLayout(graph);
    for (const [what, d] of [['keep', data.keep], ['block', data.block]] as const) {
      const max = d.labels.reduce((m, v) => Math.max(m, v), -1);
      if (max >= head.classes) fail(`${what} data has label ${max} but the model has ${head.classes} classes`);
    }
    const layer = s.layer ?? head.head.featureTensor;
    const inputName = graph.inputs[0]!.name;
    const outputName = graph.outputNames[0]!;
    const variables = graph.trainableVariables();
    optimizer = tf.train.adam(s.learningRate);
    const key = JSON.parse(JSON.stringify(s)) as Record<string, unknown>;
    let history: NtlStepRecord[] = [];
    let start = 0;
    if (run.checkpointDir && run.resume) {
      const restored = await loadStepCheckpoint(run.checkpointDir, graph, optimizer, variables, key);
      if (restored) {
        start = restored.position;
        history = restored.history as unknown as NtlStepRecord[];
        run.progress?.onResume?.(start);
      }
    }
    run.progress?.onStart?.(s.steps);
    const keepSampler = new StepSampler(data.keep, s.batchSize, s.seed);
    const blockSampler = new StepSampler(data.block, s.batchSize, s.seed + 1);
    const every = run.checkpointEvery ?? 50;
    for (let step = start; step < s.steps; step++) {
      const kb = keepSampler.batch(step), bb = blockSampler.batch(step);
      const values = tf.tidy(() => {
        const n = kb.y.length;
        const x = tf.concat([tf.tensor(kb.x.data as Float32Array, kb.x.shape), tf.tensor(bb.x.data as Float32Array, bb.x.shape)], 0);
        const parts: tf.Scalar[] = [];
        const { value, grads } = tf.variableGrads(() => {
          const { outputs } = graph.run({ [inputName]: x }, { outputs: [outputName, layer] });
          const logits = outputs.get(outputName)! as tf.Tensor2D;
          const features = outputs.get(layer)!;
          const keep = crossEntropy(tf.slice(logits, [0, 0], [n, -1]) as tf.Tensor2D, tf.tensor1d(kb.y, 'int32'));
          const block = crossEntropy(tf.slice(logits, [n, 0], [bb.y.length, -1]) as tf.Tensor2D, tf.tensor1d(bb.y, 'int32'));
          const distance = mmd(tf.slice(features, 0, n), tf.slice(features, n, bb.y.length));
          parts.push(...[keep, block, distance].map((t) => tf.keep(t)));
          return tf.sub(keep, tf.mul(tf.minimum(tf.mul(block, s.alpha), 1), tf.minimum(tf.mul(distance, s.beta), 1))) as tf.Scalar;
        }, variables);
        optimizer!.applyGradients(grads);
        return [value, ...parts];
      });
      const [loss, keep, block, distance] = await Promise.all(values.map(async (t) => (await t.data())[0]!));
      tf.dispose(values);
      const record: NtlStepRecord = { step: step + 1, keep: keep!, block: block!, mmd: distance!, loss: loss! };
      if (!Number.isFinite(record.loss)) throw new HardenError(`ntl: diverged at step ${step + 1} (loss ${record.loss}); lower the learning rate`);
      history.push(record);
      run.progress?.onStep?.(record);
      if (run.checkpointDir && ((step + 1) % every === 0 || step + 1 === s.steps)) {
        await saveStepCheckpoint(run.checkpointDir, model, graph, optimizer, key, { position: step + 1, history: history as unknown as Record<string, unknown>[], tensors: new Map() });
      }
    }
    const proto = withWeights(model, graph.readWeights());
    const last = history.at(-1);
    setMetadata(proto, HARDEN_METADATA_KEY, JSON.stringify({ version: HARDEN_VERSION, operation: 'ntl', settings: { ...key, layer }, figures: { steps: history.length, last } }));
    return { proto, history };
  } finally {
    optimizer?.dispose();
    graph.dispose();
  }
}
