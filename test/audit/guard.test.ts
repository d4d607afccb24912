import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cloneModel, encodeModel, initializerMap, loadModel } from '../../src/onnx/model.js';
import { hostToFloat32 } from '../../src/onnx/tensor.js';
import { createSession, runSession } from '../../src/verify/ort.js';
import { extractFeatures } from '../../src/verify/features.js';
import { compareRuntimes, writeGuard } from '../../src/audit/guard.js';
import { INTERFERENCE, INTERFERENCE_FLAG, stitchSourceHead } from '../../src/audit/stitch.js';
import { softmaxRows } from '../../src/audit/memories.js';
import { tinyNet, synthetic } from '../helpers/tiny.js';

// M^t: the tiny net with 2 classes; M^s: another tiny net with 4 classes and the same 16 features.
const finetuned = { model: tinyNet(2, 16, 3), name: 'finetuned.onnx' };
const source = { model: tinyNet(4, 16, 9), name: 'source.onnx' };
const data = synthetic(12, 4, 'quadrants');
const L = [1, 3];

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'harden-guard-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('harden guard', () => {
  it("outputs M^t's logits and the max over L of M^{st}'s probabilities, computed separately", async () => {
    // References: M^t alone under onnxruntime, and M^s's head applied by hand to M^t's features.
    const t = await createSession(encodeModel(finetuned.model.proto));
    const x = { dtype: 'float32' as const, shape: [12, 1, 8, 8], data: data.images };
    const logits = (await runSession(t, { input: x })).get('logits')!.data as Float32Array;
    await t.release();
    const f = await extractFeatures(finetuned.model.proto, data);
    expect(f.featureTensor).toBe('h');
    const inits = initializerMap(source.model.proto);
    const fw = hostToFloat32(inits.get('fw')!), fb = hostToFloat32(inits.get('fb')!);
    const z = new Float32Array(12 * 4);
    for (let n = 0; n < 12; n++) for (let c = 0; c < 4; c++) {
      let s = fb[c]!;
      for (let k = 0; k < 16; k++) s += f.features[n * 16 + k]! * fw[c * 16 + k]!;
      z[n * 4 + c] = s;
    }
    const p = softmaxRows(z, 4);
    const interference = Array.from({ length: 12 }, (_, n) => Math.max(p[n * 4 + 1]!, p[n * 4 + 3]!));
    const pLo = [...interference].sort((a, b) => a - b)[6]!; // about half the images are flagged

    const { proto } = stitchSourceHead(finetuned.model, finetuned.name, source.model, source.name, { lingering: L, pLo });
    expect(proto.graph!.output.map((o) => o.name)).toEqual(['logits', INTERFERENCE, INTERFERENCE_FLAG]);
    const g = await createSession(encodeModel(proto));
    const out = await runSession(g, { input: x });
    await g.release();
    expect([...(out.get('logits')!.data as Float32Array)]).toEqual([...logits]);
    const got = out.get(INTERFERENCE)!.data as Float32Array;
    interference.forEach((v, n) => expect(got[n]).toBeCloseTo(v, 5));
    const flags = [...(out.get(INTERFERENCE_FLAG)!.data as Float32Array)];
    expect(flags).toEqual(interference.map((v) => Number(v > pLo)));
    expect(flags.filter(Boolean).length).toBeGreaterThan(0);
    expect(flags.filter(Boolean).length).toBeLessThan(12);

    // The same graph in onnxruntime-web.
    const agree = await compareRuntimes(encodeModel(proto), x);
    expect(agree.outputs).toEqual(['logits', INTERFERENCE, INTERFERENCE_FLAG]);
    expect(agree.maxAbsDiff).toBeLessThan(1e-5);
    expect(agree.flagMismatches).toBe(0);
    expect(agree.flagged).toBe(flags.filter(Boolean).length);
  });

  it('writes the guard file (opset 18 axes as an input) and never over its input', async () => {
    const out = path.join(dir, 'guard.onnx');
    const proto18 = cloneModel(finetuned.model.proto);
    proto18.opset_import[0]!.version = 18;
    const r = await writeGuard(source, { model: { proto: proto18 }, name: 'ft18.onnx' }, { lingering: [2], pLo: 0.5, output: out });
    expect(r.runtimes.maxAbsDiff).toBeLessThan(1e-5);
    expect(r.runtimes.images).toBe(8);
    const saved = await loadModel(out);
    expect(saved.proto.graph!.output.map((o) => o.name)).toEqual(['logits', INTERFERENCE, INTERFERENCE_FLAG]);
    expect(saved.proto.graph!.node.find((n) => n.op_type === 'ReduceMax')!.input).toHaveLength(2);
    await expect(writeGuard(source, finetuned, { lingering: [2], pLo: 0.5, output: out })).rejects.toThrow(/refusing to overwrite/);
    await expect(writeGuard(source, finetuned, { lingering: [7], pLo: 0.5, output: path.join(dir, 'x.onnx') })).rejects.toThrow(/lingering class 7 does not exist: source\.onnx has 4 classes/);
    await expect(writeGuard({ model: tinyNet(4, 8, 9), name: 'narrow.onnx' }, finetuned, { lingering: [2], pLo: 0.5, output: path.join(dir, 'y.onnx') }))
      .rejects.toThrow(/narrow\.onnx: feature tensors differ: its classifier takes 8 features, finetuned\.onnx's feature tensor 'h' has 16/);
    expect(existsSync(path.join(dir, 'y.onnx'))).toBe(false);
  });
});
