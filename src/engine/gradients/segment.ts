/**
 * UnsortedSegmentSum for the wasm backend, which lacks it. tfjs's Gather gradient is an
 * UnsortedSegmentSum, so without this kernel tf.gather cannot be differentiated on wasm
 * (embedding lookups, label-indexed losses). A plain loop over the inputs' data: O(size).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

function unsortedSegmentSum({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = attrs as unknown as tf.UnsortedSegmentSumAttrs;
  const wasm = backend as BackendWasm;
  const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  const inner = tf.util.sizeFromShape(outShape.slice(1));
  const ids = wasm.readSync(segmentIds.dataId) as Int32Array;
  const values = wasm.readSync(x.dataId) as Float32Array | Int32Array;
  const out = x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
  for (let i = 0; i < ids.length; i++) {
    const segment = ids[i];
    if (segment < 0 || segment >= numSegments) continue; // tfjs drops out-of-range ids too
    const src = i * inner;
    const dst = segment * inner;
    for (let k = 0; k < inner; k++) out[dst + k] += values[src + k];
  }
  return wasm.makeOutput(outShape, x.dtype, undefined, out);
}

export const wasmUnsortedSegmentSum: tf.KernelConfig = {
  kernelName: tf.UnsortedSegmentSum,
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSum,
};
