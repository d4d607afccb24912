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
