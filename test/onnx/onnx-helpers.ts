import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll } from 'vitest';

export const FIXTURE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/fixtures/onnx');
export const FIXTURES = ['lenet5_mnist', 'vggish_bn', 'resnet8_bn', 'mobilemini_dw'] as const;

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

function readF32(file: string): Float32Array {
  const b = readFileSync(file);
  const out = new Float32Array(b.length / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

export function fixture(name: string): Fixture {
  const file = path.join(FIXTURE_DIR, `${name}.onnx`);
  const meta = JSON.parse(readFileSync(path.join(FIXTURE_DIR, `${name}.json`), 'utf8')) as {
    input_shape: number[];
    output_shape: number[];
    opset: number;
  };
  return {
    name,
    file,
    bytes: readFileSync(file),
    input: readF32(path.join(FIXTURE_DIR, `${name}.input.f32`)),
    output: readF32(path.join(FIXTURE_DIR, `${name}.output.f32`)),
    inputShape: meta.input_shape,
    outputShape: meta.output_shape,
    opset: meta.opset,
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

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
