import fs from 'node:fs';
import { loadModel, initializerMap } from '../../dist/onnx/model.js';
import { toNumber } from '../../dist/onnx/schema.js';
for (const name of ['lenet5_mnist', 'resnet8_bn', 'vggish_bn', 'mobilemini_dw']) {
  const m = await loadModel(`test/fixtures/onnx/${name}.onnx`);
  const g = m.proto.graph;
  const attr = (a) => {
    if (a.ints?.length) return a.ints.map(toNumber);
    if (a.floats?.length) return a.floats;
    if (a.t) return { tensor: true };
    if (a.s?.length) return Buffer.from(a.s).toString();
    if (a.f !== undefined && a.type === 1) return a.f;
    return toNumber(a.i ?? 0);
  };
  const nodes = g.node.map((n) => ({ op: n.op_type, inputs: n.input, outputs: n.output, attrs: Object.fromEntries(n.attribute.map((a) => [a.name, a.type === 4 ? null : attr(a)])), tensor: n.attribute.find((a) => a.type === 4) ? n.attribute.find((a) => a.type === 4).name : undefined }));
  // Constant nodes' tensors
  const consts = {};
  for (const n of g.node) if (n.op_type === 'Constant') {
    const a = n.attribute.find((x) => x.name === 'value');
    const t = a.t;
    const map = initializerMap({ ...m.proto, graph: { ...g, initializer: [{ ...t, name: n.output[0] }] } });
    const h = map.get(n.output[0]);
    consts[n.output[0]] = { dtype: h.dtype, shape: h.shape, data: Array.from(h.data, Number) };
  }
  const inits = {};
  for (const [k, h] of initializerMap(m.proto)) inits[k] = { dtype: h.dtype, shape: h.shape, data: Array.from(h.data, Number) };
  fs.mkdirSync('bench-results/pytorch', { recursive: true });
  fs.writeFileSync(`bench-results/pytorch/${name}.json`, JSON.stringify({ nodes, inits, consts, input: g.input[0].name, output: g.output[0].name }));
}
