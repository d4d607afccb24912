import { describe, it, expect, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { loadModel } from '../../src/onnx/model.js';
import { TfjsTrainable } from '../../src/engine/tfjs-engine.js';
import { initBackend, type BackendName } from '../../src/engine/backend.js';
import { createSession, runSession } from '../../src/verify/ort.js';
import { FIXTURES, loadFixture, maxAbsDiff } from '../helpers/fixtures.js';

describe.each(['wasm', 'cpu'] as BackendName[])('fixture models on %s', (backend) => {
  for (const name of FIXTURES) {
    it(`${name}: tfjs and onnxruntime reproduce the stored PyTorch output within 1e-4`, async () => {
      await initBackend(backend);
      const fx = loadFixture(name);
      const model = await loadModel(fx.path);
      const engine = new TfjsTrainable(model, fx.path);
      try {
        const before = tf.memory().numTensors;
        const got = (await engine.forward(fx.input)).get(engine.outputName)!;
        expect(got.shape).toEqual(fx.output.shape);
        expect(maxAbsDiff(got.data as Float32Array, fx.output.data as Float32Array)).toBeLessThan(1e-4);
        expect(tf.memory().numTensors).toBe(before);

        const ort = (await runSession(await createSession(fx.path), { [engine.inputName]: fx.input })).get(engine.outputName)!;
        expect(maxAbsDiff(ort.data as Float32Array, fx.output.data as Float32Array)).toBeLessThan(1e-4);
      } finally {
        engine.dispose();
      }
    });
  }
});

afterAll(async () => {
  await initBackend('wasm');
});
