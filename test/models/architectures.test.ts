import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { TfjsTrainable } from '../../src/engine/tfjs-engine.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { findClassifierHead } from '../../src/import/head.js';
import { encodeModel, initializerMap, opsetOf } from '../../src/onnx/model.js';
import { toNumber, type ModelProto } from '../../src/onnx/schema.js';
import { ARCHITECTURES, buildArchitecture, type ArchName } from '../../src/models/index.js';
import { randomTensor, runOrt, runTfjs } from '../helpers/ops.js';

type Case = { c: number; h: number; w: number; classes: number };
const CASES: Case[] = [
  { c: 1, h: 28, w: 28, classes: 10 },
  { c: 3, h: 32, w: 32, classes: 7 },
];
const BATCH = 2;

function build(arch: ArchName, k: Case, seed = 1): ModelProto {
  return buildArchitecture(arch, { classes: k.classes, inputShape: [k.c, k.h, k.w], seed });
}

function dims(proto: ModelProto, io: 'input' | 'output'): (number | string)[] {
  const v = proto.graph![io][0];
  return v.type!.tensor_type!.shape!.dim.map((d) => d.dim_param || toNumber(d.dim_value ?? 0));
}

/** Learnable parameters: every variable of the import that is not a BN running statistic. */
function trainableCount(proto: ModelProto): number {
  const graph = new ImportedGraph({ proto }, 'count.onnx');
  try {
    return graph.trainableVariables().reduce((n, v) => n + v.size, 0);
  } finally {
    graph.dispose();
  }
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe.each(ARCHITECTURES)('%s', (arch) => {
  it.each(CASES)('runs in onnxruntime and matches the tfjs import (%o)', async (k) => {
    const proto = build(arch, k);
    expect(toNumber(proto.ir_version ?? 0)).toBe(8);
    expect(opsetOf(proto)).toBe(17);
    expect(proto.graph!.input.map((i) => i.name)).toEqual(['input']);
    expect(proto.graph!.output.map((o) => o.name)).toEqual(['logits']);
    expect(dims(proto, 'input')).toEqual(['batch', k.c, k.h, k.w]);
    expect(dims(proto, 'output')).toEqual(['batch', k.classes]);

    const bytes = encodeModel(proto);
    const x = randomTensor([BATCH, k.c, k.h, k.w], 7);
    const ref = (await runOrt(bytes, { input: x })).logits;
    expect(ref.dims).toEqual([BATCH, k.classes]);
    expect(ref.data.every(Number.isFinite)).toBe(true);

    const got = runTfjs(bytes, { input: x }).logits;
    expect(got.dims).toEqual([BATCH, k.classes]);
    let worst = 0;
    for (let i = 0; i < ref.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i] - ref.data[i]) / Math.max(1, Math.abs(ref.data[i])));
    expect(worst).toBeLessThanOrEqual(1e-4);
  });

  it('has a Gemm classifier head that findClassifierHead finds', () => {
    const proto = build(arch, CASES[0]);
    const head = findClassifierHead(proto);
    expect(head).toBeDefined();
    const gemm = head!.nodes[0];
    expect(gemm.op_type).toBe('Gemm');
    expect(gemm.output).toEqual(['logits']);
    expect(toNumber(gemm.attribute.find((a) => a.name === 'transB')?.i ?? 0)).toBe(1);
    expect(head!.featureTensor).toBe(gemm.input[0]);
    expect(head!.parameters).toHaveLength(2);
    const inits = initializerMap(proto);
    expect(inits.get(head!.parameters[0])!.shape[0]).toBe(CASES[0].classes);
  });

  it('is deterministic for a seed', () => {
    const k = CASES[1];
    const a = encodeModel(build(arch, k, 42));
    const b = encodeModel(build(arch, k, 42));
    const c = encodeModel(build(arch, k, 43));
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(c))).toBe(false);
  });

  it('gives every trainable variable a non-zero gradient and trains a step', async () => {
    const k = CASES[0];
    const proto = build(arch, k, 3);
    const model = new TfjsTrainable({ proto }, `${arch}.onnx`);
    try {
      expect(model.parameterNames.length).toBeGreaterThan(0);
      const x = randomTensor([4, k.c, k.h, k.w], 11);
      const labels = Int32Array.from([0, 1, 2, 3]);
      const { loss, gradients } = await model.lossAndGradients(x, labels);
      expect(Number.isFinite(loss)).toBe(true);
      for (const name of model.parameterNames) {
        const g = gradients.get(name)!;
        expect(g.every(Number.isFinite), `finite gradient of ${name}`).toBe(true);
        expect(g.some((v) => v !== 0), `non-zero gradient of ${name}`).toBe(true);
      }

      model.setOptimizer({ kind: 'sgd', learningRate: 0.1 });
      const before = model.weights();
      const stepLoss = await model.trainStep(x, labels);
      expect(Number.isFinite(stepLoss)).toBe(true);
      const after = model.weights();
      for (const name of model.parameterNames) {
        const w0 = before.get(name)!;
        const w1 = after.get(name)!;
        expect(w1.some((v, i) => v !== w0[i]), `${name} changed by the step`).toBe(true);
      }
      // BN running statistics move towards the batch statistics (momentum 0.9).
      for (const name of [...before.keys()].filter((n) => n.endsWith('.running_mean') || n.endsWith('.running_var'))) {
        expect(after.get(name)!.some((v, i) => v !== before.get(name)![i]), `${name} updated`).toBe(true);
      }
    } finally {
      model.dispose();
    }
  });
});

