/**
 * M^{st}: the fine-tuned model's graph with the source model's classifier attached to its feature
 * tensor (the input of its own final classifier), in one ONNX graph:
 *
 *   features ─┬─ (M^t's head) ──────────────────────────────→ original outputs (unchanged)
 *             └─ M^s's Gemm / MatMul(+Add) → Softmax ────────→ source_probabilities [N, |C^s|]   (optional)
 *                   └─ Gather(L, axis 1) → ReduceMax(axis 1) → interference [N]
 *                                          └─ Greater(p_lo) → interference_flag [N] (bool)
 *
 * The feature sizes must match (the source classifier's input width = the fine-tuned model's).
 */
import { HardenError } from '../errors.js';
import { findClassifierHead } from '../import/head.js';
import { cloneModel, initializerMap, opsetOf, type OnnxModel } from '../onnx/model.js';
import { AttributeType, newAttribute, newNode, newTypeProto, newValueInfo, type ModelProto, type NodeProto, type TensorShapeProto } from '../onnx/schema.js';
import { makeTensorProto, onnxFromDtype, type DType } from '../onnx/tensor.js';
import { headLayout, type HeadLayout } from '../harden/source-head.js';

export const SOURCE_PROBABILITIES = 'source_probabilities';
export const INTERFERENCE = 'interference';
export const INTERFERENCE_FLAG = 'interference_flag';
const PREFIX = 'harden_source/';

export interface StitchOptions {
  /** Add the source_probabilities output (the audit reads it; the shipped guard need not). */
  probabilities?: boolean;
  /** Lingering source classes: adds interference and interference_flag (needs pLo). */
  lingering?: readonly number[];
  pLo?: number;
}

export interface Stitched {
  proto: ModelProto;
  featureTensor: string;
  featureSize: number;
  sourceClasses: number;
}

function layoutOf(model: OnnxModel, name: string): HeadLayout {
  const head = findClassifierHead(model.proto);
  if (!head) throw new HardenError(`${name}: no final Gemm/MatMul classifier found (needed to locate the feature tensor)`);
  const w = initializerMap(model.proto, model.baseDir).get(head.nodes[0]!.input[1]!);
  if (!w) throw new HardenError(`${name}: the classifier weight '${head.nodes[0]!.input[1]}' is not an initializer`);
  return headLayout(model.proto, w.shape, name);
}

