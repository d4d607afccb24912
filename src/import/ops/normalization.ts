import * as tf from '@tensorflow/tfjs-core';
import { registerOp, type NodeInfo } from '../registry.js';
import { DeviceValue, toTensor, type Layout, type Value } from '../values.js';

/**
 * BatchNormalization, InstanceNormalization and LayerNormalization, written with plain tfjs ops
 * (moments, sub, mul, rsqrt) so that they are differentiable twice, batch statistics included.
 * Channel-wise ops work in whichever layout the input is stored (NHWC keeps channels last), so a
 * conv → BN → ReLU chain pays for no transposes.
 */

/** The input in its stored layout, with where its channels are. */
interface ChannelView {
  t: tf.Tensor;
  layout: Layout;
  /** Shape that makes a per-channel [C] vector broadcast against `t`. */
  paramShape: number[];
  /** Every axis but the channel axis. */
  nonChannelAxes: number[];
}

function channelView(v: Value | undefined, node: NodeInfo): ChannelView {
  if (!v || v.kind !== 'device') return node.fail('input must be a tensor');
  if (v.rank < 2) node.fail(`rank-${v.rank} input is not supported`);
  if (v.layout === 'nhwc') return { t: v.nhwc(), layout: 'nhwc', paramShape: [-1], nonChannelAxes: [0, 1, 2] };
  const t = v.onnx();
  const rest = Array.from({ length: t.rank - 2 }, (_, i) => i + 2);
  return { t, layout: 'onnx', paramShape: [-1, ...rest.map(() => 1)], nonChannelAxes: [0, ...rest] };
}

/** A per-channel input ([C]) shaped to broadcast against the view. */
function perChannel(v: Value | undefined, view: ChannelView, node: NodeInfo, what: string): tf.Tensor {
  if (!v) return node.fail(`input '${what}' is required`);
  return tf.reshape(toTensor(v), view.paramShape);
}

interface Standardized {
  y: tf.Tensor;
  /** Statistics over the reduced axes, kept as size-1 dims. */
  mean: tf.Tensor;
  variance: tf.Tensor;
  invStd: tf.Tensor;
}

/** (x − mean) / sqrt(var + ε) over `axes`, with the (biased) statistics it used. */
function standardize(x: tf.Tensor, axes: number[], epsilon: number): Standardized {
  const { mean, variance } = tf.moments(x, axes, true);
  const invStd = tf.rsqrt(tf.add(variance, epsilon));
  return { y: tf.mul(tf.sub(x, mean), invStd), mean, variance, invStd };
}

/**
 * BatchNormalization. Inference uses the running statistics. Training mode (the run's
 * `training` flag; `training_mode = 1` since opset 14; before that, any output besides Y, which
 * is how those opsets say "training") normalizes with the batch mean and biased variance over
 * every axis but C, outputs running = momentum·running + (1 − momentum)·batch for mean and var,
 * and reports them for the mean/var inputs that are statistics variables. Before opset 14 the
 * saved_mean/saved_var outputs are the batch mean and 1/sqrt(var + ε), as onnxruntime gives them.
 */
function registerBatchNorm(since: 7 | 9 | 14): void {
  registerOp({
    opType: 'BatchNormalization',
    since,
    weightInputs: [1, 2],
    statisticInputs: [3, 4],
    convert(node) {
      const a = node.attrs;
      const epsilon = a.float('epsilon', 1e-5);
      const momentum = a.float('momentum', 0.9);
      if (since === 7 && a.int('spatial', 1) !== 1) node.fail('spatial = 0 (per-activation statistics) is not supported');
      const statsRequested = node.outputs.slice(1).some((name) => name);
      const trainingMode = since >= 14 ? a.int('training_mode', 0) === 1 : statsRequested;
      if (statsRequested && !trainingMode) node.fail('running_mean/running_var outputs need training_mode = 1');

      return (inputs, ctx) => {
        const view = channelView(inputs[0], node);
        const [gamma, beta, runMean, runVar] = ['scale', 'B', 'input_mean', 'input_var'].map((what, i) =>
          perChannel(inputs[i + 1], view, node, what),
        );

        if (!trainingMode && !ctx.training) {
          const k = tf.mul(gamma, tf.rsqrt(tf.add(runVar, epsilon)));
          return [new DeviceValue(tf.add(tf.mul(view.t, k), tf.sub(beta, tf.mul(runMean, k))), view.layout)];
        }
        const s = standardize(view.t, view.nonChannelAxes, epsilon);
        const y = new DeviceValue(tf.add(tf.mul(s.y, gamma), beta), view.layout);
        const update = (running: tf.Tensor, batch: tf.Tensor) =>
          tf.reshape(tf.add(tf.mul(running, momentum), tf.mul(tf.reshape(batch, running.shape), 1 - momentum)), [-1]);
        const stats = [update(runMean, s.mean), update(runVar, s.variance)];
        stats.forEach((t, i) => {
          const variable = node.variableInputs[3 + i];
          if (variable) ctx.updateStatistic(variable, t);
        });
        const saved = [s.mean, s.invStd].map((t) => new DeviceValue(tf.reshape(t, [-1])));
        return [y, ...stats.map((t) => new DeviceValue(t)), ...saved];
      };
    },
  });
}

registerBatchNorm(7);
registerBatchNorm(9);
registerBatchNorm(14);

registerOp({
  opType: 'InstanceNormalization',
  since: 6,
  weightInputs: [1, 2],
  convert(node) {
    const epsilon = node.attrs.float('epsilon', 1e-5);
    return (inputs) => {
      const view = channelView(inputs[0], node);
      if (view.t.rank < 3) node.fail('input must have spatial dimensions');
      const spatial = view.nonChannelAxes.slice(1);
      const { y } = standardize(view.t, spatial, epsilon);
      const out = tf.add(tf.mul(y, perChannel(inputs[1], view, node, 'scale')), perChannel(inputs[2], view, node, 'B'));
      return [new DeviceValue(out, view.layout)];
    };
  },
});

registerOp({
  opType: 'LayerNormalization',
  since: 17,
  weightInputs: [1, 2],
  convert(node) {
    const a = node.attrs;
    const axis = a.int('axis', -1);
    const epsilon = a.float('epsilon', 1e-5);
    if (a.int('stash_type', 1) !== 1) node.fail('only stash_type = 1 (float32 statistics) is supported');
    return (inputs) => {
      const [xv, scale, bias] = inputs;
      if (!xv || xv.kind !== 'device') return node.fail('input must be a tensor');
      const x = xv.onnx();
      const first = axis < 0 ? axis + x.rank : axis;
      if (first < 0 || first >= x.rank) node.fail(`axis ${axis} is out of range for a rank-${x.rank} input`);
      const s = standardize(x, Array.from({ length: x.rank - first }, (_, i) => first + i), epsilon);
      let y = tf.mul(s.y, toTensor(scale ?? node.fail("input 'Scale' is required")));
      if (bias) y = tf.add(y, toTensor(bias));
      return [new DeviceValue(y), new DeviceValue(s.mean), new DeviceValue(s.invStd)];
    };
  },
});
