import { describe, it, expect } from 'vitest';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, type OnnxModel } from '../../src/onnx/model.js';
import type { Dataset } from '../../src/data/types.js';
import { measureMemories } from '../../src/audit/audit.js';
import { defaultPLo, prevalence, recognition, topK } from '../../src/audit/memories.js';
import { distraction, iou, outsideBox, topMask } from '../../src/audit/overlap.js';

// Images are 4 pixels; the backbone is Flatten → Mul(mask) → Relu (the 4 features).
// M^s: mask 1111, head 10·I (4 classes: "which pixel is on"). M^t: mask 1110 (feature 3 forgotten),
// a 2-class head. Target images light pixel 0 or 1 only, so with k = 1 v = [6, 4, 0, 0],
// F = {2, 3} (v_lo = 0); M^{st} on a one-hot source image of class c gives p_c = e^10/(e^10 + 3)
// for c < 3 and 1/4 for c = 3 (its feature is gone), so with p_lo = 0.5, L = {2}.
function net(mask: number[], head: number[][]): OnnxModel {
  const g = new GraphBuilder({ opset: 13 });
  g.input('x', ['batch', 1, 2, 2]);
  g.initializer('mask', { data: mask, shape: [4] });
  g.initializer('w', { data: head.flat(), shape: [head.length, 4] });
  g.initializer('b', { data: new Array(head.length).fill(0), shape: [head.length] });
  g.node('Flatten', ['x'], ['flat']);
  g.node('Mul', ['flat', 'mask'], ['masked']);
  g.node('Relu', ['masked'], ['features']);
  g.node('Gemm', ['features', 'w', 'b'], ['logits'], { transB: 1 });
  g.output('logits', ['batch', head.length]);
  return { proto: decodeModel(g.toBytes(), 'net.onnx') };
}

function oneHot(pixels: number[], labels: number[], classes: number): Dataset {
  const images = new Float32Array(pixels.length * 4);
  pixels.forEach((p, i) => (images[i * 4 + p] = 1));
  return { name: 'one-hot', images, labels: Int32Array.from(labels), shape: [1, 2, 2], classes };
}

const eye = (n: number, s: number) => Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? s : 0)));
const source = { model: net([1, 1, 1, 1], eye(4, 10)), name: 'source.onnx' };
const finetuned = { model: net([1, 1, 1, 0], [[1, -1, 0, 0], [-1, 1, 0, 0]]), name: 'finetuned.onnx' };
const target = oneHot([0, 0, 0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 1, 1, 1, 1], 2);
const sourceData = oneHot([0, 1, 2, 3, 0, 1, 2, 3], [0, 1, 2, 3, 0, 1, 2, 3], 4);

