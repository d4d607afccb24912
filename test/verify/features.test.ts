import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend.js';
import { HardenError } from '../../src/errors.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel } from '../../src/onnx/model.js';
import { extractFeatures, featureModel } from '../../src/verify/features.js';
import { tinyNet, synthetic } from '../helpers/tiny.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const net = tinyNet(2);
const data = synthetic(10, 4, 'halves');

/** tfjs evaluation of the same graph: the tensor `name` and the logits, flattened. */
function reference(name: string): { features: Float32Array; logits: Float32Array } {
  const g = new ImportedGraph(net, 'tiny');
  try {
    return tf.tidy(() => {
      const out = g.run({ input: tf.tensor(data.images, [data.labels.length, ...data.shape]) }, { outputs: [name] }).outputs;
      return { features: out.get(name)!.dataSync() as Float32Array, logits: out.get('logits')!.dataSync() as Float32Array };
    });
  } finally {
    g.dispose();
  }
}

function expectClose(a: Float32Array, b: Float32Array): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i]!, 4);
}

describe('featureModel', () => {
  it('adds the classifier input as an extra output of a copy', () => {
    const { model, featureTensor } = featureModel(net.proto);
    expect(featureTensor).toBe('h');
    expect(model.graph!.output.map((o) => o.name)).toEqual(['logits', 'h']);
    expect(net.proto.graph!.output.map((o) => o.name)).toEqual(['logits']);
  });

  it('refuses a tensor that is not in the graph, naming --feature-tensor', () => {
    expect(() => featureModel(net.proto, 'nope')).toThrow(HardenError);
    expect(() => featureModel(net.proto, 'nope')).toThrow(/--feature-tensor 'nope'/);
  });

  it('needs --feature-tensor when there is no classifier head', () => {
    const g = new GraphBuilder({ opset: 13 });
    g.input('input', ['batch', 4]);
    g.node('Relu', ['input'], ['r']);
    g.node('Softmax', ['r'], ['y'], { axis: 1 });
    g.output('y', ['batch', 4]);
    const proto = decodeModel(g.toBytes(), 'nohead.onnx');
    expect(() => featureModel(proto)).toThrow(/--feature-tensor/);
    expect(featureModel(proto, 'r').featureTensor).toBe('r');
  });
});

describe('extractFeatures', () => {
  it('matches the tfjs evaluation of the feature tensor and logits (batches of 3)', async () => {
    const got = await extractFeatures(net.proto, data, { batchSize: 3, threads: 1 });
    const ref = reference('h');
    expect(got.dim).toBe(16);
    expect(got.featureTensor).toBe('h');
    expect(got.labels).toEqual(data.labels);
    expect(got.classes).toBe(2);
    expectClose(got.features, ref.features);
    expect(got.logitDim).toBe(2);
    expectClose(got.logits!, ref.logits);
  });

  it('flattens a conv feature map given with featureTensor', async () => {
    const got = await extractFeatures(net.proto, data, { featureTensor: 'p', threads: 1 });
    expect(got.dim).toBe(4 * 4 * 4);
    expectClose(got.features, reference('p').features);
  });
});
