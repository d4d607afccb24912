import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { initBackend } from '../engine/backend.js';
import { selectEngine } from '../engine/create.js';
import { OrtTrainable } from '../engine/ort-engine.js';
import { loadModel, initializerMap, type OnnxModel } from '../onnx/model.js';
import { hostToFloat32, type HostTensor } from '../onnx/tensor.js';
import { findClassifierHead } from '../import/head.js';
import { loadDataset } from '../data/index.js';
import type { Dataset } from '../data/types.js';
import { trainModel } from '../train/trainer.js';
import { withNewHead } from '../train/head.js';
import { withWeights } from '../export/export.js';
import { evaluate } from '../verify/evaluate.js';
import { disposeModel, PLAIN_DISPOSE_SETTINGS } from '../harden/dispose.js';
import { Random } from '../util/random.js';
import { arg, ROOT } from './common.js';

/**
 * `npm run experiment:gc-expectation`: what the Gradient Collision loss optimizes, on the DTL
 * reference scenario (experiments/dtl.md). For disjoint chunks drawn at random from a forget set
 * of N examples with per-example source gradients s_a (mean μ),
 *   E[L_GC] = C(k,2) · (N²‖μ‖² − Σ_a ‖s_a‖²) / (N(N−1)) = C(k,2) · (‖μ‖² − tr Σ̂ / (N−1)),
 * i.e. a penalty on the norm of the full source gradient, with a 1/(N−1) reward for per-example
 * variance. The script measures both terms, checks the formula against L_GC averaged over random
 * chunkings, and reads the source task off the backbone with H_s (the source model's head) — for
 * the source model, the transfer-learned model (TL) and TL after GC disposal.
 */

const SEED = Number(arg('seed', '0'));
const STEPS = Number(arg('steps', String(300)));
const LAMBDA = Number(arg('lambda', String(PLAIN_DISPOSE_SETTINGS.lambda)));
/** Random chunkings averaged for the measured E[L_GC]. */
const DRAWS = Number(arg('draws', '1000'));
/** Forget-set size per class (N = 10× this). */
const FORGET_PER_CLASS = Number(arg('forget-per-class', '100'));
/** Output name in experiments/. */
const OUT = arg('out', 'gc-expectation');
const K = PLAIN_DISPOSE_SETTINGS.chunks;
const CHUNK = PLAIN_DISPOSE_SETTINGS.forgetBatchSize / K;

/** `model`'s backbone with the source model's head: every initializer the two share, except the head's. */
function backboneWithSourceHead(model: OnnxModel, source: OnnxModel): OnnxModel {
  const head = new Set(findClassifierHead(source.proto)!.parameters);
  const sourceInits = initializerMap(source.proto);
  const weights = new Map<string, Float32Array>();
  for (const [name, t] of initializerMap(model.proto)) {
    const s = sourceInits.get(name);
    if (s && !head.has(name) && s.shape.join() === t.shape.join()) weights.set(name, hostToFloat32(t));
  }
  return { proto: withWeights(source, weights) };
}

/** Per-example gradients of CE(H_s(B(x_a)), y_a) with respect to the backbone, flattened. */
async function perExampleGradients(model: OnnxModel, forget: Dataset, headParams: Set<string>): Promise<Float64Array[]> {
  const engine = new OrtTrainable(model, 'backbone + H_s');
  try {
    const wrt = engine.parameterNames.filter((n) => !headParams.has(n));
    const size = forget.images.length / forget.labels.length;
    const out: Float64Array[] = [];
    for (let a = 0; a < forget.labels.length; a++) {
      const x: HostTensor = { dtype: 'float32', shape: [1, ...forget.shape], data: forget.images.slice(a * size, (a + 1) * size) };
      const { gradients } = await engine.crossEntropyGradients(x, forget.labels.subarray(a, a + 1), { wrt });
      out.push(Float64Array.from(wrt.flatMap((n) => Array.from(gradients.get(n)!))));
    }
    return out;
  } finally {
    engine.dispose();
  }
}

const dot = (u: Float64Array, v: Float64Array): number => {
  let s = 0;
  for (let i = 0; i < u.length; i++) s += u[i]! * v[i]!;
  return s;
};

