// Optimisers over a MaskedNetwork's TF.js variables, PyTorch's update rules, with masks folded in:
// the autodiff path's (train-autodiff.ts). Each update is the fused kernel of
// core/compute/kernels/optimizer-kernels.ts, one per parameter tensor.
//
// Pruned weights must stay exactly zero (ALGORITHMS.md §0): gradients arrive already masked (the
// forward pass uses w ⊙ m), the moment buffers start at zero, and the fused update writes exactly 0
// wherever the mask is 0, whatever the arithmetic gives.
import * as tf from '@tensorflow/tfjs';
import { adamUpdate, sgdUpdate } from '../compute/kernels/optimizer-kernels';
import { type MaskedNetwork, variableFrom } from '../models/network';

export type OptimizerName = 'sgd' | 'adam';

export interface OptimizerConfig {
  name: OptimizerName;
  learningRate: number;
  /** SGD momentum (PyTorch convention: buf = μ·buf + g; w -= lr·buf). 0 = plain SGD. */
  momentum: number;
  /** L2 penalty folded into the gradient as wd·w (PyTorch's weight_decay); 0 at pruned entries since w is 0 there. */
  weightDecay: number;
  beta1: number;
  beta2: number;
  epsilon: number;
}

export const DEFAULT_OPTIMIZER: Omit<OptimizerConfig, 'name' | 'learningRate'> = {
  momentum: 0,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
};

export interface MaskedOptimizer {
  /** Applies one update from gradients keyed by parameter name. Disposes nothing it was given. */
  step(grads: Record<string, tf.Tensor>): void;
  /** The learning rate of the next steps (a schedule's drops). */
  setLearningRate(learningRate: number): void;
  /**
   * Zeroes the state of one parameter (SGD momentum buffer, Adam m and v) where `keep` is 0, as GraNet
   * multiplies the momentum buffers by the mask. The fused update only lets state at a masked entry
   * decay (μ·buf + 0), so a mask that changes during training must clear it here: a regrown weight
   * then starts without stale momentum.
   */
  maskState(name: string, keep: Uint8Array): void;
  dispose(): void;
}

export function createOptimizer(config: OptimizerConfig, net: MaskedNetwork): MaskedOptimizer {
  return config.name === 'adam' ? new MaskedAdam(config, net) : new MaskedSgd(config, net);
}

function zerosLike(v: tf.Variable): tf.Variable {
  return variableFrom(tf.zerosLike(v), false);
}

/** Multiplies each state variable by `keep` (0/1, the variable's layout), in place. */
function maskVariables(variables: ReadonlyArray<tf.Variable | undefined>, keep: Uint8Array): void {
  const present = variables.filter((v): v is tf.Variable => v !== undefined);
  if (present.length === 0) return;
  tf.tidy(() => {
    const m = tf.tensor(Float32Array.from(keep), present[0]!.shape, 'float32');
    for (const v of present) v.assign(tf.mul(v, m));
  });
}

class MaskedSgd implements MaskedOptimizer {
  private readonly buffers = new Map<string, tf.Variable>();
  private config: OptimizerConfig;

  constructor(
    config: OptimizerConfig,
    private readonly net: MaskedNetwork,
  ) {
    this.config = { ...config };
    if (config.momentum > 0) for (const [name, v] of net.params) this.buffers.set(name, zerosLike(v));
  }

  step(grads: Record<string, tf.Tensor>): void {
    const { learningRate, momentum, weightDecay } = this.config;
    for (const [name, w] of this.net.params) {
      const g = grads[name];
      if (g) sgdUpdate({ w, buffer: this.buffers.get(name), mask: this.net.masks.get(name) }, g, { learningRate, momentum, weightDecay });
    }
  }

  setLearningRate(learningRate: number): void {
    this.config = { ...this.config, learningRate };
  }

  maskState(name: string, keep: Uint8Array): void {
    maskVariables([this.buffers.get(name)], keep);
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
  }
}

class MaskedAdam implements MaskedOptimizer {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private t = 0;
  private config: OptimizerConfig;

  constructor(
    config: OptimizerConfig,
    private readonly net: MaskedNetwork,
  ) {
    this.config = { ...config };
    for (const [name, w] of net.params) {
      this.m.set(name, zerosLike(w));
      this.v.set(name, zerosLike(w));
    }
  }

  step(grads: Record<string, tf.Tensor>): void {
    this.t += 1;
    const { learningRate, beta1, beta2, epsilon, weightDecay } = this.config;
    // PyTorch's form: w -= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps).
    const step = { beta1, beta2, epsilon, weightDecay, stepSize: learningRate / (1 - beta1 ** this.t), invSqrtBc2: 1 / Math.sqrt(1 - beta2 ** this.t) };
    for (const [name, w] of this.net.params) {
      const g = grads[name];
      if (g) adamUpdate({ w, m: this.m.get(name)!, v: this.v.get(name)!, mask: this.net.masks.get(name) }, g, step);
    }
  }

  setLearningRate(learningRate: number): void {
    this.config = { ...this.config, learningRate };
  }

  maskState(name: string, keep: Uint8Array): void {
    maskVariables([this.m.get(name), this.v.get(name)], keep);
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}
