/**
 * Equi-normalization (Stock et al., "Equi-normalization of neural networks", ICLR 2019): the
 * rescaling an attacker can apply to a ReLU network without changing its function.
 *
 * Where a Conv/Gemm/MatMul P feeds another one Q only through positively homogeneous ops
 * (Relu, LeakyRelu, MaxPool, AveragePool, GlobalAveragePool, Flatten, Identity, Dropout), scaling
 * P's output unit j (its weight row and bias) by c_j > 0 and Q's input columns of unit j by 1/c_j
 * leaves every output unchanged. Fine-tuning is not invariant to it: a hardening method can
 * lower the piggyback accuracy merely by inflating some layers' weights (Adam's steps are then
 * small relative to them), which such a rescaling undoes for free. `balanceScales` picks, for every
 * unit of every link, the c_j that minimizes the summed squared weight norm (c_j⁴ = q_j/p_j for the
 * unit's squared norms p_j in P, bias included, and q_j in Q), sweeping the links until the total
 * stops falling: each update minimizes it in one variable, so it never rises. The result is a
 * canonical scale, independent of how the model's owner distributed it.
 */
import { cloneModel } from '../onnx/model.js';
import type { ModelProto, NodeProto } from '../onnx/schema.js';
import { readTensor, setTensorData } from '../onnx/tensor.js';
import { findClassifierHead } from '../import/head.js';

