/**
 * Disposal steps on the ort engine (see dispose.ts for the loss). H_s is attached to the TL
 * model's feature tensor as one more Gemm output of the ONNX graph, so every term is a loss of
 * the generated training graph: L_KD on the model's logits against the teacher's
 * softmax(z₀/T) (fed targets; the teacher is the same graph at the initial weights), the
 * forget terms on the H_s logits with one-hot, random or uniform targets. GC takes its chunk
 * gradients and exact Hessian-vector products from the engine (gradient-collision-host.ts).
 * H_s's own initializers are fed but never differentiated or updated.
 */
import { OrtTrainable, accumulateGradients, clipGlobalNorm, oneHotTargets } from '../engine/ort-engine.js';
import { cloneModel, type OnnxModel } from '../onnx/model.js';
import { AttributeType, newAttribute, newNode, newTypeProto, newValueInfo } from '../onnx/schema.js';
import { makeTensorProto, type HostTensor } from '../onnx/tensor.js';
import { openArraysCheckpoint, saveArraysCheckpoint } from '../train/step-checkpoint.js';
import type { NamedArrays } from '../engine/optimizer-state.js';
import { gradientCollisionHost, type FirstOrderEngine } from './gradient-collision-host.js';
import { HEAD_STATE, belowFloor, cappedNorms, normCaps, parameterSplit, type DisposeProblem, type DisposeStepRecord, type DisposeStepper } from './dispose.js';

const HEAD_PREFIX = 'harden_source_head/';
const SOURCE_LOGITS = `${HEAD_PREFIX}logits`;

/** The model with H_s (weight [F, C], bias [C]) on `featureTensor` as an extra output SOURCE_LOGITS. */
function withSourceHead(model: OnnxModel, featureTensor: string, weight: Float32Array, bias: Float32Array, classes: number): OnnxModel {
  const proto = cloneModel(model.proto);
  const g = proto.graph!;
  const features = weight.length / classes;
  const flat = `${HEAD_PREFIX}features`;
  g.initializer.push(
    makeTensorProto(`${HEAD_PREFIX}weight`, { dtype: 'float32', shape: [features, classes], data: weight }),
    makeTensorProto(`${HEAD_PREFIX}bias`, { dtype: 'float32', shape: [classes], data: bias }),
  );
  g.node.push(
    newNode({ name: `${HEAD_PREFIX}flatten`, op_type: 'Flatten', input: [featureTensor], output: [flat], attribute: [newAttribute({ name: 'axis', type: AttributeType.INT, i: 1 })] }),
    newNode({ name: `${HEAD_PREFIX}gemm`, op_type: 'Gemm', input: [flat, `${HEAD_PREFIX}weight`, `${HEAD_PREFIX}bias`], output: [SOURCE_LOGITS] }),
  );
  const batch = g.output[0]?.type?.tensor_type?.shape?.dim?.[0] ?? { dim_param: 'batch' };
  g.output.push(newValueInfo({ name: SOURCE_LOGITS, type: newTypeProto({ tensor_type: { elem_type: 1, shape: { dim: [batch, { dim_value: classes }] } } }) }));
  return { ...model, proto };
}

/**
 * settings.projectForget on the host: `forget` (in place) less its projection on `kd` where their
 * inner product, over the tensors both have, is negative.
 */
export function removeConflict(forget: Map<string, Float32Array>, kd: Map<string, Float32Array>): void {
  let dot = 0, kdSquared = 0;
  for (const [name, f] of forget) {
    const g = kd.get(name);
    if (g) for (let i = 0; i < f.length; i++) { dot += f[i]! * g[i]!; kdSquared += g[i]! * g[i]!; }
  }
  if (!(dot < 0 && kdSquared > 0)) return;
  for (const [name, f] of forget) {
    const g = kd.get(name);
    if (g) for (let i = 0; i < f.length; i++) f[i]! -= (dot / kdSquared) * g[i]!;
  }
}

/** grads += λ·forget, the forget gradient first freed of its conflict with grads (projectForget) and clipped (forgetGradNorm). */
function accumulateForget(grads: Map<string, Float32Array>, forget: Map<string, Float32Array>, atStart: boolean, s: DisposeProblem['settings']): void {
  if (s.projectForget && !atStart) removeConflict(forget, grads);
  if (s.forgetGradNorm) clipGlobalNorm(forget, s.forgetGradNorm);
  accumulateGradients(grads, forget, s.lambda);
}

