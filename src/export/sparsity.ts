/**
 * Weight sparsity: measuring it, recording it in a model's metadata, and storing pruned weight
 * matrices as ONNX sparse initializers (COO) so that a pruned model's file shrinks.
 */
import { HardenError } from '../errors.js';
import { cloneModel, initializerMap, modelOrigin } from '../onnx/model.js';
import { type ModelProto, type SparseTensorProto, type TensorProto, toNumber } from '../onnx/schema.js';
import { type HostTensor, hostToFloat32, makeSparseTensorProto, numel, readTensor } from '../onnx/tensor.js';
import { setMetadata } from './export.js';

/** metadata_props key under which setSparsityMetadata records the sparsity report. */
export const SPARSITY_METADATA_KEY = 'harden.sparsity';

export interface TensorSparsity {
  zeros: number;
  elements: number;
  /** zeros / elements (0 for an empty tensor). */
  sparsity: number;
}

export interface SparsityReport {
  /** Zeros over elements, across every counted tensor (0 when there is none). */
  global: number;
  zeros: number;
  elements: number;
  /** The counted tensors: float initializers of rank ≥ 2, by name. */
  perTensor: Record<string, TensorSparsity>;
}

/** What setSparsityMetadata stores (as JSON) under SPARSITY_METADATA_KEY. */
export interface SparsityMetadata {
  global: number;
  perTensor: Record<string, number>;
}

const FLOAT_DTYPES = new Set(['float32', 'float64', 'float16', 'bfloat16']);

/** Weight matrices and kernels are what pruning zeroes; biases and norm parameters (rank < 2) are not. */
function isPrunable(h: Pick<HostTensor, 'dtype' | 'shape'>): boolean {
  return FLOAT_DTYPES.has(h.dtype) && h.shape.length >= 2;
}

function countZeros(h: HostTensor): number {
  const data = hostToFloat32(h);
  let z = 0;
  for (let i = 0; i < data.length; i++) if (data[i] === 0) z++; // -0 counts as zero
  return z;
}

/** Sparsity of already decoded initializers (e.g. from initializerMap), counting exact zeros. */
export function sparsityOf(inits: Map<string, HostTensor>): SparsityReport {
  let zeros = 0, elements = 0;
  const perTensor: Record<string, TensorSparsity> = {};
  for (const [name, h] of inits) {
    if (!isPrunable(h)) continue;
    const n = numel(h.shape);
    const z = countZeros(h);
    perTensor[name] = { zeros: z, elements: n, sparsity: n ? z / n : 0 };
    zeros += z;
    elements += n;
  }
  return { global: elements ? zeros / elements : 0, zeros, elements, perTensor };
}

/**
 * Exact zeros in the main graph's float initializers of rank ≥ 2, dense and sparse
 * (a sparse initializer counts its implicit zeros). `baseDir` is where external data lives
 * (default: the folder loadModel found the model in).
 */
export function sparsityReport(proto: ModelProto, baseDir?: string): SparsityReport {
  return sparsityOf(initializerMap(proto, baseDir));
}

/** Records the report's global and per-tensor sparsity in metadata_props (in place). */
export function setSparsityMetadata(proto: ModelProto, report: SparsityReport): void {
  const meta: SparsityMetadata = {
    global: report.global,
    perTensor: Object.fromEntries(Object.entries(report.perTensor).map(([k, v]) => [k, v.sparsity])),
  };
  setMetadata(proto, SPARSITY_METADATA_KEY, JSON.stringify(meta));
}

/** The record setSparsityMetadata wrote, or undefined when absent or unreadable. */
export function readSparsityMetadata(proto: ModelProto): SparsityMetadata | undefined {
  const entry = proto.metadata_props.find((e) => e.key === SPARSITY_METADATA_KEY);
  if (!entry?.value) return undefined;
  try {
    return JSON.parse(entry.value) as SparsityMetadata;
  } catch {
    return undefined;
  }
}

export interface SparseInitializerOptions {
  /** Initializers to convert (float, rank ≥ 1); default: every float initializer of rank ≥ 2 with sparsity ≥ minSparsity. */
  names?: string[];
  /** Threshold for the default selection (default 0.5). Ignored when `names` is given. */
  minSparsity?: number;
  /** Folder of external data (default: where loadModel found the model). */
  baseDir?: string;
}

/**
 * Sparse initializers need IR version 6 or later (sparse_initializer was added to GraphProto in
 * IR 6, and onnxruntime only reads it from such models).
 */
const MIN_SPARSE_IR_VERSION = 6;

/**
 * A copy of the model in which the selected dense float initializers of the main graph are moved
 * to graph.sparse_initializer in COO form: values [NNZ] named as the initializer, linear int64
 * indices [NNZ], dims as before. Node inputs refer to initializers by name, so nothing else
 * changes; a graph.input entry with the same name (an overridable initializer) is kept.
 * Values equal to +0 are dropped (-0 is kept as a stored value), so densifying gives back the
 * exact bits. The caller's proto is not modified.
 */
export function toSparseInitializers(
  proto: ModelProto,
  opts: SparseInitializerOptions = {},
): { proto: ModelProto; converted: string[] } {
  const copy = cloneModel(proto);
  const graph = copy.graph;
  if (!graph) return { proto: copy, converted: [] };
  const origin = modelOrigin(proto);
  const readOpts = { baseDir: opts.baseDir ?? origin?.baseDir, source: origin?.source ?? 'model' };
  const minSparsity = opts.minSparsity ?? 0.5;
  const source = readOpts.source;

  const wanted = opts.names ? new Set(opts.names) : undefined;
  if (wanted) {
    const dense = new Set(graph.initializer.map((t) => t.name ?? ''));
    const sparse = new Set(graph.sparse_initializer.map((s) => s.values?.name ?? ''));
    for (const n of wanted) {
      if (!dense.has(n) && !sparse.has(n)) throw new HardenError(`${source}: no initializer named '${n}' to make sparse`);
    }
  }

  const kept: TensorProto[] = [];
  const added: SparseTensorProto[] = [];
  const converted: string[] = [];
  for (const t of graph.initializer) {
    const name = t.name ?? '';
    const selectable = wanted ? wanted.has(name) : true;
    if (!selectable) {
      kept.push(t);
      continue;
    }
    const h = readTensor(t, readOpts);
    let convert: boolean;
    if (wanted) {
      if (!FLOAT_DTYPES.has(h.dtype) || h.shape.length < 1) {
        throw new HardenError(`${source}: initializer '${name}' is a ${h.dtype} tensor of rank ${h.shape.length}; only float tensors of rank ≥ 1 are made sparse`);
      }
      convert = true;
    } else {
      const n = numel(h.shape);
      convert = isPrunable(h) && n > 0 && countZeros(h) / n >= minSparsity;
    }
    if (!convert) {
      kept.push(t);
      continue;
    }
    const s = makeSparseTensorProto(name, h);
    if (t.doc_string) s.values!.doc_string = t.doc_string;
    added.push(s);
    converted.push(name);
  }
  if (converted.length === 0) return { proto: copy, converted };

  graph.initializer = kept;
  graph.sparse_initializer = [...graph.sparse_initializer, ...added];
  // Older IR versions have no sparse_initializer field; onnxruntime would ignore or reject it.
  if (toNumber(copy.ir_version ?? 0) < MIN_SPARSE_IR_VERSION) copy.ir_version = MIN_SPARSE_IR_VERSION;
  return { proto: copy, converted };
}
