// Optimisers written over TF.js variables, PyTorch's update rules, with masks folded in.
//
// Pruned weights must stay exactly zero (ALGORITHMS.md §0): gradients arrive already masked
// (the forward pass uses w ⊙ m), the moment buffers start at zero, so pruned entries get an
// update of exactly 0; the weights are multiplied by the mask once more after each update as the
// guard that no rounding or later change can break.
import * as tf from '@tensorflow/tfjs';
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
  dispose(): void;
}

export function createOptimizer(config: OptimizerConfig, net: MaskedNetwork): MaskedOptimizer {
  return config.name === 'adam' ? new MaskedAdam(config, net) : new MaskedSgd(config, net);
}

function zerosLike(v: tf.Variable): tf.Variable {
  return variableFrom(tf.zerosLike(v), false);
}

class MaskedSgd implements MaskedOptimizer {
  private readonly buffers = new Map<string, tf.Variable>();
  private readonly lr: tf.Scalar;
  private readonly mu: tf.Scalar;
  private readonly wd: tf.Scalar;

  constructor(
    private readonly config: OptimizerConfig,
    private readonly net: MaskedNetwork,
  ) {
    // Constant scalars made once, not per step.
    this.lr = tf.keep(tf.scalar(config.learningRate));
    this.mu = tf.keep(tf.scalar(config.momentum));
    this.wd = tf.keep(tf.scalar(config.weightDecay));
    if (config.momentum > 0) for (const [name, v] of net.params) this.buffers.set(name, zerosLike(v));
  }

  step(grads: Record<string, tf.Tensor>): void {
    tf.tidy(() => {
      for (const [name, w] of this.net.params) {
        let g = grads[name];
        if (!g) continue;
        if (this.config.weightDecay > 0) g = tf.add(g, tf.mul(this.wd, w));
        const buf = this.buffers.get(name);
        if (buf) {
          buf.assign(tf.add(tf.mul(this.mu, buf), g));
          g = buf;
        }
        w.assign(tf.sub(w, tf.mul(this.lr, g)));
      }
    });
    this.net.applyMasks();
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.lr.dispose();
    this.mu.dispose();
    this.wd.dispose();
  }
}

class MaskedAdam implements MaskedOptimizer {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private readonly b1: tf.Scalar;
  private readonly oneMinusB1: tf.Scalar;
  private readonly b2: tf.Scalar;
  private readonly oneMinusB2: tf.Scalar;
  private readonly wd: tf.Scalar;
  private t = 0;

  constructor(
    private readonly config: OptimizerConfig,
    private readonly net: MaskedNetwork,
  ) {
    this.b1 = tf.keep(tf.scalar(config.beta1));
    this.oneMinusB1 = tf.keep(tf.scalar(1 - config.beta1));
    this.b2 = tf.keep(tf.scalar(config.beta2));
    this.oneMinusB2 = tf.keep(tf.scalar(1 - config.beta2));
    this.wd = tf.keep(tf.scalar(config.weightDecay));
    for (const [name, w] of net.params) {
      this.m.set(name, zerosLike(w));
      this.v.set(name, zerosLike(w));
    }
  }

  step(grads: Record<string, tf.Tensor>): void {
    this.t += 1;
    const { learningRate, beta1, beta2, epsilon } = this.config;
    // PyTorch's form: w -= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps).
    const bc1 = 1 - beta1 ** this.t;
    const bc2 = 1 - beta2 ** this.t;
    tf.tidy(() => {
      const stepSize = tf.scalar(learningRate / bc1);
      const invSqrtBc2 = tf.scalar(1 / Math.sqrt(bc2));
      const eps = tf.scalar(epsilon);
      for (const [name, w] of this.net.params) {
        let g = grads[name];
        if (!g) continue;
        if (this.config.weightDecay > 0) g = tf.add(g, tf.mul(this.wd, w));
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        m.assign(tf.add(tf.mul(this.b1, m), tf.mul(this.oneMinusB1, g)));
        v.assign(tf.add(tf.mul(this.b2, v), tf.mul(this.oneMinusB2, tf.square(g))));
        const denom = tf.add(tf.mul(tf.sqrt(v), invSqrtBc2), eps);
        w.assign(tf.sub(w, tf.mul(stepSize, tf.div(m, denom))));
      }
    });
    this.net.applyMasks();
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    for (const s of [this.b1, this.oneMinusB1, this.b2, this.oneMinusB2, this.wd]) s.dispose();
  }
}
