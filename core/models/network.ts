// A zoo architecture as TF.js variables with its masks applied in the forward pass.
import * as tf from '@tensorflow/tfjs';
import type { MaskSet } from '../pruning/mask';
import type { Architecture, LayerSpec, ParamSpec } from './architectures';
import { dense } from './dense-layer';
import { type WeightSet, sizeOf } from './weights';

export interface ForwardOptions {
  /** Read the kernels without the mask, so gradients are dense (see MaskedNetwork.forward). */
  denseGradient?: boolean;
  /**
   * BatchNorm in training mode: normalise by the batch's statistics, and hold the running-statistic
   * updates they make until commitRunningStats(). Default: eval mode, normalising by the running statistics.
   */
  training?: boolean;
}

/** PyTorch BatchNorm2d's defaults. */
export const BATCHNORM_EPSILON = 1e-5;
export const BATCHNORM_MOMENTUM = 0.1;

export class MaskedNetwork {
  /** Trainable parameters by name, in architecture order: what the optimiser updates. */
  readonly params = new Map<string, tf.Variable>();
  /**
   * BatchNorm running statistics by name: state, not trained (not in `variables`, so tf.variableGrads
   * leaves them alone), read and assigned with the weights so stored tickets and rewind points carry them.
   */
  readonly state = new Map<string, tf.Variable>();
  /** 0/1 float masks of the prunable kernels. */
  readonly masks = new Map<string, tf.Tensor>();
  /** Running statistics a training-mode forward computed, not yet committed. */
  private readonly pendingStats = new Map<string, tf.Tensor>();
  private disposed = false;

  constructor(
    readonly arch: Architecture,
    readonly specs: readonly ParamSpec[],
    weights: WeightSet,
    masks: MaskSet,
  ) {
    for (const spec of specs) {
      const w = weights.find((t) => t.name === spec.name);
      if (!w || w.values.length !== sizeOf(spec.shape)) throw new Error(`weights for ${spec.name} missing or mis-shaped`);
      const mask = masks.find((m) => m.name === spec.name);
      if (mask) {
        const m = tf.tensor(Float32Array.from(mask.bits), spec.shape, 'float32');
        this.masks.set(spec.name, m);
      }
      // Zero the pruned entries when the mask is applied: the stored weight tensor is the truth.
      const initial = mask ? maskedCopy(w.values, mask.bits) : w.values;
      (spec.trainable ? this.params : this.state).set(spec.name, variableFrom(tf.tensor(initial, spec.shape, 'float32'), spec.trainable));
    }
  }

  get variables(): tf.Variable[] {
    return [...this.params.values()];
  }

  private kernel(name: string): tf.Tensor {
    const w = this.params.get(name)!;
    const m = this.masks.get(name);
    // Mask in the forward pass: the gradient w.r.t. w is then exactly zero at pruned entries.
    return m ? tf.mul(w, m) : w;
  }

  /**
   * Logits for a batch [n, h, w, c]. Call inside tf.tidy or a gradient function. `denseGradient`
   * reads the stored kernels without multiplying by the mask: pruned entries are zero in them, so
   * the logits are the same, but ∂L/∂w is then the dense gradient, pruned entries included, which
   * regrowth criteria need (ALGORITHMS.md §0). `training`: BatchNorm on the batch's statistics; the
   * running-statistic updates wait for commitRunningStats() (a later training forward replaces them).
   */
  forward(x: tf.Tensor4D, options: ForwardOptions = {}): tf.Tensor2D {
    const param = (name: string): tf.Tensor => {
      const state = this.state.get(name);
      if (state) return state;
      return options.denseGradient || !this.masks.has(name) ? this.params.get(name)! : this.kernel(name);
    };
    if (!options.training) return zooForward(this.arch, param, x);
    this.discardRunningStats();
    return zooForward(this.arch, param, x, {
      training: true,
      onBatchStats: (layer, mean, variance, count) => {
        // PyTorch: running = (1 − momentum)·running + momentum·batch, with the unbiased variance n/(n − 1)·σ².
        const unbiased = count > 1 ? tf.mul(variance, count / (count - 1)) : variance;
        const update = (name: string, batch: tf.Tensor) => {
          const running = this.state.get(name)!;
          this.pendingStats.set(name, tf.keep(tf.add(tf.mul(running, 1 - BATCHNORM_MOMENTUM), tf.mul(batch, BATCHNORM_MOMENTUM))));
        };
        update(`${layer}.runningMean`, mean);
        update(`${layer}.runningVar`, unbiased);
      },
    });
  }

