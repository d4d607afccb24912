/**
 * Disposable transfer learning: make a transfer-learned model M = backbone B + target head H_t
 * useless as a starting point for the source task while keeping its target accuracy.
 *
 * Per step, with a target batch x_t and a forget (source) batch split into k chunks (x_i, y_i):
 *   L_KD = T²·KL(softmax(M₀(x_t)/T) ‖ softmax(M(x_t)/T))       (M₀ = frozen copy of M)
 *   gc/ngc: L = L_KD + λ·L_GC, L_GC = Σ_{i<j}⟨g_i, g_j⟩ (ngc: cosines),
 *           g_i = ∇_θ CE(H_s(B(x_i)), y_i), θ = backbone parameters (exact gradient by HVPs)
 *   rtf:    L = L_KD + λ·CE(H_s(B(x_s)), random labels)
 *   utf:    L = L_KD + λ·KL(uniform ‖ softmax(H_s(B(x_s))))
 *   none:   the model is returned unchanged.
 * H_s is fixed (see source-head.ts) unless trained along. All parameters of M (backbone and H_t)
 * are updated by one optimizer (Adam unless settings.optimizer names sgd/momentum); only L_KD
 * reaches H_t (the forget terms never touch it), so the target head can follow the backbone. BatchNorm runs in inference mode throughout: with
 * small chunks, batch statistics would be noisy and differ between chunks (the per-chunk
 * gradients would then depend on chunk composition through BN), and the stored statistics of M
 * are kept as they are.
 *
 * Options change the step from the plain gradient of L: the forget gradient can be freed of its
 * conflict with L_KD's (projectForget) and clipped (forgetGradNorm) before λ; L_KD can be taken
 * over the forget images too (distilOnForget); and repairSteps distillation-only steps can follow.
 *
 * The steps run on either training engine (settings.engine; see dispose-ort.ts for ort): the
 * loop, samplers, random labels, checkpoints and the record are shared.
 */
