import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../engine/backend.js';
import { loadModel, type OnnxModel } from '../onnx/model.js';
import { TfjsTrainable } from '../engine/tfjs-engine.js';
import { nchwcBlockSize } from '../engine/ort/nchwc.js';
import { OrtTrainable } from '../engine/ort-engine.js';
import { createSession, runSession } from '../verify/ort.js';
import { Random } from '../util/random.js';
import type { HostTensor } from '../onnx/tensor.js';
import { benchKernels } from '../engine/bench-kernels.js';
import { loadDataset, batches, clearDataCache } from '../data/index.js';
import { cropAndFlip } from '../train/augment.js';
import { buildArchitecture, type ArchName } from '../models/index.js';
import { gradientCollision } from '../harden/losses.js';
import { gradientCollisionHost } from '../harden/gradient-collision-host.js';
import { crossEntropy } from '../engine/tfjs-engine.js';
import { findClassifierHead } from '../import/head.js';
import { benchAttacks } from './attacks.js';
import { measurePytorch, type PytorchTimes } from './pytorch.js';

/**
 * `npm run bench`: per fixture model and tfjs backend, import / forward / train-step times and
 * onnxruntime's forward time, plus a tensor-leak check over 100 training steps. JSON on stdout
 * and in bench-results/bench.json. Reference (PyTorch 1.13 CPU, 2 threads, this machine):
 * train step ResNet-8 (B=64) 47 ms, LeNet-5 (B=128) 15 ms, VGG-ish (B=64) 32 ms.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODELS = [
  { name: 'lenet5_mnist', batch: 128, pytorchTrainMs: 15 },
  { name: 'resnet8_bn', batch: 64, pytorchTrainMs: 47 },
  { name: 'vggish_bn', batch: 64, pytorchTrainMs: 32 },
  { name: 'mobilemini_dw', batch: 64, pytorchTrainMs: undefined },
];

async function timeIt(reps: number, f: () => Promise<unknown> | unknown): Promise<number> {
  await f(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await f();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return Number(times[Math.floor(times.length / 2)].toFixed(2));
}

function parseArgs(): { backends: BackendName[]; reps: number; leakSteps: number; models: string[]; kernels: boolean; data: boolean; gc: boolean; ort: boolean; pytorch: boolean; attacks: boolean; kernelBackends: BackendName[] } {
  const args = process.argv.slice(2);
  const get = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  return {
    backends: (get('--backends') ?? 'wasm,cpu').split(',') as BackendName[],
    reps: Number(get('--reps') ?? 10),
    leakSteps: Number(get('--leak-steps') ?? 100),
    models: (get('--models') ?? MODELS.map((m) => m.name).join(',')).split(','),
    kernels: !args.includes('--no-kernels'),
    data: !args.includes('--no-data'),
    gc: !args.includes('--no-gc'),
    ort: !args.includes('--no-ort'),
    pytorch: !args.includes('--no-pytorch'),
    attacks: !args.includes('--no-attacks'),
    // tfjs's native cpu filter gradient takes ~30 s per ResNet-size call: opt in with --kernel-backends wasm,cpu.
    kernelBackends: (get('--kernel-backends') ?? 'wasm').split(',') as BackendName[],
  };
}

async function benchModel(name: string, batch: number, backend: BackendName, reps: number, leakSteps: number) {
  const file = path.join(ROOT, 'test', 'fixtures', 'onnx', `${name}.onnx`);
  const t0 = performance.now();
  const model = await loadModel(file);
  const engine = new TfjsTrainable(model, file);
  const importMs = Number((performance.now() - t0).toFixed(2));
  const spec = engine.graph.inputs[0];
  const shape = spec.shape.map((d, i) => (i === 0 ? batch : (d as number)));
  const rng = new Random(1);
  const x: HostTensor = { dtype: 'float32', shape, data: rng.normalArray(shape.reduce((a, b) => a * b, 1)) };
  const labels = Int32Array.from({ length: batch }, () => rng.int(10));
  engine.setOptimizer({ kind: 'momentum', learningRate: 1e-3, momentum: 0.9 });
  // Slow backends get fewer repetitions so the whole bench stays within minutes.
  const slow = backend === 'cpu';
  const r = slow ? Math.max(2, Math.floor(reps / 4)) : reps;
  const forwardMs = await timeIt(r, () => engine.forward(x));
  const trainStepMs = await timeIt(r, () => engine.trainStep(x, labels));
  const steps = slow ? Math.min(leakSteps, 10) : leakSteps;
  const before = tf.memory().numTensors;
  for (let i = 0; i < steps; i++) await engine.trainStep(x, labels);
  const after = tf.memory().numTensors;
  engine.dispose();
  const session = await createSession(file);
  const ortForwardMs = await timeIt(reps, () => runSession(session, { [engine.inputName]: x }));
  await session.release();
  return { importMs, forwardMs, trainStepMs, ortForwardMs, tensorsBefore: before, tensorsAfter: after, leakCheckSteps: steps };
}

/**
 * The ort engine (training graphs on onnxruntime): train step (Adam) and Gradient Collision
 * step (k = 4, exact HVPs: src/harden/gradient-collision-host.ts) per fixture model, and
 * resident memory before and after `memorySteps` further steps on LeNet-5. Ratios are against
 * PyTorch CPU measured in the same run when torch is installed (`pytorch`), else against the
 * issue's figures (PyTorch 1.13, 2 threads, this machine: 14.5 / 46.6 / 32.1 ms per train step
 * for LeNet-5 B=128, ResNet-8 and VGG-ish B=64; 58 / 461 / 262 ms per GC step).
 */