  /** Writes the running statistics of the last training-mode forward into the state (PyTorch updates them in its forward). */
  commitRunningStats(): void {
    for (const [name, next] of this.pendingStats) {
      this.state.get(name)!.assign(next);
      next.dispose();
    }
    this.pendingStats.clear();
  }

  /** Drops the running statistics of the last training-mode forward (a gradient taken besides the training step). */
  discardRunningStats(): void {
    for (const t of this.pendingStats.values()) t.dispose();
    this.pendingStats.clear();
  }

  /** Replaces a kernel's mask (gradual pruning, regrowth) and zeroes the weights it prunes. */
  setMask(name: string, bits: Uint8Array): void {
    const spec = this.specs.find((s) => s.name === name);
    if (!spec?.prunable) throw new Error(`${name} is not a prunable parameter`);
    if (bits.length !== sizeOf(spec.shape)) throw new Error(`mask for ${name} has ${bits.length} entries, the kernel ${sizeOf(spec.shape)}`);
    const next = tf.tensor(Float32Array.from(bits), spec.shape, 'float32');
    this.masks.get(name)?.dispose();
    this.masks.set(name, next);
    tf.tidy(() => {
      const w = this.params.get(name)!;
      w.assign(tf.mul(w, next));
    });
  }

  /** The current masks, as stored. */
  async readMasks(): Promise<MaskSet> {
    const out: MaskSet = [];
    for (const [name, m] of this.masks) {
      const values = (await m.data()) as Float32Array;
      out.push({ name, shape: [...m.shape], bits: Uint8Array.from(values, (v) => (v !== 0 ? 1 : 0)) });
    }
    return out;
  }

  /** Re-apply the masks to the variables: the guard that keeps pruned weights exactly zero. */
  applyMasks(): void {
    tf.tidy(() => {
      for (const [name, m] of this.masks) {
        const w = this.params.get(name)!;
        w.assign(tf.mul(w, m));
      }
    });
  }

  /** Sets parameters and BatchNorm state by name (names the network lacks are skipped), then re-applies the masks. */
  assignWeights(weights: WeightSet): void {
    tf.tidy(() => {
      for (const t of weights) {
        const v = this.params.get(t.name) ?? this.state.get(t.name);
        if (!v) continue;
        v.assign(tf.tensor(t.values, t.shape, 'float32'));
      }
    });
    this.applyMasks();
  }

  /** Every parameter and BatchNorm running statistic, in spec order: the full state. */
  async readWeights(): Promise<WeightSet> {
    const out: WeightSet = [];
    for (const { name } of this.specs) {
      const v = this.params.get(name) ?? this.state.get(name)!;
      // Copy: some backends hand out their own backing array.
      out.push({ name, shape: [...v.shape], values: ((await v.data()) as Float32Array).slice() });
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.discardRunningStats();
    for (const v of this.params.values()) v.dispose();
    for (const v of this.state.values()) v.dispose();
    for (const m of this.masks.values()) m.dispose();
  }
}

/** tf.variable keeps its initial tensor alive as a separate handle; release it. */
export function variableFrom(initial: tf.Tensor, trainable: boolean): tf.Variable {
  const v = tf.variable(initial, trainable);
  initial.dispose();
  return v;
}

export function maskedCopy(values: Float32Array, bits: Uint8Array): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = bits[i] ? values[i]! : 0;
  return out;
}

export interface ZooForwardOptions {
  /**
   * Conv, bias and ReLU as separate ops and a plain matMul, which TF.js can differentiate twice (the
   * fused conv and the custom dense gradient cannot); slower, for second-order scores (GraSP).
   * BatchNorm is plain ops in either mode.
   */
  plainOps?: boolean;
  /** BatchNorm normalises by the batch's mean and biased variance (training mode) instead of the running statistics. */
  training?: boolean;
  /** Training mode: each BatchNorm layer's batch mean and biased variance, and the number of values per channel they were taken over. */
  onBatchStats?: (layer: string, mean: tf.Tensor1D, variance: tf.Tensor1D, count: number) => void;
}

/**
 * A zoo architecture's logits for a batch [n, h, w, c], every parameter and BatchNorm statistic read
 * through `param` (by its spec name). Default ops: the fused conv and the dense layer whose gradient
 * WASM computes fast; see ZooForwardOptions for the plain-ops and training modes.
 */
