import { describe, it, expect } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../../src/onnx/model.js';
import { loadDataset } from '../../src/data/index.js';
import { evaluate } from '../../src/verify/evaluate.js';
import { readHardenRecord } from '../../src/export/export.js';

const MODELS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'models');

/** The shipped models (scripts/pretrain.sh) keep the accuracy the README states, under onnxruntime. */
describe('shipped pretrained models', () => {
  it.each([
    ['lenet5-fashion-mnist.onnx', 'fashion-mnist:split=test', 0.89],
    ['lenet5-mnist.onnx', 'mnist:split=test', 0.97],
  ])('%s on %s is at least %f accurate', async (file, spec, floor) => {
    const model = await loadModel(path.join(MODELS, file));
    const result = await evaluate(model.proto, await loadDataset(spec));
    expect(result.accuracy).toBeGreaterThanOrEqual(floor);
    const record = readHardenRecord(model.proto)!;
    expect(record.operation).toBe('train');
    expect((record.figures as { testAccuracy: number }).testAccuracy).toBeCloseTo(result.accuracy, 6);
  });
});
