import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { ROOT, expectOneLineError, harden } from '../helpers/cli.js';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createSession, runSession } from '../../src/verify/ort.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { tmpdir } from 'node:os';
import path from 'node:path';

const MNIST_MODEL = path.join(ROOT, 'models', 'lenet5-mnist.onnx');
const FASHION_MODEL = path.join(ROOT, 'models', 'lenet5-fashion-mnist.onnx');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'harden-cli-methods-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('harden dispose', () => {
  it('runs GC disposal with a linear-probe source head and records it in the model', () => {
    const out = path.join(dir, 'disposed.onnx');
    const r = harden('dispose', MNIST_MODEL, '--retain', 'mnist:split=train,limit=128', '--forget', 'fashion-mnist:split=train,per-class=8',
      '--steps', '3', '--batch-size', '16', '--forget-batch-size', '16', '--json', '-o', out);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.method).toBe('gc');
    expect(summary.steps).toBe(3);
    // --forget-classes auto (the default) says which classes it chose: digits are none of the fashion classes, so all.
    expect(summary.forgetClasses).toBe('all');
    const inspected = JSON.parse(harden('inspect', '--json', out).stdout);
    expect(inspected.harden.operation).toBe('dispose');
    expect(inspected.harden.settings.method).toBe('gc');
    // The defaults: DEFAULT_DISPOSE_SETTINGS, the reference scenario's recipe.
    expect(inspected.harden.settings).toMatchObject({ chunking: 'fixed', forgetGradNorm: 30, projectForget: true, distilOnForget: true, forgetClasses: 'auto' });
    // Measured figures: target accuracy before/after, under onnxruntime and tfjs, which agree.
    const acc = inspected.harden.figures.accuracy;
    expect(acc.data).toBe('mnist:split=train,limit=128');
    expect(acc.images).toBe(128);
    for (const phase of [acc.before, acc.after]) {
      expect(phase.onnxruntime).toBeGreaterThan(0.5);
      expect(Math.abs(phase.onnxruntime - phase.tfjs)).toBeLessThanOrEqual(1 / 128);
    }
    expect(summary.accuracy).toEqual(acc);
    // --engine auto (the default) disposes on ort; --engine tfjs on the tfjs graph.
    expect(inspected.harden.settings.engine).toBe('ort');
    const tfjsOut = path.join(dir, 'disposed-tfjs.onnx');
    const t = harden('dispose', MNIST_MODEL, '--retain', 'mnist:split=train,limit=128', '--forget', 'fashion-mnist:split=train,per-class=8',
      '--steps', '1', '--batch-size', '16', '--forget-batch-size', '16', '--engine', 'tfjs', '--json', '-o', tfjsOut);
    expect(t.code, t.stderr).toBe(0);
    expect(JSON.parse(harden('inspect', '--json', tfjsOut).stdout).harden.settings.engine).toBe('tfjs');
  });

  it('passes the forget-gradient clip, projection, distillation on the forget images and repair steps through', () => {
    const out = path.join(dir, 'disposed-clipped.onnx');
    const r = harden('dispose', MNIST_MODEL, '--retain', 'mnist:split=train,limit=64', '--forget', 'fashion-mnist:split=train,per-class=8', '--chunking', 'fixed',
      '--steps', '2', '--repair-steps', '1', '--forget-grad-norm', '30', '--project-forget', '--distil-on-forget', '--batch-size', '16', '--forget-batch-size', '16', '--json', '-o', out);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).steps).toBe(3);
    const settings = JSON.parse(harden('inspect', '--json', out).stdout).harden.settings;
    expect(settings).toMatchObject({ forgetGradNorm: 30, projectForget: true, distilOnForget: true, repairSteps: 1, chunking: 'fixed' });
    // The plain loss: every recipe option turned off by flag.
    const plainOut = path.join(dir, 'disposed-plain.onnx');
    const p = harden('dispose', MNIST_MODEL, '--retain', 'mnist:split=train,limit=64', '--forget', 'fashion-mnist:split=train,per-class=8', '--steps', '1',
      '--chunking', 'random', '--forget-grad-norm', '0', '--no-project-forget', '--no-distil-on-forget', '--forget-classes', 'all', '--batch-size', '16', '--forget-batch-size', '16', '--json', '-o', plainOut);
    expect(p.code, p.stderr).toBe(0);
    const plain = JSON.parse(harden('inspect', '--json', plainOut).stdout).harden;
    expect(plain.settings).toMatchObject({ chunking: 'random', projectForget: false, distilOnForget: false });
    expect(plain.settings.forgetGradNorm).toBeUndefined();
    expect(plain.settings.forgetClasses).toBeUndefined();
    expect(plain.figures.forgetClasses).toBeUndefined();
  });

  it('bad settings are one-line errors', () => {
    const out = path.join(dir, 'bad.onnx');
    const base = ['dispose', MNIST_MODEL, '--retain', 'mnist:limit=32', '--forget', 'fashion-mnist:per-class=8', '-o', out];
    expectOneLineError(harden(...base, '--lambda', '-1'), 2, /λ|lambda/);
    expectOneLineError(harden(...base, '--test-data', 'nosuch:x'), 2, /dataset spec 'nosuch:x'/);
    expectOneLineError(harden(...base, '--forget-params', 'nothing', '--steps', '1'), 2, /no backbone parameter starts with 'nothing'/);
    expectOneLineError(harden(...base, '--source-head-lr', '-1'), 2, /source head learning rate/);
    expectOneLineError(harden(...base, '--collision-floor', 'low'), 2, /collision floor must be a finite number, got NaN/);
    expectOneLineError(harden(...base, '--forget-grad-norm', '-1'), 2, /forget gradient norm must be a finite number > 0, got -1/);
    expectOneLineError(harden(...base, '--forget-classes', 'some'), 2, /--forget-classes: 'some' is not a class id/);
    expectOneLineError(harden(...base, '--repair-steps', '-1'), 2, /repair steps must be an integer ≥ 0, got -1/);
    expectOneLineError(harden(...base, '--repair-steps', 'many'), 2, /repair steps must be an integer ≥ 0, got NaN/);
    expectOneLineError(harden(...base, '--chunks', '3', '--forget-batch-size', '16'), 2, /multiple|chunks/);
    expectOneLineError(harden(...base, '--source-model', path.join(ROOT, 'test', 'fixtures', 'onnx', 'resnet8_bn.onnx')), 2, /backbone does not match|images|\[/);
  });
});

