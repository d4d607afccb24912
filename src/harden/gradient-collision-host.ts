/**
 * Gradient Collision on an engine whose graphs give gradients and Hessian-vector products but
 * no loss of its own making (the ort engine): the value and gradient of gradientCollision in
 * losses.ts (see its module comment for the formulas), computed on the host from k chunk
 * gradients g_i and k exact Hessian-vector products H_i v_i (the ort engine's tangent pass,
 * src/engine/ort/tangents.ts). A step costs k gradient runs and k HVP runs of one chunk each.
 */
import type { HostTensor } from '../onnx/tensor.js';
import type { GradientCollisionOptions } from './losses.js';

export interface FirstOrderEngine {
  crossEntropyGradients(x: HostTensor, labels: Int32Array, opts: { wrt: readonly string[] }): Promise<{ gradients: Map<string, Float32Array> }>;
  hessianVectorProduct(x: HostTensor, labels: Int32Array, v: Map<string, Float32Array>): Promise<Map<string, Float32Array>>;
}

export interface HostGradientCollision {
  value: number;
  /** ∇ of `value` by parameter name (the `wrt` names). */
  gradient: Map<string, Float32Array>;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export async function gradientCollisionHost(
  engine: FirstOrderEngine,
  chunks: { x: HostTensor; labels: Int32Array }[],
  wrt: readonly string[],
  opts: GradientCollisionOptions = {},
): Promise<HostGradientCollision> {
  if (chunks.length < 2) throw new Error(`gradientCollisionHost: need at least 2 chunks, got ${chunks.length}`);
  if (wrt.length === 0) throw new Error('gradientCollisionHost: no parameters');
  const epsilon = opts.epsilon ?? 1e-12;
  const chunkGradients: Map<string, Float32Array>[] = [];
  for (const { x, labels } of chunks) chunkGradients.push((await engine.crossEntropyGradients(x, labels, { wrt })).gradients);
  const sizes = wrt.map((name) => chunkGradients[0].get(name)!.length);
  // Every vector below is the concatenation of the wrt parameters, in float64 for the dot products.
  const flatten = (parts: Map<string, Float32Array>): Float64Array => {
    const out = new Float64Array(sizes.reduce((a, b) => a + b, 0));
    let o = 0;
    wrt.forEach((name, i) => {
      out.set(parts.get(name)!, o);
      o += sizes[i];
    });
    return out;
  };
  const split = (flat: Float64Array): Map<string, Float32Array> => {
    let o = 0;
    return new Map(wrt.map((name, i) => [name, Float32Array.from(flat.subarray(o, (o += sizes[i])))]));
  };
  const g = chunkGradients.map(flatten);
  const sum = (parts: Float64Array[]) => {
    const s = new Float64Array(parts[0].length);
    for (const p of parts) for (let i = 0; i < s.length; i++) s[i] += p[i];
    return s;
  };

  let value: number;
  let v: Float64Array[];
  if (!opts.normalized) {
    const G = sum(g);
    value = 0.5 * (dot(G, G) - g.reduce((s, gi) => s + dot(gi, gi), 0));
    v = g.map((gi) => G.map((Gp, p) => Gp - gi[p]));
  } else {
    const norms = g.map((gi) => Math.max(Math.sqrt(dot(gi, gi)), epsilon));
    const u = g.map((gi, i) => gi.map((a) => a / norms[i]));
    const U = sum(u);
    value = 0.5 * (dot(U, U) - u.reduce((s, ui) => s + dot(ui, ui), 0));
    v = u.map((ui, i) => {
      const cosSum = dot(ui, U) - dot(ui, ui); // Σ_{j≠i} cos(g_i, g_j)
      return ui.map((a, p) => (U[p] - a - cosSum * a) / norms[i]);
    });
  }

  const gradient = new Float64Array(g[0].length);
  for (let i = 0; i < chunks.length; i++) {
    const hv = flatten(await engine.hessianVectorProduct(chunks[i].x, chunks[i].labels, split(v[i])));
    for (let p = 0; p < gradient.length; p++) gradient[p] += hv[p];
  }
  return { value, gradient: split(gradient) };
}
