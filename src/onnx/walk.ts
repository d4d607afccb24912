/** Visiting every graph and tensor stored anywhere in a model. */
import type { AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto } from './schema.js';

function attributeGraphs(a: AttributeProto): GraphProto[] {
  return [...(a.g ? [a.g] : []), ...a.graphs];
}

/** Calls `fn` for the main graph, every subgraph (If/Loop/Scan bodies) and training graphs. */
export function forEachGraph(model: ModelProto, fn: (g: GraphProto) => void): void {
  const visitNodes = (nodes: NodeProto[]) => {
    for (const n of nodes) for (const a of n.attribute) for (const g of attributeGraphs(a)) visit(g);
  };
  const visit = (g: GraphProto) => {
    fn(g);
    visitNodes(g.node);
  };
  if (model.graph) visit(model.graph);
  for (const ti of model.training_info) {
    if (ti.initialization) visit(ti.initialization);
    if (ti.algorithm) visit(ti.algorithm);
  }
  for (const f of model.functions) {
    visitNodes(f.node);
    for (const a of f.attribute_proto) for (const g of attributeGraphs(a)) visit(g);
  }
}

function attributeTensors(a: AttributeProto): TensorProto[] {
  const out: TensorProto[] = [];
  if (a.t) out.push(a.t);
  out.push(...a.tensors);
  for (const s of [...(a.sparse_tensor ? [a.sparse_tensor] : []), ...a.sparse_tensors]) {
    if (s.values) out.push(s.values);
    if (s.indices) out.push(s.indices);
  }
  return out;
}

/**
 * Calls `fn` for every TensorProto in the model: initializers, sparse initializer parts, and
 * tensors inside node attributes (Constant values etc.), in all graphs and functions.
 */
export function forEachTensor(model: ModelProto, fn: (t: TensorProto) => void): void {
  const visitNodes = (nodes: NodeProto[]) => {
    for (const n of nodes) for (const a of n.attribute) attributeTensors(a).forEach(fn);
  };
  forEachGraph(model, (g) => {
    g.initializer.forEach(fn);
    for (const s of g.sparse_initializer) {
      if (s.values) fn(s.values);
      if (s.indices) fn(s.indices);
    }
    visitNodes(g.node);
  });
  for (const f of model.functions) {
    visitNodes(f.node);
    for (const a of f.attribute_proto) attributeTensors(a).forEach(fn);
  }
}
