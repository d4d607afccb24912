/**
 * Non-transferable pruning (NTP) and the magnitude-pruning baseline.
 *
 * Model = encoder E (everything before the classifier) + source head h_s. A target head h_t is
 * fitted once as a linear probe on E's frozen features of the unauthorized ("block") data and then
 * held fixed. Per step, with a keep batch (x_s, y_s) and a block batch (x_t, y_t), f_t = E(x_t):
 *
 *   L = CE(h_s(E(x_s)), y_s) − α·min(CE(h_t(f_t), y_t), β) + λ_F·S_B/S_W(f_t) + λ_S·L_S(x_t) + ρ/2·Σ‖W − Z + U‖²
 *
 * L_S is the suppression hinge (suppression.ts): it kills the feature ReLUs on the block domain.
 * The paper's loss (λ_S = 0) reshapes the block features but leaves them trainable, so an attacker
 * who fine-tunes every weight got as much from the NTP model as from plain magnitude pruning
 * (README, "harden prune"); with dead units nothing upstream gets a gradient.
 *
 * ADMM for "W has at most (1 − s) non-zeros" (per layer or global):
 *   W-step: `stepsPerIteration` Adam steps on L;  Z = Π(W + U) (largest magnitudes);  U ← U + W − Z;
 *   stop after `iterations`, or once ‖W − Z‖/‖W‖ < `tolerance`.
 * Then W is hard-pruned to Z's support and fine-tuned masked on the keep loss, plus λ_S·L_S when
 * λ_S > 0 (hard pruning revives block units that the dense W had silenced; keep-only fine-tuning
 * would leave them alive). 'magnitude' skips ADMM: prune W to its largest magnitudes, then the
 * keep-only masked fine-tune.
 *
 * BatchNorm runs in inference mode throughout: the authorized model's running statistics are
 * kept as they are and the unauthorized data never enters them.
 */
