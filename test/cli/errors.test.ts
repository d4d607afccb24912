import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GraphBuilder } from '../../src/onnx/builder.js';
import { decodeModel, saveModel } from '../../src/onnx/model.js';
import { encodeMessage, TensorProtoT } from '../../src/onnx/schema.js';
import { makeTensorProto } from '../../src/onnx/tensor.js';
import { Random } from '../../src/util/random.js';
import { FIXTURE_DIR } from '../helpers/fixtures.js';
import { ROOT, expectOneLineError, harden } from '../helpers/cli.js';

let dir: string;

function tinyConvModel(weights: Float32Array): GraphBuilder {
  const g = new GraphBuilder({ opset: 13 });
  g.input('input', ['N', 1, 4, 4]);
  g.initializer('w', { data: weights, shape: [2, 1, 3, 3] });
  g.node('Conv', ['input', 'w'], ['c']);
  g.node('Flatten', ['c'], ['logits']);
  g.output('logits');
  return g;
}

beforeAll(() => {
  if (!existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('run `npm run build` before the CLI tests');
  dir = mkdtempSync(path.join(tmpdir(), 'harden-cli-'));
  return () => rmSync(dir, { recursive: true, force: true });
});

describe('bad input gives a one-line error and a non-zero exit', () => {
  it('missing file', () => {
    expectOneLineError(harden('inspect', path.join(dir, 'nope.onnx')), 2, /nope\.onnx/);
  });

  it('truncated file', () => {
    const bytes = readFileSync(path.join(FIXTURE_DIR, 'lenet5_mnist.onnx'));
    const file = path.join(dir, 'truncated.onnx');
    writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    expectOneLineError(harden('check', file), 2, /truncated\.onnx/);
  });

  it('random bytes', () => {
    const rng = new Random(3);
    const file = path.join(dir, 'random.onnx');
    writeFileSync(file, Uint8Array.from({ length: 4096 }, () => rng.int(256)));
    expectOneLineError(harden('inspect', file), 2, /random\.onnx.*not an ONNX model/);
  });

  it('a protobuf that is not a model', () => {
    const file = path.join(dir, 'tensor.onnx');
    writeFileSync(file, encodeMessage(TensorProtoT, makeTensorProto('t', { dtype: 'float32', shape: [3], data: new Float32Array([1, 2, 3]) })));
    expectOneLineError(harden('check', file), 2, /tensor\.onnx/);
  });

  it('an unsupported op names the node, op and opset', () => {
    const g = new GraphBuilder({ opset: 13 });
    g.input('input', ['N', 4]);
    g.node('NonMaxSuppression', ['input'], ['y'], {}, { name: 'nms_node' });
    g.output('y');
    const file = path.join(dir, 'unsupported.onnx');
    writeFileSync(file, g.toBytes());
    expectOneLineError(harden('check', file), 3, /nms_node.*NonMaxSuppression.*opset 13/);
    const inspected = harden('inspect', '--json', file);
    expect(inspected.code).toBe(3);
    expect(JSON.parse(inspected.stdout).unsupportedOps).toEqual(['NonMaxSuppression']);
  });

  it('an unsupported attribute value names the node', () => {
    const g = new GraphBuilder({ opset: 13 });
    g.input('input', ['N', 1, 4, 4]);
    g.initializer('w', { data: new Float32Array(9).fill(0.1), shape: [1, 1, 3, 3] });
    g.node('Conv', ['input', 'w'], ['y'], { auto_pad: 'WEIRD' }, { name: 'conv_odd' });
    g.output('y');
    const file = path.join(dir, 'badattr.onnx');
    writeFileSync(file, g.toBytes());
    expectOneLineError(harden('check', file), 3, /conv_odd.*Conv.*auto_pad/);
  });

  it('a missing external-data file', async () => {
    const g = tinyConvModel(new Float32Array(18).fill(0.5));
    const file = path.join(dir, 'external.onnx');
    await saveModel(decodeModel(g.toBytes(), 'external.onnx'), file, { externalData: { location: 'external.onnx.data', threshold: 16 } });
    rmSync(path.join(dir, 'external.onnx.data'));
    expectOneLineError(harden('check', file), 2, /external\.onnx\.data/);
  });

  it('NaN weights', () => {
    const w = new Float32Array(18).fill(0.5);
    w[4] = NaN;
    const file = path.join(dir, 'nan.onnx');
    writeFileSync(file, tinyConvModel(w).toBytes());
    expectOneLineError(harden('check', file), 2, /'w'.*NaN/);
  });

  it('bad flags', () => {
    expectOneLineError(harden('check', path.join(FIXTURE_DIR, 'lenet5_mnist.onnx'), '--batch', '0'), 2, /--batch/);
    expectOneLineError(harden('frobnicate'), 2, /frobnicate|Unknown/i);
    expectOneLineError(harden('check', path.join(FIXTURE_DIR, 'lenet5_mnist.onnx'), '--backend', 'gpu'), 2, /backend/);
    expectOneLineError(harden('train', '--arch', 'lenet5', '--data', 'mnist:limit=32', '--engine', 'torch', '-o', path.join(dir, 'e.onnx')), 2, /engine/);
  });
});

describe('harden check and inspect on a real export', () => {
  it('check passes on the shipped model and reports small differences', () => {
    const r = harden('check', '--json', '--backend', 'wasm', path.join(ROOT, 'models', 'lenet5-random.onnx'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.pass).toBe(true);
    expect(report.forward.maxRel).toBeLessThan(1e-4);
    expect(report.roundTrip.bitIdentical).toBe(true);
    expect(report.training.withoutGradient).toEqual([]);
    expect(report.training.variables).toBe(10);
  });

  it('inspect finds the feature tensor and counts parameters', () => {
    const r = harden('inspect', '--json', path.join(FIXTURE_DIR, 'resnet8_bn.onnx'));
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.inputs[0].shape).toEqual(['batch', 3, 32, 32].map((d, i) => (i === 0 ? report.inputs[0].shape[0] : d)));
    expect(report.ops.Conv).toBeGreaterThan(5);
    expect(report.unsupportedOps).toEqual([]);
    expect(report.featureTensor).toBeTruthy();
    expect(report.parameters.trainable).toBeGreaterThan(0);
  });
});
