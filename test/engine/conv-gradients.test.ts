import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/engine/backend.js';
import { convInfo } from '../../src/engine/gradients/conv-family.js';
import { conv2dFilterGrad, conv2dInputGrad } from '../../src/engine/gradients/conv2d.js';
import { depthwiseFilterGrad, depthwiseInputGrad } from '../../src/engine/gradients/depthwise.js';
import { BACKENDS, gradientErrors, maxRelativeDiff, onCpu, random } from './helpers.js';

type Pad = 'same' | 'valid' | tf.backend_util.ExplicitPadding;
interface ConvCase {
  name: string;
  x: number[];
  w: number[];
  strides: number | [number, number];
  pad: Pad;
  dilations?: number;
}

const CONV_CASES: ConvCase[] = [
  { name: 'stride 1, same', x: [2, 7, 8, 3], w: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { name: 'stride 2, same', x: [2, 8, 9, 3], w: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { name: 'stride 2, valid, rows dropped', x: [2, 10, 9, 2], w: [3, 3, 2, 3], strides: 2, pad: 'valid' },
  { name: 'stride 3, 5x5 valid', x: [1, 13, 12, 2], w: [5, 5, 2, 3], strides: 3, pad: 'valid' },
  { name: 'strides [1, 2]', x: [2, 7, 8, 3], w: [3, 2, 3, 2], strides: [1, 2], pad: 'same' },
  { name: 'explicit pads', x: [2, 7, 8, 3], w: [3, 3, 3, 4], strides: 1, pad: [[0, 0], [2, 1], [0, 3], [0, 0]] },
  { name: 'explicit pads, stride 2', x: [2, 7, 8, 3], w: [3, 3, 3, 2], strides: 2, pad: [[0, 0], [3, 0], [1, 2], [0, 0]] },
  { name: 'dilation 2, same', x: [2, 9, 9, 3], w: [3, 3, 3, 4], strides: 1, pad: 'same', dilations: 2 },
  { name: 'dilation 2, valid', x: [1, 10, 11, 2], w: [3, 2, 2, 3], strides: 1, pad: 'valid', dilations: 2 },
];

const DEPTHWISE_CASES: ConvCase[] = [
  { name: 'M=1, stride 1, same', x: [2, 7, 8, 3], w: [3, 3, 3, 1], strides: 1, pad: 'same' },
  { name: 'M=2, stride 1, same', x: [2, 7, 8, 3], w: [3, 3, 3, 2], strides: 1, pad: 'same' },
  { name: 'M=1, stride 2, same', x: [2, 9, 8, 4], w: [3, 3, 4, 1], strides: 2, pad: 'same' },
  { name: 'M=2, stride 2, valid', x: [2, 9, 10, 3], w: [3, 3, 3, 2], strides: 2, pad: 'valid' },
  { name: 'M=2, explicit pads', x: [1, 7, 8, 3], w: [3, 3, 3, 2], strides: 1, pad: [[0, 0], [1, 2], [2, 0], [0, 0]] },
  { name: 'M=1, dilation 2', x: [2, 9, 9, 3], w: [3, 3, 3, 1], strides: 1, pad: 'same', dilations: 2 },
  { name: 'M=2, dilation 2, valid', x: [1, 10, 9, 2], w: [3, 3, 2, 2], strides: 1, pad: 'valid', dilations: 2 },
];

const conv = (c: ConvCase) => (x: tf.Tensor, w: tf.Tensor) =>
  tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad, 'NHWC', c.dilations ?? 1);
const depthwise = (c: ConvCase) => (x: tf.Tensor, w: tf.Tensor) =>
  tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad, 'NHWC', c.dilations ?? 1);

function run(kernel: string, inputs: tf.NamedTensorMap, attrs: object): tf.Tensor {
  return tf.engine().runKernel(kernel, inputs, attrs as tf.NamedAttrMap) as tf.Tensor;
}

function expectAllBelow(errors: number[], tol = 1e-2): void {
  for (const e of errors) expect(e).toBeLessThan(tol);
}

