/**
 * A small ONNX graph builder for tests and reference architectures.
 */
import { cloneModel, encodeModel } from './model.js';
import {
  type AttributeProto,
  AttributeType,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
  newAttribute,
  newGraph,
  newModel,
  newNode,
  newOpsetId,
  newTypeProto,
  newValueInfo,
} from './schema.js';
import { type DType, type HostTensor, hostFromNumbers, makeTensorProto, onnxFromDtype } from './tensor.js';

export type AttrValue =
  | number
  | number[]
  | string
  | string[]
  | HostTensor
  | { floats: number[] }
  | { float: number };

export type InitializerValue = HostTensor | { data: Float32Array | number[]; shape: number[]; dtype?: DType };

function isHostTensor(v: object): v is HostTensor {
  return 'dtype' in v && 'shape' in v && 'data' in v;
}

function valueInfo(name: string, shape: (number | string)[] | undefined, dtype: DType): ValueInfoProto {
  const dims = shape?.map((d) => (typeof d === 'string' ? { dim_param: d } : { dim_value: d }));
  const tensorType = { elem_type: onnxFromDtype(dtype), ...(dims ? { shape: { dim: dims } } : {}) };
  return newValueInfo({ name, type: newTypeProto({ tensor_type: tensorType }) });
}

function toHost(v: InitializerValue): HostTensor {
  const dtype = v.dtype ?? 'float32';
  // Plain numbers (or float32 values for another dtype) are values to convert; typed arrays of
  // the dtype's own storage type are taken as they are.
  if (Array.isArray(v.data) || (v.data instanceof Float32Array && dtype !== 'float32')) {
    return hostFromNumbers(v.data as ArrayLike<number>, v.shape, dtype);
  }
  return { dtype, shape: v.shape.slice(), data: v.data };
}

export function attribute(name: string, v: AttrValue): AttributeProto {
  const a = newAttribute({ name });
  const ints = (xs: number[]) => {
    for (const x of xs) if (!Number.isSafeInteger(x)) throw new Error(`attribute ${name}: ${x} is not a safe integer`);
    return xs.slice();
  };
  if (typeof v === 'number') {
    if (Number.isInteger(v)) Object.assign(a, { type: AttributeType.INT, i: ints([v])[0] });
    else Object.assign(a, { type: AttributeType.FLOAT, f: v });
  } else if (typeof v === 'string') {
    Object.assign(a, { type: AttributeType.STRING, s: new TextEncoder().encode(v) });
  } else if (Array.isArray(v)) {
    if (v.length > 0 && v.every((x) => typeof x === 'string')) {
      Object.assign(a, { type: AttributeType.STRINGS, strings: (v as string[]).map((s) => new TextEncoder().encode(s)) });
    } else if ((v as number[]).every((x) => Number.isInteger(x))) {
      Object.assign(a, { type: AttributeType.INTS, ints: ints(v as number[]) });
    } else {
      Object.assign(a, { type: AttributeType.FLOATS, floats: (v as number[]).slice() });
    }
  } else if ('floats' in v) {
    Object.assign(a, { type: AttributeType.FLOATS, floats: v.floats.slice() });
  } else if ('float' in v) {
    Object.assign(a, { type: AttributeType.FLOAT, f: v.float });
  } else if (isHostTensor(v)) {
    Object.assign(a, { type: AttributeType.TENSOR, t: makeTensorProto('', v) });
  } else {
    throw new Error(`attribute ${name}: unsupported value`);
  }
  return a;
}

export class GraphBuilder {
  private readonly opset: number;
  private readonly irVersion: number;
  private readonly name: string;
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly nodes: NodeProto[] = [];
  private readonly domains = new Set<string>();
  private count = 0;

  constructor(opts: { opset?: number; irVersion?: number; name?: string } = {}) {
    this.opset = opts.opset ?? 17;
    this.irVersion = opts.irVersion ?? 8;
    this.name = opts.name ?? 'harden_graph';
  }

  /** A graph input; string dims are symbolic (dim_param). */
  input(name: string, shape: (number | string)[], dtype: DType = 'float32'): string {
    this.inputs.push(valueInfo(name, shape, dtype));
    return name;
  }

  /** A graph output; without a shape only the element type is declared. */
  output(name: string, shape?: (number | string)[], dtype: DType = 'float32'): string {
    this.outputs.push(valueInfo(name, shape, dtype));
    return name;
  }

  initializer(name: string, h: InitializerValue): string {
    this.initializers.push(makeTensorProto(name, toHost(h)));
    return name;
  }

  /**
   * Adds a node and returns its output names (auto-named when a count is given). Integer
   * numbers become INT attributes, others FLOAT; `{ float: x }` forces FLOAT, `{ floats }` FLOATS.
   */
  node(
    opType: string,
    inputs: string[],
    outputs: string[] | number,
    attrs: Record<string, AttrValue> = {},
    opts: { name?: string; domain?: string } = {},
  ): string[] {
    const name = opts.name ?? `${opType}_${this.count}`;
    this.count++;
    const outs = typeof outputs === 'number'
      ? Array.from({ length: outputs }, (_, i) => (outputs === 1 ? `${name}_out` : `${name}_out${i}`))
      : outputs.slice();
    const node = newNode({
      name,
      op_type: opType,
      input: inputs.slice(),
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    if (opts.domain) {
      node.domain = opts.domain;
      this.domains.add(opts.domain);
    }
    this.nodes.push(node);
    return outs;
  }

  /** A fresh model (decoded message instances, independent of the builder). */
  build(): ModelProto {
    const opsets = [newOpsetId({ domain: '', version: this.opset })];
    for (const d of this.domains) if (d !== 'ai.onnx') opsets.push(newOpsetId({ domain: d, version: 1 }));
    const model = newModel({
      ir_version: this.irVersion,
      producer_name: 'harden',
      opset_import: opsets,
      graph: newGraph({
        name: this.name,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      }),
    });
    return cloneModel(model);
  }

  toBytes(): Uint8Array {
    return encodeModel(this.build());
  }
}
