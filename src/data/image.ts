/** Host image helpers on N×C×H×W Float32Arrays. */

/**
 * Bilinear resize of one C×H×W image to C×nh×nw (half-pixel centres, edge clamp, no antialias),
 * written to `out` at `outOffset`.
 */
export function resizeBilinearInto(
  src: Float32Array, srcOffset: number, C: number, H: number, W: number,
  out: Float32Array, outOffset: number, nh: number, nw: number,
): void {
  const sy = H / nh;
  const sx = W / nw;
  for (let y = 0; y < nh; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), H - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, H - 1);
    const wy = fy - y0;
    for (let x = 0; x < nw; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), W - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, W - 1);
      const wx = fx - x0;
      for (let c = 0; c < C; c++) {
        const b = srcOffset + c * H * W;
        const top = src[b + y0 * W + x0]! * (1 - wx) + src[b + y0 * W + x1]! * wx;
        const bot = src[b + y1 * W + x0]! * (1 - wx) + src[b + y1 * W + x1]! * wx;
        out[outOffset + c * nh * nw + y * nw + x] = top * (1 - wy) + bot * wy;
      }
    }
  }
}

/** Bilinear resize of every image in an N×C×H×W batch. */
export function resizeAll(images: Float32Array, n: number, C: number, H: number, W: number, nh: number, nw: number): Float32Array {
  if (nh === H && nw === W) return images;
  const out = new Float32Array(n * C * nh * nw);
  for (let i = 0; i < n; i++) resizeBilinearInto(images, i * C * H * W, C, H, W, out, i * C * nh * nw, nh, nw);
  return out;
}

/** Channel conversion: 1→3 by replication, 3→1 by luminance (0.299, 0.587, 0.114). */
export function convertChannels(images: Float32Array, n: number, C: number, plane: number, to: 1 | 3): Float32Array {
  if (C === to) return images;
  const out = new Float32Array(n * to * plane);
  for (let i = 0; i < n; i++) {
    const s = i * C * plane;
    const o = i * to * plane;
    if (C === 1 && to === 3) {
      const src = images.subarray(s, s + plane);
      out.set(src, o);
      out.set(src, o + plane);
      out.set(src, o + 2 * plane);
    } else if (C === 3 && to === 1) {
      for (let p = 0; p < plane; p++) {
        out[o + p] = 0.299 * images[s + p]! + 0.587 * images[s + plane + p]! + 0.114 * images[s + 2 * plane + p]!;
      }
    } else {
      throw new Error(`convertChannels: ${C} → ${to} is not supported`);
    }
  }
  return out;
}
