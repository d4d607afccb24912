import * as tf from '@tensorflow/tfjs-core';
import { zeroInsert } from '../../engine/gradients/windows.js';
import { registerOp } from '../registry.js';
import { DeviceValue, toTensor } from '../values.js';
import { explicitPads, padOrCrop, readWindow, spatialInput, spatialOutput, tfPadding, withKernel, type Window2D } from './spatial.js';

/**
 * Conv and ConvTranspose, 1-D (as 2-D with H = 1) and 2-D, computed in NHWC. Grouped convs
 * run as one depthwise conv when group = channels, otherwise per group.
 */

/** ONNX weight [O, I, kh, kw] (or [O, I, k] for 1-D) as rank 4. */
function weight4(w: tf.Tensor): tf.Tensor4D {
  return (w.rank === 3 ? w.expandDims(2) : w) as tf.Tensor4D;
}

function convGroup(x: tf.Tensor4D, w: tf.Tensor4D, win: Window2D, pad: ReturnType<typeof tfPadding>): tf.Tensor4D {
  const filter = w.transpose([2, 3, 1, 0]) as tf.Tensor4D; // [O, I, kh, kw] → [kh, kw, I, O]
  return tf.conv2d(x, filter, win.strides, pad, 'NHWC', win.dilations);
}

registerOp({
  opType: 'Conv',
  since: 1,
  weightInputs: [1, 2],
  convert(node) {
    const group = node.attrs.int('group', 1);
    const attrWin = readWindow(node);
    return (inputs) => {
      const [xv, wv, bv] = inputs;
      const { t: x, oneD } = spatialInput(xv, node);
      const w = weight4(toTensor(wv!));
      const win = withKernel(attrWin, w.shape[2], w.shape[3]);
      const pad = tfPadding(explicitPads(win, x.shape[1], x.shape[2]));
      const [outC, inPerGroup] = w.shape;
      const inC = x.shape[3];
      if (inPerGroup * group !== inC) node.fail(`weight expects ${inPerGroup * group} input channels, input has ${inC}`);
      let y: tf.Tensor4D;
      if (group === 1) {
        y = convGroup(x, w, win, pad);
      } else if (group === inC && inPerGroup === 1) {
        const mult = outC / group;
        const filter = w.reshape([inC, mult, w.shape[2], w.shape[3]]).transpose([2, 3, 0, 1]) as tf.Tensor4D;
        y = tf.depthwiseConv2d(x, filter, win.strides, pad, 'NHWC', win.dilations);
      } else {
        const xs = tf.split(x, group, 3);
        const ws = tf.split(w, group, 0);
        y = tf.concat(xs.map((xg, g) => convGroup(xg as tf.Tensor4D, ws[g] as tf.Tensor4D, win, pad)), 3);
      }
      if (bv) y = tf.add(y, toTensor(bv));
      return [spatialOutput(y, oneD)];
    };
  },
});

registerOp({
  opType: 'ConvTranspose',
  since: 1,
  weightInputs: [1, 2],
  convert(node) {
    const a = node.attrs;
    const group = a.int('group', 1);
    const outputPadding = a.ints('output_padding', [0, 0]);
    const outputShape = a.ints('output_shape');
    const attrWin = readWindow(node);
    return (inputs) => {
      const [xv, wv, bv] = inputs;
      const { t: x, oneD } = spatialInput(xv, node);
      if (oneD) node.fail('1-D ConvTranspose is not supported');
      const w = weight4(toTensor(wv!));
      const win = withKernel(attrWin, w.shape[2], w.shape[3]);
      const [inC, outPerGroup, kh, kw] = w.shape;
      if (inC !== x.shape[3]) node.fail(`weight expects ${inC} input channels, input has ${x.shape[3]}`);
      const pads = transposePads(win, [x.shape[1], x.shape[2]], outputPadding, outputShape);
      // Transposed conv = stride-dilated input, padded by d·(k−1) − pad, convolved with the flipped kernel.
      const dil = zeroInsert(x, win.strides);
      const eh = win.dilations[0] * (kh - 1), ew = win.dilations[1] * (kw - 1);
      const xp = padOrCrop(dil, eh - pads[0], eh - pads[2] + pads[4], ew - pads[1], ew - pads[3] + pads[5]);
      const convOne = (xg: tf.Tensor4D, wg: tf.Tensor4D) => {
        // [I, O, kh, kw] → [kh, kw, I, O], flipped in space.
        const filter = tf.reverse(wg.transpose([2, 3, 0, 1]), [0, 1]) as tf.Tensor4D;
        return tf.conv2d(xg, filter, 1, 'valid', 'NHWC', win.dilations);
      };
      let y: tf.Tensor4D;
      if (group === 1) y = convOne(xp, w);
      else {
        const xs = tf.split(xp, group, 3);
        const ws = tf.split(w, group, 0);
        y = tf.concat(xs.map((xg, g) => convOne(xg as tf.Tensor4D, ws[g] as tf.Tensor4D)), 3);
      }
      if (y.shape[3] !== outPerGroup * group) node.fail('unexpected output channel count');
      if (bv) y = tf.add(y, toTensor(bv));
      return [new DeviceValue(y, 'nhwc')];
    };
  },
});

/**
 * Head/tail pads [top, left, bottom, right] and extra tail [outPadH, outPadW] for ConvTranspose,
 * following onnxruntime's rules when output_shape or auto_pad decide them.
 */
function transposePads(win: Window2D, inSize: [number, number], outputPadding: number[], outputShape?: number[]): number[] {
  const head = [win.pads[0], win.pads[1]], tail = [win.pads[2], win.pads[3]];
  const target = outputShape ? outputShape.slice(-2) : undefined;
  for (const i of [0, 1]) {
    const eff = (win.kernel[i] - 1) * win.dilations[i] + 1;
    const full = win.strides[i] * (inSize[i] - 1) + outputPadding[i] + eff;
    let total: number | undefined;
    if (target) total = full - target[i];
    else if (win.autoPad === 'SAME_UPPER' || win.autoPad === 'SAME_LOWER') total = full - inSize[i] * win.strides[i];
    else if (win.autoPad === 'VALID') total = 0;
    if (total !== undefined) {
      total = Math.max(0, total);
      // onnxruntime puts the odd pixel at the tail for SAME_UPPER and at the head otherwise.
      head[i] = win.autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : total - Math.floor(total / 2);
      tail[i] = total - head[i];
    }
  }
  return [head[0], head[1], tail[0], tail[1], outputPadding[0] ?? 0, outputPadding[1] ?? 0];
}
