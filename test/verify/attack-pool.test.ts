import os from 'node:os';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { initBackend } from '../../src/engine/backend.js';
import { selectEngine, selectedEngine, type EngineName } from '../../src/engine/create.js';
import { encodeModel } from '../../src/onnx/model.js';
import { HardenError } from '../../src/errors.js';
import { AttackPool, parseWorkers, withAttackJobs } from '../../src/verify/attack-pool.js';
import { inThisThread, type AttackJob } from '../../src/verify/jobs.js';
import { transferAdvantage } from '../../src/verify/piggyback.js';
import { learningCurve } from '../../src/verify/slc.js';
import { synthetic, tinyNet } from '../helpers/tiny.js';

const data = { train: synthetic(48, 1, 'quadrants'), val: synthetic(40, 2, 'quadrants'), test: synthetic(80, 3, 'quadrants') };
const PL = { epochs: 3, batchSize: 8, learningRates: [3e-3, 1e-2], seed: 5 };

describe('attack jobs on worker threads', () => {
  let engine: EngineName;
  beforeAll(async () => {
    await initBackend('wasm');
    engine = selectedEngine();
  });
  afterAll(() => {
    selectEngine(engine);
  });

  for (const name of ['ort', 'tfjs'] as const) {
    it(`the PL attack gives the same figures on 2 workers as in this thread (${name} engine)`, async () => {
      selectEngine(name);
      const here = await transferAdvantage(tinyNet(4), 0, data, PL, inThisThread());
      const pooled = await withAttackJobs(2, (run) => transferAdvantage(tinyNet(4), 0, data, PL, run));
      expect(pooled).toEqual(here);
      expect(here.pl.perLearningRate).toHaveLength(2);
    });
  }

  it('an SLC curve from the pool equals the one computed here, diverging rates skipped alike', async () => {
    selectEngine('ort');
    const o = { fractions: [0.25, 1], steps: 6, batchSize: 8, learningRates: [1e38, 1e-2], seed: 2 };
    const here = await learningCurve(tinyNet(4), data, o);
    const pooled = await withAttackJobs(2, (run) => learningCurve(tinyNet(4), data, o, undefined, 'model', { run }));
    expect(pooled).toEqual(here);
    // 1e38 diverges (non-finite loss) and is skipped although it comes first in the grid.
    expect(here.points.map((p) => p.learningRate)).toEqual([1e-2, 1e-2]);
  });

  it("a user error inside a worker comes back as the same HardenError; the pool keeps working", async () => {
    selectEngine('ort');
    const pool = new AttackPool(1);
    try {
      const job = (classes: number): AttackJob => ({
        kind: 'fine-tune', model: encodeModel(tinyNet(classes).proto), source: 'tiny.onnx', train: { dataset: data.train }, val: data.val,
        options: { steps: 2, batchSize: 8, learningRate: 1e-2, seed: 0 },
      });
      const wrongImages = { ...job(4), train: { dataset: { ...data.train, images: new Float32Array(data.train.labels.length * 3 * 64), shape: [3, 8, 8] as [number, number, number] } } };
      const error = await pool.run(wrongImages).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HardenError);
      const expected = await inThisThread()(wrongImages).catch((e: unknown) => e);
      expect((error as Error).message).toBe((expected as Error).message);
      const ok = await pool.run(job(4));
      expect(ok.valAccuracy).toBeGreaterThanOrEqual(0);
      expect(ok.model.byteLength).toBeGreaterThan(100);
    } finally {
      await pool.close();
    }
  });

  it('parses --workers', () => {
    expect(parseWorkers('auto')).toBe(os.cpus().length);
    expect(parseWorkers('3')).toBe(3);
    for (const bad of ['0', '-1', '1.5', 'many']) expect(() => parseWorkers(bad)).toThrow(/--workers must be a positive integer or auto/);
  });
});
