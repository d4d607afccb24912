/**
 * SOPHON steps on the ort engine (see sophon.ts). The simulated attacker is a second engine on
 * the model with a fresh classifier (withNewHead): each outer step it takes the current backbone
 * weights and the given head, runs its inner optimizer steps in inference mode, and returns the
 * gradient of the suppression loss (cross-entropy to the uniform distribution, a loss of its
 * training graph) at the adapted weights. First-order: that gradient is added to the retention
 * (or distillation, settings.retention) gradient of the model itself and one Adam step is taken.
 */
import { OrtTrainable, accumulateGradients } from '../engine/ort-engine.js';
import { withNewHead } from '../train/head.js';
import type { SophonProblem, SophonStepper } from './sophon.js';

/** [rows, cols] row-major → [cols, rows]. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

export function ortSophonStepper({ model, source, layout, classes: C, settings: s }: SophonProblem): SophonStepper {
  const engine = new OrtTrainable(model, source);
  engine.setOptimizer({ kind: 'adam', learningRate: s.learningRate });
  const attacker = new OrtTrainable({ proto: withNewHead(model.proto, C, 0, source) }, `${source} (simulated attacker)`);
  const headNames = new Set(layout.head.parameters);
  const backbone = engine.parameterNames.filter((n) => !headNames.has(n));
  const F = layout.featureSize;
  const teacher = s.retention === 'kd' ? engine.weights() : undefined;
  return {
    async step({ support, query, keep }, head) {
      const start = new Map([...engine.weights()].filter(([n]) => !headNames.has(n)));
      start.set(layout.weightName, layout.transposed ? transpose(head.weight, F, C) : head.weight);
      if (layout.biasName) start.set(layout.biasName, head.bias);
      attacker.setWeights(start);
      attacker.setOptimizer({ kind: s.innerOptimizer, learningRate: s.innerLearningRate }); // fresh moments every outer step
      for (const b of support) await attacker.trainStep(b.x, b.y, { training: false });
      const uniform = new Float32Array(query.y.length * C).fill(1 / C);
      const suppressed = await attacker.run(query.x, { training: false, wrt: backbone, losses: [{ tensor: attacker.outputName, targets: uniform }] });
      const retained = teacher
        ? await engine.distillationGradients(keep.x, teacher, { wrt: engine.parameterNames, temperature: s.retentionTemperature ?? 4 })
        : await engine.crossEntropyGradients(keep.x, keep.y, { training: false });
      const grads = new Map(retained.gradients);
      accumulateGradients(grads, suppressed.gradients, s.suppressionWeight);
      engine.applyGradients(grads);
      return { retention: retained.loss!, suppression: s.suppression === 'kl' ? suppressed.loss! - Math.log(C) : suppressed.loss! };
    },
    weights: () => engine.weights(),
    setWeights: (w) => engine.setWeights(w),
    dispose: () => {
      engine.dispose();
      attacker.dispose();
    },
  };
}