export function zooForward(arch: Architecture, param: (name: string) => tf.Tensor, x: tf.Tensor4D, options: ZooForwardOptions = {}): tf.Tensor2D {
  return forwardLayers(arch.layers, '', param, x, options) as tf.Tensor2D;
}

function forwardLayers(layers: readonly LayerSpec[], prefix: string, param: (name: string) => tf.Tensor, x: tf.Tensor, options: ZooForwardOptions): tf.Tensor {
  const plainOps = options.plainOps ?? false;
  let h: tf.Tensor = x;
  for (const layer of layers) {
    switch (layer.kind) {
      case 'conv2d': {
        const name = `${prefix}${layer.name}`;
        const filter = param(`${name}.kernel`) as tf.Tensor4D;
        const bias = layer.bias === false ? undefined : param(`${name}.bias`);
        const stride = layer.stride ?? 1;
        // Strided: PyTorch's symmetric padding k//2 (TF.js 'same' would pad only after, shifting the sampling grid).
        // A number is symmetric zero padding on every side, as an explicit `padding` is.
        const pad = layer.padding ?? (stride === 1 ? 'same' : Math.floor(layer.kernelSize / 2));
        if (plainOps) {
          let z: tf.Tensor = tf.conv2d(h as tf.Tensor4D, filter, stride, pad);
          if (bias) z = tf.add(z, bias);
          h = layer.activation === 'relu' ? tf.relu(z) : z;
        } else {
          h = tf.fused.conv2d({ x: h as tf.Tensor4D, filter, strides: stride, pad, bias, activation: layer.activation });
        }
        break;
      }
      case 'batchnorm': {
        const z = batchNorm(h, `${prefix}${layer.name}`, param, options);
        h = layer.activation === 'relu' ? tf.relu(z) : z;
        break;
      }
      case 'residual': {
        const blockPrefix = `${prefix}${layer.name}.`;
        const body = forwardLayers(layer.body, blockPrefix, param, h, options);
        const { shortcut } = layer;
        const through =
          shortcut.kind === 'identity'
            ? h
            : shortcut.kind === 'subsample-pad'
              ? subsamplePad(h as tf.Tensor4D, shortcut.stride, body.shape[3]!)
              : forwardLayers(shortcut.layers, blockPrefix, param, h, options);
        h = tf.relu(tf.add(body, through));
        break;
      }
      case 'maxpool':
        h = tf.maxPool(h as tf.Tensor4D, layer.size, layer.size, 'valid');
        break;
      case 'globalavgpool':
        h = plainOps ? tf.mean(h, [1, 2]) : spatialMean(h as tf.Tensor4D);
        break;
      case 'flatten':
        h = tf.reshape(h, [h.shape[0]!, -1]);
        break;
      case 'dense': {
        const name = `${prefix}${layer.name}`;
        const kernel = param(`${name}.kernel`) as tf.Tensor2D;
        const bias = param(`${name}.bias`) as tf.Tensor1D;
        if (plainOps) {
          const z = tf.add(tf.matMul(h as tf.Tensor2D, kernel), bias);
          h = layer.activation === 'relu' ? tf.relu(z) : z;
        } else {
          h = dense(h as tf.Tensor2D, kernel, bias, layer.activation);
        }
        break;
      }
    }
  }
  return h;
}

/**
 * BatchNorm2d over the channels of [n, h, w, c]: (x − μ)·γ/√(σ² + ε) + β, with μ and the biased σ²
 * of the batch in training mode, the running statistics otherwise. Plain, twice-differentiable ops.
 */
function batchNorm(x: tf.Tensor, name: string, param: (name: string) => tf.Tensor, options: ZooForwardOptions): tf.Tensor {
  if (options.training && !options.plainOps) return trainingBatchNorm(x as tf.Tensor4D, name, param, options);
  let centered: tf.Tensor;
  let variance: tf.Tensor;
  if (options.training) {
    const mean = tf.mean(x, [0, 1, 2]) as tf.Tensor1D;
    centered = tf.sub(x, mean);
    variance = tf.mean(tf.square(centered), [0, 1, 2]);
    options.onBatchStats?.(name, mean, variance as tf.Tensor1D, x.size / x.shape[3]!);
  } else {
    centered = tf.sub(x, param(`${name}.runningMean`));
    variance = param(`${name}.runningVar`);
  }
  const scale = tf.mul(param(`${name}.gamma`), tf.rsqrt(tf.add(variance, BATCHNORM_EPSILON)));
  return tf.add(tf.mul(centered, scale), param(`${name}.beta`));
}

