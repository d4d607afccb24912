/**
 * Loading, validating, encoding and saving ONNX models.
 */
import { randomBytes } from 'node:crypto';
import { lstat, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { HardenError } from '../errors.js';
import { clean, externalInfo, isExternal, readExternalBytes, resolveExternalPath } from './external.js';
import {
  DataLocation,
  type GraphProto,
  type ModelProto,
  ModelProtoT,
  decodeMessage,
  encodeMessage,
  newEntry,
  toNumber,
} from './schema.js';
import { type HostTensor, hasRawData, readSparseTensor, readTensor } from './tensor.js';
import { forEachTensor } from './walk.js';

export interface OnnxModel {
  proto: ModelProto;
  path?: string;
  baseDir?: string;
}

export interface SaveOptions {
  /** true: tensors >= 1024 bytes go to `<model file name>.data`; or name the file and threshold. */
  externalData?: boolean | { location: string; threshold?: number };
  /** Allow replacing an existing file, including the input model itself. */
  overwrite?: boolean;
  /** The model being transformed; saveModel writes over it only with `overwrite`. */
  inputPath?: string;
  /** Folder to read still-external payloads from (default: where loadModel found the model). */
  sourceBaseDir?: string;
}

interface Origin {
  source: string;
  baseDir?: string;
}

// Where a decoded model came from, so later reads (external data, error messages) can name it.
const origins = new WeakMap<ModelProto, Origin>();

export function modelOrigin(proto: ModelProto): Origin | undefined {
  return origins.get(proto);
}

function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or folder';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a folder';
    case 'ENOSPC':
      return 'no space left on device';
    default:
      return code ?? clean(String((e as Error).message ?? e));
  }
}

function checkReferences(graph: GraphProto, outer: ReadonlySet<string>, source: string, where: string): void {
  const defined = new Set(outer);
  for (const v of graph.input) defined.add(v.name ?? '');
  for (const t of graph.initializer) defined.add(t.name ?? '');
  for (const s of graph.sparse_initializer) defined.add(s.values?.name ?? '');
  for (const n of graph.node) for (const o of n.output) if (o) defined.add(o);

  for (const n of graph.node) {
    const label = `node '${clean(n.name || '?')}' (${clean(n.op_type)})`;
    for (const i of n.input) {
      if (i !== '' && !defined.has(i)) {
        throw new HardenError(`${source}: ${label} in ${where} uses '${clean(i)}', which no graph input, initializer or node defines`);
      }
    }
    for (const a of n.attribute) {
      for (const g of [...(a.g ? [a.g] : []), ...a.graphs]) checkReferences(g, defined, source, `a subgraph of ${label}`);
    }
  }
  for (const o of graph.output) {
    if (!defined.has(o.name ?? '')) {
      throw new HardenError(`${source}: output '${clean(o.name)}' of ${where} is not produced by any node, input or initializer`);
    }
  }
}

function validateModel(m: ModelProto, source: string): void {
  let ir = 0;
  try {
    ir = toNumber(m.ir_version);
  } catch {
    ir = -1;
  }
  if (ir <= 0) throw new HardenError(`${source}: not an ONNX model (ir_version is missing or invalid)`);
  const g = m.graph;
  if (!g) throw new HardenError(`${source}: not an ONNX model (it contains no graph)`);
  if (g.node.length === 0) throw new HardenError(`${source}: the model graph has no nodes`);
  if (g.input.length === 0) throw new HardenError(`${source}: the model graph has no inputs`);
  if (g.output.length === 0) throw new HardenError(`${source}: the model graph has no outputs`);
  if (ir >= 3 && m.opset_import.length === 0) throw new HardenError(`${source}: the model imports no operator set (opset_import is empty)`);
  checkReferences(g, new Set(), source, 'the main graph');
}