export async function ortDisposeStepper({ model, source, graph, layout, head, settings: s }: DisposeProblem): Promise<DisposeStepper> {
  const C = head.classes;
  const stitched = withSourceHead(model, layout.head.featureTensor, head.weight.dataSync() as Float32Array, head.bias.dataSync() as Float32Array, C);
  const engine = new OrtTrainable(stitched, source);
  // H_s's initializers in the stitched graph, and their names in checkpoints.
  const headParams = [
    { name: `${HEAD_PREFIX}weight`, state: `${HEAD_STATE}weight`, shape: [head.featureSize, C] },
    { name: `${HEAD_PREFIX}bias`, state: `${HEAD_STATE}bias`, shape: [C] },
  ];
  const headNames = new Set(headParams.map((p) => p.name));
  const learnable = engine.parameterNames.filter((n) => !headNames.has(n));
  const { allNames, backboneNames } = parameterSplit(source, learnable, layout, s.forgetParameters);
  const initial = engine.weights();
  const caps = s.capNorms ? normCaps(initial, model, backboneNames) : undefined;
  const modelNames = [...initial.keys()].filter((n) => !headNames.has(n));
  engine.setOptimizer({ kind: s.optimizer ?? 'adam', learningRate: s.learningRate });
  const T = s.temperature;
  const per = s.forgetBatchSize / s.chunks;
  // GC's chunk losses: cross-entropy of the H_s logits.
  const sourceHeadLosses: FirstOrderEngine = {
    crossEntropyGradients: (x, labels, opts) => engine.run(x, { training: false, wrt: opts.wrt, losses: [{ tensor: SOURCE_LOGITS, targets: oneHotTargets(labels, C) }] }),
    hessianVectorProduct: async (x, labels, v) =>
      (await engine.run(x, { training: false, wrt: [...v.keys()], losses: [{ tensor: SOURCE_LOGITS, targets: oneHotTargets(labels, C) }], direction: v })).hessianVector,
  };
  const weights = () => {
    const all = engine.weights();
    return new Map(modelNames.map((n) => [n, all.get(n)!]));
  };

  return {
    async step(target: HostTensor, fb, rtfLabels, atStart) {
      const kd = await engine.distillationGradients(target, initial, { wrt: allNames, temperature: T });
      const grads = new Map(kd.gradients);
      const distillation = kd.loss!;
      let forget = 0;
      if (!fb) {
        // a repair step: L_KD alone
      } else if (s.method === 'gc' || s.method === 'ngc') {
        const size = fb.x.data.length / fb.x.shape[0];
        const chunks = Array.from({ length: s.chunks }, (_, i) => ({
          x: { ...fb.x, shape: [per, ...fb.x.shape.slice(1)], data: (fb.x.data as Float32Array).subarray(i * per * size, (i + 1) * per * size) },
          labels: fb.y.subarray(i * per, (i + 1) * per),
        }));
        const gc = await gradientCollisionHost(sourceHeadLosses, chunks, backboneNames, { normalized: s.method === 'ngc' });
        forget = gc.value;
        if (s.lambda > 0 && !belowFloor(gc.value, s)) accumulateForget(grads, gc.gradient, atStart, s);
      } else {
        // rtf: cross-entropy to random labels; utf: KL(uniform ‖ q) = CE(uniform, q) − log C.
        const targets = rtfLabels ? oneHotTargets(rtfLabels, C) : new Float32Array(fb.y.length * C).fill(1 / C);
        const fr = await engine.run(fb.x, { training: false, wrt: backboneNames, losses: [{ tensor: SOURCE_LOGITS, targets }] });
        forget = rtfLabels ? fr.loss! : fr.loss! - Math.log(C);
        if (s.lambda > 0) accumulateForget(grads, fr.gradients, atStart, s);
      }
      if (s.maxGradNorm) clipGlobalNorm(grads, s.maxGradNorm);
      engine.applyGradients(grads);
      if (caps) engine.setWeights(cappedNorms(engine.weights(), caps));
      const rate = s.sourceHeadLearningRate ?? 0;
      if (rate > 0 && fb) {
        const hr = await engine.run(fb.x, { training: false, wrt: [...headNames], losses: [{ tensor: SOURCE_LOGITS, targets: oneHotTargets(fb.y, C) }] });
        const current = engine.weights();
        engine.setWeights(new Map([...hr.gradients].map(([n, g]) => [n, Float32Array.from(current.get(n)!, (w, i) => w - rate * g[i])])));
      }
      return { distillation, forget };
    },
    weights,
    async save(dir, key, position, history) {
      const current = engine.weights();
      const headState: NamedArrays = new Map(headParams.map((p) => [p.state, { shape: p.shape, data: current.get(p.name)! }]));
      await saveArraysCheckpoint(dir, model, weights(), await engine.optimizerState(), key, { position, history: history as unknown as Record<string, unknown>[], tensors: headState });
    },
    async restore(dir, key) {
      const checkpoint = await openArraysCheckpoint(dir, key, modelNames);
      if (!checkpoint) return undefined;
      engine.setWeights(checkpoint.weights);
      for (const p of headParams) {
        const saved = checkpoint.tensors.get(p.state);
        if (saved) engine.setWeights(new Map([[p.name, saved.data]]));
      }
      await engine.setOptimizerState(checkpoint.optimizer);
      return { position: checkpoint.position, history: checkpoint.history as unknown as DisposeStepRecord[] };
    },
    dispose: () => engine.dispose(),
  };
}
