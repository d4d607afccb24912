import type { Dataset } from './types.js';

/** The images at `indices` (in that order) as a new Dataset. */
export function subsetDataset(ds: Dataset, indices: readonly number[], name = ds.name): Dataset {
  const per = ds.shape[0] * ds.shape[1] * ds.shape[2];
  const images = new Float32Array(indices.length * per);
  const labels = new Int32Array(indices.length);
  indices.forEach((i, k) => {
    images.set(ds.images.subarray(i * per, (i + 1) * per), k * per);
    labels[k] = ds.labels[i]!;
  });
  const out: Dataset = { name, images, labels, shape: [...ds.shape], classes: ds.classes };
  if (ds.classNames) out.classNames = ds.classNames.slice();
  return out;
}

/**
 * `ds` with `extra`'s images appended under label 0, for losses that ignore labels
 * (distillation). The images must have the same shape.
 */
export function withUnlabelledImages(ds: Dataset, extra: Dataset): Dataset {
  if (ds.shape.some((d, i) => d !== extra.shape[i])) throw new Error(`withUnlabelledImages: '${extra.name}' images are ${extra.shape.join('×')}, '${ds.name}' ${ds.shape.join('×')}`);
  const images = new Float32Array(ds.images.length + extra.images.length);
  images.set(ds.images);
  images.set(extra.images, ds.images.length);
  const labels = new Int32Array(ds.labels.length + extra.labels.length);
  labels.set(ds.labels);
  return { ...ds, name: `${ds.name}+${extra.name}`, images, labels };
}
