import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HostTensor } from '../../src/onnx/tensor.js';

export const FIXTURE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'onnx');
export const FIXTURES = ['lenet5_mnist', 'vggish_bn', 'resnet8_bn', 'mobilemini_dw'] as const;

export interface Fixture {
  name: string;
  path: string;
  input: HostTensor;
  output: HostTensor;
  opset: number;
}

function readF32(file: string): Float32Array {
  const buf = readFileSync(file);
  const out = new Float32Array(buf.length / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

export function loadFixture(name: string): Fixture {
  const meta = JSON.parse(readFileSync(path.join(FIXTURE_DIR, `${name}.json`), 'utf8')) as { input_shape: number[]; output_shape: number[]; opset: number };
  return {
    name,
    path: path.join(FIXTURE_DIR, `${name}.onnx`),
    input: { dtype: 'float32', shape: meta.input_shape, data: readF32(path.join(FIXTURE_DIR, `${name}.input.f32`)) },
    output: { dtype: 'float32', shape: meta.output_shape, data: readF32(path.join(FIXTURE_DIR, `${name}.output.f32`)) },
    opset: meta.opset,
  };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
