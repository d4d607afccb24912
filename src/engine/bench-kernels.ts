/**
 * Micro-benchmark of convolution kernels: forward, and tfjs-native vs Harden weight and
 * input gradients, on the wasm and cpu backends, for LeNet-like and ResNet-like layers.
 * `benchKernels()` returns plain JSON (times in milliseconds, median of `repeats` runs).
 */
import * as tf from '@tensorflow/tfjs-core';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { initBackend, type BackendName } from './backend.js';
import { convInfo, type ConvPad } from './gradients/conv-family.js';
import { hardenKernels } from './gradients/index.js';
import { replacedKernels } from './gradients/registry.js';
import { conv2dFilterGrad, conv2dInputGrad } from './gradients/conv2d.js';

export interface ConvCase {
  name: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: number;
  pad: ConvPad;
}

export const CONV_CASES: ConvCase[] = [
  { name: 'lenet conv1 B128 1x28x28 -> 6 5x5 pad2', x: [128, 28, 28, 1], filter: [5, 5, 1, 6], strides: 1, pad: 2 },
  { name: 'lenet conv2 B128 6x14x14 -> 16 5x5', x: [128, 14, 14, 6], filter: [5, 5, 6, 16], strides: 1, pad: 'valid' },
  { name: 'resnet B64 16x32x32 -> 16 3x3', x: [64, 32, 32, 16], filter: [3, 3, 16, 16], strides: 1, pad: 'same' },
  { name: 'resnet B64 16x32x32 -> 32 3x3 s2', x: [64, 32, 32, 16], filter: [3, 3, 16, 32], strides: 2, pad: 'same' },
];

/** Milliseconds per call; null where the backend has no such kernel. */
export interface ConvTimings {
  forward: number;
  inputGrad: { native: number | null; harden: number };
  filterGrad: { native: number | null; harden: number };
}

export interface KernelBenchReport {
  repeats: number;
  wasmThreads: number | null;
  results: { backend: BackendName; case: string; ms: ConvTimings }[];
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Median wall time of `run` (which returns the tensor to wait for) over `repeats` runs
 * after a warm-up; a first run over a second (cpu's native backprop) is the only sample.
 */
function time(run: () => tf.Tensor, repeats: number): number {
  const once = () => {
    const start = performance.now();
    const out = run();
    out.dataSync(); // cpu/wasm compute synchronously; this also waits for tfjs-node
    const ms = performance.now() - start;
    out.dispose();
    return ms;
  };
  const first = once();
  return first > 1000 ? first : median(Array.from({ length: repeats }, once));
}

/**
 * The backend's own kernel, also when Harden replaced it (wasm Conv2DBackpropInput);
 * null when the backend has none (wasm Conv2DBackpropFilter).
 */
function nativeKernel(kernelName: string, backend: BackendName): tf.KernelConfig | null {
  const key = `${backend}/${kernelName}`;
  const replaced = replacedKernels.get(key);
  if (replaced) {
    replaced.setupFunc?.(tf.backend()); // never set up: it was unregistered before backend init
    return replaced;
  }
  return hardenKernels.includes(key) ? null : tf.getKernel(kernelName, backend) ?? null;
}

function benchCase(c: ConvCase, backend: BackendName, repeats: number): ConvTimings {
  const x = tf.randomNormal(c.x, 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.randomNormal(c.filter, 0, 0.1, 'float32', 2) as tf.Tensor4D;
  const info = convInfo(c.x, c.filter, { strides: c.strides, pad: c.pad }, false);
  const dy = tf.randomNormal(info.outShape, 0, 1, 'float32', 3) as tf.Tensor4D;
  const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dilations: 1 };
  const native = (kernelName: string, inputs: tf.NamedTensorMap, extra: tf.NamedAttrMap) => {
    const k = nativeKernel(kernelName, backend);
    if (k == null) return null;
    const run = () => {
      const out = k.kernelFunc({ inputs, backend: tf.backend(), attrs: { ...attrs, ...extra } }) as tf.TensorInfo;
      return tf.engine().makeTensorFromDataId(out.dataId, out.shape, out.dtype);
    };
    return time(run, repeats);
  };
  const timings: ConvTimings = {
    forward: time(() => tf.conv2d(x, w, c.strides, c.pad), repeats),
    inputGrad: {
      native: native(tf.Conv2DBackpropInput, { dy, filter: w }, { inputShape: c.x }),
      harden: time(() => tf.tidy(() => conv2dInputGrad(dy, w, info)), repeats),
    },
    filterGrad: {
      native: native(tf.Conv2DBackpropFilter, { x, dy }, { filterShape: c.filter }),
      harden: time(() => tf.tidy(() => conv2dFilterGrad(x, dy, info)), repeats),
    },
  };
  tf.dispose([x, w, dy]);
  return timings;
}

export async function benchKernels(
  opts: { backends?: BackendName[]; repeats?: number; cases?: ConvCase[] } = {},
): Promise<KernelBenchReport> {
  const repeats = opts.repeats ?? 5;
  const report: KernelBenchReport = { repeats, wasmThreads: null, results: [] };
  for (const requested of opts.backends ?? (['wasm', 'cpu'] as BackendName[])) {
    const backend = await initBackend(requested);
    if (backend === 'wasm') report.wasmThreads = getThreadsCount();
    for (const c of opts.cases ?? CONV_CASES) {
      report.results.push({ backend, case: c.name, ms: benchCase(c, backend, repeats) });
    }
  }
  return report;
}
