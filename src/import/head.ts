import type { ModelProto, NodeProto } from '../onnx/schema.js';

/** Ops that may sit between the classifier layer and the graph output without changing which layer it is. */
const PASS_THROUGH = new Set(['Identity', 'Softmax', 'LogSoftmax', 'Dropout', 'Flatten', 'Reshape', 'Squeeze', 'Cast']);

export interface ClassifierHead {
  /** The tensor feeding the final classifier layer (the "features"). */
  featureTensor: string;
  /** Nodes from the classifier layer to the output, in graph order. */
  nodes: NodeProto[];
  /** Initializers of the classifier layer (weight, bias). */
  parameters: string[];
}

/**
 * Locate the final classifier layer: walking back from the first output through pass-through
 * ops, the first Gemm, or MatMul (optionally followed by a bias Add), whose weight is an initializer.
 */
export function findClassifierHead(proto: ModelProto): ClassifierHead | undefined {
  const graph = proto.graph;
  if (!graph || graph.output.length === 0) return undefined;
  const inits = new Set([...graph.initializer.map((t) => t.name ?? ''), ...graph.sparse_initializer.map((s) => s.values?.name ?? '')]);
  const producer = new Map<string, NodeProto>();
  for (const n of graph.node) for (const o of n.output) producer.set(o, n);

  const chain: NodeProto[] = [];
  let tensor = graph.output[0].name ?? '';
  for (let guard = 0; guard < graph.node.length; guard++) {
    const node = producer.get(tensor);
    if (!node) return undefined;
    chain.unshift(node);
    const op = node.op_type ?? '';
    if ((op === 'Gemm' || op === 'MatMul') && inits.has(node.input[1])) {
      const parameters = node.input.slice(1).filter((n) => inits.has(n));
      const next = chain[1];
      if (op === 'MatMul' && next?.op_type === 'Add') parameters.push(...next.input.filter((n) => inits.has(n)));
      return { featureTensor: node.input[0], nodes: chain, parameters };
    }
    if (op === 'Add' && node.input.some((n) => inits.has(n))) {
      tensor = node.input.find((n) => !inits.has(n)) ?? '';
      continue;
    }
    if (!PASS_THROUGH.has(op)) return undefined;
    tensor = node.input[0];
  }
  return undefined;
}
