/**
 * Static shapes (and the values of small tensors) of every tensor of a model for one input
 * shape, read off onnxruntime: the model is run once on zeros with every node output exposed.
 * Shape arithmetic (PyTorch's view-flatten, Slice bounds, Clip limits) thereby becomes known
 * constants for the gradient rules.
 */
import * as ort from 'onnxruntime-node';
import { HardenError } from '../../errors.js';
import { cloneModel, encodeModel } from '../../onnx/model.js';
import { newValueInfo, type ModelProto } from '../../onnx/schema.js';
import { numel, type HostTensor } from '../../onnx/tensor.js';

/** Tensors with at most this many elements have their values recorded. */
const SMALL = 64;

export interface Probe {
  shapes: Map<string, number[]>;
  /** Values of small tensors (integers as numbers), by name. */
  values: Map<string, number[]>;
  /** Element type of every tensor onnxruntime produced ('float32', 'int64', 'bool', ...). */
  types: Map<string, string>;
}

export async function probeModel(proto: ModelProto, inits: Map<string, HostTensor>, inputName: string, inputShape: number[], source: string): Promise<Probe> {
  const shapes = new Map<string, number[]>();
  const values = new Map<string, number[]>();
  const types = new Map<string, string>();
  for (const [name, t] of inits) {
    shapes.set(name, t.shape.slice());
    types.set(name, t.dtype);
    if (numel(t.shape) <= SMALL && t.dtype !== 'string') values.set(name, Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v)));
  }
  const copy = cloneModel(proto);
  const g = copy.graph!;
  const listed = new Set(g.output.map((o) => o.name ?? ''));
  for (const n of g.node) {
    for (const o of n.output) {
      if (o && !listed.has(o)) {
        g.output.push(newValueInfo({ name: o }));
        listed.add(o);
      }
    }
  }
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(encodeModel(copy), { graphOptimizationLevel: 'disabled' });
  } catch (e) {
    throw new HardenError(`${source}: onnxruntime cannot load the model to read its shapes: ${String((e as Error).message).split('\n')[0]}`);
  }
  try {
    const n = inputShape.reduce((a, b) => a * b, 1);
    const out = await session.run({ [inputName]: new ort.Tensor('float32', new Float32Array(n), inputShape) });
    shapes.set(inputName, inputShape);
    types.set(inputName, 'float32');
    for (const [name, t] of Object.entries(out)) {
      const tensor = t as ort.Tensor;
      shapes.set(name, [...tensor.dims]);
      types.set(name, tensor.type);
      if (tensor.size <= SMALL && tensor.type !== 'string') values.set(name, Array.from(tensor.data as ArrayLike<number | bigint>, (v) => Number(v)));
    }
  } finally {
    await session.release();
  }
  return { shapes, values, types };
}