async function benchOrtEngine(reps: number, memorySteps: number, pytorch: Record<string, PytorchTimes> | undefined) {
  const out = [];
  const pytorchGc: Record<string, number> = { lenet5_mnist: 58, resnet8_bn: 461, vggish_bn: 262 };
  for (const [name, batch, pytorchFixedMs] of [['lenet5_mnist', 128, 14.5], ['resnet8_bn', 64, 46.6], ['vggish_bn', 64, 32.1], ['mobilemini_dw', 64, undefined]] as const) {
    const pytorchMs = pytorch?.[name]?.trainMs ?? pytorchFixedMs;
    const pytorchGcMs = pytorch?.[name]?.gcMs ?? pytorchGc[name];
    const file = path.join(ROOT, 'test', 'fixtures', 'onnx', `${name}.onnx`);
    const model = await loadModel(file);
    const engine = new OrtTrainable(model, file);
    const shape = engine.inputShape.map((d, i) => (i === 0 ? batch : (d as number)));
    const rng = new Random(1);
    const x: HostTensor = { dtype: 'float32', shape, data: rng.normalArray(shape.reduce((a, b) => a * b, 1)) };
    const labels = Int32Array.from({ length: batch }, () => rng.int(10));
    engine.setOptimizer({ kind: 'adam', learningRate: 1e-3 });
    const trainStepMs = await timeIt(reps, () => engine.trainStep(x, labels));
    const gc = gcProblem(engine, model, x, labels, 4);
    const gcStepMs = await timeIt(Math.max(3, Math.floor(reps / 2)), () => gradientCollisionHost(engine, gc.chunks, gc.wrt));
    let memory: { steps: number; rssBeforeMiB: number; rssAfterMiB: number } | undefined;
    if (name === 'lenet5_mnist' && memorySteps > 0) {
      const rss = () => Number((process.memoryUsage().rss / 2 ** 20).toFixed(1));
      for (let i = 0; i < 50; i++) await engine.trainStep(x, labels);
      const before = rss();
      for (let i = 0; i < memorySteps; i++) await engine.trainStep(x, labels);
      memory = { steps: memorySteps, rssBeforeMiB: before, rssAfterMiB: rss() };
    }
    engine.dispose();
    const ratio = (ms: number, ref: number | undefined) => (ref ? Number((ms / ref).toFixed(2)) : undefined);
    out.push({
      model: name, engine: 'ort', batch, trainStepMs, pytorchTrainMs: pytorchMs, trainVsPytorch: ratio(trainStepMs, pytorchMs),
      gcChunks: 4, gcStepMs, pytorchGcMs, gcVsPytorch: ratio(gcStepMs, pytorchGcMs), memory,
      // The channel block of onnxruntime's NCHWc kernels the training graphs used (0: standard ops only).
      nchwcBlock: await nchwcBlockSize(),
      pytorchSource: pytorch?.[name] ? 'measured in this run (scripts/pytorch-bench)' : 'the issue\'s fixed figures (no torch installed)',
    });
  }
  return out;
}

