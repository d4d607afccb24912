/** Seeded, class-stratified subsets of a Dataset (held-out validation splits for verification). */
import type { Dataset } from '../data/types.js';
import { subsetDataset } from '../data/subset.js';
import { Random } from '../util/random.js';

/**
 * Splits `ds` into disjoint train / val parts: from each class, round(count · valFraction) images,
 * chosen by a seeded shuffle, go to val (at least one when the class has two or more images and
 * valFraction > 0; never all when valFraction < 1). Both keep the source order.
 */
export function splitIndices(labels: Int32Array, classes: number, valFraction: number, seed: number): { train: number[]; val: number[] } {
  if (!(valFraction >= 0 && valFraction <= 1)) throw new Error(`splitDataset: valFraction must be in [0, 1], got ${valFraction}`);
  const byClass: number[][] = Array.from({ length: classes }, () => []);
  labels.forEach((l, i) => byClass[l]!.push(i));
  const rng = new Random(seed);
  const isVal = new Uint8Array(labels.length);
  for (const idx of byClass) {
    const order = idx.slice();
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let k = Math.round(order.length * valFraction);
    if (valFraction > 0 && order.length >= 2) k = Math.max(1, k);
    if (valFraction < 1 && order.length >= 2) k = Math.min(order.length - 1, k);
    for (const i of order.slice(0, k)) isVal[i] = 1;
  }
  const train: number[] = [], val: number[] = [];
  for (let i = 0; i < labels.length; i++) (isVal[i] ? val : train).push(i);
  return { train, val };
}

export function splitDataset(ds: Dataset, valFraction: number, seed: number): { train: Dataset; val: Dataset } {
  const { train, val } = splitIndices(ds.labels, ds.classes, valFraction, seed);
  return { train: subsetDataset(ds, train, `${ds.name}#train`), val: subsetDataset(ds, val, `${ds.name}#val`) };
}
