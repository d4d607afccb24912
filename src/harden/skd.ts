/**
 * Selective knowledge distillation (SKD). A student with the teacher's architecture (re-initialized
 * the PyTorch way, or a copy of the teacher) learns, at the pre-activation of the ReLU that feeds the
 * classifier, the teacher's values on authorized images and a strongly negative constant on
 * unauthorized images, so that ReLU outputs zeros for them and nothing downstream can tell them
 * apart. Then a new classifier is trained on authorized data only, with the backbone frozen:
 *
 *   L_distill = mean (s(x_a) − t(x_a))² + w · mean (s(x_u) − target)²      (target = −100)
 *
 * BatchNorm runs in inference mode while distilling. Both phases run on either engine
 * (settings.engine).
 */
import * as tf from '@tensorflow/tfjs-core';
import { HardenError } from '../errors.js';
import type { OnnxModel } from '../onnx/model.js';
import { toNumber, type ModelProto, type NodeProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import { StepSampler } from '../data/loader.js';
import { createTrainable, selectedEngine, type EngineName } from '../engine/create.js';
import { OrtTrainable } from '../engine/ort-engine.js';
import type { HostTensor } from '../onnx/tensor.js';
import { ImportedGraph } from '../import/graph.js';
import { findClassifierHead } from '../import/head.js';
import { HARDEN_METADATA_KEY, setMetadata, withWeights } from '../export/export.js';
import { checkModelTakes } from '../train/fit.js';
import { withNewHead } from '../train/head.js';
import { reinitialize } from '../verify/reinit.js';
import { HARDEN_VERSION } from '../version.js';

export interface SkdSettings {
  /** 'random': the student starts from PyTorch default init; 'teacher': from the teacher's weights. */
  init: 'random' | 'teacher';
  steps: number;
  learningRate: number;
  batchSize: number;
  /** The pre-activation target on unauthorized images. */
  negativeTarget: number;
  /** w: weight of the unauthorized term (its squared errors start near target²). */
  unauthorizedWeight: number;
  headSteps: number;
  headLearningRate: number;
  seed: number;
  /** Training engine of both phases (default: the one selectEngine chose). */
  engine?: EngineName;
}

export const DEFAULT_SKD_SETTINGS: SkdSettings = {
  init: 'random',
  steps: 1500,
  learningRate: 1e-3,
  batchSize: 64,
  negativeTarget: -100,
  unauthorizedWeight: 0.01,
  headSteps: 300,
  headLearningRate: 1e-3,
  seed: 0,
};

function fail(what: string): never {
  throw new HardenError(`skd: ${what}`);
}

/** The tensor SKD distils: the input of the Relu whose output feeds the classifier. */
export function preActivationTensor(proto: ModelProto, source: string): { preActivation: string; features: string } {
  const head = findClassifierHead(proto);
  if (!head) fail(`${source}: no final Gemm/MatMul classifier found`);
  let producer: NodeProto | undefined;
  let tensor = head.featureTensor;
  // Through Flatten/Reshape to the activation.
  for (;;) {
    producer = proto.graph?.node.find((n) => n.output.includes(tensor));
    if (producer && ['Flatten', 'Reshape'].includes(producer.op_type ?? '')) tensor = producer.input[0]!;
    else break;
  }
  if (producer?.op_type !== 'Relu') fail(`${source}: the classifier's input does not come from a Relu (found ${producer?.op_type ?? 'a graph input'}); SKD blocks unauthorized inputs at that ReLU`);
  return { preActivation: producer.input[0]!, features: head.featureTensor };
}

/** L_distill for student pre-activations of [authorized; unauthorized] rows against the teacher's. */
export function skdLoss(student: tf.Tensor, teacherAuthorized: tf.Tensor, authorized: number, negativeTarget: number, weight: number): tf.Scalar {
  return tf.tidy(() => {
    const n = student.shape[0]!;
    const s = tf.reshape(student, [n, -1]);
    const a = tf.mean(tf.square(tf.sub(tf.slice(s, 0, authorized), tf.reshape(teacherAuthorized, [authorized, -1]))));
    if (authorized === n) return a as tf.Scalar;
    const u = tf.mean(tf.square(tf.sub(tf.slice(s, authorized, n - authorized), negativeTarget)));
    return tf.add(a, tf.mul(u, weight)) as tf.Scalar;
  });
}

export function validateSkdSettings(s: SkdSettings): void {
  if (!['random', 'teacher'].includes(s.init)) fail(`init must be random or teacher, got '${String(s.init)}'`);
  for (const [name, v] of [['steps', s.steps], ['head steps', s.headSteps]] as const) if (!(Number.isInteger(v) && v >= 0)) fail(`${name} must be an integer ≥ 0, got ${v}`);
  if (!(Number.isInteger(s.batchSize) && s.batchSize >= 1)) fail(`batch size must be a positive integer, got ${s.batchSize}`);
  if (!(s.learningRate > 0 && s.headLearningRate > 0)) fail('learning rates must be > 0');
  if (!(s.negativeTarget < 0)) fail(`the negative target must be < 0, got ${s.negativeTarget}`);
  if (!(s.unauthorizedWeight >= 0)) fail(`the unauthorized weight must be ≥ 0, got ${s.unauthorizedWeight}`);
}

export interface SkdStepRecord {
  step: number;
  phase: 'distill' | 'head';
  loss: number;
}

type Batch = { x: HostTensor; y: Int32Array };

/** One engine's side of the distillation phase. */
interface SkdDistiller {
  /** One Adam step of L_distill on [keep; block] rows; returns the loss before the step. */
  step(kb: Batch, bb: Batch): Promise<number>;
  weights(): Map<string, Float32Array>;
  dispose(): void;
}

interface SkdProblem {
  model: OnnxModel;
  student: OnnxModel;
  source: string;
  preActivation: string;
  headParams: Set<string>;
  settings: SkdSettings;
}

const concatImages = (a: HostTensor, b: HostTensor): HostTensor => {
  const data = new Float32Array(a.data.length + b.data.length);
  data.set(a.data as Float32Array);
  data.set(b.data as Float32Array, a.data.length);
  return { dtype: 'float32', shape: [a.shape[0]! + b.shape[0]!, ...a.shape.slice(1)], data };
};

export async function skdModel(model: OnnxModel, source: string, data: { keep: Dataset; block?: Dataset }, settings: SkdSettings, progress: { onStep?(r: SkdStepRecord): void } = {}): Promise<{ proto: ModelProto; history: SkdStepRecord[] }> {
  const s: SkdSettings = { ...settings, engine: settings.engine ?? selectedEngine() };
  validateSkdSettings(s);
  if (!data.block) fail('needs unauthorized (block) images');
  const { preActivation } = preActivationTensor(model.proto, source);
  const head = findClassifierHead(model.proto)!;
  const studentModel: OnnxModel = { ...model, proto: s.init === 'random' ? reinitialize(model.proto, s.seed) : model.proto };
  const history: SkdStepRecord[] = [];
  let distilled: ModelProto;
  checkModelTakes(model.proto, data.keep, 'keep data');
  checkModelTakes(model.proto, data.block, 'block data');
  const problem: SkdProblem = { model, student: studentModel, source, preActivation, headParams: new Set(head.parameters), settings: s };
  const distiller = s.engine === 'ort' ? ortDistiller(problem) : tfjsDistiller(problem);
  try {
    const keep = new StepSampler(data.keep, s.batchSize, s.seed);
    const block = new StepSampler(data.block, s.batchSize, s.seed + 1);
    for (let step = 0; step < s.steps; step++) {
      const value = await distiller.step(keep.batch(step), block.batch(step));
      if (!Number.isFinite(value)) throw new HardenError(`skd: diverged at step ${step + 1}; lower the learning rate`);
      const record: SkdStepRecord = { step: step + 1, phase: 'distill', loss: value };
      history.push(record);
      progress.onStep?.(record);
    }
    distilled = withWeights(studentModel, distiller.weights());
  } finally {
    distiller.dispose();
  }
  // A new classifier on the frozen backbone, authorized data only.
  const classes = findClassifierHeadClasses(model.proto, source);
  const withHead: OnnxModel = { ...model, proto: withNewHead(distilled, classes, s.seed, source) };
  const engine = createTrainable(withHead, source, s.engine);
  try {
    engine.setTrainable(head.parameters.filter((p) => engine.parameterNames.includes(p)));
    engine.setOptimizer({ kind: 'adam', learningRate: s.headLearningRate });
    const keep = new StepSampler(data.keep, Math.min(s.batchSize, data.keep.labels.length), s.seed + 2);
    for (let step = 0; step < s.headSteps; step++) {
      const b = keep.batch(step);
      const loss = await engine.trainStep(b.x, b.y);
      const record: SkdStepRecord = { step: s.steps + step + 1, phase: 'head', loss };
      history.push(record);
      progress.onStep?.(record);
    }
    const proto = withWeights(model, engine.weights());
    const last = (phase: SkdStepRecord['phase']) => history.filter((r) => r.phase === phase).at(-1)?.loss;
    setMetadata(proto, HARDEN_METADATA_KEY, JSON.stringify({ version: HARDEN_VERSION, operation: 'skd', settings: { ...s, preActivation }, figures: { distillLoss: last('distill'), headLoss: last('head') } }));
    return { proto, history };
  } finally {
    engine.dispose();
  }
}

function findClassifierHeadClasses(proto: ModelProto, source: string): number {
  const dims = proto.graph?.output[0]?.type?.tensor_type?.shape?.dim;
  const last = dims?.at(-1);
  if (last?.value !== 'dim_value') fail(`${source}: the output's class dimension is not fixed`);
  return toNumber(last.dim_value);
}

/** Distillation on the tfjs graphs: L_distill under tfjs's tape. */
function tfjsDistiller({ model, student: studentModel, source, preActivation, headParams, settings: s }: SkdProblem): SkdDistiller {
  const teacher = new ImportedGraph(model, source);
  const student = new ImportedGraph(studentModel, `${source} (student)`);
  const optimizer: tf.Optimizer = tf.train.adam(s.learningRate);
  const inputName = teacher.inputs[0]!.name;
  const backbone = student.trainableVariables().filter((v) => ![...headParams].some((p) => student.variables.get(p) === v));
  return {
    async step(kb, bb) {
      const loss = tf.tidy(() => {
        const xa = tf.tensor(kb.x.data as Float32Array, kb.x.shape);
        const target = teacher.run({ [inputName]: xa }, { outputs: [preActivation] }).outputs.get(preActivation)!;
        const x = tf.concat([xa, tf.tensor(bb.x.data as Float32Array, bb.x.shape)], 0);
        const { value, grads } = tf.variableGrads(() => {
          const pre = student.run({ [inputName]: x }, { outputs: [preActivation] }).outputs.get(preActivation)!;
          return skdLoss(pre, target, kb.y.length, s.negativeTarget, s.unauthorizedWeight);
        }, backbone);
        optimizer.applyGradients(grads);
        return value;
      });
      const value = (await loss.data())[0]!;
      loss.dispose();
      return value;
    },
    weights: () => student.readWeights(),
    dispose: () => {
      optimizer.dispose();
      teacher.dispose();
      student.dispose();
    },
  };
}

/**
 * Distillation on the ort engine: L_distill is a function of the student's pre-activations, so
 * its gradient there (2(s − t)/(n·P) on authorized rows, 2w(s − target)/(m·P) on unauthorized
 * ones) is computed on the host and fed upstream at that tensor.
 */
function ortDistiller({ model, student: studentModel, source, preActivation, headParams, settings: s }: SkdProblem): SkdDistiller {
  const teacher = new OrtTrainable(model, source);
  const student = new OrtTrainable(studentModel, `${source} (student)`);
  student.setOptimizer({ kind: 'adam', learningRate: s.learningRate });
  const backbone = student.parameterNames.filter((n) => !headParams.has(n));
  return {
    async step(kb, bb) {
      const t = (await teacher.forward(kb.x, { outputs: [preActivation] })).get(preActivation)!.data as Float32Array;
      const x = concatImages(kb.x, bb.x);
      const pre = (await student.forward(x, { outputs: [preActivation] })).get(preActivation)!.data as Float32Array;
      const n = kb.y.length, m = bb.y.length;
      const P = pre.length / (n + m);
      const g = new Float32Array(pre.length);
      let a = 0, u = 0;
      for (let i = 0; i < n * P; i++) {
        const d = pre[i]! - t[i]!;
        a += d * d;
        g[i] = (2 * d) / (n * P);
      }
      for (let i = n * P; i < pre.length; i++) {
        const d = pre[i]! - s.negativeTarget;
        u += d * d;
        g[i] = (2 * s.unauthorizedWeight * d) / (m * P);
      }
      student.applyGradients((await student.run(x, { training: false, wrt: backbone, upstream: new Map([[preActivation, g]]) })).gradients);
      return a / (n * P) + (m > 0 ? (s.unauthorizedWeight * u) / (m * P) : 0);
    },
    weights: () => student.weights(),
    dispose: () => {
      teacher.dispose();
      student.dispose();
    },
  };
}
