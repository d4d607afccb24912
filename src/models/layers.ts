/**
 * Shared building blocks for the reference architectures: a GraphBuilder plus a seeded Random
 * that initializes every layer the way PyTorch does by default.
 */
import { GraphBuilder } from '../onnx/builder.js';
import type { ModelProto } from '../onnx/schema.js';
import { Random } from '../util/random.js';

export interface ArchOptions {
  classes: number;
  /** C, H, W of one image. */
  inputShape: [number, number, number];
  seed: number;
}

export interface ConvOptions {
  kernel: number;
  stride?: number;
  pad?: number;
  group?: number;
  bias?: boolean;
}

/** Output size of a convolution or pooling window along one spatial axis. */
export function outSize(size: number, kernel: number, stride: number, pad: number): number {
  return Math.floor((size + 2 * pad - kernel) / stride) + 1;
}

export function validateOptions(arch: string, opts: ArchOptions): void {
  const { classes, inputShape, seed } = opts;
  if (!Number.isInteger(classes) || classes < 1) throw new Error(`${arch}: classes must be a positive integer, got ${classes}`);
  if (inputShape.length !== 3 || !inputShape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new Error(`${arch}: inputShape must be three positive integers [C, H, W], got [${inputShape}]`);
  }
  if (!Number.isFinite(seed)) throw new Error(`${arch}: seed must be a finite number, got ${seed}`);
}

/**
 * A network under construction. Every layer draws its weights from one seeded stream in
 * construction order, so the same seed always gives the same bytes.
 */
export class Net {
  readonly g: GraphBuilder;
  private readonly rng: Random;

  constructor(name: string, seed: number) {
    this.g = new GraphBuilder({ opset: 17, irVersion: 8, name });
    this.rng = new Random(seed);
  }

  /** Uniform in [−bound, bound): PyTorch's Kaiming-uniform with a = √5 has bound 1/√fan_in, as do its biases. */
  private uniform(n: number, bound: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (this.rng.next() * 2 - 1) * bound;
    return out;
  }

  conv(name: string, x: string, cin: number, cout: number, o: ConvOptions): string {
    const group = o.group ?? 1;
    const k = o.kernel;
    const fanIn = (cin / group) * k * k;
    const bound = 1 / Math.sqrt(fanIn);
    const w = this.g.initializer(`${name}.weight`, { data: this.uniform(cout * (cin / group) * k * k, bound), shape: [cout, cin / group, k, k] });
    const inputs = [x, w];
    if (o.bias ?? true) inputs.push(this.g.initializer(`${name}.bias`, { data: this.uniform(cout, bound), shape: [cout] }));
    const pad = o.pad ?? 0;
    const stride = o.stride ?? 1;
    return this.g.node('Conv', inputs, [`${name}_out`], {
      kernel_shape: [k, k],
      strides: [stride, stride],
      pads: [pad, pad, pad, pad],
      dilations: [1, 1],
      group,
    }, { name })[0];
  }

  batchNorm(name: string, x: string, channels: number): string {
    const fill = (v: number) => new Float32Array(channels).fill(v);
    const inputs = [
      x,
      this.g.initializer(`${name}.weight`, { data: fill(1), shape: [channels] }),
      this.g.initializer(`${name}.bias`, { data: fill(0), shape: [channels] }),
      this.g.initializer(`${name}.running_mean`, { data: fill(0), shape: [channels] }),
      this.g.initializer(`${name}.running_var`, { data: fill(1), shape: [channels] }),
    ];
    return this.g.node('BatchNormalization', inputs, [`${name}_out`], { epsilon: { float: 1e-5 }, momentum: { float: 0.9 } }, { name })[0];
  }

  /** Fully connected layer y = x·Wᵀ + b (Gemm, transB = 1, W of shape [out, in]). */
  linear(name: string, x: string, fin: number, fout: number, output = `${name}_out`): string {
    const bound = 1 / Math.sqrt(fin);
    const w = this.g.initializer(`${name}.weight`, { data: this.uniform(fout * fin, bound), shape: [fout, fin] });
    const b = this.g.initializer(`${name}.bias`, { data: this.uniform(fout, bound), shape: [fout] });
    return this.g.node('Gemm', [x, w, b], [output], { alpha: { float: 1 }, beta: { float: 1 }, transB: 1 }, { name })[0];
  }

  relu(x: string): string {
    return this.g.node('Relu', [x], 1)[0];
  }

  /** ReLU6 as Clip(0, 6) with constant bound inputs (opset ≥ 11). */
  relu6(x: string): string {
    if (!this.clipBounds) {
      this.clipBounds = [
        this.g.initializer('relu6.min', { data: [0], shape: [] }),
        this.g.initializer('relu6.max', { data: [6], shape: [] }),
      ];
    }
    return this.g.node('Clip', [x, ...this.clipBounds], 1)[0];
  }
  private clipBounds?: [string, string];

  maxPool(x: string, k = 2): string {
    return this.g.node('MaxPool', [x], 1, { kernel_shape: [k, k], strides: [k, k] })[0];
  }

  add(a: string, b: string): string {
    return this.g.node('Add', [a, b], 1)[0];
  }

  globalAvgPool(x: string): string {
    return this.g.node('GlobalAveragePool', [x], 1)[0];
  }

  flatten(x: string): string {
    return this.g.node('Flatten', [x], 1, { axis: 1 })[0];
  }

  /** Declares the `input` [batch, C, H, W] graph input. */
  input(shape: [number, number, number]): string {
    return this.g.input('input', ['batch', ...shape]);
  }

  /** Declares `logits` [batch, classes] (which the last layer must have written) and builds. */
  finish(classes: number): ModelProto {
    this.g.output('logits', ['batch', classes]);
    return this.g.build();
  }
}
