import { HardenError, ExitCode } from '../errors.js';
import type { Attributes } from './attributes.js';
import type { HostValue, Value } from './values.js';
import type * as tf from '@tensorflow/tfjs-core';

/** Everything a converter may look at when it turns one ONNX node into a kernel. */
export interface NodeInfo {
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  readonly opset: number;
  readonly inputs: string[];
  readonly outputs: string[];
  readonly attrs: Attributes;
  /** Inputs whose values are fixed at import (integer initializers, small constants). */
  readonly constInputs: (HostValue | undefined)[];
  /** Inputs fed by trainable or statistics variables: name of the variable, if any. */
  readonly variableInputs: (string | undefined)[];
  /** Stop the import: `what` says which attribute/input/value is unsupported. */
  fail(what: string): never;
}

/** Run-time services a kernel may use. */
export interface RunContext {
  readonly training: boolean;
  /** Batch norm in training mode reports its new running statistics here. */
  updateStatistic(variableName: string, value: tf.Tensor): void;
  /** Seeded randomness (e.g. Dropout in training mode). */
  nextSeed(): number;
}

export type Kernel = (inputs: (Value | undefined)[], ctx: RunContext) => Value[];

export interface OpConverter {
  readonly opType: string;
  /** First opset version this converter implements; it serves every later version until a newer registration. */
  readonly since: number;
  readonly domain?: string;
  /** Input slots that hold learnable weights when an initializer feeds them (e.g. Conv's W and B). */
  readonly weightInputs?: readonly number[];
  /** Input slots that hold running statistics (non-trainable variables, e.g. BatchNormalization mean/var). */
  readonly statisticInputs?: readonly number[];
  convert(node: NodeInfo): Kernel;
}

const registry = new Map<string, OpConverter[]>();

function key(domain: string, opType: string): string {
  return `${domain === 'ai.onnx' ? '' : domain}::${opType}`;
}

export function registerOp(converter: OpConverter): void {
  const k = key(converter.domain ?? '', converter.opType);
  const list = registry.get(k) ?? [];
  if (list.some((c) => c.since === converter.since)) {
    throw new Error(`converter for ${converter.opType} since opset ${converter.since} registered twice`);
  }
  list.push(converter);
  list.sort((a, b) => b.since - a.since);
  registry.set(k, list);
}

/** The newest converter at or below the model's opset, or undefined. */
export function findConverter(domain: string, opType: string, opset: number): OpConverter | undefined {
  return registry.get(key(domain, opType))?.find((c) => c.since <= opset);
}

export function resolveConverter(domain: string, opType: string, opset: number, where: string): OpConverter {
  const found = findConverter(domain, opType, opset);
  if (found) return found;
  const known = registry.get(key(domain, opType));
  const why = known
    ? `only opset >= ${Math.min(...known.map((c) => c.since))} is supported`
    : 'no converter for this op';
  throw new HardenError(`${where}: unsupported op ${domain ? domain + '.' : ''}${opType} (opset ${opset}): ${why}`, ExitCode.Unsupported);
}

