import type * as ort from 'onnxruntime-node';
import { encodeModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import type { Dataset } from '../data/types.js';
import { batches } from '../data/loader.js';
import { createSession, runSession } from './ort.js';
import type { HostTensor } from '../onnx/tensor.js';
import { TfjsTrainable } from '../engine/tfjs-engine.js';

export interface Evaluation {
  accuracy: number;
  /** Mean cross-entropy of the logits. */
  loss: number;
  count: number;
}

/** Top-1 accuracy and mean cross-entropy of a model under onnxruntime. */
export async function evaluate(model: ModelProto | ort.InferenceSession, data: Dataset, batchSize = 256): Promise<Evaluation> {
  const session = 'inputNames' in model ? model : await createSession(encodeModel(model));
  const input = session.inputNames[0], output = session.outputNames[0];
  try {
    return await scoreLogits(async (x) => (await runSession(session, { [input]: x })).get(output)!, data, batchSize);
  } finally {
    if (!('inputNames' in model)) await session.release();
  }
}

/**
 * The same figures from the model imported into tfjs (inference mode, the selected tfjs
 * backend): the check that a hardened model behaves the same in training and in deployment.
 */
export async function evaluateOnTfjs(model: ModelProto, data: Dataset, batchSize = 256): Promise<Evaluation> {
  const engine = new TfjsTrainable({ proto: model });
  try {
    return await scoreLogits(async (x) => (await engine.forward(x)).get(engine.outputName)!, data, batchSize);
  } finally {
    engine.dispose();
  }
}

async function scoreLogits(logitsOf: (x: HostTensor) => Promise<HostTensor>, data: Dataset, batchSize: number): Promise<Evaluation> {
  let correct = 0, loss = 0, count = 0;
  for (const { x, y } of batches(data, { batchSize, seed: 0, shuffle: false })) {
    const logits = await logitsOf(x);
    const classes = logits.shape[1];
    const z = logits.data as Float32Array;
    for (let i = 0; i < y.length; i++) {
      const row = z.subarray(i * classes, (i + 1) * classes);
      let best = 0, max = -Infinity;
      for (let c = 0; c < classes; c++) if (row[c] > max) [max, best] = [row[c], c];
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += Math.exp(row[c] - max);
      loss += Math.log(sum) + max - row[y[i]];
      if (best === y[i]) correct++;
    }
    count += y.length;
  }
  return { accuracy: count ? correct / count : 0, loss: count ? loss / count : 0, count };
}
