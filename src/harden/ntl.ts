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
 * mode (as in prune.ts): the authorized statistics stay as they are. The steps run on either
 * engine (settings.engine; ntl-ort.ts for ort); loop, samplers and checkpoints are shared.
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
import type { HostTensor } from '../onnx/tensor.js';
import { selectedEngine, type EngineName } from '../engine/create.js';
import { ortNtlStepper } from './ntl-ort.js';

export interface NtlSettings {
  alpha: number;
  beta: number;
  /** Tensor whose features MMD compares; default the classifier's input. */
  layer?: string;
  learningRate: number;
  steps: number;
  batchSize: number;
  seed: number;
  /** Training engine of the steps (default: the one selectEngine chose). */
  engine?: EngineName;
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

/** One engine's side of NTL: its steps, weights and checkpoints. */
export interface NtlStepper {
  /** One Adam step on a keep batch and a block batch; returns the loss and its terms. */
  step(kb: { x: HostTensor; y: Int32Array }, bb: { x: HostTensor; y: Int32Array }): Promise<Omit<NtlStepRecord, 'step'>>;
  weights(): Map<string, Float32Array>;
  save(dir: string, key: Record<string, unknown>, position: number, history: NtlStepRecord[]): Promise<void>;
  restore(dir: string, key: Record<string, unknown>): Promise<{ position: number; history: NtlStepRecord[] } | undefined>;
  dispose(): void;
}

export interface NtlProblem {
  model: OnnxModel;
  source: string;
  graph: ImportedGraph;
  /** The tensor MMD compares. */
  layer: string;
  settings: NtlSettings;
}

/** L = KL_s − min(1, α·KL_t)·min(1, β·MMD), from its three terms. */
export const ntlLoss = (s: NtlSettings, keep: number, block: number, distance: number): number =>
  keep - Math.min(block * s.alpha, 1) * Math.min(distance * s.beta, 1);

export async function ntlModel(model: OnnxModel, source: string, data: { keep: Dataset; block: Dataset }, settings: NtlSettings, run: NtlRun = {}): Promise<{ proto: ModelProto; history: NtlStepRecord[] }> {
  const s: NtlSettings = { ...settings, engine: settings.engine ?? selectedEngine() };
  const graph = new ImportedGraph(model, source);
  let stepper: NtlStepper | undefined;
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
    const problem: NtlProblem = { model, source, graph, layer, settings: s };
    stepper = s.engine === 'ort' ? ortNtlStepper(problem) : tfjsNtlStepper(problem);
    const key = JSON.parse(JSON.stringify(s)) as Record<string, unknown>;
    let history: NtlStepRecord[] = [];
    let start = 0;
    if (run.checkpointDir && run.resume) {
      const restored = await stepper.restore(run.checkpointDir, key);
      if (restored) {
        ({ position: start, history } = restored);
        run.progress?.onResume?.(start);
      }
    }
    run.progress?.onStart?.(s.steps);
    const keepSampler = new StepSampler(data.keep, s.batchSize, s.seed);
    const blockSampler = new StepSampler(data.block, s.batchSize, s.seed + 1);
    const every = run.checkpointEvery ?? 50;
    for (let step = start; step < s.steps; step++) {
      const record: NtlStepRecord = { step: step + 1, ...(await stepper.step(keepSampler.batch(step), blockSampler.batch(step))) };
      if (!Number.isFinite(record.loss)) throw new HardenError(`ntl: diverged at step ${step + 1} (loss ${record.loss}); lower the learning rate`);
      history.push(record);
      run.progress?.onStep?.(record);
      if (run.checkpointDir && ((step + 1) % every === 0 || step + 1 === s.steps)) await stepper.save(run.checkpointDir, key, step + 1, history);
    }
    const proto = withWeights(model, stepper.weights());
    const last = history.at(-1);
    setMetadata(proto, HARDEN_METADATA_KEY, JSON.stringify({ version: HARDEN_VERSION, operation: 'ntl', settings: { ...key, layer }, figures: { steps: history.length, last } }));
    return { proto, history };
  } finally {
    stepper?.dispose();
    graph.dispose();
  }
}

/** The steps on the tfjs graph: the whole loss under tfjs's tape. */
function tfjsNtlStepper({ model, graph, layer, settings: s }: NtlProblem): NtlStepper {
  const inputName = graph.inputs[0]!.name;
  const outputName = graph.outputNames[0]!;
  const variables = graph.trainableVariables();
  const optimizer: tf.Optimizer = tf.train.adam(s.learningRate);
  return {
    async step(kb, bb) {
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
        optimizer.applyGradients(grads);
        return [value, ...parts];
      });
      const [loss, keep, block, distance] = await Promise.all(values.map(async (t) => (await t.data())[0]!));
      tf.dispose(values);
      return { keep: keep!, block: block!, mmd: distance!, loss: loss! };
    },
    weights: () => graph.readWeights(),
    save: (dir, key, position, history) =>
      saveStepCheckpoint(dir, model, graph, optimizer, key, { position, history: history as unknown as Record<string, unknown>[], tensors: new Map() }),
    async restore(dir, key) {
      const restored = await loadStepCheckpoint(dir, graph, optimizer, variables, key);
      if (!restored) return undefined;
      return { position: restored.position, history: restored.history as unknown as NtlStepRecord[] };
    },
    dispose: () => optimizer.dispose(),
  };
}
