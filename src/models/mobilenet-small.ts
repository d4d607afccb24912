/**
 * A small MobileNet: Conv 3×3 16 (stride 1) → BN → ReLU6, then depthwise-separable blocks
 * (depthwise 3×3, group = channels → BN → ReLU6; pointwise 1×1 → BN → ReLU6) to widths
 * 32, 64, 128, each with stride 2, then one MobileNetV2 inverted-residual block at 128 channels
 * (1×1 expand ×4 → BN → ReLU6 → depthwise 3×3 → BN → ReLU6 → 1×1 project → BN, plus the input)
 * → GlobalAveragePool → Flatten → Gemm classes. ReLU6 is Clip(0, 6).
 */
import type { ModelProto } from '../onnx/schema.js';
import { type ArchOptions, Net, validateOptions } from './layers.js';

export const MOBILENET_SMALL_WIDTHS = [32, 64, 128] as const;
export const MOBILENET_SMALL_EXPANSION = 4;

function convBnRelu6(net: Net, name: string, x: string, cin: number, cout: number, kernel: number, stride: number, group = 1): string {
  const y = net.conv(`${name}.conv`, x, cin, cout, { kernel, stride, pad: (kernel - 1) / 2, group, bias: false });
  return net.relu6(net.batchNorm(`${name}.bn`, y, cout));
}

export function buildMobilenetSmall(opts: ArchOptions): ModelProto {
  validateOptions('mobilenet-small', opts);
  const [c, h, w] = opts.inputShape;
  if (Math.min(h, w) < 4) throw new Error(`mobilenet-small: input ${h}×${w} is too small (needs at least 4×4)`);

  const net = new Net('mobilenet-small', opts.seed);
  let x = net.input(opts.inputShape);
  x = convBnRelu6(net, 'stem', x, c, 16, 3, 1);
  let cin = 16;
  MOBILENET_SMALL_WIDTHS.forEach((width, i) => {
    x = convBnRelu6(net, `blocks.${i}.depthwise`, x, cin, cin, 3, 2, cin);
    x = convBnRelu6(net, `blocks.${i}.pointwise`, x, cin, width, 1, 1);
    cin = width;
  });
  const hidden = cin * MOBILENET_SMALL_EXPANSION;
  const name = `blocks.${MOBILENET_SMALL_WIDTHS.length}`;
  let y = convBnRelu6(net, `${name}.expand`, x, cin, hidden, 1, 1);
  y = convBnRelu6(net, `${name}.depthwise`, y, hidden, hidden, 3, 1, hidden);
  y = net.batchNorm(`${name}.project.bn`, net.conv(`${name}.project.conv`, y, hidden, cin, { kernel: 1, bias: false }), cin);
  x = net.add(x, y);
  x = net.flatten(net.globalAvgPool(x));
  net.linear('classifier', x, cin, opts.classes, 'logits');
  return net.finish(opts.classes);
}
