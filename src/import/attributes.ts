import { toNumber, type AttributeProto } from '../onnx/schema.js';
import { readTensor, type HostTensor } from '../onnx/tensor.js';

// AttributeProto.AttributeType values used here.
const FLOAT = 1, INT = 2, STRING = 3, TENSOR = 4, FLOATS = 6, INTS = 7, STRINGS = 8;

/** Typed, defaulted access to a node's attributes; a wrong type is reported by `fail`. */
export class Attributes {
  private readonly byName = new Map<string, AttributeProto>();
  readonly used = new Set<string>();

  constructor(attrs: AttributeProto[], private readonly fail: (what: string) => never) {
    for (const a of attrs) this.byName.set(a.name ?? '', a);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  private get(name: string, type: number): AttributeProto | undefined {
    const a = this.byName.get(name);
    if (!a) return undefined;
    this.used.add(name);
    if (a.type !== undefined && a.type !== 0 && a.type !== type) this.fail(`attribute '${name}' has type ${a.type}, expected ${type}`);
    return a;
  }

  int(name: string, fallback: number): number;
  int(name: string): number | undefined;
  int(name: string, fallback?: number): number | undefined {
    const a = this.get(name, INT);
    return a ? toNumber(a.i) : fallback;
  }

  float(name: string, fallback: number): number;
  float(name: string): number | undefined;
  float(name: string, fallback?: number): number | undefined {
    const a = this.get(name, FLOAT);
    return a ? a.f ?? 0 : fallback;
  }

  string(name: string, fallback: string): string;
  string(name: string): string | undefined;
  string(name: string, fallback?: string): string | undefined {
    const a = this.get(name, STRING);
    return a ? new TextDecoder().decode(a.s ?? new Uint8Array()) : fallback;
  }

  ints(name: string, fallback: number[]): number[];
  ints(name: string): number[] | undefined;
  ints(name: string, fallback?: number[]): number[] | undefined {
    const a = this.get(name, INTS);
    return a ? (a.ints ?? []).map((v) => toNumber(v)) : fallback;
  }

  floats(name: string, fallback: number[]): number[];
  floats(name: string): number[] | undefined;
  floats(name: string, fallback?: number[]): number[] | undefined {
    const a = this.get(name, FLOATS);
    return a ? [...(a.floats ?? [])] : fallback;
  }

  strings(name: string): string[] | undefined {
    const a = this.get(name, STRINGS);
    return a ? (a.strings ?? []).map((s) => new TextDecoder().decode(s)) : undefined;
  }

  tensor(name: string): HostTensor | undefined {
    const a = this.get(name, TENSOR);
    return a?.t ? readTensor(a.t, {}) : undefined;
  }
}
