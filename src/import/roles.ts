/**
 * Which float initializers of a model are learnable weights, which are running statistics
 * (BatchNormalization mean/var), and (by omission) which are constants. Both training engines
 * use this, so they agree on what a parameter is.
 */
import { opsetOf } from '../onnx/model.js';
import type { ModelProto, NodeProto } from '../onnx/schema.js';
import { numel, type HostTensor } from '../onnx/tensor.js';
import { resolveConverter } from './registry.js';
import './ops/index.js';

export type ParameterRole = 'weight' | 'statistic';

/** Ops whose weight slots are parameters even when they hold a single value. */
const SCALAR_WEIGHT_OPS = ['Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'PRelu'];

export function isFloatDtype(d: string): boolean {
  return d === 'float32' || d === 'float64' || d === 'float16' || d === 'bfloat16';
}

export function parameterRoles(nodes: NodeProto[], inits: Map<string, HostTensor>, opsetFor: (node: NodeProto) => number, where: (node: NodeProto) => string): Map<string, ParameterRole> {
  const roles = new Map<string, ParameterRole>();
  for (const node of nodes) {
    const conv = resolveConverter(node.domain ?? '', node.op_type ?? '', opsetFor(node), where(node));
    const mark = (slots: readonly number[] | undefined, role: ParameterRole) => {
      for (const slot of slots ?? []) {
        const name = node.input[slot];
        const init = name ? inits.get(name) : undefined;
        if (!init || !isFloatDtype(init.dtype)) continue;
        // Scalars in weight slots (e.g. `x * 0.5`) are constants, not parameters.
        if (numel(init.shape) <= 1 && !SCALAR_WEIGHT_OPS.includes(node.op_type ?? '')) continue;
        if (roles.get(name) !== 'weight') roles.set(name, role);
      }
    };
    mark(conv.weightInputs, 'weight');
    mark(conv.statisticInputs, 'statistic');
  }
  return roles;
}

/** The roles of a whole model's main-graph initializers. */
export function modelParameterRoles(proto: ModelProto, inits: Map<string, HostTensor>, source: string): Map<string, ParameterRole> {
  const opsetFor = (node: NodeProto) => opsetOf(proto, node.domain ?? '');
  const where = (node: NodeProto) => `${source}: node '${node.name || node.output[0]}' (${node.op_type ?? ''}, opset ${opsetFor(node)})`;
  return parameterRoles(proto.graph?.node ?? [], inits, opsetFor, where);
}
