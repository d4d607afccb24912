import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { readHardenRecord } from '../../src/export/export.js';
import { disposeModel } from '../../src/harden/dispose.js';
import { classesUsedByTarget, featureCloud, restrictForget, restrictHead } from '../../src/harden/forget-classes.js';
import { subsetDataset } from '../../src/data/subset.js';
import { sourceHeadFromModel } from '../../src/harden/source-head.js';
import { tinyNet, synthetic, trainTiny } from '../helpers/tiny.js';

const model = tinyNet(2);
const sourceModel = tinyNet(4, 16, 9);
const forget = synthetic(32, 2, 'quadrants');

describe('--forget-classes', () => {
  beforeAll(async () => {
    await initBackend('cpu');
  });

  it('keeps only the chosen classes of the forget data, relabelled in the order given', () => {
    const r = restrictForget(forget, [3, 1]);
    expect(r.classes).toBe(2);
    expect(r.labels.length).toBe(16);
    const original = [...forget.labels.keys()].filter((i) => forget.labels[i] === 3 || forget.labels[i] === 1);
    original.forEach((i, k) => {
      expect(r.labels[k]).toBe(forget.labels[i] === 3 ? 0 : 1);
      expect(r.images[k * 64 + 5]).toBe(forget.images[i * 64 + 5]);
    });
    expect(() => restrictForget(forget, [4])).toThrow(/--forget-classes: class 4 is not a label/);
  });

  it("restricts the source head to those classes' logits", () => {
    const graph = new ImportedGraph(model, 'tiny');
    const full = sourceHeadFromModel(graph, sourceModel);
    const features = tf.randomNormal([5, 16], 0, 1, 'float32', 1);
    const want = tf.tidy(() => tf.gather(full.logits(features), [3, 1], 1).arraySync()) as number[][];
    const head = restrictHead(sourceHeadFromModel(graph, sourceModel), [3, 1]);
    const got = tf.tidy(() => head.logits(features).arraySync()) as number[][];
    got.flat().forEach((v, i) => expect(v).toBeCloseTo(want.flat()[i]!, 5));
    expect(head.classes).toBe(2);
    tf.dispose(features);
    full.dispose();
    head.dispose();
    graph.dispose();
  });

  it('disposes with the restricted forget data and head, and records the classes', async () => {
    const settings = { method: 'gc' as const, lambda: 1, chunks: 2, temperature: 2, learningRate: 1e-2, steps: 3, batchSize: 8, forgetBatchSize: 8, seed: 1, sourceModel };
    const all = await disposeModel(model, 'tiny', { retain: synthetic(16, 1, 'halves'), forget }, settings);
    const some = await disposeModel(model, 'tiny', { retain: synthetic(16, 1, 'halves'), forget }, { ...settings, forgetClasses: [2, 3] });
    expect(readHardenRecord(some.proto)!.settings!.forgetClasses).toEqual([2, 3]);
    expect(some.history.map((h) => h.forget)).not.toEqual(all.history.map((h) => h.forget));
    await expect(disposeModel(model, 'tiny', { retain: synthetic(16, 1, 'halves'), forget }, { ...settings, forgetClasses: [9, 2] })).rejects.toThrow(/class 9/);
  });

  it('auto: a retain class uses the source class its images are mostly called, none without a majority', () => {
    // retain class 0: 2 of 3 called 0; class 1: 3 of 3 called 2; class 2: 1 of 2 called 3, 1 of 2 called 1 (no majority).
    expect(classesUsedByTarget([0, 0, 1, 2, 2, 2, 3, 1], [0, 0, 0, 1, 1, 1, 2, 2])).toEqual([0, 2]);
    expect(classesUsedByTarget([], [])).toEqual([]);
    // The feature-cloud test can veto a majority: class 2's images are not where its own lie.
    expect(classesUsedByTarget([0, 0, 1, 2, 2, 2, 3, 1], [0, 0, 0, 1, 1, 1, 2, 2], (_rows, c) => c !== 2)).toEqual([0]);
  });

  it("auto: the feature-cloud test compares the retain images' median distance to the class centroid with the class's own", () => {
    // 1-D features. Forget class 0 at 0, ±1, ±2: centroid 0, own distances 0, 1, 1, 2, 2 (median 1); class 1 at 10, 12 (centroid 11, median 1).
    const forgetSet = { features: Float32Array.from([0, 1, -1, 2, -2, 10, 12]), labels: [0, 0, 0, 0, 0, 1, 1] };
    // Retain rows 0-2 at 0.5, -1, 1.3 (distances to 0: 0.5, 1, 1.3, median 1); rows 3-5 at 1.3, 1.4, -1.4 (median 1.4).
    const inClass = featureCloud(forgetSet, Float32Array.from([0.5, -1, 1.3, 1.3, 1.4, -1.4]), 1);
    expect(inClass([0, 1, 2], 0)).toBe(true);
    expect(inClass([3, 4, 5], 0)).toBe(false); // 1.4 > 1.35 × 1
    expect(inClass([3, 4, 5], 1)).toBe(false); // ~9.7 from 11
    expect(featureCloud(forgetSet, Float32Array.from([1.4]), 1, 1.5)([0], 0)).toBe(true);
    expect(featureCloud(forgetSet, Float32Array.from([0]), 1)([0], 2)).toBe(false); // no images of class 2
  });

  it('auto: disposes of the source classes the retain data is not, and of all of them where it cannot tell', async () => {
    const settings = { method: 'gc' as const, lambda: 1, chunks: 2, temperature: 2, learningRate: 1e-2, steps: 3, batchSize: 8, forgetBatchSize: 8, seed: 1, sourceModel };
    const trained = await trainTiny(tinyNet(4, 16, 3), forget, 12);
    const shared = restrictForget(forget, [0, 1]); // a target task that is source classes 0 and 1
    const chosen = (r: { proto: Parameters<typeof readHardenRecord>[0] }) => readHardenRecord(r.proto)!.figures!.forgetClasses;
    const auto = await disposeModel(trained, 'tiny', { retain: shared, forget }, { ...settings, forgetClasses: 'auto' });
    expect(chosen(auto)).toEqual([2, 3]);
    const explicit = await disposeModel(trained, 'tiny', { retain: shared, forget }, { ...settings, forgetClasses: [2, 3] });
    expect(auto.history).toEqual(explicit.history);
    // Without a source model the probe is refitted on the chosen classes, as for the list.
    const { sourceModel: _none, ...probeSettings } = settings;
    const autoProbe = await disposeModel(trained, 'tiny', { retain: shared, forget }, { ...probeSettings, forgetClasses: 'auto' });
    expect(chosen(autoProbe)).toEqual([2, 3]);
    expect(autoProbe.history).toEqual((await disposeModel(trained, 'tiny', { retain: shared, forget }, { ...probeSettings, forgetClasses: [2, 3] })).history);
    // Every source class used by the target task: the forget term keeps them all.
    const everything = await disposeModel(trained, 'tiny', { retain: forget, forget }, { ...settings, forgetClasses: 'auto' });
    expect(chosen(everything)).toBe('all');
    const all = await disposeModel(trained, 'tiny', { retain: forget, forget }, settings);
    expect(everything.history).toEqual(all.history);
    expect((await disposeModel(trained, 'tiny', { retain: forget, forget }, { ...settings, forgetClasses: 'all' })).history).toEqual(all.history);
    // Three of four classes used leaves one, and a forget term over one class is zero: all of them.
    expect(chosen(await disposeModel(trained, 'tiny', { retain: restrictForget(forget, [0, 1, 2]), forget }, { ...settings, forgetClasses: 'auto' }))).toBe('all');
    // Forget data without class 3 of the source head: not the whole source task, so all of it.
    const noThree = subsetDataset(forget, [...forget.labels.keys()].filter((i) => forget.labels[i] !== 3));
    expect(chosen(await disposeModel(trained, 'tiny', { retain: shared, forget: noThree }, { ...settings, forgetClasses: 'auto' }))).toBe('all');
    // Classes 2 and 3 hold 16 images: a fixed batch of 24 needs the whole forget set.
    const fixed = { ...settings, chunking: 'fixed' as const, forgetBatchSize: 24, forgetClasses: 'auto' as const };
    expect(chosen(await disposeModel(trained, 'tiny', { retain: shared, forget }, fixed))).toBe('all');
  });

  it('a class list needs two distinct classes', async () => {
    const settings = { method: 'gc' as const, lambda: 1, chunks: 2, temperature: 2, learningRate: 1e-2, steps: 1, batchSize: 8, forgetBatchSize: 8, seed: 1, sourceModel };
    const retain = synthetic(16, 1, 'halves');
    await expect(disposeModel(model, 'tiny', { retain, forget }, { ...settings, forgetClasses: [2] })).rejects.toThrow(/at least 2 distinct classes .* got \[2\]/);
    await expect(disposeModel(model, 'tiny', { retain, forget }, { ...settings, forgetClasses: [2, 2] })).rejects.toThrow(/at least 2 distinct classes/);
    await expect(disposeModel(model, 'tiny', { retain, forget }, { ...settings, forgetClasses: [2, 3, 2] })).rejects.toThrow(/class listed twice/);
  });
});