/** Decodes and sanity-checks a model file's bytes; every problem is a one-line HardenError. */
export function decodeModel(bytes: Uint8Array, source: string): ModelProto {
  if (bytes.length === 0) throw new HardenError(`${source}: the file is empty, not an ONNX model`);
  let proto: ModelProto;
  try {
    proto = decodeMessage<ModelProto>(ModelProtoT, bytes);
  } catch (e) {
    const msg = clean(String((e as Error).message ?? e));
    throw new HardenError(`${source}: not an ONNX model, or the file is truncated/corrupt (protobuf decoding failed: ${msg})`);
  }
  validateModel(proto, source);
  origins.set(proto, { source });
  return proto;
}

export async function loadModel(file: string): Promise<OnnxModel> {
  const abs = path.resolve(file);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(abs);
  } catch (e) {
    throw new HardenError(`cannot read model file ${file}: ${errnoText(e)}`);
  }
  const proto = decodeModel(bytes, file);
  const baseDir = path.dirname(abs);
  origins.set(proto, { source: file, baseDir });
  return { proto, path: abs, baseDir };
}

function hasPendingExternal(proto: ModelProto): boolean {
  let pending = false;
  forEachTensor(proto, (t) => {
    if (isExternal(t) && hasRawData(t)) pending = true;
  });
  return pending;
}

/** Serializes a model. Refuses a model with external tensors changed in memory (use saveModel). */
export function encodeModel(proto: ModelProto): Uint8Array {
  if (hasPendingExternal(proto)) {
    throw new Error('encodeModel: the model has externally stored tensors with unsaved new values; use saveModel');
  }
  return encodeMessage(ModelProtoT, proto);
}

/** Deep copy through the wire format (keeps pending external payloads and the model's origin). */
export function cloneModel(proto: ModelProto): ModelProto {
  const copy = decodeMessage<ModelProto>(ModelProtoT, encodeMessage(ModelProtoT, proto));
  const o = origins.get(proto);
  if (o) origins.set(copy, { ...o });
  return copy;
}

/** The highest imported version of an operator set domain ('' and 'ai.onnx' are the same); 0 if absent. */
export function opsetOf(proto: ModelProto, domain = ''): number {
  const norm = (d: string | undefined) => (d === 'ai.onnx' ? '' : (d ?? ''));
  let v = 0;
  for (const o of proto.opset_import) if (norm(o.domain) === norm(domain)) v = Math.max(v, toNumber(o.version));
  return v;
}

/** Main-graph initializers by name: dense ones plus sparse_initializer densified. */
export function initializerMap(proto: ModelProto, baseDir?: string): Map<string, HostTensor> {
  const o = origins.get(proto);
  const opts = { baseDir: baseDir ?? o?.baseDir, source: o?.source ?? 'model' };
  const out = new Map<string, HostTensor>();
  const g = proto.graph;
  if (!g) return out;
  for (const t of g.initializer) out.set(t.name ?? '', readTensor(t, opts));
  for (const s of g.sparse_initializer) out.set(s.values?.name ?? '', readSparseTensor(s, opts));
  return out;
}

// ---- saving ----

const ALIGN = 4096;
const MAX_PROTO_BYTES = 2 ** 31 - 1;

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