import { HARDEN_VERSION } from '../version.js';
import * as tf from '@tensorflow/tfjs-core';
import { HardenError } from '../errors.js';
import { cloneModel, type OnnxModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import type { HostTensor } from '../onnx/tensor.js';
import type { Dataset } from '../data/types.js';
import { ClassChunkSampler, FixedBatchSampler, StepSampler } from '../data/loader.js';
import { crossEntropy, makeOptimizer } from '../engine/tfjs-engine.js';
import type { OptimizerSpec } from '../engine/trainable.js';
import { ImportedGraph } from '../import/graph.js';
import { HARDEN_METADATA_KEY, setMetadata, withWeights, type HardenRecord } from '../export/export.js';
import type { StepRun } from '../train/checkpoint.js';
import { loadStepCheckpoint, saveStepCheckpoint } from '../train/step-checkpoint.js';
import { Random } from '../util/random.js';
import { checkImagesFit } from '../train/fit.js';
import { cropAndFlip } from '../train/augment.js';
import { distillationLoss, gradientCollision } from './losses.js';
import { classesUsedByTarget, featureCloud, restrictForget, restrictHead } from './forget-classes.js';
import { withUnlabelledImages } from '../data/subset.js';
import type { NamedArrays } from '../engine/optimizer-state.js';
import { buildSourceHead, datasetFeatures, fitProbeOnFeatures, targetLayout, type HeadLayout, type ProbeSettings, type SourceHead } from './source-head.js';
import { selectedEngine, type EngineName } from '../engine/create.js';
import { ortDisposeStepper } from './dispose-ort.js';

export type DisposeMethod = 'gc' | 'ngc' | 'rtf' | 'utf' | 'none';

export interface DisposeSettings {
  method: DisposeMethod;
  /** Weight of the forget term (λ ≥ 0). */
  lambda: number;
  /** k: chunks the forget batch is split into (gc/ngc), ≥ 2. */
  chunks: number;
  /** Distillation temperature T. */
  temperature: number;
  learningRate: number;
  steps: number;
  /** Target (retain) batch size. */
  batchSize: number;
  /** Forget batch size; a multiple of `chunks`. */
  forgetBatchSize: number;
  seed: number;
  /** Source model to take H_s from; without it H_s is a linear probe fitted on the forget data. */
  sourceModel?: OnnxModel;
  /** Linear-probe settings (H_s without a source model, and forgetClasses 'auto'); seed defaults to `seed`. */
  probe?: Partial<ProbeSettings>;
  /**
   * Dispose of these forget-data classes only (forget-classes.ts), e.g. an audit's lingering
   * classes. 'auto': every source class but those the target task is — for each retain class, the
   * source class a linear probe calls more than half of its images, where those images also lie
   * in that class's feature cloud (classesUsedByTarget, featureCloud); every class where the
   * forget data lacks some of H_s's classes (it then is not the whole source task, and a target
   * class would be read as the nearest class given), where fewer than two would remain, or where
   * the rest cannot fill the chunking (a fixed batch's images, class chunks' classes). 'all' or
   * absent: every class. A list needs at least two distinct classes.
   */
  forgetClasses?: number[] | 'auto' | 'all';
  /** Training engine of the steps (default: the one selectEngine chose; tfjs when none was). */
  engine?: EngineName;
  /**
   * H_s trained along (> 0): after every step, one SGD step at this rate on H_s's cross-entropy
   * over the forget batch with the backbone fixed, so the forget term always faces a head that
   * still reads the source task from the current features. 0 or absent: H_s stays fixed.
   */
  sourceHeadLearningRate?: number;
  /**
   * θ of the forget term: backbone parameters whose names start with one of these (default:
   * the whole backbone). Distillation still updates every parameter.
   */
  forgetParameters?: string[];
  /**
   * Optimizer of the steps (default Adam). Adam's update does not depend on the gradient's scale,
   * so near M₀ (where L_KD's gradient is ~0) λ has no effect under it; sgd/momentum let λ act.
   */
  optimizer?: OptimizerSpec['kind'];
  /**
   * Clip the step's whole gradient (L_KD + λ·forget term, every parameter) to this global L2
   * norm before the optimizer sees it (absent: no clipping). L_GC is unbounded below; under
   * sgd/momentum a growing collision gradient can otherwise throw the model out of its basin.
   */
  maxGradNorm?: number;
  /**
   * Clip the forget term's gradient alone (before λ) to this global L2 norm (absent: no clip).
   * Fixed-chunk L_GC runs away below zero and its gradient grows with it; under Adam, which
   * normalizes the summed gradient, it then drowns L_KD's and λ stops trading the two. Clipped,
   * the forget push has a bounded size and L_KD's pull grows with the drift until they balance.
   */
  forgetGradNorm?: number;
  /**
   * Project out of the forget gradient its component against L_KD's gradient when the two
   * conflict (negative inner product; PCGrad), so that, before the optimizer's own scaling, the
   * forget step does not raise L_KD to first order. Not on the first step: at M₀ L_KD's gradient
   * is rounding noise, whose direction is arbitrary (and differs between engines). Absent: false
   * (DEFAULT_DISPOSE_SETTINGS: true).
   */
  projectForget?: boolean;
  /**
   * Distil on the forget data's images too (unlabelled: M₀'s outputs are the targets), drawn
   * with the retain images into one pool. A few retain images cannot hold the target task's
   * generalization while the forget term moves the backbone; M₀'s outputs on the wider source
   * images do. All the forget images given, also where forgetClasses restricts the forget term
   * to some classes (the others' images hold the target task as well). Absent: false
   * (DEFAULT_DISPOSE_SETTINGS: true).
   */
  distilOnForget?: boolean;
  /**
   * How gc/ngc split the forget batch: 'random' (when absent; chunks of a shuffled batch), 'class'
   * (each chunk one class, the batch's classes distinct) or 'fixed' (below). With random chunks, E[L_GC] =
   * C(k,2)·(‖μ‖² − tr Σ/(N−1)) over the forget set (μ, Σ: mean and covariance of per-example
   * gradients): a penalty on the source gradient's norm. With class chunks it is
   * ∝ C²‖μ‖² − Σ_c ‖μ_c‖²: it also rewards large, opposed per-class gradients (README).
   * 'fixed': one forget batch (a seeded random choice) and the same chunks at every step, so
   * L_GC = ½(‖Σ_i μ_i‖² − Σ_i ‖μ_i‖²) over those chunks' mean gradients.
   */
  chunking?: 'random' | 'class' | 'fixed';
  /**
   * gc/ngc: a floor under the forget term, λ·max(L_GC, floor): while L_GC is below it the step
   * has no collision gradient (distillation alone). L_GC is unbounded below; with fixed chunks it
   * runs to −10⁷ and takes the target task with it. Absent: no floor.
   */
  collisionFloor?: number;
  /**
   * Distil on augmented target batches (a random crop of the 4-pixel zero-padded image and a
   * horizontal flip, train/augment.ts; teacher and student see the same images), so distillation
   * holds the model around the retain images rather than on them alone. Default false.
   */
  retainAugment?: boolean;
  /**
   * After every step, scale each weight tensor of θ (rank ≥ 2) whose L2 norm has grown past its
   * norm in M back to it. Fixed-chunk GC otherwise inflates some layers (fc1's norm ×3 on LeNet-5
   * at 6 000 steps), a rescaling that lowers PL without changing what the features can do.
   */
  capNorms?: boolean;
  /**
   * Distillation-only steps after the `steps` disposal steps (default 0): L_KD against the TL
   * model M₀ with no forget term, so the target task recovers from what the forget term cost it.
   */
  repairSteps?: number;
}

/**
 * The issue's loss as written, with none of the options: GC with λ = 1, k = 4 random chunks of 16
 * forget images, T = 4, Adam 1e-4, 500 steps of 64 target images, every source class. On the
 * reference scenario it barely moves PL (experiments/dtl-research-*); the research experiments
 * that study the plain loss start from it.
 */
export const PLAIN_DISPOSE_SETTINGS: DisposeSettings = {
  method: 'gc',
  lambda: 1,
  chunks: 4,
  temperature: 4,
  learningRate: 1e-4,
  steps: 500,
  batchSize: 64,
  forgetBatchSize: 64,
  seed: 0,
};

/**
 * The defaults: the plain loss with what the reference scenario showed it needs to dispose while
 * holding the target task (experiments/dtl.md, README "Disposable transfer learning"): one fixed
 * forget batch whose collision runs away (chunking 'fixed'), its gradient clipped to norm 30 and
 * freed of its conflict with distillation's, distillation on the forget images too, the forget
 * term on the source classes the target task does not use, 6 000 steps.
 */
export const DEFAULT_DISPOSE_SETTINGS: DisposeSettings = {
  ...PLAIN_DISPOSE_SETTINGS,
  steps: 6000,
  chunking: 'fixed',
  forgetGradNorm: 30,
  projectForget: true,
  distilOnForget: true,
  forgetClasses: 'auto',
};

export interface DisposeStepRecord {
  step: number;
  /** L_KD on the target batch. */
  distillation: number;
  /** The forget term before λ: L_GC / L_NGC, the rtf cross-entropy or the utf KL. */
  forget: number;
  /** L_KD + λ·forget. */
  loss: number;
}

export interface DisposeProgress {
  onStart?(steps: number, head: SourceHead): void;
  onStep?(record: DisposeStepRecord): void;
  onResume?(step: number): void;
}

export type DisposeRun = StepRun<DisposeProgress>;

export interface DisposeResult {
  proto: ModelProto;
  history: DisposeStepRecord[];
}

function fail(what: string): never {
  throw new HardenError(`dispose: ${what}`);
}

/** One engine's side of a disposal: its steps, weights and checkpoints. */
export interface DisposeStepper {
  /**
   * One optimizer step of L_KD on the target batch plus λ·(forget term) on the forget batch (split
   * into k chunks for gc/ngc; rtfLabels are the random targets of rtf); returns both terms.
   * Without a forget batch (repair steps) L_KD alone, and a forget term of 0. `atStart`: the
   * weights are still M₀'s (the run's first step), where L_KD's gradient is rounding noise.
   */
  step(target: HostTensor, forget: { x: HostTensor; y: Int32Array } | undefined, rtfLabels: Int32Array | undefined, atStart: boolean): Promise<{ distillation: number; forget: number }>;
  /** Current weights and BN statistics by initializer name (the model's own only). */
  weights(): Map<string, Float32Array>;
  save(dir: string, key: Record<string, unknown>, position: number, history: DisposeStepRecord[]): Promise<void>;
  /** The checkpoint's position and history, with weights and optimizer state restored. */
  restore(dir: string, key: Record<string, unknown>): Promise<{ position: number; history: DisposeStepRecord[] } | undefined>;
  dispose(): void;
}

/** What a stepper is built from. */
export interface DisposeProblem {
  model: OnnxModel;
  source: string;
  /** The TL model's tfjs graph (built for the head and the checks; the tfjs stepper trains it). */
  graph: ImportedGraph;
  layout: HeadLayout;
  head: SourceHead;
  settings: DisposeSettings;
}

export function validateDisposeSettings(s: DisposeSettings, data: { retain: Dataset; forget: Dataset }): void {
  if (!['gc', 'ngc', 'rtf', 'utf', 'none'].includes(s.method)) fail(`method must be gc, ngc, rtf, utf or none, got '${String(s.method)}'`);
  if (!(Number.isFinite(s.lambda) && s.lambda >= 0)) fail(`lambda must be a finite number ≥ 0, got ${s.lambda}`);
  if (!Number.isInteger(s.chunks) || s.chunks < 2) fail(`chunks must be an integer ≥ 2, got ${s.chunks}`);
  if (!Number.isInteger(s.forgetBatchSize) || s.forgetBatchSize < 1 || s.forgetBatchSize % s.chunks !== 0) {
    fail(`forget batch size ${s.forgetBatchSize} is not a positive multiple of chunks (${s.chunks})`);
  }
  if (!Number.isInteger(s.batchSize) || s.batchSize < 1) fail(`batch size must be a positive integer, got ${s.batchSize}`);
  if (!Number.isInteger(s.steps) || s.steps < 0) fail(`steps must be an integer ≥ 0, got ${s.steps}`);
  if (!(s.learningRate > 0)) fail(`learning rate must be > 0, got ${s.learningRate}`);
  if (!(s.temperature > 0)) fail(`temperature must be > 0, got ${s.temperature}`);
  if (s.maxGradNorm !== undefined && !(s.maxGradNorm > 0 && Number.isFinite(s.maxGradNorm))) fail(`max gradient norm must be a finite number > 0, got ${s.maxGradNorm}`);
  if (s.forgetGradNorm !== undefined && !(s.forgetGradNorm > 0 && Number.isFinite(s.forgetGradNorm))) fail(`forget gradient norm must be a finite number > 0, got ${s.forgetGradNorm}`);
  if (s.optimizer !== undefined && !['adam', 'sgd', 'momentum'].includes(s.optimizer)) fail(`optimizer must be adam, sgd or momentum, got '${String(s.optimizer)}'`);
  if (s.sourceHeadLearningRate !== undefined && !(Number.isFinite(s.sourceHeadLearningRate) && s.sourceHeadLearningRate >= 0)) {
    fail(`source head learning rate must be a finite number ≥ 0, got ${s.sourceHeadLearningRate}`);
  }
  if (s.repairSteps !== undefined && !(Number.isInteger(s.repairSteps) && s.repairSteps >= 0)) fail(`repair steps must be an integer ≥ 0, got ${s.repairSteps}`);
  if (s.collisionFloor !== undefined && !Number.isFinite(s.collisionFloor)) fail(`collision floor must be a finite number, got ${s.collisionFloor}`);
  if (typeof s.forgetClasses === 'string' && !['auto', 'all'].includes(s.forgetClasses)) fail(`forget classes must be 'auto', 'all' or a list of classes, got '${s.forgetClasses}'`);
  if (Array.isArray(s.forgetClasses) && new Set(s.forgetClasses).size < 2) {
    fail(`forget classes: give at least 2 distinct classes (over one class the source head's softmax is constant and the forget term is zero), got [${s.forgetClasses.join(', ')}]`);
  }
  if (Array.isArray(s.forgetClasses) && new Set(s.forgetClasses).size !== s.forgetClasses.length) fail(`forget classes: class listed twice in [${s.forgetClasses.join(', ')}]`);
  if (s.chunking !== undefined && !['random', 'class', 'fixed'].includes(s.chunking)) fail(`chunking must be random, class or fixed, got '${String(s.chunking)}'`);
  if (data.retain.labels.length === 0) fail(`retain data '${data.retain.name}' is empty`);
  if (data.forget.labels.length === 0) fail(`forget data '${data.forget.name}' is empty`);
}

/** Why the forget data cannot be chunked as `s.chunking` asks (undefined: it can). */
function chunkingProblem(s: DisposeSettings, forget: Dataset): string | undefined {
  if (s.chunking === 'class') {
    const present = new Set(forget.labels).size;
    if (present < s.chunks) return `class chunking needs at least ${s.chunks} classes (one per chunk) in the forget data '${forget.name}', it has ${present}`;
  }
  if (s.chunking === 'fixed' && s.forgetBatchSize > forget.labels.length) {
    return `fixed chunking needs a forget batch (${s.forgetBatchSize}) no larger than the forget data '${forget.name}' (${forget.labels.length} images): lower the forget batch size (a multiple of chunks) or give more forget data`;
  }
  return undefined;
}

/**
 * forgetClasses 'auto': the source classes that the retain data's classes do not use
 * (classesUsedByTarget with featureCloud), read by a linear probe on the input model's features
 * of the forget data (H_s itself when it is one). A source model's classifier does not do:
 * transfer learning moved the backbone under it, and on seeds of the reference scenario it sends
 * whole target classes to source classes they are not.
 */
function classesNotUsedByTarget(graph: ImportedGraph, layout: HeadLayout, head: SourceHead, data: { retain: Dataset; forget: Dataset }, probe: Partial<ProbeSettings>): number[] {
  const features = (d: Dataset) => datasetFeatures(graph, layout.head.featureTensor, d, layout.featureSize);
  const [retainFeatures, forgetFeatures] = [features(data.retain), features(data.forget)];
  const reader = head.origin === 'probe' ? head : fitProbeOnFeatures(forgetFeatures, data.forget.labels, probe, head.classes);
  try {
    const predicted = tf.tidy(() => tf.argMax(reader.logits(retainFeatures), 1).dataSync());
    const inClass = featureCloud({ features: forgetFeatures.dataSync() as Float32Array, labels: data.forget.labels }, retainFeatures.dataSync() as Float32Array, layout.featureSize);
    const used = classesUsedByTarget(predicted, data.retain.labels, inClass);
    return Array.from({ length: head.classes }, (_, c) => c).filter((c) => !used.includes(c));
  } finally {
    tf.dispose([retainFeatures, forgetFeatures]);
    if (reader !== head) reader.dispose();
  }
}

function settingsKey(s: DisposeSettings): Record<string, unknown> {
  const { sourceModel, ...rest } = s;
  return JSON.parse(JSON.stringify({ ...rest, sourceModel: sourceModel ? (sourceModel.path ?? 'given') : undefined })) as Record<string, unknown>;
}

/**
 * Dispose the transferability of `model` (see the module comment). Checkpoints every
 * `run.checkpointEvery` steps into `run.checkpointDir` (state.json's `epoch` counts completed
 * steps); with `run.resume`, continues from the last checkpoint: batches and random labels
 * depend only on (seed, step), H_s is rebuilt from the original model, and weights and optimizer
 * state are restored, so a resumed run ends where an uninterrupted one would.
 */
export async function disposeModel(
  model: OnnxModel,
  source: string,
  data: { retain: Dataset; forget: Dataset },
  settings: DisposeSettings,
  run: DisposeRun = {},
): Promise<DisposeResult> {
  const s: DisposeSettings = { ...settings, engine: settings.engine ?? selectedEngine() };
  validateDisposeSettings(s, data);
  const distilImages = data.forget;
  if (Array.isArray(s.forgetClasses)) data = { ...data, forget: restrictForget(data.forget, s.forgetClasses) };
  const collision = s.method === 'gc' || s.method === 'ngc';
  const graph = new ImportedGraph(model, source);
  let head: SourceHead | undefined;
  let stepper: DisposeStepper | undefined;
  try {
    if (graph.inputs.length !== 1) fail(`${source}: expected one image input, found ${graph.inputs.length}`);
    checkImagesFit(graph, data.retain, 'retain data');
    checkImagesFit(graph, data.forget, 'forget data');
    const layout = targetLayout(graph);
    // 'none' (and zero steps): the model exactly as given.
    if (s.method === 'none' || s.steps + (s.repairSteps ?? 0) === 0) return { proto: cloneModel(model.proto), history: [] };

    // H_s on the original backbone (before any checkpoint is restored, so resume rebuilds the same one).
    head = await buildSourceHead(graph, data.forget, { sourceModel: s.sourceModel, probe: { seed: s.seed, ...s.probe } });
    // A source model's head covers every source class: keep the chosen ones (a probe was fitted on them alone).
    if (Array.isArray(s.forgetClasses) && s.sourceModel) head = restrictHead(head, s.forgetClasses);
    let forgotten: number[] | undefined;
    // 'auto' needs the whole source task to tell which of its classes the target task is: with
    // some classes missing from the forget data, a target class would be read as the nearest one given.
    if (s.forgetClasses === 'auto' && new Set(data.forget.labels).size === head.classes) {
      const classes = classesNotUsedByTarget(graph, layout, head, data, { seed: s.seed, ...s.probe });
      // At least two: over one class H_s's softmax is constant and every forget term is zero.
      const restricted = classes.length >= 2 && classes.length < head.classes ? restrictForget(data.forget, classes) : undefined;
      if (restricted && (!collision || !chunkingProblem(s, restricted))) {
        data = { ...data, forget: restricted };
        // As for a list: a source model's head keeps those classes' logits, a probe is refitted on them alone.
        if (head.origin === 'probe') {
          const refitted = await buildSourceHead(graph, restricted, { probe: { seed: s.seed, ...s.probe } });
          head.dispose();
          head = refitted;
        } else {
          head = restrictHead(head, classes);
        }
        forgotten = classes;
      }
    }
    if (collision) {
      const problem = chunkingProblem(s, data.forget);
      if (problem) fail(problem);
    }
    const problem: DisposeProblem = { model, source, graph, layout, head, settings: s };
    stepper = s.engine === 'ort' ? await ortDisposeStepper(problem) : tfjsDisposeStepper(problem);

    // What 'auto' chose belongs to the run: a resume that would choose otherwise is another run.
    const key = { ...settingsKey(s), ...(s.forgetClasses === 'auto' ? { forgetClassesChosen: forgotten ?? 'all' } : {}) };
    let history: DisposeStepRecord[] = [];
    let start = 0;
    if (run.checkpointDir && run.resume) {
      const restored = await stepper.restore(run.checkpointDir, key);
      if (restored) {
        ({ history, position: start } = restored);
        run.progress?.onResume?.(start);
      }
    }
    const total = s.steps + (s.repairSteps ?? 0);
    run.progress?.onStart?.(total, head);

    const retain = new StepSampler(s.distilOnForget ? withUnlabelledImages(data.retain, distilImages) : data.retain, s.batchSize, s.seed);
    const forget = collision && s.chunking === 'class'
      ? new ClassChunkSampler(data.forget, s.chunks, s.forgetBatchSize / s.chunks, s.seed + 1)
      : collision && s.chunking === 'fixed'
        ? new FixedBatchSampler(data.forget, s.forgetBatchSize, s.seed + 1)
        : new StepSampler(data.forget, s.forgetBatchSize, s.seed + 1);
    const every = run.checkpointEvery ?? 50;
    for (let step = start; step < total; step++) {
      const fb = step < s.steps ? forget.batch(step) : undefined;
      const rng = new Random((s.seed * 7919 + step * 104_729 + 3) >>> 0);
      const tb = retain.batch(step);
      if (s.retainAugment) tb.x = cropAndFlip(tb.x, new Random((s.seed * 7919 + step * 104_729 + 5) >>> 0));
      const rtfLabels = fb && s.method === 'rtf' ? Int32Array.from(fb.y, () => rng.int(head!.classes)) : undefined;
      const terms = await stepper.step(tb.x, fb, rtfLabels, step === 0);
      const record: DisposeStepRecord = { step: step + 1, distillation: terms.distillation, forget: terms.forget, loss: terms.distillation + s.lambda * terms.forget };
      if (!Number.isFinite(record.loss)) throw new HardenError(`dispose: diverged at step ${step + 1} (loss ${record.loss}); lower the learning rate or lambda`);
      history.push(record);
      run.progress?.onStep?.(record);
      if (run.checkpointDir && ((step + 1) % every === 0 || step + 1 === total)) await stepper.save(run.checkpointDir, key, step + 1, history);
    }
    const weights = stepper.weights();
    for (const [name, w] of weights) {
      if (w.some((v) => !Number.isFinite(v))) throw new HardenError(`dispose: diverged: weight '${name}' is not finite after step ${total}; lower the learning rate or lambda`);
    }
    return { proto: finish(model, weights, s, history, head, forgotten), history };
  } finally {
    stepper?.dispose();
    head?.dispose();
    graph.dispose();
  }
}

/** The steps on the tfjs graph: exact double backprop for GC, one tf.Optimizer (settings.optimizer). */
function tfjsDisposeStepper({ model, graph, layout, head: h, settings: s }: DisposeProblem): DisposeStepper {
  const teacher = new ImportedGraph(model, graph.source);
  const inputName = graph.inputs[0].name;
  const outputName = graph.outputNames[0];
  const featureTensor = layout.head.featureTensor;
  const { allNames, backboneNames } = parameterSplit(graph.source, [...graph.variables.keys()].filter((n) => !graph.statisticNames.has(n)), layout, s.forgetParameters);
  const allVars = allNames.map((n) => graph.variables.get(n)!);
  const backboneVars = backboneNames.map((n) => graph.variables.get(n)!);
  const optimizer: tf.Optimizer = makeOptimizer({ kind: s.optimizer ?? 'adam', learningRate: s.learningRate });
  const per = s.forgetBatchSize / s.chunks;
  const capped = s.capNorms ? backboneVars.filter((v) => v.rank >= 2).map((v) => ({ v, norm: tf.keep(tf.norm(v)) })) : [];
  const feed = (x: HostTensor) => ({ [inputName]: tf.tensor(x.data as Float32Array, x.shape, 'float32') });
  // H_s as variables (trained along when sourceHeadLearningRate > 0).
  const headWeight = tf.variable(h.weight, true);
  const headBias = tf.variable(h.bias, true);
  const headLogits = (features: tf.Tensor) => tf.add(tf.matMul(tf.reshape(features, [features.shape[0], h.featureSize]), headWeight), headBias) as tf.Tensor2D;
  // Source-head logits of a forget batch through the (possibly substituted) backbone, inference mode.
  const sourceLogits = (x: tf.Tensor, params?: Map<string, tf.Tensor>): tf.Tensor2D =>
    headLogits(graph.run({ [inputName]: x }, { outputs: [featureTensor], parameters: params }).outputs.get(featureTensor)!);
  const headTensors = async (): Promise<NamedArrays> => new Map([
    [`${HEAD_STATE}weight`, { shape: headWeight.shape, data: (await headWeight.data()) as Float32Array }],
    [`${HEAD_STATE}bias`, { shape: headBias.shape, data: (await headBias.data()) as Float32Array }],
  ]);
  return {
    async step(target, fb, rtfLabels, atStart) {
      const values = tf.tidy(() => {
        const xt = feed(target);
        const teacherLogits = teacher.run(xt).outputs.get(outputName)! as tf.Tensor2D;
        const kdLoss = () => distillationLoss(graph.run(xt).outputs.get(outputName)! as tf.Tensor2D, teacherLogits, s.temperature);
        const kd = tf.variableGrads(kdLoss, allVars);
        const grads: Record<string, tf.Tensor> = kd.grads;
        let forgetValue: tf.Scalar = tf.scalar(0);
        let forgetGrads: (tf.Tensor | undefined)[] = [];
        if (!fb) {
          // a repair step: L_KD alone
        } else if (s.method === 'gc' || s.method === 'ngc') {
          const xChunks = tf.split(feed(fb.x)[inputName], s.chunks, 0);
          const yChunks = Array.from({ length: s.chunks }, (_, i) => tf.tensor1d(fb.y.subarray(i * per, (i + 1) * per), 'int32'));
          const perChunkLoss = (ps: tf.Tensor[], i: number): tf.Scalar =>
            crossEntropy(sourceLogits(xChunks[i], new Map(backboneNames.map((n, p) => [n, ps[p]]))), yChunks[i]);
          const gc = gradientCollision(perChunkLoss, backboneVars, s.chunks, { normalized: s.method === 'ngc' });
          forgetValue = gc.value;
          forgetGrads = belowFloor(gc.value.dataSync()[0]!, s) ? [] : gc.gradient;
        } else {
          const xs = feed(fb.x)[inputName];
          const C = h.classes;
          const labels = rtfLabels ? tf.tensor1d(rtfLabels, 'int32') : undefined;
          const forgetLoss = (): tf.Scalar => {
            const z = sourceLogits(xs);
            if (labels) return crossEntropy(z, labels);
            // KL(uniform ‖ softmax(z)) = mean_n Σ_c (1/C)(log(1/C) − log q_c)
            const logQ = tf.sub(z, tf.logSumExp(z, 1, true));
            return tf.mean(tf.sub(-Math.log(C), tf.mean(logQ, 1))) as tf.Scalar;
          };
          // H_s is fixed and the forget term never reaches H_t: its gradient is on the backbone only.
          const fg = tf.variableGrads(forgetLoss, backboneVars);
          forgetValue = fg.value;
          forgetGrads = backboneVars.map((v) => fg.grads[v.name]);
        }
        if (s.lambda > 0 && forgetGrads.some((g) => g)) {
          if (s.projectForget && !atStart) forgetGrads = withoutConflict(forgetGrads, backboneVars.map((v) => grads[v.name]));
          const present = forgetGrads.filter((g): g is tf.Tensor => !!g);
          const weight = s.forgetGradNorm ? tf.mul(s.lambda, clipScale(present, s.forgetGradNorm)) : s.lambda;
          backboneVars.forEach((v, p) => {
            const g = forgetGrads[p];
            if (g) grads[v.name] = tf.add(grads[v.name] ?? tf.zerosLike(v), tf.mul(g, weight));
          });
        }
        if (s.maxGradNorm) {
          const names = Object.keys(grads);
          const scale = clipScale(names.map((n) => grads[n]!), s.maxGradNorm);
          for (const n of names) grads[n] = tf.mul(grads[n]!, scale);
        }
        optimizer.applyGradients(grads);
        if (s.capNorms) capped.forEach(({ v, norm }) => v.assign(tf.mul(v, tf.minimum(1, tf.div(norm, tf.norm(v))))));
        return [kd.value, forgetValue];
      });
      const [distillation, forget] = await Promise.all(values.map(async (t) => (await t.data())[0]!));
      tf.dispose(values);
      const rate = s.sourceHeadLearningRate ?? 0;
      if (rate > 0 && fb) {
        tf.tidy(() => {
          const y = tf.tensor1d(fb.y, 'int32');
          const features = graph.run(feed(fb.x), { outputs: [featureTensor] }).outputs.get(featureTensor)!;
          const { grads: g } = tf.variableGrads(() => crossEntropy(headLogits(features), y), [headWeight, headBias]);
          headWeight.assign(tf.sub(headWeight, tf.mul(g[headWeight.name]!, rate)));
          headBias.assign(tf.sub(headBias, tf.mul(g[headBias.name]!, rate)));
        });
      }
      return { distillation, forget };
    },
    weights: () => graph.readWeights(),
    save: async (dir, key, position, history) =>
      saveStepCheckpoint(dir, model, graph, optimizer, key, { position, history: history as unknown as Record<string, unknown>[], tensors: await headTensors() }),
    async restore(dir, key) {
      const restored = await loadStepCheckpoint(dir, graph, optimizer, allVars, key);
      if (!restored) return undefined;
      const w = restored.tensors.get(`${HEAD_STATE}weight`), b = restored.tensors.get(`${HEAD_STATE}bias`);
      if (w && b) {
        headWeight.assign(tf.tensor(w.data, headWeight.shape));
        headBias.assign(tf.tensor(b.data, headBias.shape));
      }
      return { position: restored.position, history: restored.history as unknown as DisposeStepRecord[] };
    },
    dispose() {
      optimizer.dispose();
      teacher.dispose();
      tf.dispose(capped.map((c) => c.norm));
      tf.dispose([headWeight, headBias]);
    },
  };
}

/** min(1, maxNorm / ‖tensors‖₂): the factor that clips the tensors' global L2 norm to maxNorm. Call inside tf.tidy. */
function clipScale(tensors: tf.Tensor[], maxNorm: number): tf.Tensor {
  return tf.minimum(1, tf.div(maxNorm, tf.sqrt(tf.addN(tensors.map((t) => tf.sum(tf.square(t)))))));
}

/**
 * settings.projectForget on tfjs: `forget` less its projection on `kd` where their inner product
 * (over the tensors both have) is negative. Call inside tf.tidy.
 */
export function withoutConflict(forget: (tf.Tensor | undefined)[], kd: (tf.Tensor | undefined)[]): (tf.Tensor | undefined)[] {
  const both = forget.flatMap((f, p) => (f && kd[p] ? [[f, kd[p]!] as const] : []));
  if (!both.length) return forget;
  const dot = tf.addN(both.map(([f, g]) => tf.sum(tf.mul(f, g))));
  const kdSquared = tf.addN(both.map(([, g]) => tf.sum(tf.square(g))));
  const coefficient = tf.where(tf.logicalAnd(tf.less(dot, 0), tf.greater(kdSquared, 0)), tf.div(dot, tf.maximum(kdSquared, 1e-30)), tf.zerosLike(dot));
  return forget.map((f, p) => (f && kd[p] ? tf.sub(f, tf.mul(coefficient, kd[p]!)) : f));
}

/** Whether a collision value lies under settings.collisionFloor (the step then has no forget gradient). */
export function belowFloor(value: number, s: DisposeSettings): boolean {
  return s.collisionFloor !== undefined && value < s.collisionFloor;
}

const l2 = (w: Float32Array): number => Math.sqrt(w.reduce((a, v) => a + v * v, 0));

/**
 * settings.capNorms: `current` with every tensor whose norm exceeds its cap scaled back to it
 * (only the changed tensors are returned).
 */
export function cappedNorms(current: Map<string, Float32Array>, caps: Map<string, number>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, cap] of caps) {
    const w = current.get(name)!;
    const norm = l2(w);
    if (norm > cap) out.set(name, Float32Array.from(w, (v) => v * (cap / norm)));
  }
  return out;
}

