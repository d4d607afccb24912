import { describe, it, expect } from 'vitest';
import { expectMatchesOrt, randomTensor } from '../helpers/ops.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel } from '../../src/onnx/model.js';
import { ImportedGraph } from '../../src/import/graph.js';
import { initBackend } from '../../src/engine/backend.js';

type Attrs = Record<string, number | number[] | string>;

function conv(inC: number, outC: number, k: number[], attrs: Attrs, bias = true, size = [7, 7]) {
  return async () => {
    const group = (attrs.group as number) ?? 1;
    await expectMatchesOrt((g) => {
      g.input('x', ['N', inC, ...size]);
      g.initializer('w', randomTensor([outC, inC / group, ...k], 31, 0.5));
      if (bias) g.initializer('b', randomTensor([outC], 32));
      g.node('Conv', bias ? ['x', 'w', 'b'] : ['x', 'w'], ['y'], attrs);
      g.output('y');
    }, { x: randomTensor([2, inC, ...size], 33) });
  };
}

describe('Conv', () => {
  it('3×3, no padding', conv(3, 4, [3, 3], {}));
  it('5×5 with pads (LeNet style)', conv(1, 6, [5, 5], { pads: [2, 2, 2, 2] }));
  it('asymmetric pads', conv(2, 3, [3, 3], { pads: [0, 1, 2, 1] }, false));
  it('stride 2', conv(3, 4, [3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] }));
  it('dilation 2', conv(3, 4, [3, 3], { dilations: [2, 2], pads: [2, 2, 2, 2] }));
  it('auto_pad SAME_UPPER, stride 2', conv(3, 4, [3, 3], { auto_pad: 'SAME_UPPER', strides: [2, 2] }, true, [8, 8]));
  it('auto_pad SAME_LOWER, stride 2', conv(3, 4, [4, 4], { auto_pad: 'SAME_LOWER', strides: [2, 2] }, true, [7, 7]));
  it('auto_pad VALID', conv(3, 4, [3, 3], { auto_pad: 'VALID' }));
  it('1×1 (shortcut)', conv(4, 8, [1, 1], { strides: [2, 2] }));
  it('depthwise (group = channels)', conv(4, 4, [3, 3], { group: 4, pads: [1, 1, 1, 1] }));
  it('depthwise with channel multiplier 2', conv(3, 6, [3, 3], { group: 3, pads: [1, 1, 1, 1], strides: [2, 2] }));
  it('grouped (2 groups)', conv(4, 6, [3, 3], { group: 2, pads: [1, 1, 1, 1] }));
  it('explicit kernel_shape', conv(2, 2, [3, 3], { kernel_shape: [3, 3] }));
  it('1-D convolution', async () => {
    await expectMatchesOrt((g) => {
      g.input('x', ['N', 3, 10]);
      g.initializer('w', randomTensor([4, 3, 3], 34, 0.5));
      g.node('Conv', ['x', 'w'], ['y'], { pads: [1, 1], strides: [2] });
      g.output('y');
    }, { x: randomTensor([2, 3, 10], 35) });
  });

  it('a 3-D convolution is refused with the node named', async () => {
    await initBackend('cpu');
    const g = new GraphBuilder({ opset: 13 });
    g.input('x', [1, 1, 4, 4, 4]);
    g.initializer('w', randomTensor([1, 1, 2, 2, 2], 1));
    g.node('Conv', ['x', 'w'], ['y'], { kernel_shape: [2, 2, 2] }, { name: 'conv3d' });
    g.output('y');
    expect(() => new ImportedGraph({ proto: decodeModel(g.toBytes(), 'c.onnx') }, 'c.onnx')).toThrow(/conv3d.*Conv.*3-D/);
  });
});

describe('ConvTranspose', () => {
  const convT = (inC: number, outC: number, k: number[], attrs: Attrs, size = [5, 5]) => async () => {
    const group = (attrs.group as number) ?? 1;
    await expectMatchesOrt((g) => {
      g.input('x', ['N', inC, ...size]);
      g.initializer('w', randomTensor([inC, outC / group, ...k], 36, 0.5));
      g.initializer('b', randomTensor([outC], 37));
      g.node('ConvTranspose', ['x', 'w', 'b'], ['y'], attrs);
      g.output('y');
    }, { x: randomTensor([2, inC, ...size], 38) });
  };
  it('stride 1', convT(3, 2, [3, 3], {}));
  it('stride 2 with pads', convT(3, 4, [3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] }));
  it('stride 2 with output_padding', convT(3, 4, [3, 3], { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] }));
  it('4×4 kernel, stride 2 (DCGAN upsampling)', convT(4, 2, [4, 4], { strides: [2, 2], pads: [1, 1, 1, 1] }));
  it('dilation 2', convT(2, 3, [3, 3], { dilations: [2, 2] }));
  it('grouped', convT(4, 4, [3, 3], { group: 2, strides: [2, 2] }));
  it('output_shape', convT(3, 2, [3, 3], { strides: [2, 2], output_shape: [10, 10] }));
  it('auto_pad SAME_UPPER', convT(3, 2, [3, 3], { strides: [2, 2], auto_pad: 'SAME_UPPER' }));
});
