/**
 * Disposal restricted to some source classes (`harden dispose --forget-classes`, e.g. the
 * lingering classes an audit found): the forget data keeps only images of those classes,
 * relabelled 0..k−1 in the order given, and the source head keeps only their logits (its
 * softmax runs over those k classes).
 */
import * as tf from '@tensorflow/tfjs-core';
import { HardenError } from '../errors.js';
import type { Dataset } from '../data/types.js';
import { subsetDataset } from '../data/subset.js';
import type { SourceHead } from './source-head.js';

export function restrictForget(ds: Dataset, classes: readonly number[]): Dataset {
  const bad = classes.find((c) => !Number.isInteger(c) || c < 0 || c >= ds.classes);
  if (bad !== undefined) throw new HardenError(`--forget-classes: class ${bad} is not a label of the forget data '${ds.name}' (0-${ds.classes - 1})`);
  const rows = [...ds.labels.keys()].filter((r) => classes.includes(ds.labels[r]!));
  if (!rows.length) throw new HardenError(`--forget-classes: the forget data '${ds.name}' has no images of classes ${classes.join(', ')}`);
  const sub = subsetDataset(ds, rows, `${ds.name} (classes ${classes.join(',')})`);
  const labels = Int32Array.from(sub.labels, (l) => classes.indexOf(l));
  const out: Dataset = { ...sub, labels, classes: classes.length };
  if (ds.classNames) out.classNames = classes.map((c) => ds.classNames![c]!);
  else delete out.classNames;
  return out;
}

/** The head over `classes` only (columns of its weight and bias, in that order). */
export function restrictHead(head: SourceHead, classes: readonly number[]): SourceHead {
  const bad = classes.find((c) => c >= head.classes);
  if (bad !== undefined) throw new HardenError(`--forget-classes: class ${bad} does not exist in the source head (${head.classes} classes)`);
  const idx = tf.tensor1d(Int32Array.from(classes), 'int32');
  const weight = tf.gather(head.weight, idx, 1) as tf.Tensor2D;
  const bias = tf.gather(head.bias, idx) as tf.Tensor1D;
  idx.dispose();
  head.dispose();
  return {
    weight,
    bias,
    featureSize: head.featureSize,
    classes: classes.length,
    origin: head.origin,
    logits: (features) => tf.add(tf.matMul(tf.reshape(features, [features.shape[0], head.featureSize]), weight), bias) as tf.Tensor2D,
    dispose: () => tf.dispose([weight, bias]),
  };
}

/**
 * The source classes a target task uses, by H_s's reading of its retain images: for each retain
 * class, the source class H_s predicts for more than half of that class's images (none where no
 * source class has such a majority). `predicted[i]` is H_s's class for retain image i.
 * Forgetting such a class would fight the target task itself (its images are that class's).
 */
export function classesUsedByTarget(predicted: ArrayLike<number>, retainLabels: ArrayLike<number>): number[] {
  const counts = new Map<number, Map<number, number>>();
  for (let i = 0; i < retainLabels.length; i++) {
    const byTarget = counts.get(retainLabels[i]!) ?? new Map<number, number>();
    byTarget.set(predicted[i]!, (byTarget.get(predicted[i]!) ?? 0) + 1);
    counts.set(retainLabels[i]!, byTarget);
  }
  const used = new Set<number>();
  for (const byTarget of counts.values()) {
    const total = [...byTarget.values()].reduce((a, b) => a + b, 0);
    for (const [source, n] of byTarget) if (2 * n > total) used.add(source);
  }
  return [...used].sort((a, b) => a - b);
}