/** A GC step's inputs: the backbone (all but the classifier head) and k chunks of the batch. */
function gcProblem(engine: OrtTrainable, model: OnnxModel, x: HostTensor, labels: Int32Array, k: number) {
  const head = new Set(findClassifierHead(model.proto)?.parameters ?? []);
  const wrt = engine.parameterNames.filter((n) => !head.has(n));
  const n = x.shape[0], chunk = n / k, size = x.data.length / n;
  const chunks = Array.from({ length: k }, (_, i) => ({
    x: { dtype: 'float32' as const, shape: [chunk, ...x.shape.slice(1)], data: (x.data as Float32Array).subarray(i * chunk * size, (i + 1) * chunk * size) },
    labels: labels.subarray(i * chunk, (i + 1) * chunk),
  }));
  return { wrt, chunks };
}

/** Images per second: decoding a dataset cold, augmenting and batching it. */
async function benchData() {
  const spec = 'fashion-mnist:split=train,size=32,channels=3';
  clearDataCache();
  let t0 = performance.now();
  const ds = await loadDataset(spec);
  const decodeSeconds = (performance.now() - t0) / 1000;
  const n = ds.labels.length;
  t0 = performance.now();
  let seen = 0;
  for (const { x } of batches(ds, { batchSize: 128, seed: 1 })) seen += x.shape[0];
  const batchSeconds = (performance.now() - t0) / 1000;
  const rng = new Random(2);
  t0 = performance.now();
  for (const { x } of batches(ds, { batchSize: 128, seed: 1 })) cropAndFlip(x, rng);
  const augmentSeconds = (performance.now() - t0) / 1000 - batchSeconds;
  const rate = (s: number) => Math.round(n / Math.max(s, 1e-9));
  return { spec, images: n, decodedPerSecond: rate(decodeSeconds), batchedPerSecond: rate(batchSeconds), augmentedPerSecond: rate(augmentSeconds), batchedImages: seen };
}

/** Training throughput (images/s, forward + backward + update) of the reference architectures. */
async function benchTrainThroughput(backend: BackendName, reps: number) {
  await initBackend(backend);
  const archs: [ArchName, [number, number, number], number][] = [
    ['lenet5', [1, 28, 28], 128], ['vgg-small', [3, 32, 32], 64], ['resnet8', [3, 32, 32], 64],
    ['resnet20', [3, 32, 32], 64], ['mobilenet-small', [3, 32, 32], 64],
  ];
  const out = [];
  for (const [arch, inputShape, batch] of archs) {
    process.stderr.write(`bench train throughput ${arch}...\n`);
    const engine = new TfjsTrainable({ proto: buildArchitecture(arch, { classes: 10, inputShape, seed: 0 }) }, arch);
    const rng = new Random(3);
    const shape = [batch, ...inputShape];
    const x: HostTensor = { dtype: 'float32', shape, data: rng.normalArray(shape.reduce((a, b) => a * b, 1)) };
    const labels = Int32Array.from({ length: batch }, () => rng.int(10));
    engine.setOptimizer({ kind: 'adam', learningRate: 1e-3 });
    const ms = await timeIt(Math.max(3, Math.floor(reps / 2)), () => engine.trainStep(x, labels));
    engine.dispose();
    out.push({ arch, backend, batch, trainStepMs: ms, imagesPerSecond: Math.round((batch * 1000) / ms) });
  }
  return out;
}

/**
 * One Gradient Collision value + exact gradient (k = 4 chunks, backbone = all but the classifier)
 * on LeNet-5 (B=128) and ResNet-8 (B=64). PyTorch 1.13 CPU, exact double backprop, same machine:
 * 58 ms and 461 ms per GC step.
 */
