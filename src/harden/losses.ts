/**
 * Losses for hardening, written as functions of explicit parameter tensors so that they can be
 * differentiated to second order (see src/engine/hvp.ts: call initBackend() first, and build
 * per-chunk losses from plain ops such as crossEntropy in src/engine/tfjs-engine.ts).
 *
 * Gradient Collision (GC). For chunk losses L_1..L_k of the same parameters θ, with
 * g_i = ∇θ L_i and G = Σ_i g_i:
 *
 *   L_GC  = Σ_{i<j} ⟨g_i, g_j⟩ = ½(‖G‖² − Σ_i ‖g_i‖²)
 *   ∇L_GC = Σ_i H_i (G − g_i)                       (H_i = ∇²θ L_i)
 *
 * since ∂L_GC/∂g_i = G − g_i. Normalized (NGC), with u_i = g_i/‖g_i‖ and U = Σ_i u_i:
 *
 *   L_NGC  = Σ_{i<j} cos(g_i, g_j) = ½(‖U‖² − Σ_i ‖u_i‖²)      (= ½(‖U‖² − k))
 *   ∇L_NGC = Σ_i H_i v_i,  v_i = [(U − u_i) − (⟨u_i, U⟩ − ‖u_i‖²) u_i] / ‖g_i‖
 *
 * since ∂cos(a, b)/∂a = (b̂ − cos(a, b) â)/‖a‖, summed over the partners j ≠ i.
 * Both gradients are Σ_i H_i v_i with v_i a function of the gradients only, so they are
 * computed in one double-backprop pass: ∇θ Σ_i ⟨g_i(θ), stop(v_i)⟩, i.e. one
 * Hessian-vector product per chunk, where the inner gradients g_i are recorded on the outer
 * tape and v_i (and the value) are computed from detached copies of them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { gradients } from '../engine/hvp.js';
import { detach } from '../engine/gradients/util.js';

/**
 * Knowledge-distillation loss T² · KL(softmax(teacher/T) ‖ softmax(student/T)), summed over
 * classes and averaged over the batch ([N, C] logits). Log-probabilities are written with
 * logSumExp, so the loss is twice differentiable in the student; the teacher is a constant
 * (detached: no gradient flows into whatever produced it).
 */
export function distillationLoss(studentLogits: tf.Tensor, teacherLogits: tf.Tensor, T = 1): tf.Scalar {
  if (studentLogits.rank !== 2 || !tf.util.arraysEqual(studentLogits.shape, teacherLogits.shape)) {
    throw new Error(`distillationLoss: expected equal [N, C] logits, got [${studentLogits.shape}] and [${teacherLogits.shape}]`);
  }
  if (!(T > 0)) throw new Error(`distillationLoss: temperature must be > 0, got ${T}`);
  return tf.tidy(() => {
    const logSoftmax = (z: tf.Tensor): tf.Tensor => {
      const s = tf.div(z, T);
      return tf.sub(s, tf.logSumExp(s, 1, true));
    };
    const logQ = logSoftmax(studentLogits);
    const logP = logSoftmax(detach(teacherLogits));
    const kl = tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logQ)), 1);
    return tf.mul(tf.mean(kl), T * T) as tf.Scalar;
  });
}

export interface GradientCollisionOptions {
  /** Use cosine similarities (NGC) instead of inner products. */
  normalized?: boolean;
  /** Floor on ‖g_i‖ in the normalized variant (a chunk with a vanishing gradient). Default 1e-12. */
  epsilon?: number;
}

export interface GradientCollisionResult {
  value: tf.Scalar;
  /** ∇θ of `value`, one tensor per parameter (zeros where it does not depend on one). */
  gradient: tf.Tensor[];
}

/** Σ over parameter parts of ⟨a_p, b_p⟩, as a scalar tensor. */
function dotAll(a: tf.Tensor[], b: tf.Tensor[]): tf.Scalar {
  return tf.addN(a.map((t, p) => tf.sum(tf.mul(t, b[p])))) as tf.Scalar;
}

function sumAll(parts: tf.Tensor[][]): tf.Tensor[] {
  return parts[0].map((_, p) => tf.addN(parts.map((g) => g[p])));
}

/**
 * The (normalized) Gradient Collision loss of `chunks` chunk losses and its exact gradient
 * with respect to `params` (see the module comment for the formulas). `perChunkLoss(params, i)`
 * must compute L_i from the given tensors. The caller owns the returned tensors.
 */
export function gradientCollision(
  perChunkLoss: (params: tf.Tensor[], chunk: number) => tf.Scalar,
  params: tf.Tensor[],
  chunks: number,
  opts: GradientCollisionOptions = {},
): GradientCollisionResult {
  if (!Number.isInteger(chunks) || chunks < 2) throw new Error(`gradientCollision: need an integer number of chunks >= 2, got ${chunks}`);
  if (params.length === 0) throw new Error('gradientCollision: no parameters');
  const normalized = opts.normalized ?? false;
  const epsilon = opts.epsilon ?? 1e-12;
  let value: tf.Scalar | undefined;
  try {
    const gradient = gradients((ps) => {
      // Inner gradients, recorded on the outer tape (their backward ops get differentiated).
      const g = Array.from({ length: chunks }, (_, i) => gradients((q) => perChunkLoss(q, i), ps));
      // Everything below the objective's ⟨g_i, v_i⟩ is a constant for the outer gradient.
      const c = g.map((gi) => gi.map((t) => detach(t)));
      let v: tf.Tensor[][];
      if (!normalized) {
        const G = sumAll(c);
        value = tf.keep(tf.mul(tf.sub(dotAll(G, G), tf.addN(c.map((ci) => dotAll(ci, ci)))), 0.5) as tf.Scalar);
        v = c.map((ci) => G.map((Gp, p) => tf.sub(Gp, ci[p])));
      } else {
        const norms = c.map((ci) => tf.maximum(tf.sqrt(dotAll(ci, ci)), epsilon));
        const u = c.map((ci, i) => ci.map((t) => tf.div(t, norms[i])));
        const U = sumAll(u);
        value = tf.keep(tf.mul(tf.sub(dotAll(U, U), tf.addN(u.map((ui) => dotAll(ui, ui)))), 0.5) as tf.Scalar);
        v = u.map((ui, i) => {
          const cosSum = tf.sub(dotAll(ui, U), dotAll(ui, ui)); // Σ_{j≠i} cos(g_i, g_j)
          return ui.map((t, p) => tf.div(tf.sub(tf.sub(U[p], t), tf.mul(cosSum, t)), norms[i]));
        });
      }
      return tf.addN(g.map((gi, i) => dotAll(gi, v[i]))) as tf.Scalar;
    }, params);
    return { value: value!, gradient };
  } catch (e) {
    value?.dispose();
    throw e;
  }
}