/** Ops through which a per-channel positive scale passes unchanged (f(c·x) = c·f(x) per channel). */
const HOMOGENEOUS = new Set(['Relu', 'LeakyRelu', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Identity', 'Dropout']);

interface Layer {
  node: NodeProto;
  weight: { name: string; shape: number[]; data: Float32Array };
  bias?: { name: string; data: Float32Array };
  /** Weight element offsets of output unit j are j·unitStride + i·unitStep for i < unitSize. */
  outUnits: number;
}

interface Link {
  producer: Layer;
  consumer: Layer;
  /** The consumer's input features per producer unit (the spatial size a Flatten folded in, else 1). */
  featuresPerUnit: number;
}

export interface BalanceOptions {
  /**
   * Leave out the link into the classifier head (import/head.ts): for an attacker who replaces
   * the head, the features' overall scale is then as the model's owner left it, and only the
   * backbone's layers are balanced against each other.
   */
  backboneOnly?: boolean;
  maxSweeps?: number;
  /** Stop when a sweep lowers the squared norm by less than this fraction. */
  tolerance?: number;
}

export interface BalanceResult {
  proto: ModelProto;
  /** Links found (producer node → consumer node). */
  links: { producer: string; consumer: string }[];
  /** Σ‖W‖² + Σ‖b‖² over the linked layers, before and after. */
  squaredNorm: { before: number; after: number };
  sweeps: number;
}

const attrInt = (n: NodeProto, name: string, fallback: number): number => {
  const a = n.attribute.find((x) => x.name === name);
  return a ? Number(a.i) : fallback;
};

/** Offsets of unit j's weights: for output units (`out`) or input features (`!out`) of a layer. */
function unitOffsets(layer: Layer, j: number, out: boolean, featuresPerUnit = 1): number[] {
  const { node, weight } = layer;
  const shape = weight.shape;
  const offsets: number[] = [];
  if (node.op_type === 'Conv') {
    const inner = shape.slice(2).reduce((a, b) => a * b, 1);
    const perOut = shape[1]! * inner;
    if (out) for (let i = 0; i < perOut; i++) offsets.push(j * perOut + i);
    else for (let m = 0; m < shape[0]!; m++) for (let i = 0; i < inner; i++) offsets.push(m * perOut + j * inner + i);
    return offsets;
  }
  // Gemm (transB: W is [N, K]) or MatMul/Gemm (W is [K, N]).
  const transB = node.op_type === 'Gemm' && attrInt(node, 'transB', 0) === 1;
  const [rows, cols] = shape as [number, number];
  const k = transB ? cols : rows, n = transB ? rows : cols;
  const at = (kk: number, nn: number) => (transB ? nn * cols + kk : kk * cols + nn);
  if (out) for (let kk = 0; kk < k; kk++) offsets.push(at(kk, j));
  else for (let f = j * featuresPerUnit; f < (j + 1) * featuresPerUnit; f++) for (let nn = 0; nn < n; nn++) offsets.push(at(f, nn));
  return offsets;
}

/** The Conv/Gemm/MatMul nodes with initializer weights (used by that node alone) that balancing can rescale. */
function linearLayers(proto: ModelProto, uses: Map<string, number>): Map<NodeProto, Layer> {
  const g = proto.graph!;
  const inits = new Map(g.initializer.map((t) => [t.name ?? '', t]));
  const layers = new Map<NodeProto, Layer>();
  for (const node of g.node) {
    if (!['Conv', 'Gemm', 'MatMul'].includes(node.op_type ?? '')) continue;
    if (node.op_type === 'Gemm' && attrInt(node, 'transA', 0) !== 0) continue;
    const w = inits.get(node.input[1] ?? '');
    if (!w || uses.get(w.name!) !== 1) continue;
    const wt = readTensor(w);
    if (wt.dtype !== 'float32') continue;
    if (node.op_type !== 'Conv' && wt.shape.length !== 2) continue;
    const transB = node.op_type === 'Gemm' && attrInt(node, 'transB', 0) === 1;
    const outUnits = node.op_type === 'Conv' ? wt.shape[0]! : transB ? wt.shape[0]! : wt.shape[1]!;
    const layer: Layer = { node, weight: { name: w.name!, shape: wt.shape, data: Float32Array.from(wt.data as Float32Array) }, outUnits };
    const biasName = node.op_type === 'MatMul' ? undefined : node.input[2];
    if (biasName) {
      const b = inits.get(biasName);
      // A bias that is not an unshared per-unit initializer cannot follow its unit's scale.
      if (!b || uses.get(b.name!) !== 1) continue;
      const bt = readTensor(b);
      if (bt.dtype !== 'float32' || bt.data.length !== outUnits) continue;
      layer.bias = { name: b.name!, data: Float32Array.from(bt.data as Float32Array) };
    }
    layers.set(node, layer);
  }
  return layers;
}

/** Producer → consumer links through homogeneous single-consumer chains. */
function findLinks(proto: ModelProto): Link[] {
  const g = proto.graph!;
  const uses = new Map<string, number>();
  const consumers = new Map<string, NodeProto[]>();
  for (const n of g.node) {
    for (const i of n.input) {
      if (!i) continue;
      uses.set(i, (uses.get(i) ?? 0) + 1);
      consumers.set(i, [...(consumers.get(i) ?? []), n]);
    }
  }
  const outputs = new Set(g.output.map((o) => o.name));
  const layers = linearLayers(proto, uses);
  const links: Link[] = [];
  for (const producer of layers.values()) {
    let tensor = producer.node.output[0]!;
    let flattened = false;
    for (;;) {
      const next = consumers.get(tensor) ?? [];
      if (next.length !== 1 || outputs.has(tensor)) break;
      const n = next[0]!;
      if (n.input[0] !== tensor) break;
      const consumer = layers.get(n);
      if (consumer) {
        const units = producer.outUnits;
        if (n.op_type === 'Conv') {
          if (flattened || attrInt(n, 'group', 1) !== 1 || consumer.weight.shape[1] !== units) break;
          links.push({ producer, consumer, featuresPerUnit: 1 });
        } else {
          const transB = n.op_type === 'Gemm' && attrInt(n, 'transB', 0) === 1;
          const k = transB ? consumer.weight.shape[1]! : consumer.weight.shape[0]!;
          if (k % units !== 0 || (!flattened && k !== units)) break;
          links.push({ producer, consumer, featuresPerUnit: k / units });
        }
        break;
      }
      if (n.op_type === 'Flatten' && attrInt(n, 'axis', 1) === 1 && !flattened) flattened = true;
      else if (!HOMOGENEOUS.has(n.op_type ?? '') || (n.output.length !== 1 && n.op_type !== 'Dropout')) break;
      tensor = n.output[0]!;
    }
  }
  return links;
}

function squaredNorm(layers: Iterable<Layer>): number {
  let s = 0;
  for (const l of layers) {
    for (const v of l.weight.data) s += v * v;
    if (l.bias) for (const v of l.bias.data) s += v * v;
  }
  return s;
}

/**
 * The model equi-normalized over its rescaling symmetry (module comment); the function is
 * unchanged up to float rounding. Models with no such links come back as an unchanged copy.
 */
export function balanceScales(model: ModelProto, opts: BalanceOptions = {}): BalanceResult {
  const proto = cloneModel(model);
  const head = opts.backboneOnly ? findClassifierHead(proto)?.nodes[0] : undefined;
  const links = findLinks(proto).filter((l) => l.consumer.node !== head);
  const involved = new Set(links.flatMap((l) => [l.producer, l.consumer]));
  const before = squaredNorm(involved);
  const offsets = links.map((l) => Array.from({ length: l.producer.outUnits }, (_, j) => ({
    out: unitOffsets(l.producer, j, true),
    in: unitOffsets(l.consumer, j, false, l.featuresPerUnit),
  })));
  let total = before;
  let sweeps = 0;
  const maxSweeps = opts.maxSweeps ?? 200, tolerance = opts.tolerance ?? 1e-7;
  while (sweeps < maxSweeps && links.length > 0) {
    sweeps++;
    links.forEach((link, li) => {
      const wp = link.producer.weight.data, wq = link.consumer.weight.data, bp = link.producer.bias?.data;
      offsets[li]!.forEach((unit, j) => {
        let p = bp ? bp[j]! ** 2 : 0, q = 0;
        for (const o of unit.out) p += wp[o]! ** 2;
        for (const o of unit.in) q += wq[o]! ** 2;
        if (!(p > 0 && q > 0)) return; // a dead unit: any scale is as good
        const c = Math.sqrt(Math.sqrt(q / p));
        for (const o of unit.out) wp[o] = wp[o]! * c;
        if (bp) bp[j] = bp[j]! * c;
        for (const o of unit.in) wq[o] = wq[o]! / c;
      });
    });
    const now = squaredNorm(involved);
    const done = total - now <= tolerance * total;
    total = now;
    if (done) break;
  }
  const byName = new Map(proto.graph!.initializer.map((t) => [t.name ?? '', t]));
  for (const l of involved) {
    setTensorData(byName.get(l.weight.name)!, l.weight.data);
    if (l.bias) setTensorData(byName.get(l.bias.name)!, l.bias.data);
  }
  return {
    proto,
    links: links.map((l) => ({ producer: l.producer.node.name || l.producer.node.output[0]!, consumer: l.consumer.node.name || l.consumer.node.output[0]! })),
    squaredNorm: { before, after: total },
    sweeps,
  };
}
