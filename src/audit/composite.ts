/**
 * Composite inputs I(c): a random target image, scaled to `scale` (40 %) per side, pasted with
 * hard edges (no blending) at a random place on each source image of class c. Downscaling
 * averages the covered source pixels (area weights), so thin strokes survive.
 */
import { HardenError } from '../errors.js';
import type { Dataset } from '../data/types.js';
import { Random } from '../util/random.js';
import type { Box } from './overlap.js';

export interface Composites {
  /** N×C×H×W. */
  images: Float32Array;
  /** Index of each composite's background in the source data. */
  sourceIndex: Int32Array;
  /** Index of the pasted image in the target data, and its (target) label. */
  targetIndex: Int32Array;
  targetLabels: Int32Array;
  boxes: Box[];
}

/** Area-weighted resize of one C×H×W image to C×h×w (h ≤ H, w ≤ W). */
export function areaResize(src: Float32Array, C: number, H: number, W: number, h: number, w: number): Float32Array {
  const weights = (n: number, m: number): number[][] => {
    // weights[o][i]: share of input pixel i in output pixel o (each row sums to 1).
    const s = n / m;
    return Array.from({ length: m }, (_, o) => {
      const row = new Array<number>(n).fill(0);
      for (let i = Math.floor(o * s); i < Math.min(n, Math.ceil((o + 1) * s)); i++) row[i] = (Math.min(i + 1, (o + 1) * s) - Math.max(i, o * s)) / s;
      return row;
    });
  };
  const wy = weights(H, h), wx = weights(W, w);
  const out = new Float32Array(C * h * w);
  for (let c = 0; c < C; c++) {
    for (let oy = 0; oy < h; oy++) {
      for (let ox = 0; ox < w; ox++) {
        let v = 0;
        for (let y = 0; y < H; y++) {
          const a = wy[oy]![y]!;
          if (a === 0) continue;
          for (let x = 0; x < W; x++) if (wx[ox]![x]) v += a * wx[ox]![x]! * src[c * H * W + y * W + x]!;
        }
        out[c * h * w + oy * w + ox] = v;
      }
    }
  }
  return out;
}

/** One composite per index of `sourceIndices` (seeded: which target image, and where it goes). */
export function makeComposites(source: Dataset, sourceIndices: readonly number[], target: Dataset, seed: number, scale = 0.4): Composites {
  const [C, H, W] = source.shape;
  if (target.shape.some((d, i) => d !== source.shape[i])) {
    throw new HardenError(`target images are [${target.shape.join(', ')}] but source images are [${source.shape.join(', ')}]; load both at one size (size= / channels=)`);
  }
  if (target.labels.length === 0) throw new HardenError(`target data '${target.name}' is empty`);
  const h = Math.max(1, Math.round(scale * H)), w = Math.max(1, Math.round(scale * W));
  const per = C * H * W;
  const n = sourceIndices.length;
  const rng = new Random(seed);
  const out: Composites = { images: new Float32Array(n * per), sourceIndex: Int32Array.from(sourceIndices), targetIndex: new Int32Array(n), targetLabels: new Int32Array(n), boxes: [] };
  sourceIndices.forEach((si, k) => {
    const ti = rng.int(target.labels.length);
    const box: Box = { x: rng.int(W - w + 1), y: rng.int(H - h + 1), w, h };
    const img = out.images.subarray(k * per, (k + 1) * per);
    img.set(source.images.subarray(si * per, (si + 1) * per));
    const small = areaResize(target.images.subarray(ti * per, (ti + 1) * per), C, H, W, h, w);
    for (let c = 0; c < C; c++) for (let y = 0; y < h; y++) img.set(small.subarray(c * h * w + y * w, c * h * w + (y + 1) * w), c * H * W + (box.y + y) * W + box.x);
    out.targetIndex[k] = ti;
    out.targetLabels[k] = target.labels[ti]!;
    out.boxes.push(box);
  });
  return out;
}
