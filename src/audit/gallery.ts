/**
 * Gallery PNGs: one row per composite — the composite, then Grad-CAM overlays of M^s (for the
 * source class), M^t and the baseline (for their predictions) — with the pasted box outlined.
 */
import sharp from 'sharp';
import type { GalleryRow } from './audit.js';

const ZOOM = 4;
const GAP = 4;

/** Jet-like colour of h ∈ [0, 1] as RGB in [0, 1]. */
function heat(h: number): [number, number, number] {
  const ch = (x: number) => Math.min(1, Math.max(0, 1.5 - Math.abs(4 * h - x)));
  return [ch(3), ch(2), ch(1)];
}

/** An H×W RGB tile (values in [0, 1]): the image (min–max scaled), optionally with a CAM blended in. */
function tile(image: Float32Array, C: number, H: number, W: number, cam?: Float32Array): Float32Array {
  let lo = Infinity, hi = -Infinity;
  for (const v of image) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const span = hi > lo ? hi - lo : 1;
  const camMax = cam ? Math.max(...cam, 1e-12) : 1;
  const out = new Float32Array(H * W * 3);
  for (let p = 0; p < H * W; p++) {
    for (let k = 0; k < 3; k++) {
      const v = (image[(C === 3 ? k : 0) * H * W + p]! - lo) / span;
      out[p * 3 + k] = cam ? 0.5 * v + 0.5 * heat(cam[p]! / camMax)[k]! : v;
    }
  }
  return out;
}

export async function renderGallery(rows: GalleryRow[], shape: readonly number[]): Promise<Buffer> {
  const [C, H, W] = shape as [number, number, number];
  const cols = rows[0]?.cams.baseline ? 4 : 3;
  const tw = W * ZOOM, th = H * ZOOM;
  const width = cols * tw + (cols - 1) * GAP, height = rows.length * th + Math.max(0, rows.length - 1) * GAP;
  const px = Buffer.alloc(width * height * 3, 255);
  rows.forEach((r, ri) => {
    const tiles = [tile(r.image, C, H, W), tile(r.image, C, H, W, r.cams.source), tile(r.image, C, H, W, r.cams.finetuned)];
    if (r.cams.baseline) tiles.push(tile(r.image, C, H, W, r.cams.baseline));
    tiles.forEach((t, ci) => {
      const ox = ci * (tw + GAP), oy = ri * (th + GAP);
      for (let y = 0; y < th; y++) {
        for (let x = 0; x < tw; x++) {
          const sy = Math.floor(y / ZOOM), sx = Math.floor(x / ZOOM);
          const b = r.box;
          const edge = (sx >= b.x && sx < b.x + b.w && sy >= b.y && sy < b.y + b.h) &&
            (y === b.y * ZOOM || y === (b.y + b.h) * ZOOM - 1 || x === b.x * ZOOM || x === (b.x + b.w) * ZOOM - 1);
          const o = ((oy + y) * width + ox + x) * 3;
          for (let k = 0; k < 3; k++) px[o + k] = edge ? (k === 1 ? 255 : 0) : Math.round(255 * t[(sy * W + sx) * 3 + k]!);
        }
      }
    });
  });
  return sharp(px, { raw: { width, height, channels: 3 } }).png().toBuffer();
}