async function samePath(a: string, b: string): Promise<boolean> {
  if (path.resolve(a) === path.resolve(b)) return true;
  try {
    const [sa, sb] = await Promise.all([stat(a), stat(b)]);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

async function checkTarget(target: string, shown: string, opts: SaveOptions, what: string): Promise<void> {
  if (!opts.overwrite && opts.inputPath && (await samePath(target, opts.inputPath))) {
    throw new HardenError(`refusing to write ${what} over the input model ${opts.inputPath}; choose another output path or allow overwriting`);
  }
  if (await exists(target)) {
    const st = await stat(target).catch(() => undefined);
    if (st?.isDirectory()) throw new HardenError(`cannot write ${what} ${shown}: it is a folder`);
    if (!opts.overwrite) throw new HardenError(`refusing to overwrite existing file ${shown} (${what}); allow overwriting or choose another path`);
  }
}

function tempNameFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

interface Placed {
  bytes: Uint8Array;
  offset: number;
}

/**
 * Writes `proto` to `outPath` atomically (temp file + rename). Payloads still in external files
 * are read from the old folder first, then either inlined or written to the new side file.
 * The caller's proto is not modified.
 */
export async function saveModel(proto: ModelProto, outPath: string, opts: SaveOptions = {}): Promise<void> {
  const out = path.resolve(outPath);
  const outDir = path.dirname(out);
  const origin = origins.get(proto);
  const source = origin?.source ?? 'model';
  const oldBase = opts.sourceBaseDir ?? origin?.baseDir;
  await checkTarget(out, outPath, opts, 'the model');

  const ext = opts.externalData
    ? opts.externalData === true
      ? { location: `${path.basename(out)}.data`, threshold: 1024 }
      : { location: opts.externalData.location, threshold: opts.externalData.threshold ?? 1024 }
    : undefined;
  let sidePath: string | undefined;
  if (ext) {
    sidePath = resolveExternalPath(ext.location, outDir, 'the external data file', outPath);
    if (await samePath(sidePath, out)) throw new HardenError(`cannot save ${outPath}: the external data file would be the model file itself`);
    await checkTarget(sidePath, sidePath, opts, 'external data');
    if (opts.inputPath && oldBase && !(await samePath(out, opts.inputPath))) {
      // Writing over a data file the input model still uses would corrupt the input (unless
      // the input model itself is being replaced: its payloads are all read before writing).
      forEachTensor(proto, (t) => {
        if (!isExternal(t) || hasRawData(t)) return;
        const used = resolveExternalPath(externalInfo(t, source).location, oldBase, 'a tensor', source);
        if (used === sidePath) throw new HardenError(`refusing to write external data ${sidePath}: the input model ${opts.inputPath} reads its weights from it`);
      });
    }
  }

  const model = cloneModel(proto);
  const placed: Placed[] = [];
  let sideSize = 0;
  let inlineBytes = 0;
  forEachTensor(model, (t) => {
    const wasExternal = isExternal(t);
    let bytes: Uint8Array | undefined;
    if (wasExternal) bytes = hasRawData(t) ? t.raw_data : readExternalBytes(t, oldBase, source);
    else if (hasRawData(t)) bytes = t.raw_data;
    if (bytes === undefined) return; // typed *_data fields stay inline as they are
    if (ext && bytes.length >= ext.threshold) {
      const offset = Math.ceil(sideSize / ALIGN) * ALIGN;
      placed.push({ bytes, offset });
      sideSize = offset + bytes.length;
      delete t.raw_data;
      t.data_location = DataLocation.EXTERNAL;
      t.external_data = [
        newEntry({ key: 'location', value: ext.location }),
        newEntry({ key: 'offset', value: String(offset) }),
        newEntry({ key: 'length', value: String(bytes.length) }),
      ];
    } else {
      inlineBytes += bytes.length;
      if (!wasExternal) return; // untouched inline tensors keep their exact bytes
      t.raw_data = bytes;
      t.external_data = [];
      delete t.data_location;
    }
  });
  if (inlineBytes > MAX_PROTO_BYTES) {
    throw new HardenError(`cannot save ${outPath}: ${inlineBytes} bytes of weights exceed the 2 GiB protobuf limit; save with external data`);
  }

  const bytes = encodeModel(model);
  const temps: string[] = [];
  try {
    const renames: [string, string][] = [];
    if (sidePath && placed.length > 0) {
      const tmp = tempNameFor(sidePath);
      temps.push(tmp);
      const fh = await open(tmp, 'wx');
      try {
        for (const p of placed) await fh.write(p.bytes, 0, p.bytes.length, p.offset);
      } finally {
        await fh.close();
      }
      renames.push([tmp, sidePath]);
    }
    const tmp = tempNameFor(out);
    temps.push(tmp);
    await writeFile(tmp, bytes, { flag: 'wx' });
    renames.push([tmp, out]);
    for (const [from, to] of renames) await rename(from, to);
  } catch (e) {
    throw new HardenError(`cannot write ${outPath}: ${errnoText(e)}`);
  } finally {
    await Promise.all(temps.map((t) => unlink(t).catch(() => undefined)));
  }
}