import { HARDEN_VERSION } from '../version.js';
import * as tf from '@tensorflow/tfjs-core';
import { HardenError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import { StepSampler } from '../data/loader.js';
import { crossEntropy } from '../engine/tfjs-engine.js';
import type { NamedArrays } from '../engine/optimizer-state.js';
import { ImportedGraph } from '../import/graph.js';
import { HARDEN_METADATA_KEY, setMetadata, withWeights, type HardenRecord } from '../export/export.js';
import type { StepRun } from '../train/checkpoint.js';
import { loadStepCheckpoint, saveStepCheckpoint } from '../train/step-checkpoint.js';
import { checkImagesFit } from '../train/fit.js';
import { applyMask, projectOntoSparsity, prunableWeights, residual, sparsityMasks, type PruneScope } from './admm.js';
import { fisherRatio } from './fisher.js';
import { measureSuppression, suppressedLayers, suppressionHingeTf, type Suppression } from './suppression.js';
import { fitLinearProbe, targetLayout, type ProbeSettings, type SourceHead } from './source-head.js';
import type { HostTensor } from '../onnx/tensor.js';
import { selectedEngine, type EngineName } from '../engine/create.js';
import { ortPruneStepper } from './prune-ort.js';

export type PruneMethod = 'ntp' | 'magnitude';

export interface PruneSettings {
  method: PruneMethod;
  /** Fraction of the prunable weights set to zero, in [0, 1). */
  sparsity: number;
  scope: PruneScope;
  /** Weight α of the clipped block-domain cross-entropy that is pushed up. */
  alpha: number;
  /** Clip β of that cross-entropy: beyond it the term stops pushing. */
  beta: number;
  /** Weight λ_F of the block-domain Fisher ratio. */
  fisherWeight: number;
  /**
   * Weight λ_S of the block-domain suppression hinge (suppression.ts), applied in the ADMM steps
   * and, as the one block term, in the masked fine-tune (0: off, and the fine-tune is keep-only).
   */
  suppression: number;
  /** μ: the hinge drives the block pre-activations below −μ·κ/F. */
  suppressionMargin: number;
  /** How many ReLU layers, counted back from the classifier's input, the hinge acts on (each with its own κ). */
  suppressionLayers: number;
  /** ADMM penalty ρ. */
  rho: number;
  /** ρ is multiplied by this after every ADMM iteration (1: constant). */
  rhoGrowth: number;
  /** ADMM iterations (each a W-step, a Z-step and a U-step). */
  iterations: number;
  /** Adam steps per W-step. */
  stepsPerIteration: number;
  learningRate: number;
  /** Stop ADMM early once ‖W − Z‖/‖W‖ falls below this. */
  tolerance: number;
  /** Masked fine-tuning on the keep loss after pruning. */
  finetuneSteps: number;
  finetuneLearningRate: number;
  /** Keep and block batch size. */
  batchSize: number;
  /** Leave the classifier layer unpruned. */
  keepHeadDense: boolean;
  seed: number;
  /** Linear probe for h_t; seed defaults to `seed`. */
  probe?: Partial<ProbeSettings>;
  /** Training engine of the steps (default: the one selectEngine chose; tfjs when none was). */
  engine?: EngineName;
}

/**
 * Defaults for LeNet-5-sized models on 28×28 data (see experiments/ntp.md for what they give):
 * sparsity 0.9 over all weights together but the classifier, α = 1 with β = 5 (≈ twice ln 10: the
 * block-domain loss is pushed well past chance), λ_F = 10, λ_S = 30 with margin μ = 1 (seed 0,
 * mnist → fashion-mnist: without a margin 67 % of the block images' feature rows were all zero and
 * the dense attacker's SLC-AUC stayed at +0.23; with μ = 1, ≥ 99 %), ρ = 1 (with ρ = 0.01 the
 * relative residual ‖W − Z‖/‖W‖ stayed near 0.6 after 5 iterations on LeNet-5; with ρ = 1 it
 * reaches 0.04), 5 ADMM iterations of 150 steps at Adam 1e-3, then 3 000 masked fine-tuning
 * steps at 1e-3, batches of 64 (with the hinge on, 300 steps at 5e-4 and a pruned classifier left
 * the authorized accuracy at 95.10 %, 2.75 points below the unpruned model; 2 000 steps at 1e-3
 * and a dense classifier gave 96.65–97.00 % over seeds 0–2 on mnist → fashion-mnist, 3 000 steps
 * 96.90–97.00 %). One suppressed layer: an attacker who re-draws fc2 gets the advantage back
 * (SLC-AUC +0.21 / +0.77); two (fc2 and fc1) at μ = 0.25 hold against that attacker too (seed 0:
 * −0.48 / −1.33) but cost up to 1.45 points of authorized accuracy (96.40 % on seed 1, fashion),
 * so `suppressionLayers` stays 1 and 2 is an option (two at μ = 1: 95.05 %; at 0.5: 96.70 %).
 */
export const DEFAULT_PRUNE_SETTINGS: PruneSettings = {
  method: 'ntp',
  sparsity: 0.9,
  scope: 'global',
  alpha: 1,
  beta: 5,
  fisherWeight: 10,
  suppression: 30,
  suppressionMargin: 1,
  suppressionLayers: 1,
  rho: 1,
  rhoGrowth: 1,
  iterations: 5,
  stepsPerIteration: 150,
  learningRate: 1e-3,
  tolerance: 1e-3,
  finetuneSteps: 3000,
  finetuneLearningRate: 1e-3,
  batchSize: 64,
  keepHeadDense: true,
  seed: 0,
};

export interface PruneStepRecord {
  step: number;
  phase: 'admm' | 'finetune';
  /** CE on the keep batch. */
  keep: number;
  /** CE of h_t on the block batch (ADMM phase). */
  block?: number;
  /** S_B/S_W of the block batch's features (ADMM phase). */
  fisher?: number;
  /** ρ/2·Σ‖W − Z + U‖² (ADMM phase). */
  penalty?: number;
  /** L_S, the suppression hinge (with suppression; in both phases). */
  suppressed?: number;
  loss: number;
}

export interface AdmmIterationRecord {
  iteration: number;
  /** ‖W − Z‖ / ‖W‖ after the U-step. */
  residual: number;
}

export interface PruneProgress {
  onStart?(totalSteps: number): void;
  onStep?(record: PruneStepRecord): void;
  onIteration?(record: AdmmIterationRecord): void;
  onResume?(step: number): void;
}

export type PruneRun = StepRun<PruneProgress>;

export interface PruneResult {
  proto: ModelProto;
  /** The pruned weights' masks (1 kept, 0 pruned). */
  masks: Map<string, Uint8Array>;
  history: PruneStepRecord[];
  iterations: AdmmIterationRecord[];
}

function fail(what: string): never {
  throw new HardenError(`prune: ${what}`);
}

export function validatePruneSettings(s: PruneSettings, data: { keep: Dataset; block?: Dataset }): void {
  if (!['ntp', 'magnitude'].includes(s.method)) fail(`method must be ntp or magnitude, got '${String(s.method)}'`);
  if (!(s.sparsity >= 0 && s.sparsity < 1)) fail(`sparsity must be in [0, 1), got ${s.sparsity}`);
  if (!['layer', 'global'].includes(s.scope)) fail(`scope must be layer or global, got '${String(s.scope)}'`);
  for (const [name, v] of [['alpha', s.alpha], ['beta', s.beta], ['fisher weight', s.fisherWeight], ['suppression', s.suppression], ['suppression margin', s.suppressionMargin], ['rho', s.rho], ['tolerance', s.tolerance]] as const) {
    if (!(Number.isFinite(v) && v >= 0)) fail(`${name} must be a finite number ≥ 0, got ${v}`);
  }
  for (const [name, v] of [['iterations', s.iterations], ['steps per iteration', s.stepsPerIteration], ['fine-tune steps', s.finetuneSteps]] as const) {
    if (!(Number.isInteger(v) && v >= 0)) fail(`${name} must be an integer ≥ 0, got ${v}`);
  }
  if (!(Number.isInteger(s.suppressionLayers) && s.suppressionLayers >= 1)) fail(`suppression layers must be an integer ≥ 1, got ${s.suppressionLayers}`);
  if (!(Number.isFinite(s.rhoGrowth) && s.rhoGrowth >= 1)) fail(`rho growth must be a finite number ≥ 1, got ${s.rhoGrowth}`);
  if (!(Number.isInteger(s.batchSize) && s.batchSize >= 1)) fail(`batch size must be a positive integer, got ${s.batchSize}`);
  if (!(s.learningRate > 0) || !(s.finetuneLearningRate > 0)) fail(`learning rates must be > 0, got ${s.learningRate} and ${s.finetuneLearningRate}`);
  if (data.keep.labels.length === 0) fail(`keep data '${data.keep.name}' is empty`);
  if (s.method === 'ntp') {
    if (!data.block) fail('ntp needs block (unauthorized) data');
    const present = new Set(data.block.labels).size;
    if (present < 2) fail(`block data '${data.block.name}' has ${present} class${present === 1 ? '' : 'es'}; the Fisher ratio needs at least 2`);
  }
}

function settingsKey(s: PruneSettings): Record<string, unknown> {
  return JSON.parse(JSON.stringify(s)) as Record<string, unknown>;
}

const toArrays = (m: Map<string, Float32Array>, prefix: string, shapes: Map<string, number[]>): NamedArrays =>
  new Map([...m].map(([name, data]) => [`${prefix}:${name}`, { shape: shapes.get(name)!, data }]));

function fromArrays(arrays: NamedArrays, prefix: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [key, { data }] of arrays) if (key.startsWith(`${prefix}:`)) out.set(key.slice(prefix.length + 1), data);
  return out;
}

