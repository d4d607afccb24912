/**
 * Gradient/kernel wiring shared by the two convolution families (Conv2D and
 * DepthwiseConv2dNative). Each family is described by three linear maps of its NHWC math:
 *
 *   forward(x, filter)      = y
 *   inputGrad(dy, filter)   = dL/dx        (the family's "BackpropInput" kernel)
 *   filterGrad(x, dy)       = dL/dfilter   (the family's "BackpropFilter" kernel)
 *
 * All three are bilinear, so the gradient of each is a combination of the others; wiring
 * them up that way (instead of tfjs's native backprop kernels) makes every derivative
 * order available and only ever runs the backend's fast forward convolutions.
 */
import * as tf from '@tensorflow/tfjs-core';
import { replaceKernel } from './registry.js';
import { detach, pair, type Shape4 } from './util.js';

export type ConvInfo = tf.backend_util.Conv2DInfo;
export type ConvPad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

/** The attributes shared by the forward and backprop kernels of both families. */
export interface ConvAttrs {
  strides: number | [number, number];
  pad: ConvPad;
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dataFormat?: 'NHWC' | 'NCHW';
}

export interface ConvFamily {
  depthwise: boolean;
  kernels: { forward: string; backpropInput: string; backpropFilter: string };
  forward(x: tf.Tensor4D, filter: tf.Tensor4D, attrs: ConvAttrs): tf.Tensor4D;
  inputGrad(dy: tf.Tensor4D, filter: tf.Tensor4D, info: ConvInfo): tf.Tensor4D;
  filterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, info: ConvInfo): tf.Tensor4D;
}

type GradMap = Record<string, () => tf.Tensor>;

export function convInfo(xShape: number[], filterShape: number[], attrs: ConvAttrs, depthwise: boolean): ConvInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as Shape4, filterShape as Shape4, attrs.strides, pair(attrs.dilations as number[] | number | undefined),
    attrs.pad, attrs.dimRoundingMode, depthwise);
}

function asAttrs(attrs: tf.NamedAttrMap): ConvAttrs {
  return attrs as unknown as ConvAttrs;
}

/**
 * Backends whose own backprop kernel beats Harden's composition (see bench-kernels):
 * tensorflow's are optimized C++; cpu's input gradients cost about its forward conv (and
 * skip the zeros a strided composition multiplies) while its filter gradients cost 10-70x
 * more; wasm's Conv2DBackpropInput is 10x its forward and it has no other backprop kernel.
 * Either way the result stays differentiable: the backprop kernels' gradients are below.
 */
const NATIVE_BACKPROP = { input: new Set(['tensorflow', 'cpu']), filter: new Set(['tensorflow']) };

function preferNative(which: 'input' | 'filter', kernelName: string, a: ConvAttrs): boolean {
  const backend = tf.getBackend();
  // tfjs's backprop kernels ignore dilations.
  return NATIVE_BACKPROP[which].has(backend) && pair(a.dilations as number | number[] | undefined).every((d) => d === 1)
    && tf.getKernel(kernelName, backend) != null;
}

function runKernel(kernelName: string, inputs: tf.NamedTensorMap, attrs: object): tf.Tensor4D {
  return tf.engine().runKernel(kernelName, inputs, attrs as tf.NamedAttrMap) as tf.Tensor4D;
}

/** Gradient configs for the family's forward kernel and both of its backprop kernels. */
export function familyGradients(f: ConvFamily): tf.GradConfig[] {
  const { forward: forwardKernel, backpropInput: inputKernel, backpropFilter: filterKernel } = f.kernels;
  const inputGrad = (dy: tf.Tensor4D, filter: tf.Tensor4D, a: ConvAttrs, xShape: number[]) =>
    preferNative('input', inputKernel, a)
      ? runKernel(inputKernel, { dy, filter }, { ...a, dataFormat: 'NHWC', inputShape: xShape })
      : f.inputGrad(dy, filter, convInfo(xShape, filter.shape, a, f.depthwise));
  const filterGrad = (x: tf.Tensor4D, dy: tf.Tensor4D, a: ConvAttrs, filterShape: number[]) =>
    preferNative('filter', filterKernel, a)
      ? runKernel(filterKernel, { x, dy }, { ...a, dataFormat: 'NHWC', filterShape })
      : f.filterGrad(x, dy, convInfo(x.shape, filterShape, a, f.depthwise));
  const native = tf.getGradient(forwardKernel);
  const forward: tf.GradConfig = {
    kernelName: forwardKernel,
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs): GradMap => {
      const a = asAttrs(attrs);
      // NCHW is not a layout Harden trains in (wasm cannot run it); keep tfjs's own path.
      if (a.dataFormat === 'NCHW' && native != null) return native.gradFunc(dy, saved, attrs);
      const [x, filter] = saved as tf.Tensor4D[];
      const g = dy as tf.Tensor4D;
      return { x: () => inputGrad(g, filter, a, x.shape), filter: () => filterGrad(x, g, a, filter.shape) };
    },
  };
  const backpropInput: tf.GradConfig = {
    kernelName: inputKernel,
    inputsToSave: ['dy', 'filter'],
    gradFunc: (ddx, saved, attrs): GradMap => {
      const [dy, filter] = saved as tf.Tensor4D[];
      const g = ddx as tf.Tensor4D;
      const a = asAttrs(attrs);
      return { dy: () => f.forward(g, filter, a), filter: () => filterGrad(g, dy, a, filter.shape) };
    },
  };
  const backpropFilter: tf.GradConfig = {
    kernelName: filterKernel,
    inputsToSave: ['x', 'dy'],
    gradFunc: (ddw, saved, attrs): GradMap => {
      const [x, dy] = saved as tf.Tensor4D[];
      const g = ddw as tf.Tensor4D;
      const a = asAttrs(attrs);
      return { x: () => inputGrad(dy, g, a, x.shape), dy: () => f.forward(x, g, a) };
    },
  };
  return [forward, backpropInput, backpropFilter];
}

/**
 * Registers `compute` as the kernel `kernelName` on `backendName`, replacing any existing
 * one. The kernel is composed of ordinary tfjs ops (they run untaped inside a kernel).
 */
export function registerComposedKernel(
  kernelName: string, backendName: string,
  compute: (inputs: Record<string, tf.Tensor>, attrs: tf.NamedAttrMap) => tf.Tensor,
): void {
  replaceKernel({
    kernelName,
    backendName,
    kernelFunc: ({ inputs, attrs }) => tf.tidy(() => {
      const wrapped: Record<string, tf.Tensor> = {};
      for (const [name, t] of Object.entries(inputs)) if (t != null) wrapped[name] = detach(t);
      return compute(wrapped, attrs ?? {});
    }),
  });
}

/** Registers the family's two backprop kernels, built from forward convolutions, on a backend. */
export function registerFamilyKernels(f: ConvFamily, backendName: string): void {
  registerComposedKernel(f.kernels.backpropInput, backendName, ({ dy, filter }, attrs) => {
    const a = attrs as unknown as ConvAttrs & { inputShape: Shape4 };
    return f.inputGrad(dy as tf.Tensor4D, filter as tf.Tensor4D, convInfo(a.inputShape, filter.shape, a, f.depthwise));
  });
  registerComposedKernel(f.kernels.backpropFilter, backendName, ({ x, dy }, attrs) => {
    const a = attrs as unknown as ConvAttrs & { filterShape: Shape4 };
    return f.filterGrad(x as tf.Tensor4D, dy as tf.Tensor4D, convInfo(x.shape, a.filterShape, a, f.depthwise));
  });
}