/** Builds M^{st} (see the module comment). Neither input model is modified. */
export function stitchSourceHead(target: OnnxModel, targetName: string, source: OnnxModel, sourceName: string, opts: StitchOptions = {}): Stitched {
  const t = layoutOf(target, targetName);
  const s = layoutOf(source, sourceName);
  if (s.featureSize !== t.featureSize) {
    throw new HardenError(`${sourceName}: feature tensors differ: its classifier takes ${s.featureSize} features, ${targetName}'s feature tensor '${t.head.featureTensor}' has ${t.featureSize}`);
  }
  const lingering = opts.lingering;
  if (lingering) {
    if (lingering.length === 0) throw new HardenError('no lingering classes to guard against (give at least one)');
    const bad = lingering.find((c) => !Number.isInteger(c) || c < 0 || c >= s.classes);
    if (bad !== undefined) throw new HardenError(`lingering class ${bad} does not exist: ${sourceName} has ${s.classes} classes (0-${s.classes - 1})`);
    if (!(opts.pLo !== undefined && opts.pLo >= 0 && opts.pLo < 1)) throw new HardenError(`p_lo must be in [0, 1), got ${opts.pLo}`);
  }

  const proto = cloneModel(target.proto);
  const g = proto.graph!;
  const taken = new Set<string>([...g.node.flatMap((n) => n.output), ...g.input.map((i) => i.name ?? ''), ...g.initializer.map((i) => i.name ?? '')]);
  for (const name of [SOURCE_PROBABILITIES, INTERFERENCE, INTERFERENCE_FLAG]) {
    if (taken.has(name)) throw new HardenError(`${targetName}: already has a tensor named '${name}'`);
  }
  const opset = opsetOf(proto, '');
  if (opset < 7) throw new HardenError(`${targetName}: opset ${opset} is too old to attach the source head (needs 7 or later)`);

  // Copy the source classifier layer (Gemm, or MatMul followed by its bias Add) onto M^t's features.
  const inits = initializerMap(source.proto, source.baseDir);
  const layer = s.head.nodes[0]!;
  const copied: NodeProto[] = [layer];
  if (layer.op_type === 'MatMul' && s.head.nodes[1]?.op_type === 'Add') copied.push(s.head.nodes[1]);
  const rename = (x: string): string => {
    if (x === '') return x;
    if (x === s.head.featureTensor) return t.head.featureTensor;
    const init = inits.get(x);
    if (init) {
      if (!taken.has(PREFIX + x)) g.initializer.push(makeTensorProto(PREFIX + x, init));
      taken.add(PREFIX + x);
      return PREFIX + x;
    }
    return PREFIX + x;
  };
  const logits = `${PREFIX}logits`;
  copied.forEach((n, i) => {
    const out = i === copied.length - 1 ? logits : rename(n.output[0]!);
    g.node.push(newNode({ name: `${PREFIX}${n.name || n.op_type}`, op_type: n.op_type, input: n.input.map(rename), output: [out], attribute: n.attribute }));
  });
  const probs = opts.probabilities || !lingering ? SOURCE_PROBABILITIES : `${PREFIX}probabilities`;
  g.node.push(newNode({ name: `${PREFIX}softmax`, op_type: 'Softmax', input: [logits], output: [probs], attribute: [intAttr('axis', 1)] }));

  const batch = g.output[0]?.type?.tensor_type?.shape?.dim?.[0] ?? { dim_param: 'batch' };
  const output = (name: string, dims: TensorShapeProto['dim'], dtype: DType) =>
    g.output.push(newValueInfo({ name, type: newTypeProto({ tensor_type: { elem_type: onnxFromDtype(dtype), shape: { dim: dims } } }) }));
  if (probs === SOURCE_PROBABILITIES) output(SOURCE_PROBABILITIES, [batch, { dim_value: s.classes }], 'float32');

  if (lingering) {
    g.initializer.push(makeTensorProto(`${PREFIX}lingering`, { dtype: 'int64', shape: [lingering.length], data: BigInt64Array.from(lingering.map(BigInt)) }));
    g.initializer.push(makeTensorProto(`${PREFIX}p_lo`, { dtype: 'float32', shape: [], data: Float32Array.of(opts.pLo!) }));
    g.node.push(newNode({ name: `${PREFIX}gather`, op_type: 'Gather', input: [probs, `${PREFIX}lingering`], output: [`${PREFIX}lingering_probabilities`], attribute: [intAttr('axis', 1)] }));
    const reduce = newNode({ name: `${PREFIX}reduce_max`, op_type: 'ReduceMax', input: [`${PREFIX}lingering_probabilities`], output: [INTERFERENCE], attribute: [intAttr('keepdims', 0)] });
    if (opset >= 18) {
      g.initializer.push(makeTensorProto(`${PREFIX}axes`, { dtype: 'int64', shape: [1], data: BigInt64Array.of(1n) }));
      reduce.input.push(`${PREFIX}axes`);
    } else {
      reduce.attribute.push(intsAttr('axes', [1]));
    }
    g.node.push(reduce);
    g.node.push(newNode({ name: `${PREFIX}greater`, op_type: 'Greater', input: [INTERFERENCE, `${PREFIX}p_lo`], output: [INTERFERENCE_FLAG] }));
    output(INTERFERENCE, [batch], 'float32');
    output(INTERFERENCE_FLAG, [batch], 'bool');
  }
  return { proto, featureTensor: t.head.featureTensor, featureSize: t.featureSize, sourceClasses: s.classes };
}

const intAttr = (name: string, i: number) => newAttribute({ name, type: AttributeType.INT, i });
const intsAttr = (name: string, ints: number[]) => newAttribute({ name, type: AttributeType.INTS, ints });
