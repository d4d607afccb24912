import { HardenError } from '../errors.js';
import { cloneModel } from '../onnx/model.js';
import { toNumber, type ModelProto, type NodeProto } from '../onnx/schema.js';
import { makeTensorProto } from '../onnx/tensor.js';
import { findClassifierHead } from '../import/head.js';
import { Random } from '../util/random.js';

/** Learnable parameters grouped by the node that consumes them, in graph order (the "layers"). */
export function parameterLayers(proto: ModelProto, learnable: readonly string[]): string[][] {
  const names = new Set(learnable);
  const seen = new Set<string>();
  const layers: string[][] = [];
  for (const node of proto.graph?.node ?? []) {
    const params = node.input.filter((n) => names.has(n) && !seen.has(n));
    params.forEach((n) => seen.add(n));
    if (params.length) layers.push(params);
  }
  return layers;
}

/** The parameters `--train all|head|last-k` selects. */
export function selectTrainable(proto: ModelProto, learnable: readonly string[], mode: string, source: string): readonly string[] | 'all' {
  if (mode === 'all') return 'all';
  if (mode === 'head') {
    const head = findClassifierHead(proto);
    if (!head) throw new HardenError(`${source}: --train head: no final Gemm/MatMul classifier found`);
    return head.parameters.filter((p) => learnable.includes(p));
  }
  const m = /^last-(\d+)$/.exec(mode);
  if (!m || Number(m[1]) < 1) throw new HardenError(`--train must be all, head or last-K (K ≥ 1), got '${mode}'`);
  return parameterLayers(proto, learnable).slice(-Number(m[1])).flat();
}

function uniform(n: number, bound: number, rng: Random): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.next() * 2 - 1) * bound;
  return out;
}

/**
 * A copy of the model with a freshly initialized classifier for `classes` outputs (the transfer-
 * learning stage), initialized like PyTorch's nn.Linear: U(±1/√fan_in) for weight and bias.
 */
export function withNewHead(proto: ModelProto, classes: number, seed: number, source: string): ModelProto {
  const copy = cloneModel(proto);
  const head = findClassifierHead(copy);
  if (!head) throw new HardenError(`${source}: cannot attach a new head: no final Gemm/MatMul classifier found`);
  const layer = head.nodes[0] as NodeProto;
  const inits = copy.graph!.initializer;
  const weight = inits.find((t) => t.name === layer.input[1]);
  if (!weight || weight.dims.length !== 2) throw new HardenError(`${source}: the classifier weight '${layer.input[1]}' is not a 2-D initializer`);
  const transB = layer.op_type === 'Gemm' && layer.attribute.some((a) => a.name === 'transB' && toNumber(a.i) === 1);
  const [d0, d1] = weight.dims.map((d) => toNumber(d));
  const features = transB ? d1 : d0;
  const rng = new Random(seed);
  const bound = 1 / Math.sqrt(features);
  const replace = (name: string, shape: number[]) => {
    const i = inits.findIndex((t) => t.name === name);
    inits[i] = makeTensorProto(name, { dtype: 'float32', shape, data: uniform(shape[0] * (shape[1] ?? 1), bound, rng) });
  };
  replace(weight.name!, transB ? [classes, features] : [features, classes]);
  for (const bias of head.parameters.slice(1)) replace(bias, [classes]);
  // Declared output shape: the class dimension changes.
  const dims = copy.graph!.output[0].type?.tensor_type?.shape?.dim;
  const last = dims?.[dims.length - 1];
  if (last && last.value === 'dim_value') last.dim_value = classes;
  return copy;
}