describe('harden verify --attacks pl', () => {
  it('reports PL accuracy, scratch accuracy and their difference', () => {
    const r = harden('verify', FASHION_MODEL, '--pl-data', 'mnist:split=train,per-class=10', '--pl-test', 'mnist:split=test,limit=300',
      '--epochs', '3', '--lr-grid', '3e-3', '--json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout).pl;
    expect(report.protocol.trainImages + report.protocol.valImages).toBe(100);
    expect(report.protocol.testImages).toBe(300);
    expect(report.plAccuracy).toBeGreaterThan(0.1);
    expect(report.transferAdvantage).toBeCloseTo(report.plAccuracy - report.scratchAccuracy, 12);
  });

  it('gives the same figures on 2 worker threads as in-process, and logs progress per attack', () => {
    const args = ['verify', FASHION_MODEL, '--pl-data', 'mnist:split=train,per-class=6', '--pl-test', 'mnist:split=test,limit=100', '--epochs', '2', '--lr-grid', '1e-3,3e-3'];
    const [one, two] = ['1', '2'].map((w) => harden(...args, '--workers', w, '--json'));
    expect(one!.code, one!.stderr).toBe(0);
    expect(two!.code, two!.stderr).toBe(0);
    expect(JSON.parse(two!.stdout).pl).toEqual(JSON.parse(one!.stdout).pl);
    const logged = harden(...args, '--workers', '2');
    expect(logged.code, logged.stderr).toBe(0);
    expect(logged.stderr).toMatch(/pl: 4\/4 fine-tuning runs done/);
    expectOneLineError(harden(...args, '--workers', '0'), 2, /--workers must be a positive integer or auto, got '0'/);
  });

  it('--pl-balance attacks the equi-normalized model and says so in the protocol', () => {
    const args = ['verify', FASHION_MODEL, '--pl-data', 'mnist:split=train,per-class=6', '--pl-test', 'mnist:split=test,limit=100', '--epochs', '2', '--lr-grid', '3e-3', '--workers', '1', '--json'];
    const [plain, balanced] = [harden(...args), harden(...args, '--pl-balance')];
    expect(balanced.code, balanced.stderr).toBe(0);
    const [a, b] = [JSON.parse(plain.stdout).pl, JSON.parse(balanced.stdout).pl];
    expect(a.protocol.balance).toBeUndefined();
    expect(b.protocol.balance).toBe(true);
    // LeNet-5 as trained is not balanced, so its fine-tuning starts elsewhere.
    expect([b.plAccuracy, b.attack.perLearningRate]).not.toEqual([a.plAccuracy, a.attack.perLearningRate]);
  });

  it('an unknown attack is a one-line error', () => {
    expectOneLineError(harden('verify', FASHION_MODEL, '--attacks', 'pl,psychic', '--pl-data', 'mnist:limit=20', '--pl-test', 'mnist:split=test,limit=20'), 2, /unknown attack 'psychic'/);
  });
});

describe('harden prune', () => {
  it('writes an NTP-pruned model with exact zeros, its sparsity in the metadata, and a COO variant that runs the same', async () => {
    const dense = path.join(dir, 'ntp.onnx');
    const coo = path.join(dir, 'ntp-coo.onnx');
    const base = ['prune', MNIST_MODEL, '--keep', 'mnist:split=train,limit=256', '--block', 'fashion-mnist:split=train,limit=256', '--keep-test', 'mnist:split=test,limit=200',
      '--iterations', '2', '--steps-per-iteration', '2', '--finetune-steps', '2', '--batch-size', '16', '--json'];
    const r = harden(...base, '-o', dense);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.method).toBe('ntp');
    expect(summary.admmIterations).toHaveLength(2);
    for (const s of Object.values(summary.prunedTensors as Record<string, number>)) expect(s).toBeGreaterThan(0);
    expect(summary.keepAccuracyBefore).toBeGreaterThan(0.95); // measured on 200 test images; 2+2 steps do not restore it after pruning
    expect(summary.keepAccuracy).toBeGreaterThanOrEqual(0);
    const inspected = JSON.parse(harden('inspect', '--json', dense).stdout);
    expect(inspected.harden.operation).toBe('prune');
    // 0.9 of the kernels but the classifier's (left dense by default): LeNet-5 has 61 470 kernel
    // weights, 840 of them in fc3.
    expect(Object.keys(summary.prunedTensors)).not.toContain('fc3.weight');
    expect(inspected.sparsity.global).toBeCloseTo(Math.round(0.9 * (61470 - 840)) / 61470, 6);
    expect(harden(...base, '--sparse-format', 'coo', '-o', coo).code).toBe(0);
    expect(statSync(coo).size).toBeLessThan(statSync(dense).size / 2);
    const x = { dtype: 'float32' as const, shape: [4, 1, 28, 28], data: Float32Array.from({ length: 4 * 784 }, (_, i) => (i * 37) % 101 / 100) };
    const outputs = await Promise.all([dense, coo].map(async (f) => {
      const session = await createSession(readFileSync(f));
      const out = (await runSession(session, { [session.inputNames[0]!]: x })).get(session.outputNames[0]!)!;
      await session.release();
      return [...(out.data as Float32Array)];
    }));
    expect(outputs[1]).toEqual(outputs[0]);
  });

  it('bad input is a one-line error', () => {
    const out = path.join(dir, 'bad-prune.onnx');
    const base = ['prune', MNIST_MODEL, '--keep', 'mnist:limit=32', '-o', out];
    expectOneLineError(harden(...base, '--block', 'fashion-mnist:limit=32', '--sparsity', '1'), 2, /--sparsity must be in \[0, 1\), got 1/);
    expectOneLineError(harden(...base, '--block', 'fashion-mnist:limit=32', '--sparsity', '-0.5'), 2, /--sparsity/);
    expectOneLineError(harden(...base, '--block', 'fashion-mnist:classes=3,limit=32'), 2, /has 1 class; the Fisher ratio needs at least 2/);
    expectOneLineError(harden(...base), 2, /--block/);
    const headless = path.join(dir, 'headless.onnx');
    const g = new GraphBuilder({ opset: 13 });
    g.input('input', ['batch', 1, 28, 28]);
    g.initializer('w', { data: new Float32Array(18).fill(0.1), shape: [2, 1, 3, 3] });
    g.node('Conv', ['input', 'w'], ['c']);
    g.node('Flatten', ['c'], ['logits']);
    g.output('logits', ['batch', 1352]);
    writeFileSync(headless, g.toBytes());
    expectOneLineError(harden('prune', headless, '--keep', 'mnist:limit=32', '--method', 'magnitude', '-o', out), 2, /no final Gemm\/MatMul classifier/);
  });
});

