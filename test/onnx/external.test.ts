import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HardenError } from '../../src/errors.js';
import { cloneModel, decodeModel, encodeModel, initializerMap, loadModel, saveModel } from '../../src/onnx/model.js';
import { DataLocation, type TensorProto, toNumber } from '../../src/onnx/schema.js';
import { hostToFloat32, readTensor, setTensorData } from '../../src/onnx/tensor.js';
import { bitsEqual, fixture, runFixture, tempDir } from './onnx-helpers.js';

function extEntries(t: TensorProto): Record<string, string> {
  return Object.fromEntries(t.external_data.map((e) => [e.key ?? '', e.value ?? '']));
}

async function expectHarden(p: Promise<unknown>, ...parts: string[]): Promise<void> {
  const e = await p.then(() => undefined, (err: unknown) => err as Error);
  expect(e).toBeInstanceOf(HardenError);
  expect(e!.message).not.toMatch(/[\r\n]/);
  for (const s of parts) expect(e!.message).toContain(s);
}

describe('external data: write → read → onnxruntime', () => {
  const root = tempDir();
  const f = fixture('vggish_bn');
  const original = decodeModel(f.bytes, f.file);
  const dirA = path.join(root, 'a');
  mkdirSync(dirA);
  const fileA = path.join(dirA, 'model.onnx');
  let reference: Float32Array;

  it('writes large tensors to one aligned side file and keeps small ones inline', async () => {
    reference = await runFixture(f.file, f);
    await saveModel(original, fileA, { externalData: true });
    const side = path.join(dirA, 'model.onnx.data');
    expect(existsSync(side)).toBe(true);
    expect(statSync(fileA).size).toBeLessThan(f.bytes.length / 10);
    expect(readdirSync(dirA).sort()).toEqual(['model.onnx', 'model.onnx.data']); // no temp files left

    const saved = decodeModel(readFileSync(fileA), fileA);
    const sideBytes = readFileSync(side);
    let external = 0;
    original.graph!.initializer.forEach((orig, i) => {
      const t = saved.graph!.initializer[i]!;
      expect(t.name).toBe(orig.name);
      if (orig.raw_data!.length >= 1024) {
        external++;
        const e = extEntries(t);
        expect(t.data_location).toBe(DataLocation.EXTERNAL);
        expect(e.location).toBe('model.onnx.data');
        expect(Number(e.offset) % 4096).toBe(0);
        expect(Number(e.length)).toBe(orig.raw_data!.length);
        const stored = sideBytes.subarray(Number(e.offset), Number(e.offset) + Number(e.length));
        expect(Buffer.compare(stored, Buffer.from(orig.raw_data!))).toBe(0);
        expect(t.raw_data?.length ?? 0).toBe(0);
      } else {
        expect(t.data_location ?? 0).toBe(DataLocation.DEFAULT);
        expect(Buffer.compare(Buffer.from(t.raw_data!), Buffer.from(orig.raw_data!))).toBe(0);
      }
    });
    expect(external).toBeGreaterThan(3);

    // the caller's proto is untouched
    expect(Buffer.compare(Buffer.from(encodeModel(original)), f.bytes)).toBe(0);
  });

  it('reads back identical values and onnxruntime gives bit-identical outputs', async () => {
    const loaded = await loadModel(fileA);
    const a = initializerMap(original);
    const b = initializerMap(loaded.proto);
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [name, h] of a) expect(bitsEqual(hostToFloat32(b.get(name)!), hostToFloat32(h))).toBe(true);
    expect(bitsEqual(await runFixture(fileA, f), reference)).toBe(true);
  });

  it('inlining an external-data model again reproduces the original file byte for byte', async () => {
    const loaded = await loadModel(fileA);
    const out = path.join(root, 'inline.onnx');
    await saveModel(loaded.proto, out);
    expect(Buffer.compare(readFileSync(out), f.bytes)).toBe(0);
  });

  it('moves still-external payloads to a new folder and side file', async () => {
    const loaded = await loadModel(fileA);
    const dirB = path.join(root, 'b');
    mkdirSync(dirB);
    const fileB = path.join(dirB, 'moved.onnx');
    await saveModel(loaded.proto, fileB, { externalData: { location: 'weights.bin', threshold: 4096 }, inputPath: fileA });
    expect(existsSync(path.join(dirB, 'weights.bin'))).toBe(true);
    const moved = await loadModel(fileB);
    for (const t of moved.proto.graph!.initializer) {
      if (t.data_location === DataLocation.EXTERNAL) expect(extEntries(t).location).toBe('weights.bin');
    }
    expect(bitsEqual(await runFixture(fileB, f), reference)).toBe(true);
  });

  it('saves new values of external tensors (setTensorData) and never loses the others', async () => {
    const loaded = await loadModel(fileA);
    const proto = cloneModel(loaded.proto);
    const target = proto.graph!.initializer.find((t) => t.data_location === DataLocation.EXTERNAL)!;
    const n = target.dims.reduce((a: number, d) => a * toNumber(d), 1);
    const next = Float32Array.from({ length: n }, (_, i) => (i % 7) - 3);
    setTensorData(target, next);
    expect(() => encodeModel(proto)).toThrow(/saveModel/);

    const dirC = path.join(root, 'c');
    mkdirSync(dirC);
    const ext = path.join(dirC, 'ext.onnx');
    const inline = path.join(dirC, 'inline.onnx');
    await saveModel(proto, ext, { externalData: true, inputPath: fileA });
    await saveModel(proto, inline, { inputPath: fileA });
    for (const file of [ext, inline]) {
      const m = await loadModel(file);
      const inits = initializerMap(m.proto);
      expect(bitsEqual(hostToFloat32(inits.get(target.name!)!), next)).toBe(true);
      for (const t of original.graph!.initializer) {
        if (t.name === target.name) continue;
        expect(bitsEqual(hostToFloat32(inits.get(t.name!)!), hostToFloat32(readTensor(t)))).toBe(true);
      }
      const out = await runFixture(file, f);
      expect(bitsEqual(out, reference)).toBe(false);
    }
    expect(bitsEqual(await runFixture(ext, f), await runFixture(inline, f))).toBe(true);
    // the input model still works and still has its old values
    expect(bitsEqual(await runFixture(fileA, f), reference)).toBe(true);
  });

  it('can replace an external-data model in place when overwriting is allowed', async () => {
    const dirD = path.join(root, 'd');
    mkdirSync(dirD);
    const file = path.join(dirD, 'model.onnx');
    copyFileSync(fileA, file);
    copyFileSync(path.join(dirA, 'model.onnx.data'), path.join(dirD, 'model.onnx.data'));
    const loaded = await loadModel(file);
    await expectHarden(saveModel(loaded.proto, file, { externalData: true, inputPath: file }), 'input model', file);
    await saveModel(loaded.proto, file, { externalData: true, inputPath: file, overwrite: true });
    expect(bitsEqual(await runFixture(file, f), reference)).toBe(true);
    expect(readdirSync(dirD).sort()).toEqual(['model.onnx', 'model.onnx.data']);
  });

  it('refuses to overwrite the input, existing files, or the input’s side file', async () => {
    const dirE = path.join(root, 'e');
    mkdirSync(dirE);
    const existing = path.join(dirE, 'exists.onnx');
    writeFileSync(existing, 'keep me');
    await expectHarden(saveModel(original, existing), existing, 'refusing to overwrite');
    expect(readFileSync(existing, 'utf8')).toBe('keep me');
    await saveModel(original, existing, { overwrite: true });
    expect(Buffer.compare(readFileSync(existing), f.bytes)).toBe(0);

    const loaded = await loadModel(fileA);
    await expectHarden(saveModel(loaded.proto, fileA, { inputPath: fileA }), 'input model');
    // a new model file next to the input that would reuse the input's data file name
    await expectHarden(
      saveModel(loaded.proto, path.join(dirA, 'other.onnx'), { externalData: { location: 'model.onnx.data' }, inputPath: fileA, overwrite: true }),
      'model.onnx.data',
    );
    await expectHarden(saveModel(original, path.join(dirE, 'x.onnx'), { externalData: { location: '../x.data' } }), 'outside');
    await expectHarden(saveModel(original, path.join(root, 'missing', 'x.onnx')), 'cannot write', 'no such file');
    expect(existsSync(path.join(dirA, 'other.onnx'))).toBe(false);
  });

  it('tells which external file is missing when saving', async () => {
    const dirF = path.join(root, 'f');
    mkdirSync(dirF);
    copyFileSync(fileA, path.join(dirF, 'model.onnx')); // without its .data file
    const loaded = await loadModel(path.join(dirF, 'model.onnx'));
    await expectHarden(saveModel(loaded.proto, path.join(dirF, 'out.onnx')), 'model.onnx.data', 'not found');
    expect(existsSync(path.join(dirF, 'out.onnx'))).toBe(false);
  });
});
