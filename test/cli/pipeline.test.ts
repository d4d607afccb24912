import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BIN, CLI_ENV, ROOT, expectOneLineError, harden } from '../helpers/cli.js';
import { loadModel } from '../../src/onnx/model.js';
import { validateReport } from '../../src/verify/report-schema.js';

const MNIST_MODEL = path.join(ROOT, 'models', 'lenet5-mnist.onnx');
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'harden-pipeline-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const QUICK = ['--keep', 'mnist:split=train,limit=128', '--block', 'fashion-mnist:split=train,limit=200', '--keep-test', 'mnist:split=test,limit=200',
  '--block-test', 'fashion-mnist:split=test,limit=100', '--attacks', 'probe,knn,mia'];

describe('harden <model> (the pipeline)', () => {
  it('hardens, exports, verifies both models, writes a schema-valid report and carries its summary in the model', async () => {
    const out = path.join(dir, 'mag.onnx');
    const reportDir = path.join(dir, 'mag-report');
    const r = harden(MNIST_MODEL, '--method', 'magnitude', '--prune', '{"finetuneSteps": 0}', ...QUICK, '-o', out, '--report-dir', reportDir, '--json');
    expect(r.code, r.stderr).toBe(0);
    const { report, files } = JSON.parse(r.stdout);
    expect(validateReport(report)).toEqual({ valid: true, errors: [] });
    expect(report.method.name).toBe('magnitude');
    expect(report.keep.before).toBeGreaterThan(report.keep.after - 1e-9);
    const keys = report.attacks.map((a: { key: string }) => a.key);
    expect(keys).toEqual(['probe', 'knn_1shot', 'knn_5shot', 'knn_10shot', 'mia']);
    for (const a of report.attacks) expect(a.undefended).toBeTypeOf('number');
    const written = JSON.parse(readFileSync(path.join(reportDir, 'report.json'), 'utf8'));
    expect(written).toEqual(report);
    expect(existsSync(files.html)).toBe(true);
    const model = await loadModel(out);
    const summary = JSON.parse(model.proto.metadata_props.find((e) => e.key === 'harden.report')!.value!);
    expect(summary.verdict).toBe(report.verdict);
    expect(summary.attacks.probe.model).toBe(report.attacks[0].model);
    expect(model.proto.metadata_props.some((e) => e.key === 'harden.sparsity')).toBe(true);
    expect(report.browserRuntime.maxAbsDiff).toBeLessThan(1e-4);
    expect(report.browserRuntime.argmaxMismatches).toBe(0);
  });

  it('exits 5 and names the gate when a release gate fails; options can come from harden.config.json', () => {
    const config = path.join(dir, 'harden.config.json');
    writeFileSync(config, JSON.stringify({ method: 'magnitude', prune: { finetuneSteps: 0, sparsity: 0.95 }, 'fail-if': 'keep_acc_drop>-1' }));
    const out = path.join(dir, 'gated.onnx');
    // Run in the config's folder: ./harden.config.json is read by default.
    const r = spawnSync(process.execPath, [BIN, MNIST_MODEL, ...QUICK, '-o', out], { cwd: dir, encoding: 'utf8', env: CLI_ENV, timeout: 120_000 });
    expect(r.status, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/gate keep_acc_drop>-1 failed/);
    const report = JSON.parse(readFileSync(path.join(`${out}.report`, 'report.json'), 'utf8'));
    expect(report.gates.passed).toBe(false);
    expect(report.method.settings.sparsity).toBe(0.95);
  });

  it('disposes with GC on the defaults, where a null in --dispose turns an optional one off', () => {
    const out = path.join(dir, 'gc.onnx');
    const r = harden(MNIST_MODEL, '--method', 'gc', '--steps', '2', '--dispose', '{"forgetGradNorm": null, "forgetClasses": null, "chunking": "random"}', ...QUICK, '--attacks', 'mia', '-o', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const { settings } = JSON.parse(r.stdout).report.method;
    expect(settings).toMatchObject({ steps: 2, chunking: 'random', projectForget: true, distilOnForget: true });
    expect(settings).not.toHaveProperty('forgetGradNorm');
    expect(settings).not.toHaveProperty('forgetClasses');
  });

  it('runs NTL as a pipeline method', () => {
    const out = path.join(dir, 'ntl.onnx');
    const r = harden(MNIST_MODEL, '--method', 'ntl', '--steps', '3', ...QUICK, '--attacks', 'mia', '-o', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const { report } = JSON.parse(r.stdout);
    expect(report.method.settings).toMatchObject({ steps: 3, alpha: 0.1, beta: 0.1 });
    expect(report.attacks.map((a: { key: string }) => a.key)).toEqual(['mia']);
  });

  it('runs SOPHON as a pipeline method', () => {
    const out = path.join(dir, 'sophon.onnx');
    const r = harden(MNIST_MODEL, '--method', 'sophon', '--steps', '2', '--sophon', '{"innerSteps": 1, "supportBatchSize": 8, "queryBatchSize": 8}', '--min-keep-acc', '0.5',
      ...QUICK, '--attacks', 'mia', '-o', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const { report } = JSON.parse(r.stdout);
    expect(report.method.settings).toMatchObject({ outerSteps: 2, innerSteps: 1, minKeepAccuracy: 0.5 });
  });

  it('runs SKD as a pipeline method', () => {
    const out = path.join(dir, 'skd.onnx');
    const r = harden(MNIST_MODEL, '--method', 'skd', '--skd', '{"steps": 2, "headSteps": 2, "init": "teacher"}', ...QUICK, '--attacks', 'mia', '-o', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).report.method.settings).toMatchObject({ steps: 2, headSteps: 2, init: 'teacher', negativeTarget: -100 });
  });

  it('runs UNSIR on the classes of the block data', () => {
    const out = path.join(dir, 'unsir.onnx');
    const r = harden(MNIST_MODEL, '--method', 'unsir', '--unsir', '{"noiseSteps": 2}', '--keep', 'mnist:split=train,classes=0-7,relabel=false,limit=128',
      '--block', 'mnist:split=train,classes=8-9,relabel=false,limit=20', '--block-test', 'mnist:split=test,classes=8-9,relabel=false,limit=50', '--attacks', 'mia', '-o', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).report.method.settings.forgetClasses).toEqual([8, 9]);
  });

  it('bad flags are one-line errors', () => {
    const out = path.join(dir, 'bad.onnx');
    expectOneLineError(harden(MNIST_MODEL, '--method', 'magnitude', ...QUICK, '--fail-if', 'vibes>0', '-o', out), 2, /unknown gate 'vibes'/);
    expectOneLineError(harden(MNIST_MODEL, '--method', 'sorcery', ...QUICK, '-o', out), 2, /method/);
    expectOneLineError(harden(MNIST_MODEL, '--method', 'magnitude', ...QUICK, '--attacks', 'probe,astrology', '-o', out), 2, /unknown attack 'astrology'/);
    expectOneLineError(harden(MNIST_MODEL, '--method', 'magnitude', ...QUICK, '--config', path.join(dir, 'missing.json'), '-o', out), 2, /missing\.json/);
    expectOneLineError(harden(MNIST_MODEL, '--method', 'ntl', '--ntl', '{"layer": "nope"}', ...QUICK, '-o', out), 2, /MMD layer 'nope'/);
    // A missing attack test set is reported before any hardening (a 100 000-step disposal would run first otherwise).
    const noTest = ['--keep', 'mnist:split=train,limit=128', '--block', 'fashion-mnist:split=train,limit=200'];
    const slow = ['--method', 'gc', '--steps', '100000'];
    expectOneLineError(harden(MNIST_MODEL, ...slow, ...noTest, '--attacks', 'pl', '-o', out), 2, /the pl attack needs a test set of the blocked domain: give --block-test \(or --pl-test\)/);
    expectOneLineError(harden(MNIST_MODEL, ...slow, ...noTest, '--attacks', 'pl,probe', '--pl-test', 'fashion-mnist:split=test,limit=50', '-o', out), 2, /the probe attack needs .* --test-data/);
    expect(existsSync(out)).toBe(false);
  });

  it('runs the pl attack with --pl-test alone (no --block-test)', () => {
    const out = path.join(dir, 'pl-only.onnx');
    const r = harden(MNIST_MODEL, '--method', 'magnitude', '--prune', '{"finetuneSteps": 0}', '--keep', 'mnist:split=train,limit=128', '--block', 'fashion-mnist:split=train,per-class=4',
      '--attacks', 'pl', '--pl-test', 'fashion-mnist:split=test,limit=50', '--epochs', '1', '--lr-grid', '3e-3', '-o', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).report.attacks.map((a: { key: string }) => a.key)).toEqual(['pl']);
  });
});