describe('harden verify --attacks slc', () => {
  it('reports the learning curves, SLC-AUC (dense and masked) and writes a plot', () => {
    const pruned = path.join(dir, 'mag.onnx');
    expect(harden('prune', MNIST_MODEL, '--method', 'magnitude', '--keep', 'mnist:limit=64', '--finetune-steps', '0', '-o', pruned).code).toBe(0);
    const plot = path.join(dir, 'slc.svg');
    const r = harden('verify', pruned, '--attacks', 'slc', '--slc-data', 'fashion-mnist:split=train,limit=600', '--slc-test', 'fashion-mnist:split=test,limit=200',
      '--slc-fractions', '0.02,0.2,1', '--slc-steps', '3', '--slc-val-images', '100', '--lr-grid', '3e-3', '--plot', plot, '--json');
    expect(r.code, r.stderr).toBe(0);
    const slc = JSON.parse(r.stdout).slc;
    expect(slc.result.model.points.map((p: { images: number }) => p.images)).toEqual([10, 100, 500]);
    expect(slc.slcAuc).toBeCloseTo(slc.result.model.auc - slc.result.scratch.auc, 12);
    expect(slc.slcAucMasked).toBeCloseTo(slc.result.masked.auc - slc.result.scratch.auc, 12);
    const svg = readFileSync(plot, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toMatch(/masked attacker/);
  });

  it('missing data flags are one-line errors', () => {
    expectOneLineError(harden('verify', FASHION_MODEL, '--attacks', 'slc'), 2, /--slc-data and --slc-test/);
    expectOneLineError(harden('verify', FASHION_MODEL, '--attacks', 'slc', '--slc-data', 'mnist:limit=50', '--slc-test', 'mnist:limit=50', '--slc-fractions', '0.5,0.1'), 2, /fractions must increase/);
  });
});

describe('harden verify --attacks probe,knn,mia', () => {
  it('reports probe and k-NN accuracy on frozen features beside the scratch features, and the MIA advantage', () => {
    const r = harden('verify', MNIST_MODEL, '--attacks', 'probe,knn,mia', '--data', 'mnist:split=train,limit=300', '--test-data', 'mnist:split=test,limit=200',
      '--members', 'mnist:split=train,limit=200', '--non-members', 'mnist:split=test,limit=200', '--json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.probe.protocol.dim).toBe(84);
    expect(report.probe.accuracy).toBeGreaterThan(0.9); // the model's own domain: its features separate the digits
    expect(report.probe.advantage).toBeCloseTo(report.probe.accuracy - report.probe.scratchAccuracy, 12);
    expect(report.knn.shots.map((s: { shots: number }) => s.shots)).toEqual([1, 5, 10]);
    expect(report.mia.advantage).toBeGreaterThanOrEqual(0);
    expect(report.mia.advantage).toBeLessThanOrEqual(1);
  });

  it('missing data and a feature tensor that does not exist are one-line errors', () => {
    expectOneLineError(harden('verify', MNIST_MODEL, '--attacks', 'probe'), 2, /--data and --test-data/);
    expectOneLineError(harden('verify', MNIST_MODEL, '--attacks', 'mia'), 2, /--members and --non-members/);
    expectOneLineError(harden('verify', MNIST_MODEL, '--attacks', 'knn', '--data', 'mnist:limit=20', '--test-data', 'mnist:split=test,limit=20', '--feature-tensor', 'nope'), 2, /nope/);
    expectOneLineError(harden('verify', MNIST_MODEL, '--attacks', 'probe', '--data', 'mnist:limit=20,size=32', '--test-data', 'mnist:split=test,limit=20'), 2, /images are \[1, 32, 32\] but the model takes \[1, 28, 28\]/);
  });

  it('--device cuda without the CUDA provider: exit 4 with --strict, else a warning and the CPU', () => {
    const base = ['verify', MNIST_MODEL, '--attacks', 'mia', '--members', 'mnist:limit=20', '--non-members', 'mnist:split=test,limit=20', '--device', 'cuda'];
    expectOneLineError(harden(...base, '--strict'), 4, /CUDA provider is not available/);
    const r = harden(...base, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: --device cuda: CUDA provider not available.*running on the CPU/);
  });
});
