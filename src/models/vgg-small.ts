/**
 * A small VGG: three stages of [Conv 3×3 (pad 1) → BN → ReLU] × 2 → MaxPool 2, with widths
 * 32, 64, 128, then GlobalAveragePool → Flatten → Gemm classes.
 */
import type { ModelProto } from '../onnx/schema.js';
import { type ArchOptions, Net, validateOptions } from './layers.js';

export const VGG_SMALL_WIDTHS = [32, 64, 128] as const;

export function buildVggSmall(opts: ArchOptions): ModelProto {
  validateOptions('vgg-small', opts);
  const [c, h, w] = opts.inputShape;
  if (Math.min(h, w) < 8) throw new Error(`vgg-small: input ${h}×${w} is too small (needs at least 8×8)`);

  const net = new Net('vgg-small', opts.seed);
  let x = net.input(opts.inputShape);
  let cin = c;
  VGG_SMALL_WIDTHS.forEach((width, stage) => {
    for (let i = 0; i < 2; i++) {
      const name = `features.${stage}.${i}`;
      x = net.relu(net.batchNorm(`${name}.bn`, net.conv(`${name}.conv`, x, cin, width, { kernel: 3, pad: 1, bias: false }), width));
      cin = width;
    }
    x = net.maxPool(x);
  });
  x = net.flatten(net.globalAvgPool(x));
  net.linear('classifier', x, cin, opts.classes, 'logits');
  return net.finish(opts.classes);
}
