import { loadModel, opsetOf, initializerMap, type OnnxModel } from '../onnx/model.js';
import { toNumber } from '../onnx/schema.js';
import { numel } from '../onnx/tensor.js';
import { findConverter } from '../import/registry.js';
import { findClassifierHead } from '../import/head.js';
import { readHardenRecord } from '../export/export.js';
import { sparsityOf } from '../export/sparsity.js';
import { ImportedGraph } from '../import/graph.js';
import { HardenError } from '../errors.js';
import type { ValueInfoProto } from '../onnx/schema.js';

export interface TensorInfo {
  name: string;
  shape: (number | string)[];
  elemType: number;
}

export interface InspectReport {
  file: string;
  irVersion: number;
  producer: string;
  opsets: Record<string, number>;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  parameters: { tensors: number; elements: number; trainable?: number };
  ops: Record<string, number>;
  unsupportedOps: string[];
  /** Set when the ops are known but the import still fails (an attribute, a dtype...). */
  importError?: string;
  featureTensor?: string;
  headParameters?: string[];
  sparsity: { global: number; perTensor: Record<string, number> };
  harden?: unknown;
}

function tensorInfo(v: ValueInfoProto): TensorInfo {
  const tt = v.type?.tensor_type;
  return {
    name: v.name ?? '',
    shape: (tt?.shape?.dim ?? []).map((d) => (d.value === 'dim_value' ? toNumber(d.dim_value) : d.dim_param || '?')),
    elemType: tt?.elem_type ?? 0,
  };
}

export async function inspectModel(file: string): Promise<InspectReport> {
  const model = await loadModel(file);
  const proto = model.proto;
  const graph = proto.graph!;
  const ops: Record<string, number> = {};
  const unsupported = new Set<string>();
  for (const node of graph.node) {
    const op = (node.domain ? `${node.domain}.` : '') + (node.op_type ?? '');
    ops[op] = (ops[op] ?? 0) + 1;
    if (!findConverter(node.domain ?? '', node.op_type ?? '', opsetOf(proto, node.domain ?? ''))) unsupported.add(op);
  }
  const inits = initializerMap(proto, model.baseDir);
  const initNames = new Set(inits.keys());
  let elements = 0;
  for (const h of inits.values()) {
    if (['float32', 'float16', 'float64', 'bfloat16'].includes(h.dtype)) elements += numel(h.shape);
  }
  const sparsity = sparsityOf(inits); // weight matrices and kernels (rank ≥ 2) only
  const head = findClassifierHead(proto);
  const report: InspectReport = {
    file,
    irVersion: toNumber(proto.ir_version),
    producer: [proto.producer_name, proto.producer_version].filter(Boolean).join(' '),
    opsets: Object.fromEntries(proto.opset_import.map((o) => [o.domain || 'ai.onnx', toNumber(o.version)])),
    inputs: graph.input.filter((i) => !initNames.has(i.name ?? '')).map(tensorInfo),
    outputs: graph.output.map(tensorInfo),
    parameters: { tensors: inits.size, elements },
    ops,
    unsupportedOps: [...unsupported].sort(),
    featureTensor: head?.featureTensor,
    headParameters: head?.parameters,
    sparsity: {
      global: sparsity.global,
      perTensor: Object.fromEntries(Object.entries(sparsity.perTensor).map(([name, t]) => [name, t.sparsity])),
    },
    harden: readHardenRecord(proto),
  };
  if (unsupported.size === 0) tryImport(model, report);
  return report;
}

function tryImport(model: OnnxModel, report: InspectReport): void {
  try {
    const g = new ImportedGraph(model, report.file);
    report.parameters.trainable = g.trainableVariables().reduce((a, v) => a + v.size, 0);
    g.dispose();
  } catch (e) {
    if (!(e instanceof HardenError)) throw e;
    report.importError = e.message;
  }
}

export function formatInspect(r: InspectReport): string {
  const shape = (t: TensorInfo) => `${t.name} [${t.shape.join(', ')}]`;
  const lines = [
    `model        ${r.file}`,
    `ir / opsets  ${r.irVersion} / ${Object.entries(r.opsets).map(([d, v]) => `${d} ${v}`).join(', ')}${r.producer ? `  (${r.producer})` : ''}`,
    `inputs       ${r.inputs.map(shape).join('; ')}`,
    `outputs      ${r.outputs.map(shape).join('; ')}`,
    `parameters   ${r.parameters.elements.toLocaleString('en-US')} in ${r.parameters.tensors} initializers` +
      (r.parameters.trainable !== undefined ? ` (${r.parameters.trainable.toLocaleString('en-US')} trainable)` : ''),
    `features     ${r.featureTensor ?? 'not found (no final Gemm/MatMul classifier)'}`,
    `sparsity     ${(100 * r.sparsity.global).toFixed(2)} % of weight-matrix elements are zero`,
    `ops          ${Object.entries(r.ops).sort((a, b) => b[1] - a[1]).map(([o, n]) => `${o}×${n}`).join(' ')}`,
    `unsupported  ${r.unsupportedOps.length ? r.unsupportedOps.join(', ') : 'none'}`,
  ];
  if (r.importError) lines.push(`import       FAILS: ${r.importError}`);
  if (r.harden) lines.push(`harden       ${JSON.stringify(r.harden)}`);
  return lines.join('\n');
}
