/** A labelled image dataset held on the host, ready for batching. */
export interface Dataset {
  /** The spec (or a short name) it was loaded from. */
  name: string;
  /** N×C×H×W, row-major, values after normalization (pixels are scaled to [0,1] first). */
  images: Float32Array;
  /** N labels in 0..classes-1. */
  labels: Int32Array;
  /** C, H, W. */
  shape: [number, number, number];
  classes: number;
  classNames?: string[];
  /** Images a `folder` source skipped with `skip-bad=true` (absent when nothing was skipped). */
  skipped?: number;
}

/**
 * What a source decodes, before class selection, subsetting, resizing, shifts and normalization.
 * `pixels` is N×C×H×W; a Uint8Array holds 0..255, a Float32Array holds values already in [0,1].
 * Sources cache these per process, so treat them as read-only.
 */
export interface RawData {
  pixels: Uint8Array | Float32Array;
  labels: Int32Array;
  shape: [number, number, number];
  classes: number;
  classNames?: string[];
  skipped?: number;
}
