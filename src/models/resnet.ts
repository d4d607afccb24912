/**
 * CIFAR ResNet (He et al. 2016, §4.2): Conv 3×3 16 → BN → ReLU → three stages of n basic blocks
 * (16, 32, 64 channels; the first block of stages 2 and 3 has stride 2 and a 1×1 conv + BN
 * projection shortcut) → GlobalAveragePool → Flatten → Gemm classes. Depth 6n + 2:
 * resnet8 (n = 1), resnet20 (n = 3). Convolutions before BN have no bias, as in PyTorch.
 */
import type { ModelProto } from '../onnx/schema.js';
import { type ArchOptions, Net, validateOptions } from './layers.js';

export const RESNET_WIDTHS = [16, 32, 64] as const;

function basicBlock(net: Net, name: string, x: string, cin: number, cout: number, stride: number): string {
  let y = net.relu(net.batchNorm(`${name}.bn1`, net.conv(`${name}.conv1`, x, cin, cout, { kernel: 3, stride, pad: 1, bias: false }), cout));
  y = net.batchNorm(`${name}.bn2`, net.conv(`${name}.conv2`, y, cout, cout, { kernel: 3, pad: 1, bias: false }), cout);
  let shortcut = x;
  if (stride !== 1 || cin !== cout) {
    shortcut = net.batchNorm(`${name}.shortcut.bn`, net.conv(`${name}.shortcut.conv`, x, cin, cout, { kernel: 1, stride, bias: false }), cout);
  }
  return net.relu(net.add(y, shortcut));
}

/** A CIFAR ResNet with `n` basic blocks per stage (depth 6n + 2). */
export function buildCifarResnet(arch: string, n: number, opts: ArchOptions): ModelProto {
  validateOptions(arch, opts);
  const [c, h, w] = opts.inputShape;
  if (Math.min(h, w) < 4) throw new Error(`${arch}: input ${h}×${w} is too small (needs at least 4×4)`);

  const net = new Net(arch, opts.seed);
  let x = net.input(opts.inputShape);
  x = net.relu(net.batchNorm('bn1', net.conv('conv1', x, c, 16, { kernel: 3, pad: 1, bias: false }), 16));
  let cin = 16;
  RESNET_WIDTHS.forEach((width, stage) => {
    for (let b = 0; b < n; b++) {
      const stride = stage > 0 && b === 0 ? 2 : 1;
      x = basicBlock(net, `layer${stage + 1}.${b}`, x, cin, width, stride);
      cin = width;
    }
  });
  x = net.flatten(net.globalAvgPool(x));
  net.linear('fc', x, cin, opts.classes, 'logits');
  return net.finish(opts.classes);
}

export function buildResnet8(opts: ArchOptions): ModelProto {
  return buildCifarResnet('resnet8', 1, opts);
}

export function buildResnet20(opts: ArchOptions): ModelProto {
  return buildCifarResnet('resnet20', 3, opts);
}
