/**
 * Reference architectures, emitted as ONNX models (opset 17, IR 8) with input `input`
 * [batch, C, H, W] and output `logits` [batch, classes], initialized as PyTorch does by default
 * (Kaiming-uniform a = √5 weights, uniform ±1/√fan_in biases, BN scale 1 / bias 0 / mean 0 /
 * var 1, ε 1e-5, momentum 0.9). The same seed always gives the same bytes. Each ends in a Gemm
 * (transB = 1) whose input is the feature tensor.
 */
import type { ModelProto } from '../onnx/schema.js';
import type { ArchOptions } from './layers.js';
import { buildLenet5 } from './lenet5.js';
import { buildMobilenetSmall } from './mobilenet-small.js';
import { buildResnet20, buildResnet8 } from './resnet.js';
import { buildVggSmall } from './vgg-small.js';

export type ArchName = 'lenet5' | 'vgg-small' | 'resnet8' | 'resnet20' | 'mobilenet-small';
export type { ArchOptions } from './layers.js';

const BUILDERS: Record<ArchName, (opts: ArchOptions) => ModelProto> = {
  lenet5: buildLenet5,
  'vgg-small': buildVggSmall,
  resnet8: buildResnet8,
  resnet20: buildResnet20,
  'mobilenet-small': buildMobilenetSmall,
};

export const ARCHITECTURES = Object.keys(BUILDERS) as ArchName[];

export function isArchName(name: string): name is ArchName {
  return Object.prototype.hasOwnProperty.call(BUILDERS, name);
}

export function buildArchitecture(arch: ArchName, opts: { classes: number; inputShape: [number, number, number]; seed: number }): ModelProto {
  const build = BUILDERS[arch as string as ArchName] as ((o: ArchOptions) => ModelProto) | undefined;
  if (!build || !isArchName(arch)) throw new Error(`unknown architecture '${String(arch)}' (expected one of ${ARCHITECTURES.join(', ')})`);
  return build(opts);
}
