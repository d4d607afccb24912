/**
 * Loss-threshold membership inference: does the model still treat its (forget/training) members
 * differently from data it never saw?
 *
 * Protocol: each example's loss is the cross-entropy of the model's first output (taken as
 * logits, like evaluate()) at its label. The attacker predicts "member" when loss ≤ t. Sweeping t
 * over every observed loss (plus −∞, which predicts nobody) gives TPR(t) (members flagged) and
 * FPR(t) (non-members flagged); the advantage is max_t TPR − FPR (0 for indistinguishable sets,
 * 1 for perfectly separated ones), reported with the lowest threshold that attains it. The AUC is
 * the area under that ROC curve (trapezoids, so tied losses count half): the probability that a
 * random member has a lower loss than a random non-member. AUC < 0.5 means members have the
 * higher losses, which this one-sided attack scores as advantage 0.
 */
import type * as ort from 'onnxruntime-node';
import type { Dataset } from '../data/types.js';
import { batches } from '../data/loader.js';
import { encodeModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/schema.js';
import { createSession, runSession, type OrtOptions } from './ort.js';

export interface MiaResult {
  /** max over thresholds of TPR − FPR. */
  advantage: number;
  /** The lowest loss threshold attaining the advantage (−Infinity when it is 0 at every threshold). */
  threshold: number;
  tpr: number;
  fpr: number;
  /** Area under the ROC curve of the loss-threshold attack. */
  auc: number;
  members: number;
  nonMembers: number;
}

/** The loss-threshold attack on given per-example losses. */
export function lossThresholdAttack(memberLosses: ArrayLike<number>, nonMemberLosses: ArrayLike<number>): MiaResult {
  const nm = memberLosses.length, nn = nonMemberLosses.length;
  if (nm === 0 || nn === 0) throw new Error(`lossThresholdAttack: needs members and non-members (got ${nm} and ${nn})`);
  const all: { loss: number; member: boolean }[] = [];
  for (let i = 0; i < nm; i++) all.push({ loss: memberLosses[i]!, member: true });
  for (let i = 0; i < nn; i++) all.push({ loss: nonMemberLosses[i]!, member: false });
  if (all.some((e) => Number.isNaN(e.loss))) throw new Error('lossThresholdAttack: a loss is NaN');
  all.sort((a, b) => a.loss - b.loss);

  let tp = 0, fp = 0, auc = 0;
  let best = { advantage: 0, threshold: -Infinity, tpr: 0, fpr: 0 };
  for (let i = 0; i < all.length; ) {
    const t = all[i]!.loss;
    const [tpr0, fpr0] = [tp / nm, fp / nn];
    for (; i < all.length && all[i]!.loss === t; i++) {
      if (all[i]!.member) tp++;
      else fp++;
    }
    const tpr = tp / nm, fpr = fp / nn;
    auc += ((fpr - fpr0) * (tpr + tpr0)) / 2;
    if (tpr - fpr > best.advantage) best = { advantage: tpr - fpr, threshold: t, tpr, fpr };
  }
  return { ...best, auc, members: nm, nonMembers: nn };
}

/** Per-example cross-entropy of row-major N×classes logits at their labels (log-sum-exp, stable). */
export function crossEntropyLosses(logits: Float32Array, labels: Int32Array, classes: number): Float64Array {
  const out = new Float64Array(labels.length);
  for (let i = 0; i < labels.length; i++) {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, row[c]!);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(row[c]! - max);
    out[i] = Math.log(sum) + max - row[labels[i]!]!;
  }
  return out;
}

/** Per-example cross-entropy losses of a model under onnxruntime, in dataset order. */
export async function exampleLosses(model: ModelProto | ort.InferenceSession, data: Dataset, batchSize = 256, opts: OrtOptions = {}): Promise<Float64Array> {
  const session = 'inputNames' in model ? model : await createSession(encodeModel(model), opts);
  try {
    const input = session.inputNames[0]!, output = session.outputNames[0]!;
    const out = new Float64Array(data.labels.length);
    let done = 0;
    for (const { x, y } of batches(data, { batchSize, seed: 0, shuffle: false })) {
      const z = (await runSession(session, { [input]: x })).get(output)!;
      out.set(crossEntropyLosses(z.data as Float32Array, y, z.shape[1]!), done);
      done += y.length;
    }
    return out;
  } finally {
    if (!('inputNames' in model)) await session.release();
  }
}

/** Loss-threshold membership inference of `model` with `members` (e.g. forget data) against held-out `nonMembers`. */
export async function membershipInference(model: ModelProto, members: Dataset, nonMembers: Dataset, batchSize = 256, opts: OrtOptions = {}): Promise<MiaResult> {
  const session = await createSession(encodeModel(model), opts);
  try {
    return lossThresholdAttack(await exampleLosses(session, members, batchSize), await exampleLosses(session, nonMembers, batchSize));
  } finally {
    await session.release();
  }
}
