/** Seeded mini-batches of a Dataset. */
import type { HostTensor } from '../onnx/tensor.js';
import { Random } from '../util/random.js';
import type { Dataset } from './types.js';
import { subsetDataset } from './subset.js';

export interface BatchOptions {
  batchSize: number;
  seed: number;
  /** Shuffles differ per (seed, epoch); default 0. */
  epoch?: number;
  /** Default true. */
  shuffle?: boolean;
  /** Drop a last batch smaller than batchSize; default false. */
  dropLast?: boolean;
}

export interface Batch {
  /** float32 N×C×H×W. */
  x: HostTensor;
  y: Int32Array;
  /** Positions of the batch's images in the dataset. */
  indices: Int32Array;
}

/** The order a (seed, epoch) visits the dataset in (Fisher–Yates with Random). */
export function epochOrder(n: number, seed: number, epoch = 0, shuffle = true): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  if (!shuffle) return order;
  const rng = new Random(mixSeed(seed, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

function mixSeed(seed: number, epoch: number): number {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul((epoch + 1) >>> 0, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

/**
 * NCHW batches in a seeded order. Each batch allocates only its own x, y and indices arrays
 * (callers may keep them).
 */
export function* batches(ds: Dataset, opts: BatchOptions): Generator<Batch> {
  const { batchSize, seed, epoch = 0, shuffle = true, dropLast = false } = opts;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batches: batchSize must be a positive integer, got ${batchSize}`);
  const n = ds.labels.length;
  const per = ds.shape[0] * ds.shape[1] * ds.shape[2];
  const order = epochOrder(n, seed, epoch, shuffle);
  for (let start = 0; start < n; start += batchSize) {
    const b = Math.min(batchSize, n - start);
    if (b < batchSize && dropLast) return;
    const data = new Float32Array(b * per);
    const y = new Int32Array(b);
    const indices = order.slice(start, start + b);
    for (let k = 0; k < b; k++) {
      const i = indices[k]!;
      data.set(ds.images.subarray(i * per, (i + 1) * per), k * per);
      y[k] = ds.labels[i]!;
    }
    yield { x: { dtype: 'float32', shape: [b, ...ds.shape], data }, y, indices };
  }
}

/**
 * The `size` examples of step `step` from an endless seeded stream over the dataset (one
 * reshuffle per pass, epochOrder): depends only on (seed, step), so a resumed run repeats it.
 */
export class StepSampler {
  private readonly orders = new Map<number, Int32Array>();
  constructor(private readonly ds: Dataset, private readonly size: number, private readonly seed: number) {}

  batch(step: number): { x: HostTensor; y: Int32Array } {
    const n = this.ds.labels.length;
    const per = this.ds.shape[0] * this.ds.shape[1] * this.ds.shape[2];
    const data = new Float32Array(this.size * per);
    const y = new Int32Array(this.size);
    for (let j = 0; j < this.size; j++) {
      const t = step * this.size + j;
      const pass = Math.floor(t / n);
      let order = this.orders.get(pass);
      if (!order) {
        this.orders.clear();
        order = epochOrder(n, this.seed, pass);
        this.orders.set(pass, order);
      }
      const i = order[t % n]!;
      data.set(this.ds.images.subarray(i * per, (i + 1) * per), j * per);
      y[j] = this.ds.labels[i]!;
    }
    return { x: { dtype: 'float32', shape: [this.size, ...this.ds.shape], data }, y };
  }
}

/**
 * Batches of `chunks` chunks of `chunkSize` examples, each chunk from one class, the classes of a
 * batch distinct and drawn per step; each class has its own StepSampler stream. Like StepSampler,
 * a batch depends only on (seed, step).
 */
export class ClassChunkSampler {
  private readonly perClass: StepSampler[] = [];
  private readonly present: number[] = [];
  constructor(ds: Dataset, private readonly chunks: number, chunkSize: number, private readonly seed: number) {
    for (let c = 0; c < ds.classes; c++) {
      const rows = [...ds.labels.keys()].filter((r) => ds.labels[r] === c);
      if (!rows.length) continue;
      this.present.push(c);
      this.perClass.push(new StepSampler(subsetDataset(ds, rows), chunkSize, seed + 31 * c));
    }
    if (this.present.length < chunks) throw new Error(`ClassChunkSampler: ${chunks} chunks need ${chunks} classes, '${ds.name}' has ${this.present.length}`);
  }

  batch(step: number): { x: HostTensor; y: Int32Array } {
    const rng = new Random((this.seed * 7919 + step * 104_729 + 11) >>> 0);
    const order = [...this.present.keys()];
    for (let i = 0; i < this.chunks; i++) {
      const j = i + rng.int(order.length - i);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const parts = order.slice(0, this.chunks).map((k) => this.perClass[k]!.batch(step));
    const x = parts[0]!.x;
    const data = new Float32Array(parts.reduce((n, p) => n + p.x.data.length, 0));
    let o = 0;
    for (const p of parts) {
      data.set(p.x.data as Float32Array, o);
      o += p.x.data.length;
    }
    return { x: { ...x, shape: [x.shape[0]! * this.chunks, ...x.shape.slice(1)], data }, y: Int32Array.from(parts.flatMap((p) => [...p.y])) };
  }
}

/** The same `size` examples (a seeded random choice, made once) at every step. */
export class FixedBatchSampler {
  private readonly fixed: { x: HostTensor; y: Int32Array };
  constructor(ds: Dataset, size: number, seed: number) {
    if (size > ds.labels.length) throw new Error(`FixedBatchSampler: ${size} examples wanted, '${ds.name}' has ${ds.labels.length}`);
    this.fixed = new StepSampler(ds, size, seed).batch(0);
  }

  batch(_step: number): { x: HostTensor; y: Int32Array } {
    return this.fixed;
  }
}
