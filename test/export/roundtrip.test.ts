import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadModel, saveModel, decodeModel } from '../../src/onnx/model.js';
import { TfjsTrainable } from '../../src/engine/tfjs-engine.js';
import { initBackend } from '../../src/engine/backend.js';
import { exportModel, readHardenRecord } from '../../src/export/export.js';
import { createSession, runSession } from '../../src/verify/ort.js';
import { FIXTURES, loadFixture, maxAbsDiff } from '../helpers/fixtures.js';
import type { TensorProto } from '../../src/onnx/schema.js';

let dir: string;
beforeAll(async () => {
  await initBackend('wasm');
  dir = mkdtempSync(path.join(tmpdir(), 'harden-export-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function initializerBytes(file: string): Map<string, string> {
  const proto = decodeModel(readFileSync(file), file);
  return new Map(proto.graph!.initializer.map((t: TensorProto) => [t.name ?? '', Buffer.from(t.raw_data ?? []).toString('hex') + JSON.stringify(t.float_data)]));
}

async function ortOutput(file: string, fx: ReturnType<typeof loadFixture>) {
  const s = await createSession(file);
  return [...(await runSession(s, { [s.inputNames[0]]: fx.input })).values()][0].data as Float32Array;
}

describe('export round trip', () => {
  for (const name of FIXTURES) {
    it(`${name}: import → export with no change keeps initializer bytes and onnxruntime outputs bit-identical`, async () => {
      const fx = loadFixture(name);
      const model = await loadModel(fx.path);
      const engine = new TfjsTrainable(model, fx.path);
      const out = path.join(dir, `${name}.onnx`);
      await exportModel(model, engine.weights(), out);
      engine.dispose();
      expect(initializerBytes(out)).toEqual(initializerBytes(fx.path));
      const a = await ortOutput(fx.path, fx), b = await ortOutput(out, fx);
      expect(Buffer.from(b.buffer, b.byteOffset, b.byteLength).equals(Buffer.from(a.buffer, a.byteOffset, a.byteLength))).toBe(true);
    });
  }

  it('a model with external data round-trips', async () => {
    const fx = loadFixture('resnet8_bn');
    const ext = path.join(dir, 'ext.onnx');
    await saveModel((await loadModel(fx.path)).proto, ext, { externalData: { location: 'ext.onnx.data', threshold: 1024 } });
    expect(existsSync(path.join(dir, 'ext.onnx.data'))).toBe(true);
    const model = await loadModel(ext);
    const engine = new TfjsTrainable(model, ext);
    const out = path.join(dir, 'ext-out.onnx');
    await exportModel(model, engine.weights(), out, { externalData: true });
    engine.dispose();
    expect(existsSync(`${out}.data`)).toBe(true);
    const a = await ortOutput(fx.path, fx), b = await ortOutput(out, fx);
    expect(maxAbsDiff(a, b)).toBe(0);
  });

  it('changed weights are written, carry the Harden record, and onnxruntime agrees with tfjs', async () => {
    const fx = loadFixture('lenet5_mnist');
    const model = await loadModel(fx.path);
    const engine = new TfjsTrainable(model, fx.path);
    engine.setOptimizer({ kind: 'sgd', learningRate: 0.05 });
    await engine.trainStep(fx.input, Int32Array.from([1, 2, 3, 4]));
    const tfjsOut = (await engine.forward(fx.input)).get(engine.outputName)!.data as Float32Array;
    const out = path.join(dir, 'trained.onnx');
    await exportModel(model, engine.weights(), out, { record: { version: 'test', operation: 'train-step' } });
    engine.dispose();
    const ortOut = await ortOutput(out, fx);
    expect(maxAbsDiff(ortOut, fx.output.data as Float32Array)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(ortOut, tfjsOut)).toBeLessThan(1e-4);
    const saved = decodeModel(readFileSync(out), out);
    expect(readHardenRecord(saved)).toEqual({ version: 'test', operation: 'train-step' });
    expect(saved.graph!.node.map((n) => n.op_type)).toEqual(model.proto.graph!.node.map((n) => n.op_type));
  });

  it('never overwrites the input model', async () => {
    const fx = loadFixture('lenet5_mnist');
    const copy = path.join(dir, 'input.onnx');
    writeFileSync(copy, readFileSync(fx.path));
    const model = await loadModel(copy);
    const engine = new TfjsTrainable(model, copy);
    await expect(exportModel(model, engine.weights(), copy)).rejects.toThrow(/input\.onnx/);
    engine.dispose();
    expect(readFileSync(copy).equals(readFileSync(fx.path))).toBe(true);
  });
});
