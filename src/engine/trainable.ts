import type { HostTensor } from '../onnx/tensor.js';

/**
 * The one interface methods, trainer and attacks see. Engines (tfjs eager autodiff, onnxruntime
 * gradient graphs) implement it; callers never know which one runs.
 */
export interface OptimizerSpec {
  kind: 'sgd' | 'momentum' | 'adam';
  learningRate: number;
  momentum?: number;
  /** L2 penalty added to the gradient (coupled weight decay). */
  weightDecay?: number;
}

export interface LossAndGradients {
  loss: number;
  gradients: Map<string, Float32Array>;
}

export interface TrainableGraph {
  readonly engine: 'tfjs' | 'ort';
  readonly inputName: string;
  readonly outputName: string;
  /** Learnable parameters (initializer names), in graph order. */
  readonly parameterNames: readonly string[];
  /** Seed of the next training-mode random choice (dropout masks); steps may advance it. */
  seed: number;
  /** Inference (or training-mode) forward pass; `outputs` adds intermediate tensors. */
  forward(x: HostTensor, opts?: { outputs?: string[]; training?: boolean }): Promise<Map<string, HostTensor>>;
  /** Mean softmax cross-entropy of the logits against integer labels, and its gradients. */
  lossAndGradients(x: HostTensor, labels: Int32Array): Promise<LossAndGradients>;
  /**
   * One optimizer step on the cross-entropy loss, in training mode unless `training` is false
   * (BN statistics then stay as they are); returns the loss before the step.
   */
  trainStep(x: HostTensor, labels: Int32Array, opts?: { training?: boolean }): Promise<number>;
  /**
   * Per-row cross-entropy of the logits (inference mode) and the gradient of their sum with
   * respect to the input x (optimizing inputs: adversarial or error-maximizing noise).
   */
  inputGradient(x: HostTensor, labels: Int32Array): Promise<{ losses: Float32Array; gradient: Float32Array }>;
  setOptimizer(spec: OptimizerSpec): void;
  /** Change the learning rate of the current optimizer, keeping its state (schedules). */
  setLearningRate(learningRate: number): void;
  /** Restrict training to these parameters ('all' restores every learnable parameter). */
  setTrainable(names: readonly string[] | 'all'): void;
  /**
   * Pruning masks (1 keeps, 0 prunes) by parameter name: applied to the weights now and after
   * every update, so masked weights stay exactly zero. `undefined` removes them.
   */
  setMasks(masks: Map<string, Uint8Array> | undefined): void;
  /** Optimizer state (moments, step count) as named arrays, for checkpoints. */
  optimizerState(): Promise<Map<string, { shape: number[]; data: Float32Array }>>;
  setOptimizerState(state: Map<string, { shape: number[]; data: Float32Array }>): Promise<void>;
  /** Current values of every variable (weights and BN statistics) by initializer name. */
  weights(): Map<string, Float32Array>;
  setWeights(weights: Map<string, Float32Array>): void;
  dispose(): void;
}
