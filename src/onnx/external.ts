/**
 * Reading tensor payloads that live outside the model file (TensorProto.data_location =
 * EXTERNAL), with the location confined to the model's folder.
 */
import { closeSync, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { HardenError } from '../errors.js';
import { DataLocation, type TensorProto, TensorDataType, dataTypeName, toNumber } from './schema.js';

export interface ExternalInfo {
  location: string;
  offset: number;
  /** Absent when the entry omits it (then the tensor's own byte size is used). */
  length?: number;
}

/** Makes an untrusted string safe to put inside a one-line message. */
export function clean(s: string | undefined | null): string {
  const v = (s ?? '').replace(/[\r\n\t\u2028\u2029]+/g, ' ').replace(/\p{Cc}/gu, '?');
  return v.length > 200 ? `${v.slice(0, 200)}…` : v;
}

export function tensorLabel(t: TensorProto): string {
  return t.name ? `tensor '${clean(t.name)}'` : 'unnamed tensor';
}

export function isExternal(t: TensorProto): boolean {
  return t.data_location === DataLocation.EXTERNAL;
}

/** Bits per element for the fixed-width types; undefined for STRING/UNDEFINED/unknown codes. */
export function bitsPerElement(code: number): number | undefined {
  switch (code) {
    case TensorDataType.BOOL:
    case TensorDataType.INT8:
    case TensorDataType.UINT8:
    case TensorDataType.FLOAT8E4M3FN:
    case TensorDataType.FLOAT8E4M3FNUZ:
    case TensorDataType.FLOAT8E5M2:
    case TensorDataType.FLOAT8E5M2FNUZ:
    case TensorDataType.FLOAT8E8M0:
      return 8;
    case TensorDataType.INT16:
    case TensorDataType.UINT16:
    case TensorDataType.FLOAT16:
    case TensorDataType.BFLOAT16:
      return 16;
    case TensorDataType.FLOAT:
    case TensorDataType.INT32:
    case TensorDataType.UINT32:
      return 32;
    case TensorDataType.DOUBLE:
    case TensorDataType.INT64:
    case TensorDataType.UINT64:
    case TensorDataType.COMPLEX64:
      return 64;
    case TensorDataType.COMPLEX128:
      return 128;
    case TensorDataType.UINT4:
    case TensorDataType.INT4:
    case TensorDataType.FLOAT4E2M1:
      return 4;
    case TensorDataType.UINT2:
    case TensorDataType.INT2:
      return 2;
    default:
      return undefined;
  }
}

/** Expected payload size in bytes of a tensor in raw (little-endian, packed) form. */
export function rawByteLength(t: TensorProto, source: string): number {
  const bits = bitsPerElement(t.data_type ?? 0);
  if (bits === undefined) {
    throw new HardenError(
      `${source}: ${tensorLabel(t)} has data type ${dataTypeName(t.data_type ?? 0)}, which has no raw byte form`,
    );
  }
  let n = 1;
  for (const d of t.dims) n *= toNumber(d);
  return Math.ceil((n * bits) / 8);
}

function parseNonNegative(v: string | undefined, what: string, t: TensorProto, source: string): number {
  if (v === undefined || !/^\d+$/.test(v.trim()) || !Number.isSafeInteger(Number(v))) {
    throw new HardenError(`${source}: ${tensorLabel(t)} has an invalid external data ${what} '${clean(v)}'`);
  }
  return Number(v);
}

export function externalInfo(t: TensorProto, source: string): ExternalInfo {
  const kv = new Map<string, string>();
  for (const e of t.external_data) kv.set(e.key ?? '', e.value ?? '');
  const location = kv.get('location');
  if (!location) throw new HardenError(`${source}: ${tensorLabel(t)} is stored externally but names no location`);
  const offset = kv.has('offset') ? parseNonNegative(kv.get('offset'), 'offset', t, source) : 0;
  const length = kv.has('length') ? parseNonNegative(kv.get('length'), 'length', t, source) : undefined;
  return { location, offset, length };
}

/**
 * Resolves an external data location against the model folder. Absolute paths and paths that
 * leave the folder are refused: a model file must not make us read arbitrary files.
 */
export function resolveExternalPath(location: string, baseDir: string, what: string, source: string): string {
  if (path.isAbsolute(location) || path.win32.isAbsolute(location) || location.includes('\0')) {
    throw new HardenError(`${source}: ${what} uses external data at absolute path '${clean(location)}'; only paths inside the model's folder are allowed`);
  }
  const base = path.resolve(baseDir);
  const full = path.resolve(base, location);
  const rel = path.relative(base, full);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new HardenError(`${source}: ${what} uses external data at '${clean(location)}', which is outside the model's folder ${base}`);
  }
  return full;
}

/** The raw bytes of an externally stored tensor (a fresh, unshared buffer). */
export function readExternalBytes(t: TensorProto, baseDir: string | undefined, source: string): Uint8Array {
  const label = tensorLabel(t);
  const info = externalInfo(t, source);
  if (baseDir === undefined) {
    throw new HardenError(`${source}: ${label} is stored in external file '${clean(info.location)}' but the model's folder is unknown`);
  }
  const file = resolveExternalPath(info.location, baseDir, label, source);
  const length = info.length ?? rawByteLength(t, source);
  let fd: number;
  try {
    // A symlink inside the folder must not lead outside it either.
    resolveExternalPath(path.relative(realpathSync(baseDir), realpathSync(file)), realpathSync(baseDir), label, source);
    fd = openSync(file, 'r');
  } catch (e) {
    if (e instanceof HardenError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : (code ?? 'unreadable');
    throw new HardenError(`${source}: cannot open external data file ${file} for ${label} (${why})`);
  }
  try {
    const size = fstatSync(fd).size;
    if (info.offset + length > size) {
      throw new HardenError(
        `${source}: ${label} needs bytes ${info.offset}..${info.offset + length} of external data file ${file}, which has only ${size} bytes`,
      );
    }
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, length - done, info.offset + done);
      if (n === 0) throw new HardenError(`${source}: external data file ${file} ended early while reading ${label}`);
      done += n;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}
