/**
 * `harden audit`: which source classes M^t still recognizes although the target data never shows
 * them (memories.ts), and how much those memories distract M^t on composite inputs (a target
 * image pasted on a source image of class c): the IoU of M^t's Grad-CAM for its prediction with
 * M^s's Grad-CAM for c, outside the pasted image (overlap.ts), against a scratch baseline.
 * Every prediction and probability comes from onnxruntime; Grad-CAM from the tfjs import.
 */
import { HardenError } from '../errors.js';
import type { Dataset } from '../data/types.js';
import type { OnnxModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import { extractFeatures } from '../verify/features.js';
import { checkModelTakes } from '../train/fit.js';
import { Random } from '../util/random.js';
import { CamModel, upsampleMaps } from './gradcam.js';
import { makeComposites, type Composites } from './composite.js';
import { defaultPLo, lingering, prevalence, recognition, sourceOnly } from './memories.js';
import { distraction, outsideBox, type Box } from './overlap.js';
import { SOURCE_PROBABILITIES, stitchSourceHead } from './stitch.js';

export interface AuditSettings {
  /** top-k of M^s that counts a target image for v(c). */
  k: number;
  /** Default ⌊1 % of the target images⌋. */
  vLo?: number;
  /** Default min(10/|C^s|, 0.5). */
  pLo?: number;
  camLayer?: string;
  /** Composites per source class. */
  composites: number;
  /** Fraction of pixels compared by the distraction IoU. */
  topFraction: number;
  /** Side of the pasted target image, as a fraction of the source image's. */
  scale: number;
  /** Classes (the most distracting source-only ones) and composites per class in the gallery. */
  galleryClasses: number;
  galleryImages: number;
  seed: number;
}

export const DEFAULT_AUDIT_SETTINGS: AuditSettings = { k: 1, composites: 50, topFraction: 0.2, scale: 0.4, galleryClasses: 3, galleryImages: 6, seed: 0 };

export interface NamedModel {
  model: OnnxModel;
  name: string;
}

export interface AuditInputs {
  source: NamedModel;
  finetuned: NamedModel;
  baseline?: NamedModel;
  sourceData: Dataset;
  targetData: Dataset;
}

export interface ClassAudit {
  class: number;
  name?: string;
  /** v(c). */
  prevalence: number;
  sourceOnly: boolean;
  /** s(c) = mean p_c(M^{st}(x)) over source images of class c (null without any). */
  recognition: number | null;
  lingering: boolean;
  composites: number;
  /** Mean distraction of M^t (and the baseline) over the class's composites. */
  distraction?: { finetuned: number; baseline?: number };
  /** Accuracy on the pasted target images of the class's composites. */
  compositeAccuracy?: { finetuned: number; baseline?: number };
}

/** What one gallery row shows (composite k of class c). */
export interface GalleryRow {
  box: Box;
  targetLabel: number;
  predicted: { finetuned: number; baseline?: number };
  distraction: { finetuned: number; baseline?: number };
  /** H×W maps (upsampled Grad-CAM) and the C×H×W composite. */
  image: Float32Array;
  cams: { source: Float32Array; finetuned: Float32Array; baseline?: Float32Array };
}

export interface AuditResult {
  settings: AuditSettings & { vLo: number; pLo: number };
  camLayers: { source: string; finetuned: string; baseline?: string };
  featureTensor: string;
  sourceClasses: number;
  classes: ClassAudit[];
  F: number[];
  L: number[];
  accuracy: { finetuned: { clean: number; composites: number }; baseline?: { clean: number; composites: number } };
  /** Mean distraction over the composites of the source-only classes. */
  meanDistraction: { finetuned: number; baseline?: number } | null;
  gallery: { class: number; rows: GalleryRow[] }[];
}

/** One output of a model over a dataset (row-major N×dim), under onnxruntime. */
async function outputOf(proto: ModelProto, data: Dataset, name?: string): Promise<{ values: Float32Array; dim: number }> {
  const tensor = name ?? proto.graph!.output[0]!.name!;
  const f = await extractFeatures(proto, data, { featureTensor: tensor });
  return { values: f.features, dim: f.dim };
}

const argmaxRows = (z: Float32Array, k: number): Int32Array => Int32Array.from({ length: z.length / k }, (_, r) => {
  let best = 0;
  for (let c = 1; c < k; c++) if (z[r * k + c]! > z[r * k + best]!) best = c;
  return best;
});

const meanOf = (xs: ArrayLike<number>): number => {
  let sum = 0;
  for (let k = 0; k < xs.length; k++) sum += xs[k]!;
  return xs.length ? sum / xs.length : Number.NaN;
};

function checkInputs(i: AuditInputs, s: AuditSettings): void {
  const { sourceData: src, targetData: tgt } = i;
  if (tgt.shape.some((d, k) => d !== src.shape[k])) {
    throw new HardenError(`--target-data: images are [${tgt.shape.join(', ')}] but the --source-data images are [${src.shape.join(', ')}]; load both at the models' input size (size= / channels=)`);
  }
  for (const m of [i.source, i.finetuned, i.baseline]) if (m) checkModelTakes(m.model.proto, src, `${m.name}: --source-data`);
  if (!Number.isInteger(s.k) || s.k < 1) throw new HardenError(`--k must be a positive integer, got ${s.k}`);
  if (!Number.isInteger(s.composites) || s.composites < 1) throw new HardenError(`--composites must be a positive integer, got ${s.composites}`);
  if (s.pLo !== undefined && !(s.pLo >= 0 && s.pLo < 1)) throw new HardenError(`--p-lo must be in [0, 1), got ${s.pLo}`);
  if (s.vLo !== undefined && !(s.vLo >= 0)) throw new HardenError(`--v-lo must be ≥ 0, got ${s.vLo}`);
}

/** Grad-CAM maps (upsampled to the image size) of every composite, in batches. */
function camsOf(cam: CamModel, comps: Composites, shape: readonly number[], classes: Int32Array): Float32Array {
  const [, H, W] = shape as [number, number, number];
  const per = shape[0]! * H * W;
  const n = classes.length;
  const out = new Float32Array(n * H * W);
  const [, h, w] = cam.shape;
  for (let s = 0; s < n; s += 64) {
    const b = Math.min(64, n - s);
    const maps = cam.maps(comps.images.subarray(s * per, (s + b) * per), shape, classes.subarray(s, s + b));
    out.set(upsampleMaps(maps, b, h, w, H, W), s * H * W);
  }
  return out;
}

export interface Memories {
  /** v(c), s(c) for every source class. */
  prevalence: Int32Array;
  recognition: number[];
  F: number[];
  L: number[];
  vLo: number;
  pLo: number;
  sourceClasses: number;
  featureTensor: string;
}

/** v, F (M^s on D^t) and s(c), L (M^{st} on D^s), under onnxruntime. */
export async function measureMemories(i: AuditInputs, settings: Partial<AuditSettings> = {}): Promise<Memories> {
  const s: AuditSettings = { ...DEFAULT_AUDIT_SETTINGS, ...settings };
  // The models must fit together (feature sizes) before anything is read from the data.
  const stitched = stitchSourceHead(i.finetuned.model, i.finetuned.name, i.source.model, i.source.name, { probabilities: true });
  checkInputs(i, s);
  const { sourceData: src, targetData: tgt } = i;
  const Cs = stitched.sourceClasses;
  if (s.k > Cs) throw new HardenError(`--k ${s.k} is more than the ${Cs} source classes`);
  const maxLabel = src.labels.reduce((m, v) => Math.max(m, v), -1);
  if (maxLabel >= Cs) throw new HardenError(`--source-data has label ${maxLabel} but ${i.source.name} has ${Cs} classes (load it with relabel=false or all classes)`);
  const ms = await outputOf(i.source.model.proto, tgt);
  if (ms.dim !== Cs) throw new HardenError(`${i.source.name}: first output has ${ms.dim} values per image, its classifier ${Cs}`);
  const v = prevalence(ms.values, Cs, s.k);
  const vLo = s.vLo ?? Math.floor(0.01 * tgt.labels.length);
  const pLo = s.pLo ?? defaultPLo(Cs);
  const F = sourceOnly(v, vLo);
  const probs = await outputOf(stitched.proto, src, SOURCE_PROBABILITIES);
  const rec = recognition(probs.values, src.labels, Cs);
  return { prevalence: v, recognition: rec, F, L: lingering(F, rec, pLo), vLo, pLo, sourceClasses: Cs, featureTensor: stitched.featureTensor };
}

export async function runAuditAnalysis(i: AuditInputs, settings: Partial<AuditSettings> = {}): Promise<AuditResult> {
  const s: AuditSettings = { ...DEFAULT_AUDIT_SETTINGS, ...settings };
  const mem = await measureMemories(i, s);
  const { sourceData: src, targetData: tgt } = i;
  const { F, L, vLo, pLo, prevalence: v, recognition: rec } = mem;
  const Cs = mem.sourceClasses;

  // Composites: s.composites per source class (seeded choice of background, pasted image, place).
  const rng = new Random(s.seed);
  const byClass = Array.from({ length: Cs }, (_, c) => {
    const idx = [...src.labels.keys()].filter((r) => src.labels[r] === c);
    for (let a = idx.length - 1; a > 0; a--) {
      const b = rng.int(a + 1);
      [idx[a], idx[b]] = [idx[b]!, idx[a]!];
    }
    return idx.slice(0, s.composites).sort((a, b) => a - b);
  });
  const order = byClass.flat();
  const compClass = Int32Array.from(byClass.flatMap((idx, c) => idx.map(() => c)));
  const comps = makeComposites(src, order, tgt, s.seed + 1, s.scale);
  const compData: Dataset = { name: 'composites', images: comps.images, labels: comps.targetLabels, shape: src.shape, classes: tgt.classes };

  const evaluateModel = async (m: NamedModel) => {
    const clean = await outputOf(m.model.proto, tgt);
    const comp = await outputOf(m.model.proto, compData);
    const cleanPred = argmaxRows(clean.values, clean.dim);
    const pred = argmaxRows(comp.values, comp.dim);
    return { pred, clean: meanOf(cleanPred.map((p, r) => Number(p === tgt.labels[r]))) };
  };
  const ft = await evaluateModel(i.finetuned);
  const base = i.baseline ? await evaluateModel(i.baseline) : undefined;

  // Grad-CAM of M^s for c, of M^t (and the baseline) for their predictions.
  const [, H, W] = src.shape;
  const cams = async (m: NamedModel, classes: Int32Array) => {
    const cam = new CamModel(m.model, m.name, src.shape, s.camLayer);
    try {
      return { layer: cam.layer, maps: camsOf(cam, comps, src.shape, classes) };
    } finally {
      cam.dispose();
    }
  };
  const camS = await cams(i.source, compClass);
  const camT = await cams(i.finetuned, ft.pred);
  const camB = i.baseline && base ? await cams(i.baseline, base.pred) : undefined;
  const n = order.length;
  const dT = new Float64Array(n), dB = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const region = outsideBox(H, W, comps.boxes[r]!);
    const at = (m: Float32Array) => m.subarray(r * H * W, (r + 1) * H * W);
    dT[r] = distraction(at(camT.maps), at(camS.maps), region, s.topFraction);
    if (camB) dB[r] = distraction(at(camB.maps), at(camS.maps), region, s.topFraction);
  }

  const rows = (c: number) => [...compClass.keys()].filter((r) => compClass[r] === c);
  const correct = (pred: Int32Array, rs: number[]) => meanOf(rs.map((r) => Number(pred[r] === comps.targetLabels[r])));
  const classes: ClassAudit[] = Array.from({ length: Cs }, (_, c) => {
    const rs = rows(c);
    const entry: ClassAudit = {
      class: c,
      ...(src.classNames?.[c] ? { name: src.classNames[c] } : {}),
      prevalence: v[c]!,
      sourceOnly: F.includes(c),
      recognition: Number.isNaN(rec[c]!) ? null : rec[c]!,
      lingering: L.includes(c),
      composites: rs.length,
    };
    if (rs.length) {
      entry.distraction = { finetuned: meanOf(rs.map((r) => dT[r]!)), ...(camB ? { baseline: meanOf(rs.map((r) => dB[r]!)) } : {}) };
      entry.compositeAccuracy = { finetuned: correct(ft.pred, rs), ...(base ? { baseline: correct(base.pred, rs) } : {}) };
    }
    return entry;
  });
  const all = [...compClass.keys()];
  const fRows = all.filter((r) => F.includes(compClass[r]!));
  const meanDistraction = fRows.length ? { finetuned: meanOf(fRows.map((r) => dT[r]!)), ...(camB ? { baseline: meanOf(fRows.map((r) => dB[r]!)) } : {}) } : null;

  // Gallery: the most distracting source-only classes (all classes when F is empty).
  const pool = (F.length ? F : classes.map((c) => c.class)).filter((c) => classes[c]!.distraction);
  const worst = pool.sort((a, b) => classes[b]!.distraction!.finetuned - classes[a]!.distraction!.finetuned).slice(0, s.galleryClasses);
  const per = src.shape[0] * H * W;
  const gallery = worst.map((c) => ({
    class: c,
    rows: rows(c).slice(0, s.galleryImages).map((r): GalleryRow => {
      const at = (m: Float32Array) => m.slice(r * H * W, (r + 1) * H * W);
      return {
        box: comps.boxes[r]!,
        targetLabel: comps.targetLabels[r]!,
        predicted: { finetuned: ft.pred[r]!, ...(base ? { baseline: base.pred[r]! } : {}) },
        distraction: { finetuned: dT[r]!, ...(camB ? { baseline: dB[r]! } : {}) },
        image: comps.images.slice(r * per, (r + 1) * per),
        cams: { source: at(camS.maps), finetuned: at(camT.maps), ...(camB ? { baseline: at(camB.maps) } : {}) },
      };
    }),
  }));

  return {
    settings: { ...s, vLo, pLo },
    camLayers: { source: camS.layer, finetuned: camT.layer, ...(camB ? { baseline: camB.layer } : {}) },
    featureTensor: mem.featureTensor,
    sourceClasses: Cs,
    classes,
    F,
    L,
    accuracy: {
      finetuned: { clean: ft.clean, composites: correct(ft.pred, all) },
      ...(base ? { baseline: { clean: base.clean, composites: correct(base.pred, all) } } : {}),
    },
    meanDistraction,
    gallery,
  };
}
