/** Kernel registration that remembers what it replaced (benchmarks time the originals). */
import * as tf from '@tensorflow/tfjs-core';

/** Kernels Harden replaced, by `${backend}/${kernel}`. */
export const replacedKernels = new Map<string, tf.KernelConfig>();

export function replaceKernel(config: tf.KernelConfig): void {
  const existing = tf.getKernel(config.kernelName, config.backendName);
  if (existing != null) {
    if (existing.kernelFunc === config.kernelFunc) return;
    replacedKernels.set(`${config.backendName}/${config.kernelName}`, existing);
    tf.unregisterKernel(config.kernelName, config.backendName);
  }
  tf.registerKernel(config);
}
