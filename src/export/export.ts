import { createHash } from 'node:crypto';
import { HardenError } from '../errors.js';
import { cloneModel, saveModel, type OnnxModel } from '../onnx/model.js';
import { newEntry, type ModelProto, type TensorProto } from '../onnx/schema.js';
import { readTensor, setTensorData, hostToFloat32 } from '../onnx/tensor.js';

/** Key under which Harden records what it did, in the model's metadata_props. */
export const HARDEN_METADATA_KEY = 'harden';

export interface HardenRecord {
  /** Harden version that wrote the model. */
  version: string;
  /** What was done, e.g. 'export', 'dispose', 'prune'. */
  operation: string;
  /** SHA-256 of the input model file's bytes. */
  sourceSha256?: string;
  settings?: Record<string, unknown>;
  figures?: Record<string, unknown>;
  [key: string]: unknown;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

/**
 * A copy of the model with new initializer payloads. Only tensors whose values changed are
 * rewritten (an untouched weight keeps its exact bytes and storage form); names, nodes,
 * opsets, doc strings and value_info stay as they were.
 */
export function withWeights(model: OnnxModel, weights: Map<string, Float32Array>): ModelProto {
  const proto = cloneModel(model.proto);
  const byName = new Map<string, TensorProto>();
  for (const t of proto.graph?.initializer ?? []) byName.set(t.name ?? '', t);
  for (const [name, data] of weights) {
    const t = byName.get(name);
    if (!t) throw new HardenError(`${model.path ?? 'model'}: no initializer named '${name}' to write back`);
    const before = hostToFloat32(readTensor(t, { baseDir: model.baseDir, source: model.path }));
    if (before.length !== data.length) throw new HardenError(`${model.path ?? 'model'}: '${name}' has ${before.length} values, got ${data.length}`);
    if (!sameBits(before, data)) setTensorData(t, data, { baseDir: model.baseDir });
  }
  return proto;
}

/** Set (or replace) one metadata_props entry. */
export function setMetadata(proto: ModelProto, key: string, value: string): void {
  const existing = proto.metadata_props.find((e) => e.key === key);
  if (existing) existing.value = value;
  else proto.metadata_props.push(newEntry({ key, value }));
}

export function readHardenRecord(proto: ModelProto): HardenRecord | undefined {
  const entry = proto.metadata_props.find((e) => e.key === HARDEN_METADATA_KEY);
  if (!entry?.value) return undefined;
  try {
    return JSON.parse(entry.value) as HardenRecord;
  } catch {
    return undefined;
  }
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface ExportOptions {
  /** Record to store under metadata_props['harden']; omitted → the model's metadata is left as is. */
  record?: HardenRecord;
  overwrite?: boolean;
  externalData?: boolean;
}

/** Write the model with new weights to `outPath` atomically; never over the input unless `overwrite`. */
export async function exportModel(model: OnnxModel, weights: Map<string, Float32Array>, outPath: string, opts: ExportOptions = {}): Promise<ModelProto> {
  const proto = withWeights(model, weights);
  if (opts.record) setMetadata(proto, HARDEN_METADATA_KEY, JSON.stringify(opts.record));
  await saveModel(proto, outPath, { overwrite: opts.overwrite, inputPath: model.path, externalData: opts.externalData, sourceBaseDir: model.baseDir });
  return proto;
}

