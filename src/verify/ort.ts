import * as ort from 'onnxruntime-node';
import { HardenError } from '../errors.js';
import type { HostTensor } from '../onnx/tensor.js';

/** onnxruntime-node sessions on the CPU provider, used as the reference runtime. */
export interface OrtOptions {
  threads?: number;
}

export async function createSession(model: string | Uint8Array, opts: OrtOptions = {}): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: opts.threads ?? 0,
    graphOptimizationLevel: 'all',
  };
  try {
    return typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
  } catch (e) {
    const where = typeof model === 'string' ? model : 'model';
    throw new HardenError(`${where}: onnxruntime cannot load the model: ${String((e as Error).message).split('\n')[0]}`);
  }
}

export async function runSession(session: ort.InferenceSession, feeds: Record<string, HostTensor>): Promise<Map<string, HostTensor>> {
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, h] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor('float32', h.data as Float32Array, h.shape);
  let out: ort.InferenceSession.OnnxValueMapType;
  try {
    out = await session.run(ortFeeds);
  } catch (e) {
    throw new HardenError(`onnxruntime failed to run the model: ${String((e as Error).message).split('\n')[0]}`);
  }
  const result = new Map<string, HostTensor>();
  for (const name of session.outputNames) {
    const t = out[name] as ort.Tensor;
    result.set(name, { dtype: 'float32', shape: [...t.dims], data: Float32Array.from(t.data as Float32Array) });
  }
  return result;
}
