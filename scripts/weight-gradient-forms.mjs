/**
 * The conv weight gradient's ONNX forms on onnxruntime CPU, one 3×3 pad-1 layer in isolation
 * (what src/engine/ort/rules/conv.ts chose im2col from). Run after `npm run build`:
 *   node scripts/weight-gradient-forms.mjs N,C,H,M,K [v0,v1,v3,v4,v5,v6,v7]
 * v0: Pad, NCHW→NHWC Transpose, Gather of windows, batched MatMul, ReduceSum (the engine's form);
 * v1: v0 with a 3-D [0,2,1] transpose; v3: v0 with the batch folded into one Gemm;
 * v4: the grouped-Conv form; v5: v0's patches with Einsum; v6: leading-axis transpose, 9 Slices,
 * Concat, one Gemm; v7: v6 with one Gemm per kernel offset. Prints each form's median ms.
 */
import { GraphBuilder } from '../dist/onnx/builder.js';
import * as ort from 'onnxruntime-node';
const [N, C, H, M, K] = (process.argv[2] ?? '64,16,32,16,3').split(',').map(Number);
const Hp = H + 2, area = Hp * Hp, P = H * H, KA = K * K;
const offs = [];
for (let oy = 0; oy < H; oy++) for (let ox = 0; ox < H; ox++) for (let ky = 0; ky < K; ky++) for (let kx = 0; kx < K; kx++) offs.push((oy + ky) * Hp + ox + kx);
const I = (name, data, shape) => ({ dtype: 'int64', shape, data: BigInt64Array.from(data.map(BigInt)) });
function variant(v) {
  const g = new GraphBuilder({ opset: 17 });
  g.input('x', [N, C, H, H]); g.input('dy', [N, M, H, H]);
  const c = (name, arr, shape) => g.initializer(name, I(name, arr, shape ?? [arr.length]));
  const [xp] = g.node('Pad', ['x', c('pads', [0, 0, 1, 1, 0, 0, 1, 1])], 1);
  let out;
  if (v === 'v0' || v === 'v1' || v === 'v3' || v === 'v5') {
    let cl;
    if (v === 'v1') { const [r] = g.node('Reshape', [xp, c('s1', [N, C, area])], 1); [cl] = g.node('Transpose', [r], 1, { perm: [0, 2, 1] }); }
    else { const [t] = g.node('Transpose', [xp], 1, { perm: [0, 2, 3, 1] }); [cl] = g.node('Reshape', [t, c('s1', [N, area, C])], 1); }
    const [pt] = g.node('Gather', [cl, c('idx', offs, [P, KA])], 1, { axis: 1 });
    if (v === 'v3') {
      const [p2] = g.node('Reshape', [pt, c('s3', [N * P, KA * C])], 1);
      const [dyr] = g.node('Reshape', ['dy', c('s2', [N, M, P])], 1);
      const [dyt] = g.node('Transpose', [dyr], 1, { perm: [1, 0, 2] });
      const [dy2] = g.node('Reshape', [dyt, c('s4', [M, N * P])], 1);
      [out] = g.node('Gemm', [dy2, p2], 1);
    } else if (v === 'v5') {
      const [p2] = g.node('Reshape', [pt, c('s3', [N, P, KA * C])], 1);
      const [dyr] = g.node('Reshape', ['dy', c('s2', [N, M, P])], 1);
      [out] = g.node('Einsum', [dyr, p2], 1, { equation: 'nmp,npk->mk' });
    } else {
      const [p2] = g.node('Reshape', [pt, c('s3', [N, P, KA * C])], 1);
      const [dyr] = g.node('Reshape', ['dy', c('s2', [N, M, P])], 1);
      const [mm] = g.node('MatMul', [dyr, p2], 1);
      [out] = g.node('ReduceSum', [mm, c('ax', [0])], 1, { keepdims: 0 });
    }
  } else if (v === 'v6' || v === 'v7') {
    const [xt] = g.node('Transpose', [xp], 1, { perm: [1, 0, 2, 3] }); // [C, N, Hp, Wp]
    const [dyt] = g.node('Transpose', ['dy'], 1, { perm: [1, 0, 2, 3] });
    const [dy2] = g.node('Reshape', [dyt, c('s4', [M, N * P])], 1);
    const slices = [];
    for (let ky = 0; ky < K; ky++) for (let kx = 0; kx < K; kx++) {
      const [sl] = g.node('Slice', [xt, c(`st${ky}${kx}`, [ky, kx]), c(`en${ky}${kx}`, [ky + H, kx + H]), c(`axs${ky}${kx}`, [2, 3])], 1);
      slices.push(sl);
    }
    if (v === 'v6') {
      const [cat] = g.node('Concat', slices, 1, { axis: 0 });
      const [p2] = g.node('Reshape', [cat, c('s5', [KA * C, N * P])], 1);
      [out] = g.node('Gemm', [dy2, p2], 1, { transB: 1 });
    } else {
      const outs = slices.map((sl, i) => { const [r] = g.node('Reshape', [sl, c(`r${i}`, [C, N * P])], 1); return g.node('Gemm', [dy2, r], 1, { transB: 1 })[0]; });
      [out] = g.node('Concat', outs, 1, { axis: 1 });
    }
  } else if (v === 'v4') {
    const [xt] = g.node('Transpose', ['x'], 1, { perm: [1, 0, 2, 3] });
    const [dt] = g.node('Transpose', ['dy'], 1, { perm: [1, 0, 2, 3] });
    [out] = g.node('Conv', [xt, dt], 1, { pads: [1, 1, 1, 1], kernel_shape: [H, H] });
  }
  g.output(out);
  return g.toBytes();
}
const x = new ort.Tensor('float32', Float32Array.from({ length: N * C * H * H }, () => Math.random()), [N, C, H, H]);
const dy = new ort.Tensor('float32', Float32Array.from({ length: N * M * H * H }, () => Math.random()), [N, M, H, H]);
const vs = (process.argv[3] ?? 'v0,v1,v3,v4,v5').split(',');
const sess = {};
for (const v of vs) sess[v] = await ort.InferenceSession.create(variant(v), { intraOpNumThreads: 2, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } });
const t = Object.fromEntries(vs.map((v) => [v, []]));
for (let r = 0; r < 25; r++) for (const v of vs) { const t0 = performance.now(); await sess[v].run({ x, dy }); t[v].push(performance.now() - t0); }
for (const v of vs) { const a = t[v].slice(3).sort((p, q) => p - q); console.log(v, 'median', a[a.length >> 1].toFixed(2)); }
