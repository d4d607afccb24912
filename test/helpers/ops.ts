import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as ort from 'onnxruntime-node';
import { expect } from 'vitest';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel } from '../../src/onnx/model.js';
import type { HostTensor } from '../../src/onnx/tensor.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { initBackend, type BackendName } from '../../src/engine/backend.js';

/**
 * One-node (or few-node) conformance harness: build a model with the test's builder callback,
 * run it in onnxruntime and in the imported tfjs graph, and compare every output.
 */
export interface CompareOptions {
  /** Max abs difference allowed, relative to max(1, |reference|). */
  tol?: number;
  backends?: BackendName[];
  opset?: number;
}

export function randomTensor(shape: number[], seed = 1, scale = 1): HostTensor {
  let s = seed >>> 0 || 1;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return { dtype: 'float32', shape, data };
}

/** The ONNX bytes of a model built by the test's builder callback. */
export function buildModel(build: (g: GraphBuilder) => void, opset = 17): Uint8Array {
  const g = new GraphBuilder({ opset });
  build(g);
  return g.toBytes();
}

/** ONNX bytes imported as a graph; `name` is the source that error messages name. */
export function importBytes(bytes: Uint8Array, name = 'x.onnx'): ImportedGraph {
  return new ImportedGraph({ proto: decodeModel(bytes, name) }, name);
}

/** Build a model with the builder callback and import it (the caller disposes the graph). */
export function importModel(build: (g: GraphBuilder) => void, opset = 17): ImportedGraph {
  return importBytes(buildModel(build, opset));
}

function toOrt(h: HostTensor): ort.Tensor {
  const type = h.dtype === 'int64' ? 'int64' : h.dtype === 'bool' ? 'bool' : h.dtype === 'int32' ? 'int32' : 'float32';
  return new ort.Tensor(type, h.data as Float32Array, h.shape);
}

function toTf(h: HostTensor): tf.Tensor {
  if (h.dtype === 'int64') return tf.tensor(Array.from(h.data as BigInt64Array, Number), h.shape, 'int32');
  if (h.dtype === 'bool') return tf.tensor(Array.from(h.data as Uint8Array), h.shape, 'bool');
  return tf.tensor(h.data as Float32Array, h.shape, h.dtype === 'int32' ? 'int32' : 'float32');
}

export async function runOrt(bytes: Uint8Array, feeds: Record<string, HostTensor>): Promise<Record<string, { data: Float64Array; dims: number[] }>> {
  const session = await ort.InferenceSession.create(bytes);
  const out = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, toOrt(v)])));
  const res: Record<string, { data: Float64Array; dims: number[] }> = {};
  for (const [k, v] of Object.entries(out)) {
    const d = v.data as ArrayLike<number | bigint | boolean>;
    res[k] = { data: Float64Array.from(Array.from(d, (x) => Number(x))), dims: [...v.dims] };
  }
  await session.release();
  return res;
}

export function runTfjs(bytes: Uint8Array, feeds: Record<string, HostTensor>, training = false): Record<string, { data: Float64Array; dims: number[] }> {
  const graph = importBytes(bytes, 'test.onnx');
  try {
    const res: Record<string, { data: Float64Array; dims: number[] }> = {};
    tf.tidy(() => {
      const { outputs } = graph.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, toTf(v)])), { training });
      for (const [k, t] of outputs) res[k] = { data: Float64Array.from(t.dataSync() as ArrayLike<number>), dims: [...t.shape] };
    });
    return res;
  } finally {
    graph.dispose();
  }
}

/** Build, run in both runtimes, and assert every output matches within tolerance. */
export async function expectMatchesOrt(build: (g: GraphBuilder) => void, feeds: Record<string, HostTensor>, opts: CompareOptions = {}): Promise<void> {
  const bytes = buildModel(build, opts.opset);
  const ref = await runOrt(bytes, feeds);
  for (const backend of opts.backends ?? (['wasm', 'cpu'] as BackendName[])) {
    await initBackend(backend);
    const got = runTfjs(bytes, feeds);
    for (const [name, r] of Object.entries(ref)) {
      const o = got[name];
      expect(o, `output ${name} on ${backend}`).toBeDefined();
      expect(o.dims, `shape of ${name} on ${backend}`).toEqual(r.dims);
      let worst = 0;
      for (let i = 0; i < r.data.length; i++) {
        const err = Math.abs(o.data[i] - r.data[i]) / Math.max(1, Math.abs(r.data[i]));
        if (!(err <= worst)) worst = Number.isNaN(err) ? Infinity : err;
      }
      expect(worst, `max error of ${name} on ${backend}`).toBeLessThanOrEqual(opts.tol ?? 1e-4);
    }
  }
}
