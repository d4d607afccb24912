/**
 * The sparsity side of ADMM pruning: which weights are prunable, the Euclidean projection onto
 * "at most (1 − s) of them non-zero" (keep the largest magnitudes), and the residual ‖W − Z‖.
 */
import type { ModelProto } from '../onnx/schema.js';

export type PruneScope = 'layer' | 'global';

/** Ops whose second input is a weight matrix or kernel that pruning thins out. */
const WEIGHT_OPS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

/**
 * Learnable weight tensors that are pruned: the weight input of every Conv, ConvTranspose, Gemm
 * and MatMul (biases, normalization parameters and statistics are never pruned), in graph order.
 */
export function prunableWeights(proto: ModelProto, learnable: readonly string[], exclude: readonly string[] = []): string[] {
  const names = new Set(learnable);
  const skip = new Set(exclude);
  const out: string[] = [];
  for (const node of proto.graph?.node ?? []) {
    const w = node.input[1];
    if (WEIGHT_OPS.has(node.op_type ?? '') && w && names.has(w) && !skip.has(w) && !out.includes(w)) out.push(w);
  }
  return out;
}

/**
 * Indices of the `keep` largest |values| (ties: lower index first), as a 0/1 mask. Exactly `keep`
 * ones, whatever the values (zeros and ties included).
 */
function topMagnitudeMask(values: Float32Array, keep: number): Uint8Array {
  const n = values.length;
  const mask = new Uint8Array(n);
  if (keep <= 0) return mask;
  if (keep >= n) return mask.fill(1);
  const magnitudes = Float32Array.from(values, Math.abs).sort();
  const threshold = magnitudes[n - keep]!;
  let kept = 0;
  for (let i = 0; i < n; i++) if (Math.abs(values[i]!) > threshold) (mask[i] = 1), kept++;
  for (let i = 0; i < n && kept < keep; i++) if (Math.abs(values[i]!) === threshold) (mask[i] = 1), kept++;
  return mask;
}

/** Zeros a sparsity s asks of n weights. */
export function prunedCount(n: number, sparsity: number): number {
  return Math.round(sparsity * n);
}

/**
 * Masks of the projection onto the sparsity set: per tensor ('layer': each keeps
 * n − round(s·n) entries) or over all tensors together ('global': n_total − round(s·n_total)).
 */
export function sparsityMasks(values: Map<string, Float32Array>, sparsity: number, scope: PruneScope): Map<string, Uint8Array> {
  if (!(sparsity >= 0 && sparsity < 1)) throw new Error(`sparsityMasks: sparsity must be in [0, 1), got ${sparsity}`);
  const masks = new Map<string, Uint8Array>();
  if (scope === 'layer') {
    for (const [name, v] of values) masks.set(name, topMagnitudeMask(v, v.length - prunedCount(v.length, sparsity)));
    return masks;
  }
  const total = [...values.values()].reduce((a, v) => a + v.length, 0);
  const all = new Float32Array(total);
  let offset = 0;
  for (const v of values.values()) all.set(v, offset), (offset += v.length);
  const mask = topMagnitudeMask(all, total - prunedCount(total, sparsity));
  offset = 0;
  for (const [name, v] of values) masks.set(name, mask.slice(offset, (offset += v.length)));
  return masks;
}

/** values ⊙ mask. */
export function applyMask(values: Float32Array, mask: Uint8Array): Float32Array {
  return values.map((v, i) => (mask[i] ? v : 0));
}

/** Z-step: Z = Π(W + U), returned with the masks of its support. */
export function projectOntoSparsity(w: Map<string, Float32Array>, u: Map<string, Float32Array>, sparsity: number, scope: PruneScope): { z: Map<string, Float32Array>; masks: Map<string, Uint8Array> } {
  const sum = new Map([...w].map(([name, v]) => [name, v.map((x, i) => x + u.get(name)![i]!)] as const));
  const masks = sparsityMasks(sum, sparsity, scope);
  return { z: new Map([...sum].map(([name, v]) => [name, applyMask(v, masks.get(name)!)] as const)), masks };
}

/** ‖a − b‖ over all tensors and ‖a‖ (for the relative residual). */
export function residual(a: Map<string, Float32Array>, b: Map<string, Float32Array>): { difference: number; norm: number } {
  let d = 0, s = 0;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    for (let i = 0; i < x.length; i++) (d += (x[i]! - y[i]!) ** 2), (s += x[i]! ** 2);
  }
  return { difference: Math.sqrt(d), norm: Math.sqrt(s) };
}
