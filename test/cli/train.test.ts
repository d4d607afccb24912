import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'bin', 'harden.js');
let dir: string;

function harden(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, HARDEN_WASM_THREADS: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'harden-cli-train-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('harden train', () => {
  it('trains LeNet-5 from scratch for two epochs, writes the model, a checkpoint and a JSON summary', () => {
    const out = path.join(dir, 'lenet.onnx');
    const r = harden('train', '--arch', 'lenet5', '--data', 'mnist:split=train,limit=1024', '--test-data', 'mnist:split=test,limit=200',
      '--epochs', '2', '--batch-size', '32', '--lr', '3e-3', '--json', '-o', out);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.history).toHaveLength(2);
    expect(summary.history[1].test.count).toBe(200);
    expect(summary.history[1].test.accuracy).toBeGreaterThan(0.5); // 64 steps on 1 024 digits: far above chance (0.1)
    expect(existsSync(out)).toBe(true);
    expect(existsSync(path.join(`${out}.ckpt`, 'state.json'))).toBe(true);
    const inspected = JSON.parse(harden('inspect', '--json', out).stdout);
    expect(inspected.harden.operation).toBe('train');
    expect(inspected.outputs[0].shape).toEqual(['batch', 10]);
  });

  it('bad flags and mismatched data are one-line errors', () => {
    const out = path.join(dir, 'x.onnx');
    const cases: [string[], RegExp][] = [
      [['--arch', 'lenet5', '--data', 'mnist', '--epochs', '0', '-o', out], /--epochs must be a positive integer/],
      [['--arch', 'alexnet', '--data', 'mnist:limit=10', '-o', out], /--arch 'alexnet' is unknown/],
      [['--data', 'mnist:limit=10', '-o', out], /exactly one of --arch/],
      [['--arch', 'lenet5', '--data', 'mnist:limit=10,colour=3', '-o', out], /colour/],
      [['--arch', 'lenet5', '--data', 'mnist:limit=10', '--train', 'some', '-o', out], /--train must be all, head or last-K/],
    ];
    for (const [args, message] of cases) {
      const r = harden('train', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
  });
});
