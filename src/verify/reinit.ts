/**
 * "The same architecture from random initialization": a copy of an imported classifier whose
 * learnable float initializers are re-drawn the way PyTorch initializes each layer by default.
 * The scratch baseline of the piggyback-learning check (piggyback.ts).
 */
import { cloneModel } from '../onnx/model.js';
import { toNumber, type ModelProto, type NodeProto, type TensorProto } from '../onnx/schema.js';
import { setTensorData } from '../onnx/tensor.js';
import { Random } from '../util/random.js';

const FLOAT_TYPES = new Set([1, 10, 11, 16]); // FLOAT, FLOAT16, DOUBLE, BFLOAT16

type Init = { kind: 'uniform'; bound: number } | { kind: 'fill'; value: number };

function attrInt(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute.find((x) => x.name === name);
  return a ? toNumber(a.i) : fallback;
}

function dimsOf(t: TensorProto): number[] {
  return t.dims.map((d) => toNumber(d));
}

/** PyTorch's fan_in of a weight tensor: size(1) × receptive field (nn.Conv*, nn.ConvTranspose*). */
function convFanIn(w: number[]): number {
  return (w[1] ?? 1) * w.slice(2).reduce((a, b) => a * b, 1);
}

/**
 * A copy of `proto` with every learnable float initializer re-drawn as PyTorch does by default:
 * - Conv / ConvTranspose weight and bias: U(±1/√fan_in), fan_in = weight.size(1)·kh·kw (for Conv
 *   that is in_channels/group·kh·kw);
 * - Gemm B and C: U(±1/√fan_in), fan_in = B's dim 1 with transB = 1, dim 0 otherwise;
 * - MatMul weight [in, out] (second input): U(±1/√rows), and a bias added right after by an Add
 *   with an initializer operand: the same bound;
 * - BatchNormalization: scale 1, bias 0, running mean 0, running var 1;
 * - LayerNormalization / InstanceNormalization: scale 1, bias 0;
 * - PRelu slope: 0.25.
 * Everything else (shape and integer initializers, constants, attributes, nodes, names, storage
 * form) is untouched. Draws come from one seeded stream in graph order, so a seed gives the same bytes.
 */
export function reinitialize(proto: ModelProto, seed: number): ModelProto {
  const copy = cloneModel(proto);
  const graph = copy.graph;
  if (!graph) return copy;
  const inits = new Map<string, TensorProto>();
  for (const t of graph.initializer) if (t.name && FLOAT_TYPES.has(t.data_type ?? 0)) inits.set(t.name, t);

  const plan = new Map<string, Init>();
  const set = (name: string | undefined, init: Init) => {
    if (name && inits.has(name) && !plan.has(name)) plan.set(name, init);
  };
  const consumers = new Map<string, NodeProto[]>();
  for (const n of graph.node) for (const i of n.input) consumers.set(i, [...(consumers.get(i) ?? []), n]);

  for (const node of graph.node) {
    const op = node.op_type ?? '';
    const [, b, c, d, e] = node.input;
    switch (op) {
      case 'Conv':
      case 'ConvTranspose': {
        const w = b ? inits.get(b) : undefined;
        if (!w) break;
        const bound = 1 / Math.sqrt(Math.max(1, convFanIn(dimsOf(w))));
        set(b, { kind: 'uniform', bound });
        set(c, { kind: 'uniform', bound });
        break;
      }
      case 'Gemm': {
        const w = b ? inits.get(b) : undefined;
        if (!w || w.dims.length !== 2) break;
        const [d0, d1] = dimsOf(w);
        const bound = 1 / Math.sqrt(Math.max(1, attrInt(node, 'transB', 0) === 1 ? d1! : d0!));
        set(b, { kind: 'uniform', bound });
        set(c, { kind: 'uniform', bound });
        break;
      }
      case 'MatMul': {
        const w = b ? inits.get(b) : undefined;
        if (!w || w.dims.length < 2) break;
        const rows = dimsOf(w).at(-2)!;
        const bound = 1 / Math.sqrt(Math.max(1, rows));
        set(b, { kind: 'uniform', bound });
        // A bias added right after the MatMul (nn.Linear exported as MatMul + Add).
        for (const add of consumers.get(node.output[0]!) ?? []) {
          if (add.op_type !== 'Add') continue;
          for (const i of add.input) if (i !== node.output[0]) set(i, { kind: 'uniform', bound });
        }
        break;
      }
      case 'BatchNormalization':
        set(b, { kind: 'fill', value: 1 });
        set(c, { kind: 'fill', value: 0 });
        set(d, { kind: 'fill', value: 0 });
        set(e, { kind: 'fill', value: 1 });
        break;
      case 'LayerNormalization':
      case 'InstanceNormalization':
        set(b, { kind: 'fill', value: 1 });
        set(c, { kind: 'fill', value: 0 });
        break;
      case 'PRelu':
        set(b, { kind: 'fill', value: 0.25 });
        break;
    }
  }

  const rng = new Random(seed);
  // Graph order of first use, so the stream does not depend on the initializer list's order.
  for (const [name, init] of plan) {
    const t = inits.get(name)!;
    const n = dimsOf(t).reduce((a, v) => a * v, 1);
    const data = new Float32Array(n);
    if (init.kind === 'fill') data.fill(init.value);
    else for (let i = 0; i < n; i++) data[i] = (rng.next() * 2 - 1) * init.bound;
    setTensorData(t, data);
  }
  return copy;
}

/** A copy of `proto` with only the `names` initializers re-drawn (as `reinitialize` draws them). */
export function reinitializeOnly(proto: ModelProto, names: ReadonlySet<string>, seed: number): ModelProto {
  const fresh = new Map((reinitialize(proto, seed).graph?.initializer ?? []).map((t) => [t.name, t]));
  const copy = cloneModel(proto);
  const list = copy.graph?.initializer ?? [];
  list.forEach((t, i) => {
    if (t.name && names.has(t.name) && fresh.has(t.name)) list[i] = fresh.get(t.name)!;
  });
  return copy;
}
