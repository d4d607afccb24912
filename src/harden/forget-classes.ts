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
 * The source classes a target task uses (forgetClasses 'auto'): a retain class uses source class
 * c when a probe calls more than half of its images c (`predicted[i]`: the probe's class for
 * retain image i) and `inClass(rows, c)` says those images lie where c's own images do
 * (featureCloud). Forgetting such a class would fight the target task itself. The second test
 * keeps a task from another domain — whose classes a probe still maps somewhere — from sparing
 * source classes it only resembles.
 */
export function classesUsedByTarget(
  predicted: ArrayLike<number>,
  retainLabels: ArrayLike<number>,
  inClass: (rows: number[], source: number) => boolean = () => true,
): number[] {
  const rowsByTarget = new Map<number, number[]>();
  for (let i = 0; i < retainLabels.length; i++) {
    const rows = rowsByTarget.get(retainLabels[i]!) ?? [];
    rows.push(i);
    rowsByTarget.set(retainLabels[i]!, rows);
  }
  const used = new Set<number>();
  for (const rows of rowsByTarget.values()) {
    const counts = new Map<number, number>();
    for (const r of rows) counts.set(predicted[r]!, (counts.get(predicted[r]!) ?? 0) + 1);
    for (const [source, n] of counts) if (2 * n > rows.length && inClass(rows, source)) used.add(source);
  }
  return [...used].sort((a, b) => a - b);
}

/** Median of the rows' Euclidean distances to `point` (features: row-major, `width` per row). */
function medianDistance(features: Float32Array, width: number, rows: number[], point: Float64Array): number {
  const d = rows.map((r) => {
    let s = 0;
    for (let j = 0; j < width; j++) s += (features[r * width + j]! - point[j]!) ** 2;
    return Math.sqrt(s);
  }).sort((a, b) => a - b);
  const m = d.length >> 1;
  return d.length % 2 ? d[m]! : (d[m - 1]! + d[m]!) / 2;
}

/**
 * classesUsedByTarget's `inClass`: retain images lie in source class c's feature cloud when
 * their median distance to the centroid of c's forget images is at most `slack` times the median
 * distance of c's own images to it. Measured on LeNet-5 features (README): 20 retain images of
 * a source class sit at 0.86–1.27× the class's own median (fashion-mnist classes 0–4, seeds
 * 0–4), digits against the fashion classes a probe maps them to at 1.41–3.75× (through a
 * fashion model transferred to digits, and through a digit model); the default 1.35 lies between.
 */
export function featureCloud(
  forget: { features: Float32Array; labels: ArrayLike<number> },
  retainFeatures: Float32Array,
  width: number,
  slack = 1.35,
): (rows: number[], source: number) => boolean {
  const own = (c: number) => [...Array(forget.labels.length).keys()].filter((i) => forget.labels[i] === c);
  return (rows, c) => {
    const members = own(c);
    if (!members.length) return false;
    const centroid = new Float64Array(width);
    for (const r of members) for (let j = 0; j < width; j++) centroid[j] += forget.features[r * width + j]! / members.length;
    return medianDistance(retainFeatures, width, rows, centroid) <= slack * medianDistance(forget.features, width, members, centroid);
  };
}

/** The Harden record's `figures.forgetClasses` (what 'auto' chose: a class list or 'all') as text. */
export function chosenClassesText(chosen: unknown): string {
  return Array.isArray(chosen) ? chosen.join(',') : String(chosen);
}
