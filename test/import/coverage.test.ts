import { describe, it, expect } from 'vitest';
import { findConverter } from '../../src/import/registry.js';
import '../../src/import/graph.js';

/** The Foundation issue's op list: each must resolve at the opsets PyTorch exports use. */
const REQUIRED = `Conv ConvTranspose Gemm MatMul Add Sub Mul Div Pow Sqrt Neg Abs Exp Log Reciprocal Relu LeakyRelu PRelu
Sigmoid Tanh Clip HardSigmoid HardSwish Softplus Elu Erf BatchNormalization LayerNormalization InstanceNormalization
MaxPool AveragePool GlobalAveragePool GlobalMaxPool Flatten Reshape Transpose Squeeze Unsqueeze Concat Split Slice
Gather Shape Size Expand Tile Pad Cast Constant ConstantOfShape Identity Dropout Where Equal Less Greater Not Range
Softmax LogSoftmax ReduceMean ReduceSum ReduceMax ReduceMin ReduceL2 ArgMax Resize`.split(/\s+/);

describe('op coverage', () => {
  for (const opset of [11, 13, 17, 18]) {
    it(`every required op has a converter at opset ${opset}`, () => {
      const missing = REQUIRED.filter((op) => !findConverter('', op, opset) && !(op === 'LayerNormalization' && opset < 17) && !(op === 'HardSwish' && opset < 14));
      expect(missing).toEqual([]);
    });
  }
  it('Gelu resolves from opset 20 only', () => {
    expect(findConverter('', 'Gelu', 20)).toBeDefined();
    expect(findConverter('', 'Gelu', 19)).toBeUndefined();
  });
  it('the newest registration at or below the opset wins', () => {
    expect(findConverter('', 'Squeeze', 12)!.since).toBeLessThan(13);
    expect(findConverter('', 'Squeeze', 13)!.since).toBe(13);
    expect(findConverter('', 'Softmax', 12)!.since).toBeLessThan(13);
    expect(findConverter('', 'Softmax', 17)!.since).toBe(13);
  });
});
