/**
 * Registers Harden's gradients (backend-independent) and the kernels the wasm backend is
 * missing. Idempotent; `initBackend` calls it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { activationGradients } from './activations.js';
import { familyGradients, registerFamilyKernels } from './conv-family.js';
import { conv2dFamily } from './conv2d.js';
import { depthwiseFamily } from './depthwise.js';
import { nonDifferentiableGradients } from './nondiff.js';
import { poolingGradients } from './pooling.js';
import { wasmUnsortedSegmentSum } from './segment.js';
import { smoothGradients } from './smooth.js';

let registered = false;

/** Kernel names whose gradient Harden replaces or adds, for reports and tests. */
export const hardenGradientKernels: string[] = [];
/** Kernel names Harden registers on the wasm backend. */
export const hardenWasmKernels: string[] = [];

export function registerHardenKernels(): void {
  if (registered) return;
  registered = true;
  const gradients = [
    ...familyGradients(conv2dFamily),
    ...familyGradients(depthwiseFamily),
    ...poolingGradients,
    ...activationGradients,
    ...smoothGradients,
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
    hardenWasmKernels.push(family.kernels.backpropInput, family.kernels.backpropFilter);
  }
  if (tf.getKernel(wasmUnsortedSegmentSum.kernelName, 'wasm') == null) {
    tf.registerKernel(wasmUnsortedSegmentSum);
    hardenWasmKernels.push(wasmUnsortedSegmentSum.kernelName);
  }
}