function gcStatistics(grads: Float64Array[], seed: number) {
  const N = grads.length, P = grads[0]!.length;
  const mu = new Float64Array(P);
  let sumSq = 0;
  for (const g of grads) {
    for (let p = 0; p < P; p++) mu[p]! += g[p]! / N;
    sumSq += dot(g, g);
  }
  const muSq = dot(mu, mu);
  const pairs = (K * (K - 1)) / 2;
  const predicted = (pairs * (N * N * muSq - sumSq)) / (N * (N - 1));
  // L_GC of random disjoint chunkings, from the same per-example gradients.
  const rng = new Random(seed);
  const values: number[] = [];
  const order = [...Array(N).keys()];
  for (let r = 0; r < DRAWS; r++) {
    for (let i = 0; i < K * CHUNK; i++) {
      const j = i + rng.int(N - i);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const chunks = Array.from({ length: K }, (_, c) => {
      const v = new Float64Array(P);
      for (let i = 0; i < CHUNK; i++) {
        const g = grads[order[c * CHUNK + i]!]!;
        for (let p = 0; p < P; p++) v[p]! += g[p]! / CHUNK;
      }
      return v;
    });
    let value = 0;
    for (let i = 0; i < K; i++) for (let j = i + 1; j < K; j++) value += dot(chunks[i]!, chunks[j]!);
    values.push(value);
  }
  const mean = values.reduce((a, b) => a + b, 0) / DRAWS;
  const se = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (DRAWS - 1) / DRAWS);
  return { fullGradientNormSq: muSq, meanPerExampleGradientNormSq: sumSq / N, penalty: pairs * muSq, predicted, measured: mean, measuredStandardError: se };
}

async function main(): Promise<void> {
  const backend = await initBackend('auto');
  selectEngine('ort');
  const source = await loadModel(path.join(ROOT, 'models', 'lenet5-fashion-mnist.onnx'));
  const headParams = new Set(findClassifierHead(source.proto)!.parameters);
  const target = await loadDataset(`fashion-mnist:split=train,classes=0-4,per-class=20,seed=${SEED}`);
  const forget = await loadDataset(`fashion-mnist:split=train,per-class=${FORGET_PER_CLASS},seed=7`);
  const sourceTest = await loadDataset('fashion-mnist:split=test');
  const { proto: tl } = await trainModel({ proto: withNewHead(source.proto, 5, SEED, 'source') }, 'TL', target, undefined, {
    epochs: 20, batchSize: 20, optimizer: { kind: 'adam', learningRate: 1e-3 }, schedule: 'constant', stepEvery: 1, gamma: 1, train: 'all', augment: false, seed: SEED,
  });
  const disposal = { ...PLAIN_DISPOSE_SETTINGS, method: 'gc' as const, steps: STEPS, lambda: LAMBDA, seed: SEED, sourceModel: source, engine: 'ort' as const };
  const { proto: gc } = await disposeModel({ proto: tl }, 'TL', { retain: target, forget }, disposal);
  const rows = [];
  for (const [name, model] of [['source model', source], ['TL', { proto: tl }], [`TL + GC (λ ${LAMBDA}, ${STEPS} steps)`, { proto: gc }]] as const) {
    const withHs = backboneWithSourceHead(model, source);
    const sourceAccuracy = (await evaluate(withHs.proto, sourceTest)).accuracy;
    const stats = gcStatistics(await perExampleGradients(withHs, forget, headParams), SEED + 1);
    rows.push({ model: name, sourceAccuracy, ...stats });
    process.stderr.write(`${name}: source accuracy with H_s ${(100 * sourceAccuracy).toFixed(2)} %, E[L_GC] predicted ${stats.predicted.toFixed(3)}, measured ${stats.measured.toFixed(3)} ± ${stats.measuredStandardError.toFixed(3)}\n`);
  }
  const settings = { backend, engine: 'ort', seed: SEED, chunks: K, chunkSize: CHUNK, draws: DRAWS, forget: forget.name, disposal: { ...disposal, sourceModel: 'models/lenet5-fashion-mnist.onnx' } };
  const g = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  const md = [
    '# What Gradient Collision optimizes (DTL reference scenario)',
    '',
    `Backbone of each model with H_s = the source model's head; forget set N = ${forget.labels.length} (fashion-mnist train, ${FORGET_PER_CLASS}/class), k = ${K} chunks of ${CHUNK}. μ: mean per-example source gradient over the forget set (backbone parameters); E[L_GC] predicted = C(k,2)·(N²‖μ‖² − Σ‖s_a‖²)/(N(N−1)), measured = mean L_GC over ${DRAWS} random chunkings ± standard error. Source accuracy: fashion-mnist test, all 10 classes. Seed ${SEED}.`,
    '',
    '| model | source acc with H_s | ‖μ‖² | mean ‖s_a‖² | C(k,2)‖μ‖² | E[L_GC] predicted | E[L_GC] measured |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.model} | ${(100 * r.sourceAccuracy).toFixed(2)} % | ${g(r.fullGradientNormSq)} | ${g(r.meanPerExampleGradientNormSq)} | ${g(r.penalty)} | ${g(r.predicted)} | ${g(r.measured)} ± ${g(r.measuredStandardError)} |`),
    '',
    'Settings: `' + JSON.stringify(settings) + '`',
    '',
  ].join('\n');
  await mkdir(path.join(ROOT, 'experiments'), { recursive: true });
  await writeFile(path.join(ROOT, 'experiments', `${OUT}.json`), JSON.stringify({ settings, rows }, null, 2));
  await writeFile(path.join(ROOT, 'experiments', `${OUT}.md`), md);
  process.stdout.write(md);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
