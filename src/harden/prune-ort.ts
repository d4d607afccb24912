/**
 * Non-transferable pruning steps on the ort engine (see prune.ts for the loss). The keep CE is
 * a loss of the generated training graph; the block terms (h_t's clipped cross-entropy and the
 * Fisher ratio) are functions of the block batch's features, so their gradient in the features
 * is computed here and fed upstream at the feature tensor (the suppression hinge's at the feature
 * ReLU's input, in the same run); the ADMM penalty's gradient
 * ρ(W − anchor) is added on the host. Masks are the engine's own (applied after every update).
 */
import { OrtTrainable, accumulateGradients, oneHotTargets } from '../engine/ort-engine.js';
import { openArraysCheckpoint, saveArraysCheckpoint } from '../train/step-checkpoint.js';
import { fisherRatioWithGradient } from './fisher.js';
import { suppressionHinge } from './suppression.js';
import type { PruneProblem, PruneStepper } from './prune.js';

/** Mean cross-entropy of the linear head (weight [F, C], bias [C]) on [n, F] features, and its gradient in them. */
function linearHeadCrossEntropy(f: Float32Array, labels: Int32Array, weight: Float32Array, bias: Float32Array): { value: number; gradient: Float32Array } {
  const n = labels.length;
  const C = bias.length;
  const F = f.length / n;
  const gradient = new Float32Array(n * F);
  let value = 0;
  const z = new Float64Array(C);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < C; c++) {
      let v = bias[c];
      for (let j = 0; j < F; j++) v += f[i * F + j] * weight[j * C + c];
      z[c] = v;
    }
    const max = Math.max(...z);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(z[c] - max);
    value -= z[labels[i]] - max - Math.log(sum);
    for (let c = 0; c < C; c++) {
      const dz = (Math.exp(z[c] - max) / sum - (c === labels[i] ? 1 : 0)) / n;
      for (let j = 0; j < F; j++) gradient[i * F + j] += dz * weight[j * C + c];
    }
  }
  return { value: value / n, gradient };
}

export async function ortPruneStepper({ model, source, featureTensor, learnable, pruned, targetHead, suppression, settings: s }: PruneProblem): Promise<PruneStepper> {
  const engine = new OrtTrainable(model, source);
  const out = engine.outputName;
  const headWeight = targetHead ? (targetHead.weight.dataSync() as Float32Array) : undefined;
  const headBias = targetHead ? (targetHead.bias.dataSync() as Float32Array) : undefined;
  let anchors = new Map<string, Float32Array>();
  let active = false;
  let classes: number | undefined;
  return {
    async step(kb, bb, rho, learningRate, phase) {
      if (!active) engine.setOptimizer({ kind: 'adam', learningRate });
      active = true;
      classes ??= (await engine.forward(kb.x)).get(out)!.shape[1];
      const keepRun = await engine.run(kb.x, { training: false, wrt: learnable, losses: [{ tensor: out, targets: oneHotTargets(kb.y, classes) }] });
      const grads = new Map(keepRun.gradients);
      const keep = keepRun.loss!;
      if (!bb) {
        engine.applyGradients(grads);
        return { loss: keep, keep };
      }
      // The masked fine-tune keeps only the suppression among the block terms (it gets a block batch only then).
      const admm = phase === 'admm';
      const hinges = suppression ?? [];
      const blockOut = await engine.run(bb.x, { training: false, outputs: [...(admm ? [featureTensor] : []), ...hinges.map((h) => h.tensor)] });
      const upstream = new Map<string, Float32Array>();
      let block: { ce: number; fisher: number } | undefined;
      if (admm) {
        const features = blockOut.tensors.get(featureTensor)!.data as Float32Array;
        const ce = linearHeadCrossEntropy(features, bb.y, headWeight!, headBias!);
        const fisher = fisherRatioWithGradient(features, bb.y);
        // ∂/∂f of −α·min(CE_t, β) + λ_F·S_B/S_W (the clip passes no gradient once CE_t ≥ β).
        const pushing = ce.value < s.beta ? -s.alpha : 0;
        upstream.set(featureTensor, Float32Array.from(features, (_, i) => pushing * ce.gradient[i] + s.fisherWeight * fisher.gradient[i]));
        block = { ce: ce.value, fisher: fisher.value };
      }
      let suppressed: number | undefined;
      for (const layer of hinges) {
        const hinge = suppressionHinge(blockOut.tensors.get(layer.tensor)!.data as Float32Array, bb.y.length, layer);
        suppressed = (suppressed ?? 0) + hinge.value;
        const fed = upstream.get(layer.tensor);
        if (fed) fed.forEach((_, i) => (fed[i] += s.suppression * hinge.gradient[i]));
        else upstream.set(layer.tensor, hinge.gradient.map((g) => s.suppression * g));
      }
      if (upstream.size) accumulateGradients(grads, (await engine.run(bb.x, { training: false, wrt: learnable, upstream })).gradients);
      const hingeLoss = s.suppression * (suppressed ?? 0);
      if (!block) {
        engine.applyGradients(grads);
        return { loss: keep + hingeLoss, keep, suppressed };
      }
      let penalty = 0;
      const current = engine.weights();
      for (const n of pruned) {
        const w = current.get(n)!, a = anchors.get(n)!, g = grads.get(n)!;
        for (let i = 0; i < w.length; i++) {
          const d = w[i] - a[i];
          penalty += d * d;
          g[i] += rho * d;
        }
      }
      penalty *= rho / 2;
      engine.applyGradients(grads);
      const loss = keep - s.alpha * Math.min(block.ce, s.beta) + s.fisherWeight * block.fisher + hingeLoss + penalty;
      return { loss, keep, block: block.ce, fisher: block.fisher, penalty, suppressed };
    },
    setAnchors(next) {
      anchors = next;
    },
    readPruned: async () => {
      const w = engine.weights();
      return new Map(pruned.map((n) => [n, Float32Array.from(w.get(n)!)]));
    },
    writeWeights: (w) => engine.setWeights(w),
    setMasks: (m) => engine.setMasks(m),
    resetOptimizer() {
      active = false;
    },
    weights: () => engine.weights(),
    async save(dir, key, position, history, tensors) {
      await saveArraysCheckpoint(dir, model, engine.weights(), active ? await engine.optimizerState() : new Map(), key, { position, history, tensors });
    },
    async restore(dir, key, learningRateAt) {
      const checkpoint = await openArraysCheckpoint(dir, key, engine.weights().keys());
      if (!checkpoint) return undefined;
      engine.setWeights(checkpoint.weights);
      engine.setOptimizer({ kind: 'adam', learningRate: learningRateAt(checkpoint.position) });
      active = checkpoint.optimizer.size > 0;
      if (active) await engine.setOptimizerState(checkpoint.optimizer);
      return checkpoint;
    },
    dispose: () => engine.dispose(),
  };
}
