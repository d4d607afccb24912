import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { loadModel } from '../onnx/model.js';
import type { HostTensor } from '../onnx/tensor.js';
import { TfjsTrainable } from '../engine/tfjs-engine.js';
import { exportModel } from '../export/export.js';
import { createSession, runSession } from '../verify/ort.js';
import { Random } from '../util/random.js';
import { HardenError } from '../errors.js';

export interface CheckOptions {
  batch: number;
  seed: number;
  /** Max abs difference allowed between tfjs and onnxruntime, relative to max(1, |reference|). */
  tolerance: number;
  backend: string;
}

export interface CheckReport {
  file: string;
  backend: string;
  inputShape: number[];
  forward: { maxAbs: number; maxRel: number; pass: boolean };
  training: { loss: number; variables: number; withoutGradient: string[]; nonFinite: string[]; lossAfterStep: number; leakedTensors: number; pass: boolean };
  roundTrip: { maxAbs: number; bitIdentical: boolean; pass: boolean };
  pass: boolean;
}

function concreteShape(shape: (number | string)[], batch: number, file: string): number[] {
  return shape.map((d, i) => {
    if (typeof d === 'number' && d > 0) return d;
    if (i === 0) return batch;
    throw new HardenError(`${file}: input dimension ${i} is symbolic ('${d}'); harden check needs fixed image dimensions`);
  });
}

function compare(a: HostTensor, b: HostTensor): { maxAbs: number; maxRel: number } {
  let maxAbs = 0, maxRel = 0;
  const x = a.data as Float32Array, y = b.data as Float32Array;
  for (let i = 0; i < y.length; i++) {
    const d = Math.abs(x[i] - y[i]);
    const r = d / Math.max(1, Math.abs(y[i]));
    if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : d;
    if (!(r <= maxRel)) maxRel = Number.isNaN(r) ? Infinity : r;
  }
  return { maxAbs, maxRel };
}

/**
 * Import, compare the forward pass with onnxruntime, take one training step, and export the
 * untouched weights to confirm the rewritten file gives bit-identical onnxruntime outputs.
 */
export async function checkModel(file: string, opts: CheckOptions): Promise<CheckReport> {
  const model = await loadModel(file);
  const engine = new TfjsTrainable(model, file);
  const tmp = await mkdtemp(path.join(tmpdir(), 'harden-check-'));
  try {
    const spec = engine.graph.inputs[0];
    const shape = concreteShape(spec.shape, opts.batch, file);
    const rng = new Random(opts.seed);
    const x: HostTensor = { dtype: 'float32', shape, data: rng.normalArray(shape.reduce((a, b) => a * b, 1)) };

    const reference = await createSession(model.path!);
    const ref = (await runSession(reference, { [engine.inputName]: x })).get(engine.outputName)!;
    const got = (await engine.forward(x)).get(engine.outputName)!;
    const diff = compare(got, ref);
    const forward = { ...diff, pass: diff.maxRel <= opts.tolerance };

    // Export before training: weights read back from the variables must reproduce the file.
    const exported = path.join(tmp, 'roundtrip.onnx');
    await exportModel(model, engine.weights(), exported);
    const again = (await runSession(await createSession(exported), { [engine.inputName]: x })).get(engine.outputName)!;
    const rt = compare(again, ref);
    const roundTrip = { maxAbs: rt.maxAbs, bitIdentical: bitsEqual(again, ref), pass: bitsEqual(again, ref) };

    const classes = ref.shape[1] ?? 1;
    const labels = Int32Array.from({ length: shape[0] }, () => rng.int(classes));
    const { loss, gradients } = await engine.lossAndGradients(x, labels);
    const withoutGradient: string[] = [], nonFinite: string[] = [];
    for (const [name, g] of gradients) {
      if (g.some((v) => !Number.isFinite(v))) nonFinite.push(name);
      else if (g.every((v) => v === 0)) withoutGradient.push(name);
    }
    engine.setOptimizer({ kind: 'sgd', learningRate: 1e-3 });
    await engine.trainStep(x, labels);
    // A second step must not leave tensors behind (the first may create optimizer state).
    const before = tf.memory().numTensors;
    await engine.trainStep(x, labels);
    const lossAfterStep = (await engine.lossAndGradients(x, labels)).loss;
    const leaked = tf.memory().numTensors - before;
    const training = {
      loss,
      variables: gradients.size,
      withoutGradient,
      nonFinite,
      lossAfterStep,
      leakedTensors: leaked,
      pass: withoutGradient.length === 0 && nonFinite.length === 0 && Number.isFinite(lossAfterStep) && leaked <= 0,
    };
    return { file, backend: opts.backend, inputShape: shape, forward, training, roundTrip, pass: forward.pass && training.pass && roundTrip.pass };
  } finally {
    engine.dispose();
    await rm(tmp, { recursive: true, force: true });
  }
}

function bitsEqual(a: HostTensor, b: HostTensor): boolean {
  const x = a.data as Float32Array, y = b.data as Float32Array;
  if (x.length !== y.length) return false;
  const ux = new Uint32Array(x.buffer, x.byteOffset, x.length), uy = new Uint32Array(y.buffer, y.byteOffset, y.length);
  return ux.every((v, i) => v === uy[i]);
}

export function formatCheck(r: CheckReport): string {
  const mark = (ok: boolean) => (ok ? 'ok  ' : 'FAIL');
  const e = (v: number) => v.toExponential(2);
  return [
    `model     ${r.file}  (backend ${r.backend}, input [${r.inputShape.join(', ')}])`,
    `${mark(r.forward.pass)} forward: tfjs vs onnxruntime max abs ${e(r.forward.maxAbs)}, max rel ${e(r.forward.maxRel)}`,
    `${mark(r.training.pass)} training: loss ${r.training.loss.toFixed(4)} → ${r.training.lossAfterStep.toFixed(4)} after two SGD steps; ` +
      `${r.training.variables - r.training.withoutGradient.length - r.training.nonFinite.length}/${r.training.variables} variables get a finite, non-zero gradient` +
      (r.training.withoutGradient.length ? `; none for: ${r.training.withoutGradient.join(', ')}` : '') +
      (r.training.nonFinite.length ? `; non-finite for: ${r.training.nonFinite.join(', ')}` : '') +
      (r.training.leakedTensors > 0 ? `; ${r.training.leakedTensors} tensors leaked per step` : ''),
    `${mark(r.roundTrip.pass)} export: rewritten model's onnxruntime outputs ${r.roundTrip.bitIdentical ? 'bit-identical' : `differ (max abs ${e(r.roundTrip.maxAbs)})`}`,
    r.pass ? 'PASS' : 'FAIL',
  ].join('\n');
}
