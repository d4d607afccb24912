import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { readHardenRecord } from '../../src/export/export.js';
import { disposeModel } from '../../src/harden/dispose.js';
import { restrictForget, restrictHead } from '../../src/harden/forget-classes.js';
import { sourceHeadFromModel } from '../../src/harden/source-head.js';
import { tinyNet, synthetic } from '../helpers/tiny.js';

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
    await expect(disposeModel(model, 'tiny', { retain: synthetic(16, 1, 'halves'), forget }, { ...settings, forgetClasses: [9] })).rejects.toThrow(/class 9/);
  });
});
