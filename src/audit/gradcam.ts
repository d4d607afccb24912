/**
 * Grad-CAM (Selvaraju et al.) on the imported tfjs graph.
 *
 * For a spatial activation A ∈ R^{C×h×w} (default: the output of the model's last Conv node,
 * or the tensor / node named by `--cam-layer`) and a class c with score y_c (the model's first
 * output, before any softmax the graph may not have):
 *   α_k = (1/hw) Σ_{i,j} ∂y_c/∂A^k_{ij},   map = ReLU(Σ_k α_k A^k)   (h×w).
 * The gradient w.r.t. an intermediate tensor is taken by rewriting a copy of the model: the
 * layer's output T becomes T_pre, and a new graph input δ (zeros) is added to it, T = T_pre + δ;
 * ∂y/∂δ at δ = 0 is ∂y/∂A. Examples are independent (inference mode), so one backward pass of
 * Σ_n y_{n,c_n} gives every example's gradient.
 */
import * as tf from '@tensorflow/tfjs-core';
import { HardenError } from '../errors.js';
import { ImportedGraph } from '../import/graph.js';
import { cloneModel, type OnnxModel } from '../onnx/model.js';
import { newNode, newTypeProto, newValueInfo, type ModelProto } from '../onnx/schema.js';
import { resizeBilinearInto } from '../data/image.js';

const PRE_SUFFIX = '__harden_cam_pre';
const DELTA_INPUT = 'harden_cam_delta';

/** The tensor Grad-CAM reads: `layer` as a tensor or node name, else the last Conv node's output. */
export function resolveCamLayer(proto: ModelProto, source: string, layer?: string): string {
  const nodes = proto.graph?.node ?? [];
  if (layer === undefined) {
    const conv = [...nodes].reverse().find((n) => n.op_type === 'Conv');
    if (!conv) throw new HardenError(`${source}: no Conv layer to take Grad-CAM at; name a spatial tensor with --cam-layer`);
    return conv.output[0]!;
  }
  const byTensor = nodes.find((n) => n.output.includes(layer));
  if (byTensor) return layer;
  const byName = nodes.find((n) => n.name === layer);
  if (byName) return byName.output[0]!;
  throw new HardenError(`--cam-layer '${layer}': ${source} has no node or node output of that name`);
}

/** An imported copy of the model in which ∂(first output)/∂(layer) can be taken. */
export class CamModel {
  readonly graph: ImportedGraph;
  readonly layer: string;
  /** [C, h, w] of the layer's activation. */
  readonly shape: [number, number, number];
  private readonly input: string;
  private readonly output: string;

  constructor(model: OnnxModel, source: string, inputShape: readonly number[], layer?: string) {
    this.layer = resolveCamLayer(model.proto, source, layer);
    this.shape = activationShape(model, source, this.layer, inputShape, layer !== undefined);
    this.graph = new ImportedGraph({ ...model, proto: withDelta(model.proto, this.layer) }, source);
    this.input = this.graph.inputs.find((i) => i.name !== DELTA_INPUT)!.name;
    this.output = this.graph.outputNames[0]!;
  }

  /**
   * Grad-CAM maps of a batch (N×C×H×W images, `classes[n]` the class of example n), at the
   * layer's resolution: N×h×w, row-major.
   */
  maps(images: Float32Array, imageShape: readonly number[], classes: Int32Array): Float32Array {
    const n = classes.length;
    const [C, h, w] = this.shape;
    return tf.tidy(() => {
      const x = tf.tensor(images, [n, ...imageShape], 'float32');
      const zero = tf.zeros([n, C, h, w]);
      const onehot = tf.oneHot(tf.tensor1d(classes, 'int32'), this.outputClasses(x, zero));
      const score = (d: tf.Tensor) => tf.sum(tf.mul(this.run(x, d).get(this.output)!, onehot)) as tf.Scalar;
      const grad = tf.grad(score)(zero);
      const act = this.run(x, zero).get(this.layer + PRE_SUFFIX)!;
      const alpha = tf.mean(grad, [2, 3], true);
      return tf.relu(tf.sum(tf.mul(alpha, act), 1)).dataSync() as Float32Array;
    });
  }

  private outputClasses(x: tf.Tensor, zero: tf.Tensor): number {
    const z = this.run(x, zero).get(this.output)!;
    if (z.rank !== 2) throw new HardenError(`${this.graph.source}: output '${this.output}' has rank ${z.rank}; Grad-CAM needs [N, classes] scores`);
    return z.shape[1]!;
  }

  private run(x: tf.Tensor, delta: tf.Tensor): Map<string, tf.Tensor> {
    return this.graph.run({ [this.input]: x, [DELTA_INPUT]: delta }, { outputs: [this.layer + PRE_SUFFIX] }).outputs;
  }

  dispose(): void {
    this.graph.dispose();
  }
}

/** Runs one image through the model to find the layer's shape; it must be [1, C, h, w] with h·w > 1. */
function activationShape(model: OnnxModel, source: string, layer: string, inputShape: readonly number[], named: boolean): [number, number, number] {
  const graph = new ImportedGraph(model, source);
  try {
    const shape = tf.tidy(() => {
      const x = tf.zeros([1, ...inputShape]);
      return graph.run({ [graph.inputs[0]!.name]: x }, { outputs: [layer] }).outputs.get(layer)!.shape;
    });
    if (shape.length !== 4 || shape[2]! * shape[3]! < 2) {
      const what = named ? `--cam-layer '${layer}'` : `${source}: the last Conv output '${layer}'`;
      throw new HardenError(`${what} is not spatial: its activation has shape [${shape.join(', ')}], Grad-CAM needs [N, C, H, W] with H·W > 1`);
    }
    return [shape[1]!, shape[2]!, shape[3]!];
  } finally {
    graph.dispose();
  }
}

/** A copy of the model where `layer` = `layer`__pre + δ, δ a new graph input. */
function withDelta(proto: ModelProto, layer: string): ModelProto {
  const m = cloneModel(proto);
  const g = m.graph!;
  const pre = layer + PRE_SUFFIX;
  const producer = g.node.findIndex((n) => n.output.includes(layer));
  const node = g.node[producer]!;
  node.output = node.output.map((o) => (o === layer ? pre : o));
  g.node.splice(producer + 1, 0, newNode({ name: 'harden_cam_add', op_type: 'Add', input: [pre, DELTA_INPUT], output: [layer] }));
  const dims = ['n', 'c', 'h', 'w'].map((d) => ({ dim_param: `harden_cam_${d}` }));
  g.input.push(newValueInfo({ name: DELTA_INPUT, type: newTypeProto({ tensor_type: { elem_type: 1, shape: { dim: dims } } }) }));
  return m;
}

/** Each h×w map of `maps` resized (bilinear) to H×W. */
export function upsampleMaps(maps: Float32Array, n: number, h: number, w: number, H: number, W: number): Float32Array {
  const out = new Float32Array(n * H * W);
  for (let i = 0; i < n; i++) resizeBilinearInto(maps, i * h * w, 1, h, w, out, i * H * W, H, W);
  return out;
}