describe.each(BACKENDS)('Conv2D gradients on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  it.each(CONV_CASES)('$name: dx and dw match central differences', (c) => {
    const [x, w] = [random(c.x, 1), random(c.w, 2)];
    expectAllBelow(gradientErrors(conv(c), [x, w]));
    tf.dispose([x, w]);
  });

  it('strides and dilations both > 1 (kernel-level, which tf.conv2d refuses)', () => {
    const [x, w] = [random([2, 11, 10, 2], 3), random([3, 3, 2, 3], 4)];
    const f = (a: tf.Tensor, b: tf.Tensor) =>
      run(tf.Conv2D, { x: a, filter: b }, { strides: [2, 2], pad: 'same', dataFormat: 'NHWC', dilations: [2, 2] });
    expectAllBelow(gradientErrors(f, [x, w]));
    tf.dispose([x, w]);
  });

  it.each(CONV_CASES.filter((c) => !c.dilations))('$name: gradient and composition equal tfjs cpu Conv2DBackpropInput/Filter', async (c) => {
    const [x, w] = [random(c.x, 5), random(c.w, 6)];
    const dy = tf.tidy(() => random(conv(c)(x, w).shape, 7));
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC' };
    const [xs, ws, dys] = [x, w, dy].map((t) => t.arraySync());
    const [refX, refW] = await onCpu(backend, () => {
      const [cx, cw, cdy] = [tf.tensor(xs), tf.tensor(ws), tf.tensor(dys)];
      return [
        run(tf.Conv2DBackpropInput, { dy: cdy, filter: cw }, { ...attrs, inputShape: c.x }),
        run(tf.Conv2DBackpropFilter, { x: cx, dy: cdy }, { ...attrs, filterShape: c.w }),
      ];
    });
    const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(c)(a, b), dy)))([x, w]);
    // The tape may use the backend's own kernel (cpu's input gradient); test the composition too.
    const info = convInfo(c.x, c.w, c, false);
    const [cx, cw] = [conv2dInputGrad(dy as tf.Tensor4D, w as tf.Tensor4D, info), conv2dFilterGrad(x as tf.Tensor4D, dy as tf.Tensor4D, info)];
    for (const [got, ref] of [[gx, refX], [gw, refW], [cx, refX], [cw, refW]] as const) expect(maxRelativeDiff(got, ref)).toBeLessThan(1e-4);
    tf.dispose([x, w, dy, gx, gw, cx, cw]);
  });

  it('Conv2DBackpropInput and Conv2DBackpropFilter kernels are differentiable', () => {
    const attrs = { strides: 2, pad: 'same', dataFormat: 'NHWC' };
    const [x, w, dy] = [random([2, 8, 7, 3], 8), random([3, 3, 3, 4], 9), random([2, 4, 4, 4], 10)];
    const input = (g: tf.Tensor, f: tf.Tensor) => run(tf.Conv2DBackpropInput, { dy: g, filter: f }, { ...attrs, inputShape: x.shape });
    const filter = (a: tf.Tensor, g: tf.Tensor) => run(tf.Conv2DBackpropFilter, { x: a, dy: g }, { ...attrs, filterShape: w.shape });
    expectAllBelow(gradientErrors(input, [dy, w]));
    expectAllBelow(gradientErrors(filter, [x, dy]));
    tf.dispose([x, w, dy]);
  });
});

describe.each(BACKENDS)('DepthwiseConv2dNative gradients on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  it.each(DEPTHWISE_CASES)('$name: dx and dw match central differences', (c) => {
    const [x, w] = [random(c.x, 11), random(c.w, 12)];
    expectAllBelow(gradientErrors(depthwise(c), [x, w]));
    tf.dispose([x, w]);
  });

  it.each(DEPTHWISE_CASES.filter((c) => !c.dilations))('$name: gradient and composition equal tfjs cpu backprop kernels', async (c) => {
    const [x, w] = [random(c.x, 13), random(c.w, 14)];
    const dy = tf.tidy(() => random(depthwise(c)(x, w).shape, 15));
    const attrs = { strides: c.strides, pad: c.pad, dilations: 1 };
    const [xs, ws, dys] = [x, w, dy].map((t) => t.arraySync());
    const [refX, refW] = await onCpu(backend, () => {
      const [cx, cw, cdy] = [tf.tensor(xs), tf.tensor(ws), tf.tensor(dys)];
      return [
        run(tf.DepthwiseConv2dNativeBackpropInput, { dy: cdy, filter: cw }, { ...attrs, inputShape: c.x }),
        run(tf.DepthwiseConv2dNativeBackpropFilter, { x: cx, dy: cdy }, { ...attrs, filterShape: c.w }),
      ];
    });
    const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(depthwise(c)(a, b), dy)))([x, w]);
    const info = convInfo(c.x, c.w, c, true);
    const [cx, cw] = [depthwiseInputGrad(dy as tf.Tensor4D, w as tf.Tensor4D, info), depthwiseFilterGrad(x as tf.Tensor4D, dy as tf.Tensor4D, info)];
    for (const [got, ref] of [[gx, refX], [gw, refW], [cx, refX], [cw, refW]] as const) expect(maxRelativeDiff(got, ref)).toBeLessThan(1e-4);
    tf.dispose([x, w, dy, gx, gw, cx, cw]);
  });

  it('depthwise backprop kernels run here and are differentiable', () => {
    const attrs = { strides: 2, pad: 'same', dilations: 1 };
    const [x, w, dy] = [random([2, 8, 7, 3], 16), random([3, 3, 3, 2], 17), random([2, 4, 4, 6], 18)];
    const input = (g: tf.Tensor, f: tf.Tensor) =>
      run(tf.DepthwiseConv2dNativeBackpropInput, { dy: g, filter: f }, { ...attrs, inputShape: x.shape });
    const filter = (a: tf.Tensor, g: tf.Tensor) =>
      run(tf.DepthwiseConv2dNativeBackpropFilter, { x: a, dy: g }, { ...attrs, filterShape: w.shape });
    expectAllBelow(gradientErrors(input, [dy, w]));
    expectAllBelow(gradientErrors(filter, [x, dy]));
    tf.dispose([x, w, dy]);
  });
});
