import { describe, expect, it } from 'vitest';
import { cloneModel, decodeModel, encodeModel, initializerMap, opsetOf } from '../../src/onnx/model.js';
import { ModelProtoT, decodeMessage, encodeMessage, toNumber } from '../../src/onnx/schema.js';
import { hostToFloat32 } from '../../src/onnx/tensor.js';
import { FIXTURES, bitsEqual, fixture, maxAbsDiff, runFixture } from './onnx-helpers.js';

describe('decode → encode of real PyTorch exports', () => {
  for (const name of FIXTURES) {
    it(`${name}: byte-identical re-encoding and identical onnxruntime outputs`, async () => {
      const f = fixture(name);
      const proto = decodeModel(f.bytes, f.file);
      const again = encodeModel(proto);
      expect(again.length).toBe(f.bytes.length);
      expect(Buffer.compare(Buffer.from(again), f.bytes)).toBe(0);

      expect(opsetOf(proto)).toBe(f.opset);
      expect(opsetOf(proto, 'ai.onnx')).toBe(f.opset);
      expect(proto.graph!.input[0]!.name).toBe('input');
      expect(proto.graph!.output[0]!.name).toBe('logits');

      const original = await runFixture(f.file, f);
      const reencoded = await runFixture(again, f);
      expect(bitsEqual(original, reencoded)).toBe(true);
      expect(maxAbsDiff(original, f.output)).toBeLessThan(5e-6);
    });
  }

  it('a clone is independent and encodes to the same bytes', () => {
    const f = fixture('resnet8_bn');
    const proto = decodeModel(f.bytes, f.file);
    const copy = cloneModel(proto);
    copy.graph!.node[0]!.name = 'renamed';
    expect(proto.graph!.node[0]!.name).not.toBe('renamed');
    expect(Buffer.compare(Buffer.from(encodeModel(cloneModel(proto))), f.bytes)).toBe(0);
  });

  it('int64 fields decode exactly (dims, ir_version, opset version)', () => {
    const f = fixture('lenet5_mnist');
    const proto = decodeModel(f.bytes, f.file);
    expect(toNumber(proto.ir_version)).toBeGreaterThanOrEqual(7);
    const inits = initializerMap(proto);
    const conv1 = [...inits.values()].find((h) => h.shape.length === 4)!;
    expect(conv1.shape.every((d) => Number.isInteger(d) && d > 0)).toBe(true);
    expect(hostToFloat32(conv1).length).toBe(conv1.shape.reduce((a, b) => a * b, 1));
  });

  it('fields unknown to the schema survive decode → encode', () => {
    const f = fixture('lenet5_mnist');
    // Field 99 (varint 7) appended to the top-level message: a future IR addition.
    const withUnknown = Buffer.concat([f.bytes, Buffer.from([0x98, 0x06, 0x07])]);
    const proto = decodeMessage<object>(ModelProtoT, withUnknown);
    expect(Buffer.compare(Buffer.from(encodeMessage(ModelProtoT, proto)), withUnknown)).toBe(0);
  });
});
