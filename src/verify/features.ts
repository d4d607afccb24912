/**
 * Frozen backbone features under onnxruntime, for the feature-space attacks (linear probe, k-NN
 * few-shot, membership inference on losses).
 *
 * Protocol: the feature tensor is the input of the model's final classifier layer
 * (findClassifierHead), or the tensor the user names with --feature-tensor. An in-memory copy of
 * the model gets that tensor as an extra graph output (the original outputs stay first), and the
 * dataset runs through it in source order in inference mode. Each example's feature tensor is
 * flattened (every dimension after the batch), so a conv feature map [N, C, H, W] gives
 * dim = C·H·W. The model's first output is returned as well, as the logits.
 */
import type * as ort from 'onnxruntime-node';
import { HardenError } from '../errors.js';
import type { Dataset } from '../data/types.js';
import { batches } from '../data/loader.js';
import { findClassifierHead } from '../import/head.js';
import { cloneModel, encodeModel } from '../onnx/model.js';
import { type ModelProto, newValueInfo } from '../onnx/schema.js';
import { createSession, runSession, type OrtOptions } from './ort.js';

/** N examples of `dim` features each (row-major N×dim) with their labels. */
export interface FeatureSet {
  features: Float32Array;
  dim: number;
  labels: Int32Array;
  classes: number;
}

export interface ExtractedFeatures extends FeatureSet {
  /** The graph tensor the features were read from. */
  featureTensor: string;
  /** The model's first output, N×logitDim (absent when that output is the feature tensor itself). */
  logits?: Float32Array;
  logitDim?: number;
}

export interface ExtractOptions extends OrtOptions {
  /** Graph tensor to read (default: the input of the final classifier layer). */
  featureTensor?: string;
  /** Default 256. */
  batchSize?: number;
}

/** The feature tensor to use: `featureTensor` if given and present in the graph, else the classifier head's input. */
export function resolveFeatureTensor(proto: ModelProto, featureTensor?: string): string {
  const graph = proto.graph;
  if (featureTensor !== undefined) {
    const defined = new Set<string>(graph?.input.map((v) => v.name ?? '') ?? []);
    for (const n of graph?.node ?? []) for (const o of n.output) if (o) defined.add(o);
    if (!defined.has(featureTensor)) {
      throw new HardenError(`--feature-tensor '${featureTensor}': no node output or graph input of the model has that name`);
    }
    return featureTensor;
  }
  const head = findClassifierHead(proto);
  if (!head) {
    throw new HardenError('no final Gemm/MatMul classifier found to take features from; name the feature tensor with --feature-tensor');
  }
  return head.featureTensor;
}

/** A copy of the model that also outputs the feature tensor (appended after the original outputs). */
export function featureModel(proto: ModelProto, featureTensor?: string): { model: ModelProto; featureTensor: string } {
  const name = resolveFeatureTensor(proto, featureTensor);
  const model = cloneModel(proto);
  const graph = model.graph!;
  if (!graph.output.some((o) => o.name === name)) {
    const known = [...graph.value_info, ...graph.input].find((v) => v.name === name);
    graph.output.push(known ? newValueInfo({ name, type: known.type }) : newValueInfo({ name }));
  }
  return { model, featureTensor: name };
}

/** Features (and logits) of every example of `data`, in dataset order, under onnxruntime. */
export async function extractFeatures(proto: ModelProto, data: Dataset, opts: ExtractOptions = {}): Promise<ExtractedFeatures> {
  const { model, featureTensor } = featureModel(proto, opts.featureTensor);
  const session: ort.InferenceSession = await createSession(encodeModel(model), opts);
  try {
    const input = session.inputNames[0]!;
    const logitName = session.outputNames[0]!;
    const wantLogits = logitName !== featureTensor;
    const n = data.labels.length;
    let features = new Float32Array(0), logits: Float32Array | undefined;
    let dim = 0, logitDim = 0, done = 0;
    for (const { x } of batches(data, { batchSize: opts.batchSize ?? 256, seed: 0, shuffle: false })) {
      const b = x.shape[0]!;
      const out = await runSession(session, { [input]: x });
      const f = out.get(featureTensor)!;
      const d = perExample(f.shape, b, `feature tensor '${featureTensor}'`);
      if (done === 0) {
        dim = d;
        features = new Float32Array(n * dim);
      } else if (d !== dim) {
        throw new HardenError(`feature tensor '${featureTensor}' has ${d} values per example in one batch and ${dim} in another`);
      }
      features.set(f.data as Float32Array, done * dim);
      if (wantLogits) {
        const z = out.get(logitName)!;
        const k = perExample(z.shape, b, `output '${logitName}'`);
        if (done === 0) {
          logitDim = k;
          logits = new Float32Array(n * k);
        } else if (k !== logitDim) {
          throw new HardenError(`output '${logitName}' has ${k} values per example in one batch and ${logitDim} in another`);
        }
        logits!.set(z.data as Float32Array, done * logitDim);
      }
      done += b;
    }
    const result: ExtractedFeatures = { features, dim, labels: data.labels.slice(), classes: data.classes, featureTensor };
    if (logits) Object.assign(result, { logits, logitDim });
    return result;
  } finally {
    await session.release();
  }
}

function perExample(shape: readonly number[], batch: number, what: string): number {
  if (shape.length === 0 || shape[0] !== batch) {
    throw new HardenError(`${what} has shape [${shape.join(', ')}], not one row per example of a batch of ${batch}`);
  }
  return shape.slice(1).reduce((a, s) => a * s, 1);
}
