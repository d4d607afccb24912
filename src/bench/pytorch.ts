import { spawnSync } from 'node:child_process';
import path from 'node:path';

/** PyTorch CPU step times of one fixture model, ms. */
export interface PytorchTimes {
  trainMs: number;
  gcMs: number;
}

/**
 * PyTorch CPU's train and GC step times on this machine, measured now by
 * scripts/pytorch-bench (the fixture models rebuilt in PyTorch from their ONNX graphs, 2 threads),
 * or undefined where no Python with torch is installed (`HARDEN_PYTHON`, else Debian's
 * /usr/bin/python3 with python3-torch). Ratios against figures measured in the same run are the
 * honest ones: this machine's PyTorch times drift by tens of percent between days.
 */
export function measurePytorch(root: string): Record<string, PytorchTimes> | undefined {
  const python = process.env.HARDEN_PYTHON ?? '/usr/bin/python3';
  if (spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0) return undefined;
  const dump = spawnSync(process.execPath, [path.join(root, 'scripts', 'pytorch-bench', 'dump.mjs')], { cwd: root, encoding: 'utf8' });
  if (dump.status !== 0) throw new Error(`scripts/pytorch-bench/dump.mjs failed: ${dump.stderr.trim().split('\n').at(-1)}`);
  const run = spawnSync(python, [path.join(root, 'scripts', 'pytorch-bench', 'bench.py')], { cwd: root, encoding: 'utf8', timeout: 900_000 });
  if (run.status !== 0) throw new Error(`scripts/pytorch-bench/bench.py failed: ${(run.stderr || String(run.error)).trim().split('\n').at(-1)}`);
  const last = run.stdout.trim().split('\n').at(-1) ?? '';
  if (!last.startsWith('{')) throw new Error(`scripts/pytorch-bench/bench.py printed no JSON line (last line: '${last.slice(0, 80)}')`);
  return JSON.parse(last) as Record<string, PytorchTimes>;
}
