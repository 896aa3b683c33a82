// A zoo architecture as TF.js variables with its masks applied in the forward pass.
import * as tf from '@tensorflow/tfjs';
import type { MaskSet } from '../pruning/mask';
import type { Architecture, ParamSpec } from './architectures';
import { dense } from './dense-layer';
import { type WeightSet, sizeOf } from './weights';

export interface ForwardOptions {
  /** Read the kernels without the mask, so gradients are dense (see MaskedNetwork.forward). */
  denseGradient?: boolean;
}

export class MaskedNetwork {
  /** Trainable parameters by name, in architecture order. */
  readonly params = new Map<string, tf.Variable>();
  /** 0/1 float masks of the prunable kernels. */
  readonly masks = new Map<string, tf.Tensor>();
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
      this.params.set(spec.name, variableFrom(tf.tensor(initial, spec.shape, 'float32'), true));
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
   * regrowth criteria need (ALGORITHMS.md §0).
   */
  forward(x: tf.Tensor4D, options: ForwardOptions = {}): tf.Tensor2D {
    const param = options.denseGradient
      ? (name: string) => this.params.get(name)!
      : (name: string) => (name.endsWith('.kernel') ? this.kernel(name) : this.params.get(name)!);
    return zooForward(this.arch, param, x);
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

  assignWeights(weights: WeightSet): void {
    tf.tidy(() => {
      for (const t of weights) {
        const v = this.params.get(t.name);
        if (!v) continue;
        v.assign(tf.tensor(t.values, t.shape, 'float32'));
      }
    });
    this.applyMasks();
  }

  async readWeights(): Promise<WeightSet> {
    const out: WeightSet = [];
    for (const [name, v] of this.params) {
      // Copy: some backends hand out their own backing array.
      out.push({ name, shape: [...v.shape], values: ((await v.data()) as Float32Array).slice() });
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.params.values()) v.dispose();
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

/**
 * A zoo architecture's logits for a batch [n, h, w, c], every parameter read through `param`.
 * Default ops: the fused conv and the dense layer whose gradient WASM computes fast. `plainOps`:
 * conv, bias and ReLU as separate ops and a plain matMul, which TF.js can differentiate twice (the
 * fused conv and the custom dense gradient cannot); slower, for second-order scores (GraSP).
 */
export function zooForward(arch: Architecture, param: (name: string) => tf.Tensor, x: tf.Tensor4D, plainOps = false): tf.Tensor2D {
  let h: tf.Tensor = x;
  for (const layer of arch.layers) {
    switch (layer.kind) {
      case 'conv2d': {
        const filter = param(`${layer.name}.kernel`) as tf.Tensor4D;
        const bias = param(`${layer.name}.bias`);
        h = plainOps
          ? tf.relu(tf.add(tf.conv2d(h as tf.Tensor4D, filter, 1, 'same'), bias))
          : tf.fused.conv2d({ x: h as tf.Tensor4D, filter, strides: 1, pad: 'same', bias, activation: 'relu' });
        break;
      }
      case 'maxpool':
        h = tf.maxPool(h as tf.Tensor4D, layer.size, layer.size, 'valid');
        break;
      case 'flatten':
        h = tf.reshape(h, [h.shape[0]!, -1]);
        break;
      case 'dense': {
        const kernel = param(`${layer.name}.kernel`) as tf.Tensor2D;
        const bias = param(`${layer.name}.bias`) as tf.Tensor1D;
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
  return h as tf.Tensor2D;
}