/** One step's terms (block, fisher and penalty in the ADMM phase only). */
export interface PruneStepTerms {
  loss: number;
  keep: number;
  block?: number;
  fisher?: number;
  penalty?: number;
  /** L_S, the suppression hinge on the block batch (with suppression). */
  suppressed?: number;
}

/** One engine's side of a pruning run: steps, the pruned weights, masks, optimizer and checkpoints. */
export interface PruneStepper {
  /**
   * One Adam step (a fresh Adam at `learningRate` if none is active) on the keep CE, plus with
   * a block batch λ_S·L_S and, in the 'admm' phase, −α·min(CE_t, β) + λ_F·S_B/S_W +
   * ρ/2·Σ‖W − anchor‖²; then the masks.
   */
  step(keep: Batch, block: Batch | undefined, rho: number, learningRate: number, phase: 'admm' | 'finetune'): Promise<PruneStepTerms>;
  /** Z − U, the point the ADMM penalty pulls each pruned weight towards. */
  setAnchors(anchors: Map<string, Float32Array>): void;
  readPruned(): Promise<Map<string, Float32Array>>;
  writeWeights(weights: Map<string, Float32Array>): void;
  setMasks(masks: Map<string, Uint8Array>): void;
  /** Drop the optimizer (the next step starts a fresh one). */
  resetOptimizer(): void;
  /** The model's weights and statistics by initializer name. */
  weights(): Map<string, Float32Array>;
  save(dir: string, key: Record<string, unknown>, position: number, history: Record<string, unknown>[], tensors: NamedArrays): Promise<void>;
  /** Restores weights and the optimizer made for the checkpoint's position (`learningRateAt`). */
  restore(dir: string, key: Record<string, unknown>, learningRateAt: (position: number) => number): Promise<{ position: number; history: Record<string, unknown>[]; tensors: NamedArrays } | undefined>;
  dispose(): void;
}

