import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { ROOT, expectOneLineError, harden } from '../helpers/cli.js';
import { mkdtempSync, rmSync } from 'node:fs';
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
    const inspected = JSON.parse(harden('inspect', '--json', out).stdout);
    expect(inspected.harden.operation).toBe('dispose');
    expect(inspected.harden.settings.method).toBe('gc');
  });

  it('bad settings are one-line errors', () => {
    const out = path.join(dir, 'bad.onnx');
    const base = ['dispose', MNIST_MODEL, '--retain', 'mnist:limit=32', '--forget', 'fashion-mnist:per-class=4', '-o', out];
    expectOneLineError(harden(...base, '--lambda', '-1'), 2, /λ|lambda/);
    expectOneLineError(harden(...base, '--chunks', '3', '--forget-batch-size', '16'), 2, /multiple|chunks/);
    expectOneLineError(harden(...base, '--source-model', path.join(ROOT, 'test', 'fixtures', 'onnx', 'resnet8_bn.onnx')), 2, /backbone does not match|images|\[/);
  });
});

describe('harden verify --attacks pl', () => {
  it('reports PL accuracy, scratch accuracy and their difference', () => {
    const r = harden('verify', FASHION_MODEL, '--pl-data', 'mnist:split=train,per-class=10', '--pl-test', 'mnist:split=test,limit=300',
      '--epochs', '3', '--lr-grid', '3e-3', '--json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.protocol.trainImages + report.protocol.valImages).toBe(100);
    expect(report.protocol.testImages).toBe(300);
    expect(report.plAccuracy).toBeGreaterThan(0.1);
    expect(report.transferAdvantage).toBeCloseTo(report.plAccuracy - report.scratchAccuracy, 12);
  });

  it('an unknown attack is a one-line error', () => {
    expectOneLineError(harden('verify', FASHION_MODEL, '--attacks', 'pl,psychic', '--pl-data', 'mnist:limit=20', '--pl-test', 'mnist:split=test,limit=20'), 2, /unknown attack 'psychic'/);
  });
});
