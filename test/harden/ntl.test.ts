import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeModel } from '../../src/onnx/model.js';
import { initBackend } from '../../src/engine/backend.js';
import { readHardenRecord } from '../../src/export/export.js';
import { evaluate } from '../../src/verify/evaluate.js';
import { ntlModel, DEFAULT_NTL_SETTINGS, type NtlSettings } from '../../src/harden/ntl.js';
import { tinyNet, synthetic } from '../helpers/tiny.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe.each(['tfjs', 'ort'] as const)('ntlModel on a tiny conv net (%s engine)', (engine) => {
  const keep = synthetic(128, 1, 'quadrants');
  // The blocked domain: the same task on inverted images.
  const base = synthetic(128, 2, 'quadrants');
  const block = { ...base, name: 'inverted', images: base.images.map((v) => 1 - v) };
  const settings: NtlSettings = { ...DEFAULT_NTL_SETTINGS, learningRate: 1e-2, steps: 40, batchSize: 16, alpha: 1, beta: 1, engine };
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'harden-ntl-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('learns the keep task, raises the block loss and records itself', async () => {
    const { proto, history } = await ntlModel(tinyNet(4), 'tiny', { keep, block }, settings);
    expect(history).toHaveLength(40);
    expect(history.at(-1)!.keep).toBeLessThan(history[0]!.keep);
    expect(history.at(-1)!.block).toBeGreaterThan(history[0]!.block);
    const [k, b] = [await evaluate(proto, keep), await evaluate(proto, block)];
    expect(k.accuracy).toBeGreaterThan(b.accuracy);
    expect(readHardenRecord(proto)!.operation).toBe('ntl');
  });

  it('resumes from a checkpoint to the same bytes', async () => {
    const full = await ntlModel(tinyNet(4), 'tiny', { keep, block }, settings);
    const ckpt = path.join(dir, 'ckpt');
    await expect(ntlModel(tinyNet(4), 'tiny', { keep, block }, settings, { checkpointDir: ckpt, checkpointEvery: 10, progress: { onStep: (r) => { if (r.step === 25) throw new Error('interrupted'); } } })).rejects.toThrow('interrupted');
    const resumed = await ntlModel(tinyNet(4), 'tiny', { keep, block }, settings, { checkpointDir: ckpt, resume: true });
    expect(Buffer.from(encodeModel(resumed.proto)).equals(Buffer.from(encodeModel(full.proto)))).toBe(true);
  });

  it('rejects an MMD layer that does not exist and labels beyond the head', async () => {
    await expect(ntlModel(tinyNet(4), 'tiny', { keep, block }, { ...settings, layer: 'nope' })).rejects.toThrow(/^ntl: the MMD layer 'nope' is not a tensor of the model/);
    await expect(ntlModel(tinyNet(2), 'tiny', { keep, block }, settings)).rejects.toThrow(/keep data has label 3 but the model has 2 classes/);
  });
});

describe('ntlModel on both engines', () => {
  const keep = synthetic(64, 1, 'quadrants');
  const base = synthetic(64, 2, 'quadrants');
  const block = { ...base, name: 'inverted', images: base.images.map((v) => 1 - v) };
  // α = 0.5 keeps α·KL_t below its clip (KL_t ≈ 1.4), so both of L's gradient paths are live.
  it('the first steps agree (same terms, same loss) and the record names the engine', async () => {
    const s: NtlSettings = { ...DEFAULT_NTL_SETTINGS, learningRate: 1e-3, steps: 3, batchSize: 16, alpha: 0.5, beta: 1 };
    const [a, b] = [await ntlModel(tinyNet(4), 'tiny', { keep, block }, { ...s, engine: 'tfjs' }), await ntlModel(tinyNet(4), 'tiny', { keep, block }, { ...s, engine: 'ort' })];
    for (let i = 0; i < 3; i++) {
      for (const term of ['keep', 'block', 'mmd', 'loss'] as const) {
        expect(Math.abs(a.history[i]![term] - b.history[i]![term]), `step ${i + 1} ${term}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(a.history[i]![term])));
      }
    }
    expect([a, b].map((r) => readHardenRecord(r.proto)!.settings!.engine)).toEqual(['tfjs', 'ort']);
  });
});
