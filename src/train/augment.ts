import type { HostTensor } from '../onnx/tensor.js';
import type { Random } from '../util/random.js';

/**
 * CIFAR-style augmentation on an NCHW batch, in place of a copy: a random crop from the image
 * zero-padded by `pad` on each side, and a horizontal flip with probability ½.
 */
export function cropAndFlip(x: HostTensor, rng: Random, pad = 4): HostTensor {
  const [n, c, h, w] = x.shape;
  const src = x.data as Float32Array;
  const out = new Float32Array(src.length);
  for (let i = 0; i < n; i++) {
    const dy = rng.int(2 * pad + 1) - pad, dx = rng.int(2 * pad + 1) - pad;
    const flip = rng.next() < 0.5;
    for (let ch = 0; ch < c; ch++) {
      const base = (i * c + ch) * h * w;
      for (let r = 0; r < h; r++) {
        const sr = r + dy;
        if (sr < 0 || sr >= h) continue;
        for (let col = 0; col < w; col++) {
          const sc = (flip ? w - 1 - col : col) + dx;
          if (sc >= 0 && sc < w) out[base + r * w + col] = src[base + sr * w + sc];
        }
      }
    }
  }
  return { dtype: 'float32', shape: [...x.shape], data: out };
}
