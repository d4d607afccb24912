/**
 * LeNet-5: Conv 6@5×5 → ReLU → MaxPool 2 → Conv 16@5×5 → ReLU → MaxPool 2 → Flatten →
 * Gemm 120 → ReLU → Gemm 84 → ReLU → Gemm classes. Images smaller than 32×32 are padded by 2 in
 * the first convolution (28×28 → 16@5×5 features, as 32×32 without padding).
 */
import type { ModelProto } from '../onnx/schema.js';
import { type ArchOptions, Net, outSize, validateOptions } from './layers.js';

export function buildLenet5(opts: ArchOptions): ModelProto {
  validateOptions('lenet5', opts);
  const [c, h, w] = opts.inputShape;
  const pad = Math.min(h, w) < 32 ? 2 : 0;
  const side = (s: number) => outSize(outSize(outSize(outSize(s, 5, 1, pad), 2, 2, 0), 5, 1, 0), 2, 2, 0);
  const fh = side(h);
  const fw = side(w);
  if (!(fh >= 1 && fw >= 1)) throw new Error(`lenet5: input ${h}×${w} is too small (needs at least 12×12)`);

  const net = new Net('lenet5', opts.seed);
  let x = net.input(opts.inputShape);
  x = net.maxPool(net.relu(net.conv('conv1', x, c, 6, { kernel: 5, pad })));
  x = net.maxPool(net.relu(net.conv('conv2', x, 6, 16, { kernel: 5 })));
  x = net.flatten(x);
  x = net.relu(net.linear('fc1', x, 16 * fh * fw, 120));
  x = net.relu(net.linear('fc2', x, 120, 84));
  net.linear('fc3', x, 84, opts.classes, 'logits');
  return net.finish(opts.classes);
}
