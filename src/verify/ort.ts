import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ExitCode, HardenError } from '../errors.js';
import type { HostTensor } from '../onnx/tensor.js';
import { GraphBuilder } from '../onnx/builder.js';

/** onnxruntime-node sessions, the reference runtime: the CPU provider unless useDevice('cuda') succeeded. */
export interface OrtOptions {
  threads?: number;
}

let provider: 'cpu' | 'cuda' = 'cpu';
/** onnxruntime intra-op threads of sessions that do not say (0: onnxruntime's default, every core). */
let defaultThreads = 0;

/** Threads later sessions and ort training engines use by default (attack workers share the cores). */
export function setOrtThreads(threads: number): void {
  defaultThreads = threads;
}

/** The intra-op thread count sessions get by default: setOrtThreads's, else every core. */
export function ortThreads(): number {
  return defaultThreads || os.cpus().length;
}

/** The shared libraries onnxruntime-node's CUDA provider loads (Linux/Windows names). */
function cudaLibraries(): string[] {
  const root = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
  const dir = path.join(root, 'bin', 'napi-v6', process.platform, process.arch);
  const ext = process.platform === 'win32' ? '.dll' : '.so';
  const prefix = process.platform === 'win32' ? '' : 'lib';
  return ['onnxruntime_providers_shared', 'onnxruntime_providers_cuda'].map((n) => path.join(dir, `${prefix}${n}${ext}`));
}

/** A one-node model (Identity on float[1]) to probe execution providers with. */
function probeModel(): Uint8Array {
  const g = new GraphBuilder({ opset: 13 });
  g.input('x', [1]);
  g.node('Identity', ['x'], ['y']);
  g.output('y', [1]);
  return g.toBytes();
}

/**
 * Choose where verification runs. 'cuda' is used only when onnxruntime-node's CUDA provider
 * loads (its libraries are a separate download Harden skips at install): otherwise `strict`
 * fails with exit code 4, and without it Harden warns once and stays on the CPU.
 */
export async function useDevice(device: 'cpu' | 'cuda', strict = false): Promise<'cpu' | 'cuda'> {
  provider = 'cpu';
  if (device === 'cpu') return provider;
  try {
    // Check for the provider's libraries first: a failed load makes onnxruntime print its own log line.
    const missing = cudaLibraries().find((f) => !existsSync(f));
    if (missing) throw new Error(`${path.basename(missing)} is not installed`);
    const session = await ort.InferenceSession.create(probeModel(), { executionProviders: ['cuda'], logSeverityLevel: 4 });
    await session.release();
    provider = 'cuda';
  } catch (e) {
    const why = String((e as Error).message).split('\n')[0];
    if (strict) throw new HardenError(`--device cuda: onnxruntime's CUDA provider is not available here (${why})`, ExitCode.Unavailable);
    process.stderr.write(`harden: warning: --device cuda: CUDA provider not available (${why}); running on the CPU\n`);
  }
  return provider;
}

/** The execution provider sessions use now ('cuda' only after useDevice('cuda') succeeded). */
export function currentOrtProvider(): 'cpu' | 'cuda' {
  return provider;
}

export async function createSession(model: string | Uint8Array, opts: OrtOptions = {}): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [provider],
    intraOpNumThreads: opts.threads ?? defaultThreads,
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