const CHANNEL_AXES = [0, 1, 2];

/**
 * Training-mode BatchNorm with its gradient written out (the closed form of Ioffe & Szegedy):
 * dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dγ = Σ dy·x̂, dβ = Σ dy. Autodiff of the plain form
 * gives the same numbers, but TF.js's Mean and Sum gradients build ones(x.shape) in JavaScript and
 * upload it: megabytes per layer per step, most of a ResNet step's host time on a GPU. Only
 * first-order: second-order scores (GraSP) use the plain form.
 */
function trainingBatchNorm(x: tf.Tensor4D, name: string, param: (name: string) => tf.Tensor, options: ZooForwardOptions): tf.Tensor {
  const count = x.size / x.shape[3];
  const normalize = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [input, gamma, beta, save] = args as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    // Inside a custom gradient no op's own gradient is taken, so tf.mean (one reduction) is safe here.
    const mean = tf.mean(input, CHANNEL_AXES);
    const centered = tf.sub(input, mean);
    const variance = tf.mean(tf.square(centered), CHANNEL_AXES);
    const rstd = tf.rsqrt(tf.add(variance, BATCHNORM_EPSILON));
    const xHat = tf.mul(centered, rstd);
    options.onBatchStats?.(name, mean as tf.Tensor1D, variance as tf.Tensor1D, count);
    save([xHat, rstd, gamma]);
    return {
      value: tf.add(tf.mul(xHat, gamma), beta),
      gradFunc: (dy, saved) => {
        const [savedXHat, savedRstd, savedGamma] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const dxHat = tf.mul(dy, savedGamma);
        const meanDxHat = tf.mean(dxHat, CHANNEL_AXES);
        const meanDxHatXHat = tf.mean(tf.mul(dxHat, savedXHat), CHANNEL_AXES);
        const dx = tf.mul(tf.sub(tf.sub(dxHat, meanDxHat), tf.mul(savedXHat, meanDxHatXHat)), savedRstd);
        return [dx, tf.sum(tf.mul(dy, savedXHat), CHANNEL_AXES), tf.sum(dy, CHANNEL_AXES)];
      },
    };
  });
  return normalize(x, param(`${name}.gamma`), param(`${name}.beta`));
}

/** Mean over height and width, [n, h, w, c] → [n, c], with a gradient that broadcasts on the device (no host-built ones, as above). */
function spatialMean(x: tf.Tensor4D): tf.Tensor2D {
  const [n, height, width, channels] = x.shape;
  const mean = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: tf.mean(args[0] as tf.Tensor4D, [1, 2]),
    gradFunc: (dy) => tf.broadcastTo(tf.reshape(tf.div(dy, height * width), [n, 1, 1, channels]), [n, height, width, channels]),
  }));
  return mean(x) as tf.Tensor2D;
}

/**
 * Option-A shortcut: x[:, ::stride, ::stride, :] with zero channels up to `channels`, half before and
 * half after (the extra one after, for an odd count). The subsampling is reshapes and slices: TF.js has
 * no gradient for StridedSlice, and slice and pad differentiate each other, to any order.
 */
export function subsamplePad(x: tf.Tensor4D, stride: number, channels: number): tf.Tensor4D {
  const [n, height, width, c] = x.shape;
  let y: tf.Tensor = x;
  if (stride > 1) {
    const oh = Math.ceil(height / stride);
    const ow = Math.ceil(width / stride);
    // Pad to a multiple of the stride (the padding is never sampled), then keep offset 0 of each stride-long run.
    if (oh * stride !== height || ow * stride !== width) y = tf.pad(y, [[0, 0], [0, oh * stride - height], [0, ow * stride - width], [0, 0]]);
    y = tf.slice(tf.reshape(y, [n * oh, stride, ow * stride, c]), [0, 0, 0, 0], [n * oh, 1, ow * stride, c]);
    y = tf.slice(tf.reshape(y, [n * oh, ow, stride, c]), [0, 0, 0, 0], [n * oh, ow, 1, c]);
    y = tf.reshape(y, [n, oh, ow, c]);
  }
  const before = Math.floor((channels - c) / 2);
  return (channels === c ? y : tf.pad(y, [[0, 0], [0, 0], [0, 0], [before, channels - c - before]])) as tf.Tensor4D;
}
