import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { readHardenRecord } from '../../src/export/export.js';
import { disposeModel } from '../../src/harden/dispose.js';
import { classesUsedByTarget, restrictForget, restrictHead } from '../../src/harden/forget-classes.js';
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
    await expect(disposeModel(model, 'tiny', { retain: synthetic(16, 1, 'halves'), forget }, { ...settings, forgetClasses: [2] })).rejects.toThrow(/at least 2 .* got \[2\]/);
  });

  it('auto: a retain class uses the source class its images are mostly called, none without a majority', () => {
    // retain class 0: 2 of 3 called 0; class 1: 3 of 3 called 2; class 2: 1 of 2 called 3, 1 of 2 called 1 (no majority).
    expect(classesUsedByTarget([0, 0, 1, 2, 2, 2, 3, 1], [0, 0, 0, 1, 1, 1, 2, 2])).toEqual([0, 2]);
    expect(classesUsedByTarget([], [])).toEqual([]);
  });

  it('auto: disposes of the source classes the retain data is not, and of all of them when it is every one', async () => {
    const settings = { method: 'gc' as const, lambda: 1, chunks: 2, temperature: 2, learningRate: 1e-2, steps: 3, batchSize: 8, forgetBatchSize: 8, seed: 1, sourceModel };
    const trained = await trainTiny(tinyNet(4, 16, 3), forget, 12);
    const shared = restrictForget(forget, [0, 1]); // a target task that is source classes 0 and 1
    const auto = await disposeModel(trained, 'tiny', { retain: shared, forget }, { ...settings, forgetClasses: 'auto' });
    expect(readHardenRecord(auto.proto)!.figures!.forgetClasses).toEqual([2, 3]);
    const explicit = await disposeModel(trained, 'tiny', { retain: shared, forget }, { ...settings, forgetClasses: [2, 3] });
    expect(auto.history).toEqual(explicit.history);
    // Every source class used by the target task: the forget term keeps them all.
    const everything = await disposeModel(trained, 'tiny', { retain: forget, forget }, { ...settings, forgetClasses: 'auto' });
    expect(readHardenRecord(everything.proto)!.figures!.forgetClasses).toBe('all');
    const all = await disposeModel(trained, 'tiny', { retain: forget, forget }, settings);
    expect(everything.history).toEqual(all.history);
    // Three of four classes used leaves one, and a forget term over one class is zero: all of them.
    const three = await disposeModel(trained, 'tiny', { retain: restrictForget(forget, [0, 1, 2]), forget }, { ...settings, forgetClasses: 'auto' });
    expect(readHardenRecord(three.proto)!.figures!.forgetClasses).toBe('all');
  });
});
