/**
 * Registers Harden's gradients (backend-independent, all differentiable again so H v is
 * exact) and kernels: the backprop kernels wasm lacks, single-pass gather / segment sum on
 * wasm and cpu, and the max-pool argmax kernel. Idempotent; `initBackend` calls it after
 * tfjs's own gradients are registered (they must not override these).
 */
import * as tf from '@tensorflow/tfjs-core';
import { activationGradients } from './activations.js';
import { familyGradients, registerFamilyKernels } from './conv-family.js';
import { conv2dFamily } from './conv2d.js';
import { depthwiseFamily } from './depthwise.js';
import { nonDifferentiableGradients } from './nondiff.js';
import { maxPoolArgmaxKernel, poolingGradients } from './pooling.js';
import { replaceKernel } from './registry.js';
import { indexingKernels } from './indexing.js';
import { smoothGradients } from './smooth.js';
import { batchMatMulGradient } from './matmul.js';
import { softmaxGradient } from './softmax.js';

let registered = false;

/** Kernel names whose gradient Harden replaces or adds, for reports and tests. */
export const hardenGradientKernels: string[] = [];
/** `${backend}/${kernel}` of every kernel Harden registers. */
export const hardenKernels: string[] = [];

export function registerHardenKernels(): void {
  if (registered) return;
  registered = true;
  const gradients = [
    ...familyGradients(conv2dFamily),
    ...familyGradients(depthwiseFamily),
    ...poolingGradients,
    ...activationGradients,
    ...smoothGradients,
    batchMatMulGradient,
    softmaxGradient,
    ...nonDifferentiableGradients,
  ];
  for (const g of gradients) {
    tf.registerGradient(g);
    hardenGradientKernels.push(g.kernelName);
  }
  // wasm: the backprop kernels it lacks (and a faster Conv2DBackpropInput than its own),
  // composed from its fast forward convolutions.
  for (const family of [conv2dFamily, depthwiseFamily]) {
    registerFamilyKernels(family, 'wasm');
    hardenKernels.push(`wasm/${family.kernels.backpropInput}`, `wasm/${family.kernels.backpropFilter}`);
  }
  // Gather / segment sum as single passes (wasm lacks the latter, cpu's is quadratic).
  for (const backend of ['wasm', 'cpu']) {
    for (const k of indexingKernels(backend)) {
      replaceKernel(k);
      hardenKernels.push(`${backend}/${k.kernelName}`);
    }
  }
  // Harden's own kernel: max-pool argmax (JS over the data, so it runs on any backend).
  for (const backend of ['wasm', 'cpu', 'tensorflow']) {
    replaceKernel(maxPoolArgmaxKernel(backend));
    hardenKernels.push(`${backend}/${maxPoolArgmaxKernel(backend).kernelName}`);
  }
}