type Batch = { x: HostTensor; y: Int32Array };

/** What a stepper is built from. */
export interface PruneProblem {
  model: OnnxModel;
  source: string;
  graph: ImportedGraph;
  featureTensor: string;
  learnable: string[];
  pruned: string[];
  /** h_t (ntp only). */
  targetHead?: SourceHead;
  /** The suppression hinges' tensors, scales and margins, one per layer (ntp with suppression > 0 only). */
  suppression?: Suppression[];
  settings: PruneSettings;
}

/**
 * Prune `model` (see the module comment). Checkpoints every `run.checkpointEvery` steps and at
 * the end of each ADMM iteration (state.json's `epoch` is the position in the step schedule);
 * with `run.resume`, continues from the last checkpoint: batches depend only on (seed, step),
 * h_t is refitted on the original encoder, and weights, Z, U, masks and Adam state are restored.
 * The steps run on settings.engine (default: selectEngine's choice; see prune-ort.ts for ort).
 */
export async function pruneModel(model: OnnxModel, source: string, data: { keep: Dataset; block?: Dataset }, settings: PruneSettings, run: PruneRun = {}): Promise<PruneResult> {
  const s: PruneSettings = { ...settings, engine: settings.engine ?? selectedEngine() };
  validatePruneSettings(s, data);
  const graph = new ImportedGraph(model, source);
  let targetHead: SourceHead | undefined;
  let stepper: PruneStepper | undefined;
  try {
    if (graph.inputs.length !== 1) fail(`${source}: expected one image input, found ${graph.inputs.length}`);
    checkImagesFit(graph, data.keep, 'keep data');
    if (data.block) checkImagesFit(graph, data.block, 'block data');
    const layout = targetLayout(graph);
    const learnable = [...graph.variables.keys()].filter((n) => !graph.statisticNames.has(n));
    const pruned = prunableWeights(graph.model.proto, learnable, s.keepHeadDense ? layout.head.parameters : []);
    if (pruned.length === 0) fail(`${source}: no Conv/Gemm/MatMul weights to prune`);
    const shapes = new Map(pruned.map((n) => [n, [...graph.variables.get(n)!.shape]]));

    // h_t on the original encoder (before any checkpoint is restored, so resume refits the same one).
    if (s.method === 'ntp') targetHead = await fitLinearProbe(graph, data.block!, { seed: s.seed, ...s.probe }, data.block!.classes);
    // Measured on the original model (before any checkpoint is restored) like h_t.
    let suppression: Suppression[] | undefined;
    if (s.method === 'ntp' && s.suppression > 0) {
      const layers = suppressedLayers(graph.model.proto, layout.head.featureTensor, s.suppressionLayers);
      if (layers.length < s.suppressionLayers) fail(`${source}: suppression layers ${s.suppressionLayers}, but only ${layers.length} ReLU layer${layers.length === 1 ? '' : 's'} lead${layers.length === 1 ? 's' : ''} to the classifier`);
      suppression = layers.map((t) => measureSuppression(graph, t, data.keep, s.suppressionMargin));
    }
    const problem: PruneProblem = { model, source, graph, featureTensor: layout.head.featureTensor, learnable, pruned, targetHead, suppression, settings: s };
    const st: PruneStepper = (stepper = s.engine === 'ort' ? await ortPruneStepper(problem) : tfjsPruneStepper(problem));

    const admmSteps = s.method === 'ntp' ? s.iterations * s.stepsPerIteration : 0;
    const total = admmSteps + s.finetuneSteps;
    const learningRateAt = (step: number) => (step < admmSteps ? s.learningRate : s.finetuneLearningRate);
    let z = new Map<string, Float32Array>(), u = new Map<string, Float32Array>();
    let masks: Map<string, Uint8Array> | undefined;
    if (admmSteps > 0) {
      const w = await st.readPruned();
      z = projectOntoSparsity(w, new Map([...w].map(([n, v]) => [n, new Float32Array(v.length)])), s.sparsity, s.scope).z;
      u = new Map([...w].map(([n, v]) => [n, new Float32Array(v.length)]));
    }

    const key = settingsKey(s);
    let history: PruneStepRecord[] = [];
    let iterations: AdmmIterationRecord[] = [];
    let start = 0;
    if (run.checkpointDir && run.resume) {
      const restored = await st.restore(run.checkpointDir, key, learningRateAt);
      if (restored) {
        z = fromArrays(restored.tensors, 'Z');
        u = fromArrays(restored.tensors, 'U');
        const m = fromArrays(restored.tensors, 'mask');
        if (m.size) masks = new Map([...m].map(([n, v]) => [n, Uint8Array.from(v)]));
        start = restored.position;
        ({ history, iterations } = restored.history[0] as unknown as { history: PruneStepRecord[]; iterations: AdmmIterationRecord[] });
        run.progress?.onResume?.(start);
      }
    }
    run.progress?.onStart?.(total);

    const keepSampler = new StepSampler(data.keep, s.batchSize, s.seed);
    const blockSampler = data.block ? new StepSampler(data.block, s.batchSize, s.seed + 1) : undefined;
    const every = run.checkpointEvery ?? 50;
    if (masks) st.setMasks(masks);
    // Z − U changes only at Z/U-steps.
    const refreshAnchors = () => st.setAnchors(new Map([...z].map(([n, zn]) => [n, zn.map((zi, j) => zi - u.get(n)![j]!)])));
    refreshAnchors();

    const checkpoint = async (position: number) => {
      if (!run.checkpointDir) return;
      const tensors: NamedArrays = new Map([...toArrays(z, 'Z', shapes), ...toArrays(u, 'U', shapes)]);
      for (const [n, m] of masks ?? []) tensors.set(`mask:${n}`, { shape: shapes.get(n)!, data: Float32Array.from(m) });
      await st.save(run.checkpointDir, key, position, [{ history, iterations } as unknown as Record<string, unknown>], tensors);
    };

    for (let step = start; step < total; step++) {
      if (step === admmSteps && !masks) {
        // Hard-prune: to Z's support after ADMM (projecting Z keeps exactly its largest entries, so
        // the count stays exact even if a kept entry of W + U was 0), to W's largest magnitudes for
        // the baseline.
        const w = await st.readPruned();
        masks = sparsityMasks(admmSteps > 0 ? z : w, s.sparsity, s.scope);
        st.writeWeights(new Map([...w].map(([n, v]) => [n, applyMask(v, masks!.get(n)!)])));
        st.setMasks(masks);
        st.resetOptimizer();
      }
      const phase = step < admmSteps ? 'admm' : 'finetune';
      const kb = keepSampler.batch(step);
      const bb = phase === 'admm' || suppression ? blockSampler!.batch(step) : undefined;
      const rho = s.rho * s.rhoGrowth ** Math.floor(step / s.stepsPerIteration);
      const terms = await st.step(kb, bb, rho, learningRateAt(step), phase);
      const record: PruneStepRecord = { step: step + 1, phase, keep: terms.keep, loss: terms.loss, ...(phase === 'admm' ? { block: terms.block, fisher: terms.fisher, penalty: terms.penalty } : {}), ...(terms.suppressed !== undefined ? { suppressed: terms.suppressed } : {}) };
      if (!Number.isFinite(record.loss)) throw new HardenError(`prune: diverged at step ${step + 1} (loss ${record.loss}); lower the learning rate`);
      history.push(record);
      run.progress?.onStep?.(record);

      let position = step + 1;
      if (phase === 'admm' && position % s.stepsPerIteration === 0) {
        const w = await st.readPruned();
        const projected = projectOntoSparsity(w, u, s.sparsity, s.scope);
        z = projected.z;
        for (const [n, un] of u) {
          const wn = w.get(n)!, zn = z.get(n)!;
          for (let i = 0; i < un.length; i++) un[i] = un[i]! + wn[i]! - zn[i]!;
        }
        refreshAnchors();
        const r = residual(w, z);
        const it: AdmmIterationRecord = { iteration: position / s.stepsPerIteration, residual: r.difference / Math.max(r.norm, 1e-12) };
        iterations.push(it);
        run.progress?.onIteration?.(it);
        // Converged: skip the remaining W-steps (the next position is the fine-tune phase).
        if (it.residual < s.tolerance && position < admmSteps) step = (position = admmSteps) - 1;
        await checkpoint(position);
      } else if (position % every === 0 || position === total) {
        await checkpoint(position);
      }
    }
    if (!masks) {
      // No steps at all: prune in place without fine-tuning.
      const w = await st.readPruned();
      masks = sparsityMasks(w, s.sparsity, s.scope);
      st.writeWeights(new Map([...w].map(([n, v]) => [n, applyMask(v, masks!.get(n)!)])));
    }
    return { proto: finish(model, st.weights(), s, history, iterations, masks), masks, history, iterations };
  } finally {
    stepper?.dispose();
    targetHead?.dispose();
    graph.dispose();
  }
}

