/**
 * GatherV2 and UnsortedSegmentSum as single passes over the inputs' data, for the cpu and
 * wasm backends. The two are each other's gradient, and Harden's window ops (pooling,
 * depthwise and strided-conv gradients) are built on them. Stock tfjs is slow or missing
 * here: wasm has no UnsortedSegmentSum (so tf.gather has no gradient there) and its gather
 * costs ~70 ns per element; cpu's segment sum loops over every segment (O(segments x size)).
 */
import * as tf from '@tensorflow/tfjs-core';

type KernelArgs = Parameters<tf.KernelFunc>[0];
type Values = Float32Array | Int32Array;

function read(backend: unknown, t: tf.TensorInfo): Values {
  return (backend as tf.KernelBackend).readSync(t.dataId) as Values;
}

function allocate(dtype: tf.DataType, size: number): Values {
  return dtype === 'int32' ? new Int32Array(size) : new Float32Array(size);
}

function unsortedSegmentSum({ inputs, backend, attrs }: KernelArgs): tf.Tensor {
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = attrs as unknown as tf.UnsortedSegmentSumAttrs;
  const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  const inner = tf.util.sizeFromShape(outShape.slice(1));
  const ids = read(backend, segmentIds);
  const values = read(backend, x);
  const out = allocate(x.dtype, numSegments * inner);
  for (let i = 0; i < ids.length; i++) {
    const segment = ids[i];
    if (segment < 0 || segment >= numSegments) continue; // dropped, as tfjs does
    if (inner === 1) {
      out[segment] += values[i];
      continue;
    }
    const src = i * inner;
    const dst = segment * inner;
    for (let k = 0; k < inner; k++) out[dst + k] += values[src + k];
  }
  // A kernel may return a Tensor; it lives on the backend running the kernel.
  return tf.tensor(out, outShape, x.dtype);
}

/** gather along `axis` (batchDims 0): out[o, i, k] = x[o, indices[i], k]. */
function gather(args: KernelArgs, fallback: tf.KernelFunc): tf.TensorInfo | tf.TensorInfo[] {
  const { inputs, backend, attrs } = args;
  const { x, indices } = inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
  const { axis, batchDims } = attrs as unknown as tf.GatherV2Attrs;
  if ((batchDims ?? 0) !== 0 || (x.dtype !== 'float32' && x.dtype !== 'int32')) return fallback(args);
  const ax = tf.util.parseAxisParam(axis, x.shape)[0];
  const outer = tf.util.sizeFromShape(x.shape.slice(0, ax));
  const dim = x.shape[ax];
  const inner = tf.util.sizeFromShape(x.shape.slice(ax + 1));
  const ids = read(backend, indices);
  const values = read(backend, x);
  const out = allocate(x.dtype, outer * ids.length * inner);
  let dst = 0;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(id >= 0 && id < dim)) throw new Error(`GatherV2: the index value ${id} is not in [0, ${dim - 1}]`);
      const src = (o * dim + id) * inner;
      for (let k = 0; k < inner; k++) out[dst++] = values[src + k];
    }
  }
  return tf.tensor(out, [...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)], x.dtype);
}

export function indexingKernels(backendName: string): tf.KernelConfig[] {
  const stockGather = tf.getKernel(tf.GatherV2, backendName);
  const kernels: tf.KernelConfig[] = [{ kernelName: tf.UnsortedSegmentSum, backendName, kernelFunc: unsortedSegmentSum }];
  if (stockGather != null) {
    kernels.push({
      kernelName: tf.GatherV2,
      backendName,
      kernelFunc: (args) => gather(args, stockGather.kernelFunc),
      setupFunc: stockGather.setupFunc, // the fallback may need it
    });
  }
  return kernels;
}
