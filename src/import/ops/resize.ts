import * as tf from '@tensorflow/tfjs-core';
import { registerOp, type NodeInfo } from '../registry.js';
import { DeviceValue, type Value } from '../values.js';
import { hostToTensor, toHost } from '../host.js';

/**
 * Resize (and the older Upsample), modes 'nearest' and 'linear', with every coordinate
 * transformation but tf_crop_and_resize.
 *
 * tfjs's resizeBilinear/resizeNearestNeighbor know only two flags and their own nearest
 * rounding, so each resized axis is instead resampled by a matrix product with an [out, in]
 * interpolation matrix computed on the host: one 1 per row for nearest, two lerp weights for
 * linear. That is exact for every mode, separable (multilinear over any number of axes), and
 * its gradient is another matrix product, so it differentiates to any order on every backend.
 * The price is O(in · out) work per resampled line instead of O(out): fine for the feature
 * maps of classifiers. (A NaN or infinity in the input also spreads along its line, 0 · ∞.)
 * Rank-4 values are resized in NHWC. Coordinates are computed in float32, as onnxruntime
 * does, so that ties round the same way.
 */

const f32 = Math.fround;

/** Input coordinate of output index x on one axis (ONNX coordinate_transformation_mode). */
type CoordinateFn = (x: number, scale: number, outLen: number, inLen: number) => number;

const halfPixel: CoordinateFn = (x, s) => f32(f32(f32(x + 0.5) / s) - 0.5);

const COORDINATES: Record<string, CoordinateFn> = {
  half_pixel: halfPixel,
  pytorch_half_pixel: (x, s, outLen) => (outLen > 1 ? halfPixel(x, s, outLen, 0) : 0),
  half_pixel_symmetric: (x, s, outLen, inLen) => {
    const adjustment = f32(outLen / f32(s * inLen));
    const offset = f32(f32(inLen / 2) * f32(1 - adjustment));
    return f32(offset + (x + 0.5) / s - 0.5); // this last step in double, as onnxruntime does
  },
  align_corners: (x, _s, outLen, inLen) => (outLen === 1 ? 0 : f32(f32(x * (inLen - 1)) / (outLen - 1))),
  asymmetric: (x, s) => f32(x / s),
  tf_half_pixel_for_nn: (x, s) => f32(f32(x + 0.5) / s),
};

/** Nearest input index of a coordinate (ONNX nearest_mode; 'simple' is Resize-10/Upsample's). */
type NearestFn = (x: number, downsampling: boolean) => number;

const roundHalfAway = (x: number) => Math.sign(x) * Math.round(Math.abs(x));

const NEAREST: Record<string, NearestFn> = {
  round_prefer_floor: (x) => (x === Math.trunc(x) + 0.5 ? Math.floor(x) : roundHalfAway(x)),
  round_prefer_ceil: roundHalfAway,
  floor: Math.floor,
  ceil: Math.ceil,
  simple: (x, downsampling) => (downsampling ? Math.ceil(x) : Math.trunc(x)),
};

interface ResizeSpec {
  linear: boolean;
  coordinate: CoordinateFn;
  nearest: NearestFn;
  /** Which ONNX axes scales/sizes refer to (Resize-18 `axes`); all when undefined. */
  axes?: number[];
}

const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);

/** The row-major [outLen, inLen] matrix that resamples one axis. */
function resamplingMatrix(spec: ResizeSpec, inLen: number, outLen: number, scale: number): Float32Array {
  const m = new Float32Array(outLen * inLen);
  for (let o = 0; o < outLen; o++) {
    const x = spec.coordinate(o, scale, outLen, inLen);
    const row = o * inLen;
    if (!spec.linear) {
      m[row + clamp(spec.nearest(x, scale < 1), 0, inLen - 1)] = 1;
      continue;
    }
    const c = clamp(x, 0, inLen - 1);
    const i0 = Math.floor(c);
    const w = f32(c - i0);
    m[row + i0] += 1 - w;
    m[row + Math.min(i0 + 1, inLen - 1)] += w;
  }
  return m;
}

/** Multiply the interpolation matrix into `axis` of `t`. */
function resampleAxis(t: tf.Tensor, axis: number, matrix: Float32Array, outLen: number): tf.Tensor {
  const shape = t.shape;
  const inLen = shape[axis];
  const pre = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const post = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const m = tf.tensor3d(matrix, [1, outLen, inLen]);
  const y = tf.matMul(m, tf.reshape(t, [pre, inLen, post]));
  return tf.reshape(y, [...shape.slice(0, axis), outLen, ...shape.slice(axis + 1)]);
}

/** Storage axis of each ONNX axis for an NHWC-held rank-4 value. */
const NHWC_AXIS = [0, 3, 1, 2];