/** The steps on the tfjs graph (autodiff of the whole loss, one tf.Optimizer). */
function tfjsPruneStepper({ model, graph, featureTensor, learnable, pruned, targetHead, suppression, settings: s }: PruneProblem): PruneStepper {
  const inputName = graph.inputs[0]!.name;
  const outputName = graph.outputNames[0]!;
  const variables = learnable.map((n) => graph.variables.get(n)!);
  const prunedVariables = pruned.map((n) => graph.variables.get(n)!);
  let optimizer: tf.Optimizer | undefined;
  // Pruning masks and ADMM anchors (Z − U) as device tensors.
  const maskTensors = new Map<string, tf.Tensor>();
  const anchors = new Map<string, tf.Tensor>();
  const shapeOf = (n: string) => graph.variables.get(n)!.shape;
  return {
    async step(kb, bb, rho, learningRate, phase) {
      optimizer ??= tf.train.adam(learningRate);
      const admm = phase === 'admm';
      const values = tf.tidy(() => {
        const nk = kb.y.length;
        const x = tf.tensor(kb.x.data as Float32Array, kb.x.shape, 'float32');
        const input = bb ? tf.concat([x, tf.tensor(bb.x.data as Float32Array, bb.x.shape, 'float32')], 0) : x;
        const yKeep = tf.tensor1d(kb.y, 'int32');
        const parts: tf.Scalar[] = [];
        const { value, grads } = tf.variableGrads(() => {
          const wanted = bb ? [outputName, ...(admm ? [featureTensor] : []), ...(suppression ?? []).map((h) => h.tensor)] : [outputName];
          const { outputs } = graph.run({ [inputName]: input }, { outputs: wanted });
          const logits = outputs.get(outputName)! as tf.Tensor2D;
          const keepLoss = crossEntropy(bb ? (tf.slice(logits, [0, 0], [nk, -1]) as tf.Tensor2D) : logits, yKeep);
          parts.push(tf.keep(keepLoss));
          if (!bb) return keepLoss;
          const terms: tf.Scalar[] = [keepLoss];
          let suppressed: tf.Scalar | undefined;
          if (suppression) {
            suppressed = tf.addN(suppression.map((h) => suppressionHingeTf(tf.slice(outputs.get(h.tensor)!, nk, bb.y.length), h))) as tf.Scalar;
            terms.push(tf.mul(suppressed, s.suppression));
          }
          if (!admm) {
            if (suppressed) parts.push(tf.keep(suppressed));
            return tf.addN(terms) as tf.Scalar;
          }
          const f = tf.reshape(tf.slice(outputs.get(featureTensor)!, nk, bb.y.length), [bb.y.length, -1]);
          const blockLoss = crossEntropy(targetHead!.logits(f), tf.tensor1d(bb.y, 'int32'));
          const fisher = fisherRatio(f, bb.y);
          let penalty = tf.scalar(0);
          prunedVariables.forEach((v, i) => (penalty = tf.add(penalty, tf.sum(tf.square(tf.sub(v, anchors.get(pruned[i]!)!))))));
          penalty = tf.mul(penalty, rho / 2);
          parts.push(...[blockLoss, fisher, penalty, ...(suppressed ? [suppressed] : [])].map((t) => tf.keep(t)));
          terms.push(tf.mul(tf.minimum(blockLoss, s.beta), -s.alpha), tf.mul(fisher, s.fisherWeight), penalty);
          return tf.addN(terms) as tf.Scalar;
        }, variables);
        optimizer!.applyGradients(grads);
        for (const [n, mask] of maskTensors) graph.variables.get(n)!.assign(tf.add(tf.mul(graph.variables.get(n)!, mask), 0)); // + 0: no −0
        return [value, ...parts];
      });
      const numbers = await Promise.all(values.map(async (t) => (await t.data())[0]!));
      tf.dispose(values);
      const [loss, keep] = numbers as [number, number];
      if (!bb) return { loss, keep };
      if (!admm) return { loss, keep, suppressed: numbers[2] };
      const [block, fisher, penalty, suppressed] = numbers.slice(2);
      return { loss, keep, block, fisher, penalty, suppressed };
    },
    setAnchors(next) {
      tf.dispose([...anchors.values()]);
      for (const [n, a] of next) anchors.set(n, tf.tensor(a, shapeOf(n), 'float32'));
    },
    readPruned: async () => new Map(await Promise.all(pruned.map(async (n) => [n, (await graph.variables.get(n)!.data()) as Float32Array] as const))),
    writeWeights: (w) => graph.writeWeights(w),
    setMasks(m) {
      tf.dispose([...maskTensors.values()]);
      for (const [n, mask] of m) maskTensors.set(n, tf.tensor(Float32Array.from(mask), shapeOf(n), 'float32'));
    },
    resetOptimizer() {
      optimizer?.dispose();
      optimizer = undefined;
    },
    weights: () => graph.readWeights(),
    save: (dir, key, position, history, tensors) => saveStepCheckpoint(dir, model, graph, optimizer, key, { position, history, tensors }),
    async restore(dir, key, learningRateAt) {
      const restored = await loadStepCheckpoint(dir, graph, (position) => tf.train.adam(learningRateAt(position)), variables, key);
      if (!restored) return undefined;
      optimizer = restored.optimizer;
      return restored;
    },
    dispose() {
      tf.dispose([...maskTensors.values(), ...anchors.values()]);
      optimizer?.dispose();
    },
  };
}

/** The pruned model with a Harden record (operation 'prune') in metadata_props. */
function finish(model: OnnxModel, weights: Map<string, Float32Array>, s: PruneSettings, history: PruneStepRecord[], iterations: AdmmIterationRecord[], masks: Map<string, Uint8Array>): ModelProto {
  const proto = withWeights(model, weights);
  let zeros = 0, size = 0;
  for (const m of masks.values()) (size += m.length), (zeros += m.length - m.reduce((a, b) => a + b, 0));
  const last = (phase: PruneStepRecord['phase']) => history.filter((r) => r.phase === phase).at(-1);
  const record: HardenRecord = {
    version: HARDEN_VERSION,
    operation: 'prune',
    settings: settingsKey(s),
    figures: {
      prunedTensors: [...masks.keys()],
      sparsity: size ? zeros / size : 0,
      admmIterations: iterations,
      lastAdmmStep: last('admm'),
      lastFinetuneStep: last('finetune'),
    },
  };
  setMetadata(proto, HARDEN_METADATA_KEY, JSON.stringify(record));
  return proto;
}
