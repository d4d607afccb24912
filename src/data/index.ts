/**
 * Loading datasets from specs (see spec.ts for the syntax, sources/* for each source and its
 * split, shifts.ts for the shifts).
 *
 * Pipeline: decode the source (cached per process) → select classes (relabel 0..k-1 in the order
 * given unless relabel=false) → per-class / limit subset (seeded, kept in source order) → [0,1]
 * float → resize to size×size (bilinear; folder images are resized by sharp while decoding) →
 * shifts → channels → normalize (x − mean) / std.
 */
import * as path from 'node:path';
import { HardenError } from '../errors.js';
import { Random } from '../util/random.js';
import { convertChannels, resizeAll } from './image.js';
import { applyShifts } from './shifts.js';
import { loadCifar } from './sources/cifar.js';
import { loadFashionMnist } from './sources/fashion-mnist.js';
import { loadFolder } from './sources/folder.js';
import { loadIdx } from './sources/idx.js';
import { loadMnist } from './sources/mnist.js';
import { parseSpec, type DataSpec } from './spec.js';
import type { Dataset, RawData } from './types.js';

export type { Dataset } from './types.js';
export { batches, epochOrder } from './loader.js';
export { parseSpec } from './spec.js';
export { clearDataCache } from './sources/common.js';

export interface LoadOptions {
  /** Folder relative paths in the spec are resolved against; default the working directory. */
  baseDir?: string;
}

export async function loadDataset(spec: string, opts: LoadOptions = {}): Promise<Dataset> {
  const s = parseSpec(spec);
  const oneLine = spec.replace(/\s+/g, ' ');
  const fail = (what: string): never => {
    throw new HardenError(`dataset spec '${oneLine}': ${what}`);
  };
  const resolve = (p: string): string => path.resolve(opts.baseDir ?? process.cwd(), p);

  const raw = await loadRaw(s, resolve);
  const [C0, H0, W0] = raw.shape;
  const per = C0 * H0 * W0;

  // Class selection.
  let labelMap: Int32Array | undefined;
  let classes = raw.classes;
  let classNames = raw.classNames;
  if (s.classes) {
    for (const c of s.classes) if (c >= raw.classes) fail(`classes: class ${c} does not exist (the source has ${raw.classes} classes, 0-${raw.classes - 1})`);
    labelMap = new Int32Array(raw.classes).fill(-1);
    s.classes.forEach((c, k) => (labelMap![c] = s.relabel ? k : c));
    if (s.relabel) {
      classes = s.classes.length;
      classNames = raw.classNames ? s.classes.map((c) => raw.classNames![c]!) : undefined;
    }
  }
  let chosen: number[] = [];
  for (let i = 0; i < raw.labels.length; i++) if (!labelMap || labelMap[raw.labels[i]!]! >= 0) chosen.push(i);

  // Seeded subsets.
  if (s.perClass !== undefined || s.limit !== undefined) {
    const rng = new Random(s.seed);
    const order = chosen.slice();
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let picked = order;
    if (s.perClass !== undefined) {
      const count = new Map<number, number>();
      picked = picked.filter((i) => {
        const l = raw.labels[i]!;
        const c = count.get(l) ?? 0;
        count.set(l, c + 1);
        return c < s.perClass!;
      });
    }
    if (s.limit !== undefined) picked = picked.slice(0, s.limit);
    chosen = picked.sort((a, b) => a - b);
  }
  const n = chosen.length;
  if (n === 0) fail('no images left after class selection and subsetting');

  // To [0,1] floats.
  let data: Float32Array = new Float32Array(n * per);
  const labels = new Int32Array(n);
  const scale = raw.pixels instanceof Uint8Array ? 1 / 255 : 1;
  chosen.forEach((i, k) => {
    const src = raw.pixels.subarray(i * per, (i + 1) * per);
    const o = k * per;
    if (scale === 1) data.set(src, o);
    else for (let p = 0; p < per; p++) data[o + p] = src[p]! * scale;
    labels[k] = labelMap ? labelMap[raw.labels[i]!]! : raw.labels[i]!;
  });
  let shape: [number, number, number] = [C0, H0, W0];

  if (s.size !== undefined && (H0 !== s.size || W0 !== s.size)) {
    data = resizeAll(data, n, C0, H0, W0, s.size, s.size);
    shape = [C0, s.size, s.size];
  }
  if (s.shifts.length > 0) {
    const r = applyShifts({ data, n, shape }, s.shifts, s.seed);
    data = r.data;
    shape = r.shape;
  }
  if (s.channels !== undefined && s.channels !== shape[0]) {
    data = convertChannels(data, n, shape[0], shape[1] * shape[2], s.channels);
    shape = [s.channels, shape[1], shape[2]];
  }
  if (s.mean || s.std) {
    const C = shape[0];
    const mean = s.mean ?? [0];
    const std = s.std ?? [1];
    if (mean.length !== 1 && mean.length !== C) fail(`mean: ${mean.length} values for ${C} channels (give 1 or ${C})`);
    if (std.length !== 1 && std.length !== C) fail(`std: ${std.length} values for ${C} channels (give 1 or ${C})`);
    const plane = shape[1] * shape[2];
    for (let k = 0; k < n * C; k++) {
      const c = k % C;
      const m = mean.length === 1 ? mean[0]! : mean[c]!;
      const sd = std.length === 1 ? std[0]! : std[c]!;
      const b = k * plane;
      for (let p = 0; p < plane; p++) data[b + p] = (data[b + p]! - m) / sd;
    }
  }
  const ds: Dataset = { name: spec, images: data, labels, shape, classes };
  if (classNames) ds.classNames = classNames;
  if (raw.skipped) ds.skipped = raw.skipped;
  return ds;
}

function loadRaw(s: DataSpec, resolve: (p: string) => string): Promise<RawData> {
  switch (s.source) {
    case 'mnist':
      return loadMnist(s.split);
    case 'fashion-mnist':
      return loadFashionMnist(s.split, s.classes);
    case 'idx':
      return loadIdx(resolve(s.images!), resolve(s.labels!));
    case 'cifar':
      return loadCifar(resolve(s.path!), s.split);
    case 'folder':
      return loadFolder(resolve(s.path!), { size: s.size, channels: s.channels ?? 3, skipBad: s.skipBad });
  }
}
