import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn } from 'node:child_process';
import { BIN, CLI_ENV, harden } from '../helpers/cli.js';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

let dir: string;

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

  it('--engine ort and --engine tfjs train the same run to similar accuracy; --help names the engines', () => {
    const run = (engine: string) => {
      const r = harden('train', '--arch', 'lenet5', '--data', 'mnist:split=train,limit=768', '--test-data', 'mnist:split=test,limit=300',
        '--epochs', '1', '--batch-size', '32', '--lr', '3e-3', '--engine', engine, '--json', '-o', path.join(dir, `engine-${engine}.onnx`));
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout).history[0].test.accuracy as number;
    };
    const [ort, tfjs] = [run('ort'), run('tfjs')];
    expect(ort).toBeGreaterThan(0.5);
    expect(tfjs).toBeGreaterThan(0.5);
    expect(Math.abs(ort - tfjs)).toBeLessThan(0.1); // same data order and init: float32 differences only
    expect(harden('train', '--help').stdout).toMatch(/--engine[\s\S]*ort[\s\S]*tfjs/);
  });

  it('a run killed mid-epoch continues from its last checkpoint with --resume', async () => {
    const out = path.join(dir, 'killed.onnx');
    const args = ['train', '--arch', 'lenet5', '--data', 'mnist:split=train,limit=2048', '--test-data', 'mnist:split=test,limit=300',
      '--epochs', '3', '--batch-size', '32', '--lr', '2e-3', '--json', '-o', out];
    const state = path.join(`${out}.ckpt`, 'state.json');
    const child = spawn(process.execPath, [BIN, ...args], { env: CLI_ENV, stdio: 'ignore' });
    // Kill it hard once the first epoch's checkpoint exists (i.e. somewhere in epoch 2).
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        if (existsSync(state)) {
          clearInterval(timer);
          child.kill('SIGKILL');
          resolve();
        }
      }, 20);
      child.on('exit', () => {
        clearInterval(timer);
        if (!existsSync(state)) reject(new Error('training ended before a checkpoint was written'));
        else resolve();
      });
    });
    await new Promise((r) => child.on('exit', r));
    const saved = JSON.parse(readFileSync(state, 'utf8'));
    expect(saved.epoch).toBeLessThan(3);
    expect(existsSync(out)).toBe(false);
    const resumed = harden(...args, '--resume');
    expect(resumed.code, resumed.stderr).toBe(0);
    const summary = JSON.parse(resumed.stdout);
    expect(summary.history.map((h: { epoch: number }) => h.epoch)).toEqual([1, 2, 3]);
    expect(summary.history[2].test.accuracy).toBeGreaterThan(0.75);
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
