/**
 * NTL steps on the ort engine (see ntl.ts for the loss). Both batches' logits and features come
 * from one forward run each; the clip factors and MMD with its gradient in the features are
 * computed here; then one gradient run per batch: the keep batch's cross-entropy, and the block
 * batch's cross-entropy weighted by its coefficient in L, each with MMD's feature gradient fed
 * upstream at the MMD layer. BatchNorm runs in inference mode, so the batches are independent.
 */
import { OrtTrainable, accumulateGradients, oneHotTargets } from '../engine/ort-engine.js';
import { openArraysCheckpoint, saveArraysCheckpoint } from '../train/step-checkpoint.js';
import { crossEntropyLosses } from '../verify/mia.js';
import { mmdWithGradient } from './mmd.js';
import { ntlLoss, type NtlProblem, type NtlStepRecord, type NtlStepper } from './ntl.js';

export function ortNtlStepper({ model, source, layer, settings: s }: NtlProblem): NtlStepper {
  const engine = new OrtTrainable(model, source);
  const learnable = engine.parameterNames;
  const out = engine.outputName;
  engine.setOptimizer({ kind: 'adam', learningRate: s.learningRate });
  const meanCrossEntropy = (logits: Float32Array, labels: Int32Array, classes: number) =>
    crossEntropyLosses(logits, labels, classes).reduce((a, b) => a + b, 0) / labels.length;
  return {
    async step(kb, bb) {
      const [fk, fb] = [await engine.forward(kb.x, { outputs: [layer] }), await engine.forward(bb.x, { outputs: [layer] })];
      const classes = fk.get(out)!.shape[1]!;
      const keep = meanCrossEntropy(fk.get(out)!.data as Float32Array, kb.y, classes);
      const block = meanCrossEntropy(fb.get(out)!.data as Float32Array, bb.y, classes);
      const phi = fk.get(layer)!;
      const size = phi.data.length / kb.y.length;
      const distance = mmdWithGradient(phi.data as Float32Array, fb.get(layer)!.data as Float32Array, size);
      // L = keep − A·M with A = min(1, α·block), M = min(1, β·MMD); a clip at 1 passes no gradient.
      const [A, M] = [Math.min(1, s.alpha * block), Math.min(1, s.beta * distance.value)];
      const dBlock = s.alpha * block < 1 ? -s.alpha * M : 0;
      const dMmd = s.beta * distance.value < 1 ? -A * s.beta : 0;
      const upstream = (g: Float32Array) => new Map([[layer, Float32Array.from(g, (v) => dMmd * v)]]);
      const grads = (await engine.run(kb.x, { training: false, wrt: learnable, losses: [{ tensor: out, targets: oneHotTargets(kb.y, classes) }], upstream: upstream(distance.source) })).gradients;
      if (dBlock !== 0 || dMmd !== 0) {
        const blockRun = await engine.run(bb.x, {
          training: false,
          wrt: learnable,
          losses: dBlock !== 0 ? [{ tensor: out, targets: oneHotTargets(bb.y, classes), weight: dBlock }] : [],
          upstream: upstream(distance.target),
        });
        accumulateGradients(grads, blockRun.gradients);
      }
      engine.applyGradients(grads);
      return { keep, block, mmd: distance.value, loss: ntlLoss(s, keep, block, distance.value) };
    },
    weights: () => engine.weights(),
    async save(dir, key, position, history) {
      await saveArraysCheckpoint(dir, model, engine.weights(), await engine.optimizerState(), key, { position, history: history as unknown as Record<string, unknown>[], tensors: new Map() });
    },
    async restore(dir, key) {
      const checkpoint = await openArraysCheckpoint(dir, key, engine.weights().keys());
      if (!checkpoint) return undefined;
      engine.setWeights(checkpoint.weights);
      await engine.setOptimizerState(checkpoint.optimizer);
      return { position: checkpoint.position, history: checkpoint.history as unknown as NtlStepRecord[] };
    },
    dispose: () => engine.dispose(),
  };
}
