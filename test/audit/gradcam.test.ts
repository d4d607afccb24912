import { describe, it, expect, beforeAll } from 'vitest';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, type OnnxModel } from '../../src/onnx/model.js';
import { initBackend } from '../../src/engine/backend.js';
import { CamModel, resolveCamLayer, upsampleMaps } from '../../src/audit/gradcam.js';

// A model that is linear in space: A = Conv1×1(x) (2 channels), y = W · GAP(A) + b. Then
// ∂y_c/∂A^k_ij = W_ck / (h·w) for every pixel, so Grad-CAM is ReLU(Σ_k W_ck/(h·w) · A^k) exactly.
const a = [1.5, -2], cb = [0.25, 0.5];
const W = [[1, 2], [-3, 0.5], [0.2, -1]];
function toy(): OnnxModel {
  const g = new GraphBuilder({ opset: 13 });
  g.input('x', ['batch', 1, 3, 4]);
  g.initializer('cw', { data: a, shape: [2, 1, 1, 1] });
  g.initializer('cb', { data: cb, shape: [2] });
  g.initializer('fw', { data: W.flat(), shape: [3, 2] });
  g.initializer('fb', { data: [0.1, 0.2, 0.3], shape: [3] });
  g.node('Conv', ['x', 'cw', 'cb'], ['A'], { kernel_shape: [1, 1] }, { name: 'conv' });
  g.node('GlobalAveragePool', ['A'], ['gap']);
  g.node('Flatten', ['gap'], ['f']);
  g.node('Gemm', ['f', 'fw', 'fb'], ['logits'], { transB: 1 }, { name: 'fc' });
  g.output('logits', ['batch', 3]);
  return { proto: decodeModel(g.toBytes(), 'toy.onnx') };
}

describe('Grad-CAM', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('equals the hand-computed map of a linear-in-space model', () => {
    const x = Float32Array.from({ length: 2 * 12 }, (_, i) => ((i * 7) % 11) / 5 - 1);
    const classes = Int32Array.from([0, 1]);
    const cam = new CamModel(toy(), 'toy.onnx', [1, 3, 4]);
    try {
      expect(cam.layer).toBe('A');
      expect(cam.shape).toEqual([2, 3, 4]);
      const maps = cam.maps(x, [1, 3, 4], classes);
      for (let n = 0; n < 2; n++) {
        for (let p = 0; p < 12; p++) {
          let s = 0;
          for (let k = 0; k < 2; k++) s += (W[classes[n]!]![k]! / 12) * (a[k]! * x[n * 12 + p]! + cb[k]!);
          expect(maps[n * 12 + p]).toBeCloseTo(Math.max(0, s), 6);
        }
      }
      // Both signs occur, so the ReLU was exercised.
      expect(maps.some((v) => v === 0) && maps.some((v) => v > 0)).toBe(true);
    } finally {
      cam.dispose();
    }
  });

  it('names layers by node or tensor, and refuses a layer that is not spatial', () => {
    const m = toy();
    expect(resolveCamLayer(m.proto, 'toy.onnx', 'conv')).toBe('A');
    expect(resolveCamLayer(m.proto, 'toy.onnx', 'A')).toBe('A');
    expect(() => resolveCamLayer(m.proto, 'toy.onnx', 'nope')).toThrow(/--cam-layer 'nope': .*no node/);
    expect(() => new CamModel(m, 'toy.onnx', [1, 3, 4], 'fc')).toThrow(/--cam-layer 'logits' is not spatial: .*\[1, 3\]/);
  });

  it('upsamples maps bilinearly (a constant map stays constant, corners keep their values)', () => {
    const maps = Float32Array.from([1, 2, 3, 4, 5, 5, 5, 5]);
    const up = upsampleMaps(maps, 2, 2, 2, 4, 4);
    expect(up[0]).toBeCloseTo(1);
    expect(up[15]).toBeCloseTo(4);
    expect([...up.subarray(16)].every((v) => Math.abs(v - 5) < 1e-6)).toBe(true);
  });
});
