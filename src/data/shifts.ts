/**
 * Domain shifts, applied after loading and resizing, before channel conversion and normalization,
 * on pixels in [0,1], in the order the spec names them. Random shifts draw from one `Random` seeded
 * from the spec's seed, so the same spec gives the same images.
 *
 *   invert     x → 1 − x.
 *   rotate=D   rotate by D degrees counter-clockwise about the image centre (bilinear, 0 outside).
 *   noise=S    add N(0, S²) per pixel, clamp to [0,1].
 *   blur=K     K×K box blur (edge pixels repeated); for even K the window reaches one further
 *              right/down.
 *   usps       bilinear down to 16×16 and back up to H×W (USPS-like low resolution).
 *   colorize   MNIST-M style: |T − x| per channel, where T is a procedurally generated colour
 *              texture per image (two random colours mixed by a random smooth field — a sum of
 *              three random sinusoids — plus small per-pixel noise). Not patches of other images:
 *              the result does not depend on which other images were loaded. Gray input is used
 *              as is; RGB input is reduced to luminance first. Output has 3 channels.
 *   pad=P      P zero pixels on every side (H,W grow by 2P).
 *   rgb        gray → RGB by replication (no-op on 3 channels).
 */
import { Random } from '../util/random.js';
import { convertChannels, resizeAll } from './image.js';
import type { ShiftSpec } from './spec.js';

export interface Images {
  data: Float32Array;
  n: number;
  shape: [number, number, number];
}

export function applyShifts(img: Images, shifts: ShiftSpec[], seed: number): Images {
  const rng = new Random((seed ^ 0x5bd1e995) >>> 0);
  for (const s of shifts) img = applyShift(img, s, rng);
  return img;
}

export function applyShift(img: Images, s: ShiftSpec, rng: Random): Images {
  const { data, n } = img;
  const [C, H, W] = img.shape;
  switch (s.name) {
    case 'invert': {
      const out = new Float32Array(data.length);
      for (let i = 0; i < data.length; i++) out[i] = 1 - data[i]!;
      return { data: out, n, shape: [C, H, W] };
    }
    case 'rotate':
      return { data: rotate(data, n * C, H, W, s.value!), n, shape: [C, H, W] };
    case 'noise': {
      const out = new Float32Array(data.length);
      const sigma = s.value!;
      for (let i = 0; i < data.length; i++) out[i] = Math.min(1, Math.max(0, data[i]! + sigma * rng.normal()));
      return { data: out, n, shape: [C, H, W] };
    }
    case 'blur':
      return { data: boxBlur(data, n * C, H, W, s.value!), n, shape: [C, H, W] };
    case 'usps': {
      const small = resizeAll(data, n, C, H, W, 16, 16);
      // resizeAll returns its input when the size already matches: copy so the caller's array stays untouched.
      const back = resizeAll(small, n, C, 16, 16, H, W);
      return { data: back === data ? data.slice() : back, n, shape: [C, H, W] };
    }
    case 'pad': {
      const p = s.value!;
      const nh = H + 2 * p;
      const nw = W + 2 * p;
      const out = new Float32Array(n * C * nh * nw);
      for (let k = 0; k < n * C; k++) {
        for (let y = 0; y < H; y++) {
          out.set(data.subarray(k * H * W + y * W, k * H * W + (y + 1) * W), k * nh * nw + (y + p) * nw + p);
        }
      }
      return { data: out, n, shape: [C, nh, nw] };
    }
    case 'rgb':
      return { data: convertChannels(data, n, C, H * W, 3), n, shape: [3, H, W] };
    case 'colorize':
      return colorize(img, rng);
  }
}

function rotate(data: Float32Array, planes: number, H: number, W: number, deg: number): Float32Array {
  const t = (deg * Math.PI) / 180;
  const snap = (v: number): number => (Math.abs(v - Math.round(v)) < 1e-12 ? Math.round(v) : v);
  const cos = snap(Math.cos(t));
  const sin = snap(Math.sin(t));
  const cy = (H - 1) / 2;
  const cx = (W - 1) / 2;
  const out = new Float32Array(data.length);
  const plane = H * W;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      // Output point in math coordinates (v up), rotated back by −θ to find its source.
      const ou = x - cx;
      const ov = cy - y;
      const su = cos * ou + sin * ov;
      const sv = -sin * ou + cos * ov;
      const fx = cx + su;
      const fy = cy - sv;
      const x0 = Math.floor(fx);
      const y0 = Math.floor(fy);
      const wx = fx - x0;
      const wy = fy - y0;
      for (let k = 0; k < planes; k++) {
        const b = k * plane;
        const at = (yy: number, xx: number): number => (yy >= 0 && yy < H && xx >= 0 && xx < W ? data[b + yy * W + xx]! : 0);
        let v = 0;
        if (wy < 1) {
          if (wx < 1) v += (1 - wx) * (1 - wy) * at(y0, x0);
          if (wx > 0) v += wx * (1 - wy) * at(y0, x0 + 1);
        }
        if (wy > 0) {
          if (wx < 1) v += (1 - wx) * wy * at(y0 + 1, x0);
          if (wx > 0) v += wx * wy * at(y0 + 1, x0 + 1);
        }
        out[b + y * W + x] = v;
      }
    }
  }
  return out;
}

function boxBlur(data: Float32Array, planes: number, H: number, W: number, k: number): Float32Array {
  const lo = Math.floor((k - 1) / 2);
  const hi = k - 1 - lo;
  const tmp = new Float32Array(data.length);
  const out = new Float32Array(data.length);
  const plane = H * W;
  for (let p = 0; p < planes; p++) {
    const b = p * plane;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        let s = 0;
        for (let d = -lo; d <= hi; d++) s += data[b + y * W + Math.min(W - 1, Math.max(0, x + d))]!;
        tmp[b + y * W + x] = s / k;
      }
    }
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        let s = 0;
        for (let d = -lo; d <= hi; d++) s += tmp[b + Math.min(H - 1, Math.max(0, y + d)) * W + x]!;
        out[b + y * W + x] = s / k;
      }
    }
  }
  return out;
}

function colorize(img: Images, rng: Random): Images {
  const { data, n } = img;
  const [C, H, W] = img.shape;
  const gray = convertChannels(data, n, C, H * W, 1);
  const plane = H * W;
  const out = new Float32Array(n * 3 * plane);
  for (let i = 0; i < n; i++) {
    const a = [rng.next(), rng.next(), rng.next()];
    const b = [rng.next(), rng.next(), rng.next()];
    const waves = Array.from({ length: 3 }, () => ({
      fx: (rng.next() * 2 - 1) * 0.5,
      fy: (rng.next() * 2 - 1) * 0.5,
      ph: rng.next() * 2 * Math.PI,
    }));
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        let f = 0;
        for (const w of waves) f += Math.sin(w.fx * x + w.fy * y + w.ph);
        const m = 0.5 + f / 6; // in [0,1]
        const g = gray[i * plane + y * W + x]!;
        for (let c = 0; c < 3; c++) {
          const t = Math.min(1, Math.max(0, a[c]! * (1 - m) + b[c]! * m + 0.05 * (rng.next() - 0.5)));
          out[(i * 3 + c) * plane + y * W + x] = Math.abs(t - g);
        }
      }
    }
  }
  return { data: out, n, shape: [3, H, W] };
}