describe('source-only features and lingering memories', () => {
  it('finds v, F and L of the constructed case', async () => {
    const m = await measureMemories({ source, finetuned, sourceData, targetData: target }, { vLo: 0 });
    expect([...m.prevalence]).toEqual([6, 4, 0, 0]);
    expect(m.F).toEqual([2, 3]);
    const high = Math.exp(10) / (Math.exp(10) + 3);
    [high, high, high, 0.25].forEach((p, c) => expect(m.recognition[c]).toBeCloseTo(p, 5));
    expect(m.pLo).toBe(0.5);
    expect(m.L).toEqual([2]);
    expect(m.featureTensor).toBe('features');
  });

  it('counts top-k membership with ties to the lower class, and takes the flags', async () => {
    // k = 2: the second class of every target image is a tie among zeros → class 0 or 1.
    const m = await measureMemories({ source, finetuned, sourceData, targetData: target }, { k: 2, vLo: 0, pLo: 0.2 });
    expect([...m.prevalence]).toEqual([10, 10, 0, 0]);
    expect(m.L).toEqual([2, 3]);
    expect(topK([0.1, 0.5, 0.5, 0.2], 2)).toEqual([1, 2]);
    // Rows [3, 1, 2] → {0, 2}, [0, 5, 4] → {1, 2}.
    expect([...prevalence(Float32Array.from([3, 1, 2, 0, 5, 4]), 3, 2)]).toEqual([1, 1, 2]);
    expect(defaultPLo(10)).toBe(0.5);
    expect(defaultPLo(100)).toBeCloseTo(0.1);
    recognition(Float32Array.from([0.9, 0.1, 0.3, 0.7, 0.5, 0.5]), Int32Array.from([0, 1, 0]), 2).forEach((s) => expect(s).toBeCloseTo(0.7, 6));
  });

  it('refuses source and fine-tuned models whose feature tensors differ in size', async () => {
    const wide = { model: net([1, 1, 1, 1], eye(4, 1)), name: 'wide.onnx' };
    const g = new GraphBuilder({ opset: 13 });
    g.input('x', ['batch', 1, 2, 2]);
    g.initializer('w', { data: [1, 2, 3, 4, 5, 6], shape: [2, 3] });
    g.node('Flatten', ['x'], ['flat']);
    g.node('Slice', ['flat', 's', 'e', 'a'], ['f3']);
    g.initializer('s', { data: [0], shape: [1], dtype: 'int64' });
    g.initializer('e', { data: [3], shape: [1], dtype: 'int64' });
    g.initializer('a', { data: [1], shape: [1], dtype: 'int64' });
    g.node('Gemm', ['f3', 'w'], ['logits'], { transB: 1 });
    g.output('logits', ['batch', 2]);
    const narrow = { model: { proto: decodeModel(g.toBytes(), 'narrow.onnx') }, name: 'narrow.onnx' };
    await expect(measureMemories({ source: wide, finetuned: narrow, sourceData, targetData: target })).rejects.toThrow(/wide\.onnx: feature tensors differ: its classifier takes 4 features, narrow\.onnx's feature tensor 'f3' has 3/);
  });

  it('refuses target images of another size', async () => {
    const big: Dataset = { ...target, images: new Float32Array(10 * 9), shape: [1, 3, 3] };
    await expect(measureMemories({ source, finetuned, sourceData, targetData: big })).rejects.toThrow(/--target-data: images are \[1, 3, 3\] but the --source-data images are \[1, 2, 2\]/);
  });
});

describe('IoU of the top pixels', () => {
  it('selects the top fraction inside the region and computes IoU by hand', () => {
    // 10 pixels, region excludes pixels 0 and 1 (8 allowed → k = round(0.25·8) = 2).
    const region = Uint8Array.from([0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    const a = [9, 9, 5, 1, 7, 0, 0, 2, 0, 0];
    const b = [0, 0, 5, 6, 1, 0, 0, 0, 0, 0];
    expect([...topMask(a, region, 0.25)]).toEqual([0, 0, 1, 0, 1, 0, 0, 0, 0, 0]);
    expect([...topMask(b, region, 0.25)]).toEqual([0, 0, 1, 1, 0, 0, 0, 0, 0, 0]);
    expect(distraction(a, b, region, 0.25)).toBeCloseTo(1 / 3);
    expect(iou(Uint8Array.from([1, 1, 0]), Uint8Array.from([1, 1, 0]))).toBe(1);
    expect(iou(Uint8Array.from([1, 0, 0]), Uint8Array.from([0, 1, 0]))).toBe(0);
    expect(iou(new Uint8Array(3), new Uint8Array(3))).toBe(0);
    // Ties go to the lower index; non-positive values are never selected.
    expect([...topMask([1, 1, 1, 1], new Uint8Array(4).fill(1), 0.5)]).toEqual([1, 1, 0, 0]);
    expect([...topMask([0, 0, -1, 3], new Uint8Array(4).fill(1), 0.5)]).toEqual([0, 0, 0, 1]);
  });

  it('masks out the pasted box', () => {
    expect([...outsideBox(3, 3, { x: 1, y: 0, w: 2, h: 2 })]).toEqual([1, 0, 0, 1, 0, 0, 1, 1, 1]);
  });
});
