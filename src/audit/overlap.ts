/**
 * Where two saliency maps agree: the top fraction of pixels of each map inside a region, and the
 * intersection over union of those pixel sets (the "distraction" of a composite input).
 */

/**
 * The `fraction` of the allowed pixels (region[p] = 1) with the highest values: k = round(fraction ·
 * allowed) pixels, ties broken by pixel index; pixels with value ≤ 0 are never selected (a map
 * that is zero everywhere selects nothing rather than an arbitrary set).
 */
export function topMask(map: ArrayLike<number>, region: Uint8Array, fraction = 0.2): Uint8Array {
  if (region.length !== map.length) throw new Error(`topMask: map has ${map.length} pixels, region ${region.length}`);
  const allowed: number[] = [];
  for (let p = 0; p < map.length; p++) if (region[p]) allowed.push(p);
  allowed.sort((i, j) => map[j]! - map[i]! || i - j);
  const k = Math.round(fraction * allowed.length);
  const out = new Uint8Array(map.length);
  for (let r = 0; r < k; r++) {
    const p = allowed[r]!;
    if (!(map[p]! > 0)) break;
    out[p] = 1;
  }
  return out;
}

/** |a ∩ b| / |a ∪ b| of two 0/1 masks; 0 when both are empty. */
export function iou(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`iou: masks have ${a.length} and ${b.length} pixels`);
  let inter = 0, union = 0;
  for (let p = 0; p < a.length; p++) {
    if (a[p] && b[p]) inter++;
    if (a[p] || b[p]) union++;
  }
  return union === 0 ? 0 : inter / union;
}

/** An axis-aligned box of pixels (the pasted image). */
export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** 1 outside the box, 0 inside, on an H×W grid. */
export function outsideBox(H: number, W: number, box: Box): Uint8Array {
  const m = new Uint8Array(H * W).fill(1);
  for (let y = box.y; y < box.y + box.h; y++) for (let x = box.x; x < box.x + box.w; x++) m[y * W + x] = 0;
  return m;
}

/** distraction = IoU of the top-`fraction` pixels of two H×W maps, both restricted to `region`. */
export function distraction(model: ArrayLike<number>, source: ArrayLike<number>, region: Uint8Array, fraction = 0.2): number {
  return iou(topMask(model, region, fraction), topMask(source, region, fraction));
}
