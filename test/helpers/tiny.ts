import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, type OnnxModel } from '../../src/onnx/model.js';
import type { Dataset } from '../../src/data/types.js';
import { Random } from '../../src/util/random.js';
import { trainModel } from '../../src/train/trainer.js';

/**
 * A tiny conv net (Conv → ReLU → MaxPool → Gemm 16 → ReLU = backbone, Gemm = head)
 * with synthetic 8×8 data: target task "bright top or bottom half" (2 classes), source task
 * "which quadrant is bright" (4 classes).
 */
export function tinyNet(classes: number, features = 16, seed = 3): OnnxModel {
  const rng = new Random(seed);
  const g = new GraphBuilder({ opset: 13 });
  g.input('input', ['batch', 1, 8, 8]);
  g.initializer('cw', { data: rng.normalArray(4 * 9, 0.4), shape: [4, 1, 3, 3] });
  g.initializer('cb', { data: new Float32Array(4), shape: [4] });
  g.initializer('hw', { data: rng.normalArray(features * 64, 0.2), shape: [features, 64] });
  g.initializer('hb', { data: new Float32Array(features).fill(0.05), shape: [features] });
  g.initializer('fw', { data: rng.normalArray(classes * features, 0.3), shape: [classes, features] });
  g.initializer('fb', { data: new Float32Array(classes), shape: [classes] });
  g.node('Conv', ['input', 'cw', 'cb'], ['c'], { pads: [1, 1, 1, 1] });
  g.node('Relu', ['c'], ['r']);
  g.node('MaxPool', ['r'], ['p'], { kernel_shape: [2, 2], strides: [2, 2] });
  g.node('Flatten', ['p'], ['f']);
  g.node('Gemm', ['f', 'hw', 'hb'], ['h0'], { transB: 1 });
  g.node('Relu', ['h0'], ['h']);
  g.node('Gemm', ['h', 'fw', 'fb'], ['logits'], { transB: 1 });
  g.output('logits', ['batch', classes]);
  return { proto: decodeModel(g.toBytes(), 'tiny.onnx') };
}

export function synthetic(n: number, seed: number, kind: 'halves' | 'quadrants'): Dataset {
  const rng = new Random(seed);
  const images = new Float32Array(n * 64);
  const labels = new Int32Array(n);
  const classes = kind === 'halves' ? 2 : 4;
  for (let i = 0; i < n; i++) {
    const l = (labels[i] = i % classes);
    for (let p = 0; p < 64; p++) {
      const r = Math.floor(p / 8), c = p % 8;
      const on = kind === 'halves' ? (r < 4) === (l === 0) : (r < 4 ? 0 : 2) + (c < 4 ? 0 : 1) === l;
      images[i * 64 + p] = (on ? 1 : 0) + 0.3 * rng.normal();
    }
  }
  return { name: kind, images, labels, shape: [1, 8, 8], classes };
}

/** Train a tiny net briefly (Adam 0.01, batches of 16): a model that solves its synthetic task. */
export async function trainTiny(model: OnnxModel, data: Dataset, epochs = 8, seed = 1): Promise<OnnxModel> {
  const trained = await trainModel(model, 'tiny.onnx', data, undefined, {
    epochs, batchSize: 16, optimizer: { kind: 'adam', learningRate: 0.01 }, schedule: 'constant', stepEvery: 1, gamma: 1, train: 'all', augment: false, seed,
  });
  return { proto: trained.proto };
}

/**
 * A smooth conv net (Conv 2→4 → Tanh → GlobalAveragePool → Gemm, input [N, 2, 8, 8]):
 * central differences of its gradients approximate exact Hessian-vector products, which
 * through ReLU/MaxPool kinks they do not.
 */
export function smoothConvNet(classes: number, seed: number): OnnxModel {
  const g = new GraphBuilder({ opset: 17 });
  g.input('input', ['N', 2, 8, 8]);
  const rng = new Random(seed);
  g.initializer('c.weight', { data: rng.normalArray(4 * 2 * 9, 0.4), shape: [4, 2, 3, 3] });
  g.initializer('c.bias', { data: rng.normalArray(4, 0.1), shape: [4] });
  g.initializer('fc.weight', { data: rng.normalArray(classes * 4, 0.5), shape: [classes, 4] });
  g.initializer('fc.bias', { data: rng.normalArray(classes, 0.1), shape: [classes] });
  g.node('Conv', ['input', 'c.weight', 'c.bias'], ['h'], { pads: [1, 1, 1, 1] });
  g.node('Tanh', ['h'], ['t']);
  g.node('GlobalAveragePool', ['t'], ['p']);
  g.node('Flatten', ['p'], ['f']);
  g.node('Gemm', ['f', 'fc.weight', 'fc.bias'], ['logits'], { transB: 1 });
  g.output('logits');
  return { proto: g.build() };
}

/** ‖a − b‖ / ‖b‖. */
export function relError(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}
