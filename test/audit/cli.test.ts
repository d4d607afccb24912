import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeModel } from '../../src/onnx/model.js';
import { harden, expectOneLineError, ROOT } from '../helpers/cli.js';
import { tinyNet } from '../helpers/tiny.js';

// The shipped LeNet-5s stand in for M^s and M^t (same backbone shape, 84 features); tiny data.
const SOURCE = path.join(ROOT, 'models', 'lenet5-fashion-mnist.onnx');
const FINETUNED = path.join(ROOT, 'models', 'lenet5-mnist.onnx');
const SRC_DATA = 'fashion-mnist:split=test,per-class=4';
const TGT_DATA = 'fashion-mnist:split=test,classes=0-4,per-class=4';
let dir: string;
const base = (...extra: string[]) => ['audit', '--source', SOURCE, '--finetuned', FINETUNED, '--source-data', SRC_DATA, '--target-data', TGT_DATA, '--composites', '3', ...extra];

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'harden-audit-cli-'));
  writeFileSync(path.join(dir, 'tiny.onnx'), encodeModel(tinyNet(2).proto));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('harden audit / guard CLI', () => {
  it('audits, writes the report, and builds a guard from it', () => {
    const out = path.join(dir, 'audit');
    const r = harden(...base('--baseline', FINETUNED, '--report-dir', out, '--gallery-classes', '1', '--gallery-images', '2', '--json'));
    expect(r.code, r.stderr).toBe(0);
    const { report } = JSON.parse(r.stdout) as { report: { schema: string; classes: unknown[]; L: number[]; gallery: { file: string }[] } };
    expect(report.schema).toBe('harden-audit/1');
    expect(report.classes).toHaveLength(10);
    for (const f of ['report.json', 'report.html', 'scatter.png', report.gallery[0]!.file]) expect(existsSync(path.join(out, f)), f).toBe(true);
    expect(readFileSync(path.join(out, 'report.html'), 'utf8')).toMatch(/lingering memories L = /);
    const g = harden('guard', '--source', SOURCE, '--finetuned', FINETUNED, '--lingering', '5,7-9', '--p-lo', '0.5', '-o', path.join(dir, 'guard.onnx'), '--json');
    expect(g.code, g.stderr).toBe(0);
    expect(JSON.parse(g.stdout).runtimes.outputs).toEqual(['logits', 'interference', 'interference_flag']);
  });

  it('bad input is a one-line error', () => {
    expectOneLineError(harden('audit', '--source', SOURCE, '--finetuned', path.join(dir, 'tiny.onnx'), '--source-data', SRC_DATA, '--target-data', TGT_DATA), 2,
      /feature tensors differ: its classifier takes 84 features, .*tiny\.onnx's feature tensor 'h' has 16/);
    expectOneLineError(harden(...base('--cam-layer', 'Relu_10_out', '--report-dir', path.join(dir, 'x'))), 2, /--cam-layer 'Relu_10_out' is not spatial: .*\[1, 84\]/);
    expectOneLineError(harden('audit', '--source', SOURCE, '--finetuned', FINETUNED, '--source-data', SRC_DATA, '--target-data', `${TGT_DATA},size=32`), 2,
      /--target-data: images are \[1, 32, 32\] but the --source-data images are \[1, 28, 28\]/);
    expectOneLineError(harden('guard', '--source', SOURCE, '--finetuned', FINETUNED, '--lingering', '5,x', '--p-lo', '0.5', '-o', path.join(dir, 'g2.onnx')), 2, /--lingering: 'x' is not a class id/);
  });
});