/** The caps of settings.capNorms: the norm in M of each θ tensor of rank ≥ 2. */
export function normCaps(weights: Map<string, Float32Array>, model: OnnxModel, theta: readonly string[]): Map<string, number> {
  const rank = new Map(model.proto.graph!.initializer.map((t) => [t.name ?? '', t.dims.length]));
  return new Map(theta.filter((n) => (rank.get(n) ?? 0) >= 2).map((n) => [n, l2(weights.get(n)!)]));
}

/** Checkpoint names of H_s's current weights (a trained-along head changes). */
export const HEAD_STATE = 'source_head:';

/**
 * All learnable parameters, and θ of the forget term: the backbone's (all but the classifier
 * head's), narrowed to `forgetParameters` prefixes when given.
 */
export function parameterSplit(source: string, learnable: readonly string[], layout: HeadLayout, forgetParameters?: readonly string[]): { allNames: string[]; backboneNames: string[] } {
  const headParams = new Set(layout.head.parameters);
  let backboneNames = learnable.filter((n) => !headParams.has(n));
  if (backboneNames.length === 0) fail(`${source}: the model has no backbone parameters before its classifier`);
  if (forgetParameters?.length) {
    backboneNames = backboneNames.filter((n) => forgetParameters.some((p) => n.startsWith(p)));
    if (backboneNames.length === 0) fail(`${source}: no backbone parameter starts with ${forgetParameters.map((p) => `'${p}'`).join(' or ')}`);
  }
  return { allNames: [...learnable], backboneNames };
}

/** The disposed model with a Harden record (operation 'dispose') in metadata_props. */
/** `forgotten`: the classes forgetClasses 'auto' chose (absent: it chose all, or was not asked). */
function finish(model: OnnxModel, weights: Map<string, Float32Array>, s: DisposeSettings, history: DisposeStepRecord[], head: SourceHead, forgotten?: number[]): ModelProto {
  const proto = withWeights(model, weights);
  const first = history[0];
  const last = history.at(-1);
  // Repair steps record a forget term of 0: the last one measured is the last disposal step's.
  const lastForget = history[Math.min(history.length, s.steps) - 1];
  const record: HardenRecord = {
    version: HARDEN_VERSION,
    operation: 'dispose',
    settings: settingsKey(s),
    figures: {
      steps: history.length,
      sourceHead: head.origin,
      ...(s.forgetClasses === 'auto' ? { forgetClasses: forgotten ?? 'all' } : {}),
      ...(first && last ? { distillation: [first.distillation, last.distillation], forget: [first.forget, lastForget?.forget ?? first.forget] } : {}),
    },
  };
  setMetadata(proto, HARDEN_METADATA_KEY, JSON.stringify(record));
  return proto;
}