describe('parameter counts', () => {
  it('lenet5 (1×28×28, 10 classes) has 61 706 parameters, the same for 3×32×32 inputs less the channels', () => {
    // conv1 1·6·25+6 = 156, conv2 6·16·25+16 = 2416, fc1 400·120+120 = 48 120, fc2 120·84+84 = 10 164, fc3 84·10+10 = 850
    expect(trainableCount(buildArchitecture('lenet5', { classes: 10, inputShape: [1, 28, 28], seed: 0 }))).toBe(61_706);
    // 3×32×32: conv1 grows by 2·6·25 weights; the 16@5×5 feature map is the same.
    expect(trainableCount(buildArchitecture('lenet5', { classes: 10, inputShape: [3, 32, 32], seed: 0 }))).toBe(61_706 + 300);
  });

  it('resnet20 (10 classes) has 272 474 parameters including BN scale and bias', () => {
    // convs 270 256 (incl. 1×1 shortcuts 512 + 2048), BN 2·(16·7 + 32·7 + 64·7) = 1568, fc 64·10+10 = 650
    expect(trainableCount(buildArchitecture('resnet20', { classes: 10, inputShape: [3, 32, 32], seed: 0 }))).toBe(272_474);
  });

  it('counts every float initializer but BN running statistics and Clip bounds as trainable', () => {
    for (const arch of ARCHITECTURES) {
      const proto = buildArchitecture(arch, { classes: 10, inputShape: [3, 32, 32], seed: 0 });
      let expected = 0;
      for (const [name, t] of initializerMap(proto)) {
        if (/\.running_(mean|var)$/.test(name) || name.startsWith('relu6.')) continue;
        expected += t.shape.reduce((a, b) => a * b, 1);
      }
      expect(trainableCount(proto), arch).toBe(expected);
    }
  });
});

describe('buildArchitecture', () => {
  it('initializes weights within ±1/√fan_in and BN to the identity', () => {
    const inits = initializerMap(buildArchitecture('resnet8', { classes: 10, inputShape: [3, 32, 32], seed: 5 }));
    const conv1 = inits.get('conv1.weight')!;
    const bound = 1 / Math.sqrt(3 * 9);
    const w = conv1.data as Float32Array;
    expect(Math.max(...w.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...w.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    expect([...(inits.get('bn1.weight')!.data as Float32Array)].every((v) => v === 1)).toBe(true);
    expect([...(inits.get('bn1.running_var')!.data as Float32Array)].every((v) => v === 1)).toBe(true);
  });

  it('accepts other sizes and rejects bad options', async () => {
    const proto = buildArchitecture('resnet8', { classes: 3, inputShape: [3, 24, 20], seed: 1 });
    const out = (await runOrt(encodeModel(proto), { input: randomTensor([1, 3, 24, 20], 3) })).logits;
    expect(out.dims).toEqual([1, 3]);
    expect(() => buildArchitecture('nope' as ArchName, { classes: 10, inputShape: [1, 28, 28], seed: 0 })).toThrow(/unknown architecture/);
    expect(() => buildArchitecture('lenet5', { classes: 0, inputShape: [1, 28, 28], seed: 0 })).toThrow(/classes/);
    expect(() => buildArchitecture('lenet5', { classes: 10, inputShape: [1, 8, 8], seed: 0 })).toThrow(/too small/);
  });
});