async function benchGc(backend: BackendName, reps: number) {
  await initBackend(backend);
  const out = [];
  for (const [name, batch, pytorchMs] of [['lenet5_mnist', 128, 58], ['resnet8_bn', 64, 461]] as const) {
    const file = path.join(ROOT, 'test', 'fixtures', 'onnx', `${name}.onnx`);
    const model = await loadModel(file);
    const engine = new TfjsTrainable(model, file);
    const head = new Set(findClassifierHead(model.proto)?.parameters ?? []);
    const names = engine.parameterNames.filter((n) => !head.has(n));
    const params = names.map((n) => engine.graph.variables.get(n)! as tf.Tensor);
    const shape = engine.graph.inputs[0].shape.map((d, i) => (i === 0 ? batch : (d as number)));
    const rng = new Random(4);
    const k = 4, chunk = batch / k;
    const xs = Array.from({ length: k }, () => tf.tensor(rng.normalArray(chunk * shape.slice(1).reduce((a, b) => a * b, 1)), [chunk, ...shape.slice(1)]));
    const ys = Array.from({ length: k }, () => tf.tensor1d(Int32Array.from({ length: chunk }, () => rng.int(10)), 'int32'));
    const loss = (ps: tf.Tensor[], i: number) => {
      const { outputs } = engine.graph.run({ [engine.inputName]: xs[i] }, { parameters: new Map(names.map((n, j) => [n, ps[j]])) });
      return crossEntropy(outputs.get(engine.outputName) as tf.Tensor2D, ys[i] as tf.Tensor1D);
    };
    const ms = await timeIt(Math.max(3, Math.floor(reps / 2)), () => {
      const { value, gradient } = gradientCollision(loss, params, k);
      value.dataSync();
      tf.dispose([value, ...gradient]);
    });
    tf.dispose([...xs, ...ys]);
    engine.dispose();
    out.push({ model: name, backend, batch, chunks: k, gcMs: ms, pytorchGcMs: pytorchMs, gcVsPytorch: Number((ms / pytorchMs).toFixed(2)) });
  }
  return out;
}

async function main(): Promise<void> {
  const opts = parseArgs();
  const results: Record<string, unknown>[] = [];
  for (const backend of opts.backends) {
    const active = await initBackend(backend);
    for (const m of MODELS.filter((m) => opts.models.includes(m.name))) {
      process.stderr.write(`bench ${m.name} on ${active} (batch ${m.batch})...\n`);
      const r = await benchModel(m.name, m.batch, active, opts.reps, opts.leakSteps);
      const ratio = m.pytorchTrainMs ? Number((r.trainStepMs / m.pytorchTrainMs).toFixed(2)) : undefined;
      results.push({ model: m.name, backend: active, batch: m.batch, ...r, pytorchTrainMs: m.pytorchTrainMs, trainVsPytorch: ratio });
    }
  }
  const data = opts.data ? await benchData() : undefined;
  const training = opts.data ? await benchTrainThroughput(opts.backends[0], opts.reps) : undefined;
  if (opts.ort && opts.pytorch) process.stderr.write('bench PyTorch CPU reference (scripts/pytorch-bench, when torch is installed)...\n');
  const ortEngine = opts.ort ? await benchOrtEngine(opts.reps, 1000, opts.pytorch ? measurePytorch(ROOT) : undefined) : undefined;
  const attacks = opts.attacks ? await benchAttacks(ROOT, [1, (await import('node:os')).cpus().length]) : undefined;
  const gradientCollisionStep = opts.gc ? await benchGc(opts.backends[0], opts.reps) : undefined;
  // Conv weight/input gradients: tfjs's native kernels against Harden's forward-conv ones.
  const kernels = opts.kernels ? await benchKernels({ backends: opts.kernelBackends, repeats: opts.reps }) : undefined;
  const report = { harden: 'bench', date: new Date().toISOString(), node: process.version, cpus: (await import('node:os')).cpus().length, results, data, training, gradientCollision: gradientCollisionStep, ortEngine, attacks, kernels };
  const out = path.join(ROOT, 'bench-results');
  await mkdir(out, { recursive: true });
  await writeFile(path.join(out, 'bench.json'), JSON.stringify(report, null, 2));
  process.stdout.write(JSON.stringify(report, null, 2) + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
