import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.join(ROOT, 'bin', 'harden.js');
/** Test files already run in parallel on every core: one wasm thread per CLI process. */
export const CLI_ENV = { ...process.env, HARDEN_WASM_THREADS: '1' };

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the built `harden` CLI (needs `npm run build`). */
export function harden(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000, env: CLI_ENV });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A user error: the exit code, exactly one line on stderr naming the problem, no stack trace. */
export function expectOneLineError(r: CliResult, code: number, mentions: RegExp): void {
  expect(r.code).toBe(code);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^harden: /);
  expect(lines[0]).toMatch(mentions);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}
