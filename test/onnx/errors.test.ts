import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode, HardenError } from '../../src/errors.js';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, encodeModel, loadModel } from '../../src/onnx/model.js';
import { type ModelProto, ModelProtoT, TensorProtoT, decodeMessage, encodeMessage, newTensor } from '../../src/onnx/schema.js';
import { fixture, tempDir } from './onnx-helpers.js';

function harden(fn: () => unknown): HardenError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(HardenError);
    const h = e as HardenError;
    expect(h.message).not.toMatch(/[\r\n]/);
    expect(h.exitCode).toBe(ExitCode.BadInput);
    return h;
  }
  throw new Error('expected a HardenError');
}

async function hardenAsync(p: Promise<unknown>): Promise<HardenError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(HardenError);
  expect((e as Error).message).not.toMatch(/[\r\n]/);
  return e as HardenError;
}

function tiny(): ModelProto {
  const b = new GraphBuilder();
  b.input('x', [1, 2]);
  b.initializer('b', { data: [1, 2], shape: [1, 2] });
  b.node('Add', ['x', 'b'], ['y']);
  b.output('y', [1, 2]);
  return b.build();
}

/** Re-encode after an edit, so the bytes are a real file the way a user would have it. */
function edited(edit: (m: ModelProto) => void): Uint8Array {
  const m = tiny();
  edit(m);
  return encodeMessage(ModelProtoT, m);
}

describe('malformed model files are one-line HardenErrors naming the file', () => {
  const f = fixture('resnet8_bn');

  it('empty file', () => {
    expect(harden(() => decodeModel(new Uint8Array(0), 'empty.onnx')).message).toBe('empty.onnx: the file is empty, not an ONNX model');
  });

  it('truncated file', () => {
    for (const cut of [1, 7, 100, f.bytes.length >> 1, f.bytes.length - 3]) {
      const e = harden(() => decodeModel(f.bytes.subarray(0, cut), 'cut.onnx'));
      expect(e.message).toMatch(/^cut\.onnx: /);
    }
  });

  it('random bytes', () => {
    let s = 12345;
    for (let trial = 0; trial < 20; trial++) {
      const bytes = new Uint8Array(64 + trial * 97).map(() => {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        return s >>> 24;
      });
      expect(harden(() => decodeModel(bytes, 'noise.bin')).message).toMatch(/^noise\.bin: /);
    }
    const text = new TextEncoder().encode('this is a text file\nnot a model\n');
    expect(harden(() => decodeModel(text, 'notes.txt')).message).toMatch(/^notes\.txt: /);
  });

  it('a valid protobuf that is not a model', () => {
    const tensor = encodeMessage(TensorProtoT, newTensor({ name: 'w', data_type: 1, dims: [2], float_data: [1, 2] }));
    expect(harden(() => decodeModel(tensor, 'tensor.pb')).message).toMatch(/^tensor\.pb: /);
    expect(harden(() => decodeModel(edited((m) => (m.graph = null)), 'nograph.onnx')).message).toBe(
      'nograph.onnx: not an ONNX model (it contains no graph)',
    );
    expect(harden(() => decodeModel(edited((m) => delete m.ir_version), 'noir.onnx')).message).toContain('ir_version');
    expect(harden(() => decodeModel(edited((m) => (m.ir_version = 0)), 'ir0.onnx')).message).toContain('ir_version');
    expect(harden(() => decodeModel(edited((m) => (m.graph!.node = [])), 'nonodes.onnx')).message).toBe('nonodes.onnx: the model graph has no nodes');
    expect(harden(() => decodeModel(edited((m) => (m.graph!.input = [])), 'noin.onnx')).message).toBe('noin.onnx: the model graph has no inputs');
    expect(harden(() => decodeModel(edited((m) => (m.graph!.output = [])), 'noout.onnx')).message).toBe('noout.onnx: the model graph has no outputs');
    expect(harden(() => decodeModel(edited((m) => (m.opset_import = [])), 'noopset.onnx')).message).toContain('opset_import');
  });

  it('nodes that use undefined values, and outputs nothing produces', () => {
    const e = harden(() => decodeModel(edited((m) => (m.graph!.node[0]!.input[1] = 'ghost')), 'ghost.onnx'));
    expect(e.message).toBe("ghost.onnx: node 'Add_0' (Add) in the main graph uses 'ghost', which no graph input, initializer or node defines");
    const o = harden(() => decodeModel(edited((m) => (m.graph!.output[0]!.name = 'z')), 'out.onnx'));
    expect(o.message).toBe("out.onnx: output 'z' of the main graph is not produced by any node, input or initializer");
    // names with line breaks are flattened so the message stays one line
    const nl = harden(() => decodeModel(edited((m) => (m.graph!.node[0]!.input[0] = 'a\nb')), 'nl.onnx'));
    expect(nl.message).toContain("'a b'");
    // optional inputs ('') are fine
    expect(() => decodeModel(edited((m) => m.graph!.node[0]!.input.push('')), 'opt.onnx')).not.toThrow();
  });

  it('the real fixtures pass validation', () => {
    const m = decodeModel(f.bytes, f.file);
    expect(m.graph!.node.length).toBe(31);
  });
});

describe('loadModel', () => {
  const dir = tempDir();

  it('missing file and folder', async () => {
    const missing = path.join(dir, 'missing.onnx');
    expect((await hardenAsync(loadModel(missing))).message).toBe(`cannot read model file ${missing}: no such file or folder`);
    const folder = path.join(dir, 'folder.onnx');
    mkdirSync(folder);
    expect((await hardenAsync(loadModel(folder))).message).toContain(folder);
  });

  it('bad content names the file', async () => {
    const file = path.join(dir, 'junk.onnx');
    writeFileSync(file, Buffer.from('\x08\x07garbage'));
    expect((await hardenAsync(loadModel(file))).message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
  });

  it('loads a good file with its folder', async () => {
    const file = path.join(dir, 'ok.onnx');
    writeFileSync(file, encodeModel(tiny()));
    const m = await loadModel(file);
    expect(m.baseDir).toBe(dir);
    expect(m.path).toBe(file);
    expect(m.proto.graph!.node[0]!.op_type).toBe('Add');
    expect(decodeMessage<ModelProto>(ModelProtoT, encodeModel(m.proto)).graph!.initializer[0]!.name).toBe('b');
  });
});