/** Output size and scale of every axis, from `scales` or `sizes` (given for `spec.axes`). */
function geometry(node: NodeInfo, spec: ResizeSpec, inShape: number[], scales?: number[], sizes?: number[]): { out: number[]; scale: number[] } {
  const rank = inShape.length;
  const axes = (spec.axes ?? inShape.map((_, i) => i)).map((a) => (a < 0 ? a + rank : a));
  if (axes.some((a) => a < 0 || a >= rank)) node.fail(`axes [${spec.axes}] out of range for a rank-${rank} input`);
  const values = scales ?? sizes!;
  if (values.length !== axes.length) node.fail(`${scales ? 'scales' : 'sizes'} has ${values.length} values for ${axes.length} axes`);
  const out = [...inShape];
  const scale = inShape.map(() => 1);
  axes.forEach((a, k) => {
    if (scales) {
      scale[a] = f32(scales[k]);
      out[a] = Math.floor(f32(scale[a] * inShape[a]));
    } else {
      out[a] = sizes![k];
      scale[a] = f32(out[a] / inShape[a]);
    }
  });
  if (scale.some((s) => !(s > 0)) || out.some((d) => d < 1)) node.fail(`output shape [${out}] (scales [${scale}]) is not supported`);
  return { out, scale };
}

/** Present and non-empty, as a host value. */
function given(v: Value | undefined): number[] | undefined {
  const h = v ? toHost(v) : undefined;
  return h && h.data.length > 0 ? h.data : undefined;
}

/** The kernel, given where scales and sizes come from. */
function resizeKernel(node: NodeInfo, spec: ResizeSpec, scalesOf: (inputs: (Value | undefined)[]) => number[] | undefined, sizesSlot?: number) {
  return (inputs: (Value | undefined)[]) => {
    const xv = inputs[0]!;
    const x = xv.kind === 'host' ? new DeviceValue(hostToTensor(xv)) : xv;
    if (x.dtype !== 'float32') node.fail(`${x.dtype} input is not supported (only float32)`);
    const scales = scalesOf(inputs);
    const sizes = sizesSlot === undefined ? undefined : given(inputs[sizesSlot])?.map(Math.trunc);
    if (!scales === !sizes) node.fail('exactly one of scales and sizes must be given');
    const { out, scale } = geometry(node, spec, x.shape, scales, sizes);
    const nhwc = x.rank === 4;
    let t = nhwc ? x.nhwc() : x.onnx();
    x.shape.forEach((inLen, a) => {
      if (out[a] === inLen && scale[a] === 1) return;
      t = resampleAxis(t, nhwc ? NHWC_AXIS[a] : a, resamplingMatrix(spec, inLen, out[a], scale[a]), out[a]);
    });
    return [new DeviceValue(t, nhwc ? 'nhwc' : 'onnx')];
  };
}

/** `mode` as Resize-10 and Upsample know it: asymmetric coordinates, 'simple' nearest rounding. */
function legacySpec(node: NodeInfo): ResizeSpec {
  const mode = node.attrs.string('mode', 'nearest');
  if (mode !== 'nearest' && mode !== 'linear') node.fail(`mode '${mode}' is not supported (only nearest and linear)`);
  return { linear: mode === 'linear', coordinate: COORDINATES.asymmetric, nearest: NEAREST.simple };
}

function readSpec(node: NodeInfo): ResizeSpec {
  const a = node.attrs;
  const mode = a.string('mode', 'nearest');
  if (mode !== 'nearest' && mode !== 'linear') node.fail(`mode '${mode}' is not supported (only nearest and linear)`);
  const coordinateMode = a.string('coordinate_transformation_mode', 'half_pixel');
  if (!Object.hasOwn(COORDINATES, coordinateMode)) node.fail(`coordinate_transformation_mode '${coordinateMode}' is not supported`);
  const nearestMode = a.string('nearest_mode', 'round_prefer_floor');
  if (nearestMode === 'simple' || !Object.hasOwn(NEAREST, nearestMode)) node.fail(`nearest_mode '${nearestMode}' is not supported`);
  // Only cubic interpolation and tf_crop_and_resize read these.
  a.float('cubic_coeff_a');
  a.int('exclude_outside');
  a.float('extrapolation_value');
  let axes: number[] | undefined;
  if (node.opset >= 18) {
    if (a.int('antialias', 0) !== 0) node.fail('antialias=1 is not supported');
    const policy = a.string('keep_aspect_ratio_policy', 'stretch');
    if (policy !== 'stretch') node.fail(`keep_aspect_ratio_policy '${policy}' is not supported (only stretch)`);
    axes = a.ints('axes');
  }
  return { linear: mode === 'linear', coordinate: COORDINATES[coordinateMode], nearest: NEAREST[nearestMode], axes };
}

registerOp({
  opType: 'Resize',
  since: 10,
  convert: (node) => resizeKernel(node, legacySpec(node), (inputs) => given(inputs[1])),
});

registerOp({
  opType: 'Resize',
  since: 11,
  // Inputs: X, roi (read only by tf_crop_and_resize), scales, sizes.
  convert: (node) => resizeKernel(node, readSpec(node), (inputs) => given(inputs[2]), 3),
});

registerOp({
  opType: 'Upsample',
  since: 7,
  convert(node) {
    const scales = node.attrs.floats('scales') ?? node.fail("attribute 'scales' is missing");
    return resizeKernel(node, legacySpec(node), () => scales);
  },
});

registerOp({
  opType: 'Upsample',
  since: 9,
  convert: (node) => resizeKernel(node, legacySpec(node), (inputs) => given(inputs[1])),
});
