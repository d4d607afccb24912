import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll } from 'vitest';
import { loadFixture } from '../helpers/fixtures.js';

export { FIXTURES, maxAbsDiff } from '../helpers/fixtures.js';

/** A fixture model with its bytes, and its reference input and output as flat float32 data. */
export interface Fixture {
  name: string;
  file: string;
  bytes: Buffer;
  input: Float32Array;
  output: Float32Array;
  inputShape: number[];
  outputShape: number[];
  opset: number;
}

export function fixture(name: string): Fixture {
  const f = loadFixture(name);
  return {
    name,
    file: f.path,
    bytes: readFileSync(f.path),
    input: f.input.data as Float32Array,
    output: f.output.data as Float32Array,
    inputShape: f.input.shape,
    outputShape: f.output.shape,
    opset: f.opset,
  };
}

/** A fresh temp folder removed after the test file finishes. */
export function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'harden-onnx-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export type Feeds = Record<string, { data: Float32Array; dims: number[] }>;

/** Runs a model (a file path, so external data resolves, or bytes) and returns float outputs. */
export async function runOrt(model: string | Uint8Array, feeds: Feeds): Promise<Record<string, Float32Array>> {
  const session = typeof model === 'string'
    ? await ort.InferenceSession.create(model)
    : await ort.InferenceSession.create(model);
  try {
    const inputs: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) inputs[k] = new ort.Tensor('float32', v.data, v.dims);
    const res = await session.run(inputs);
    const out: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(res)) out[k] = Float32Array.from(v.data as Float32Array);
    return out;
  } finally {
    await session.release();
  }
}

export async function runFixture(model: string | Uint8Array, f: Fixture): Promise<Float32Array> {
  const out = await runOrt(model, { input: { data: f.input, dims: f.inputShape } });
  return out.logits!;
}

export function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return ua.every((v, i) => v === ub[i]);
}
