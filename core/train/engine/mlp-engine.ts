// A training engine for fully connected nets (LeNet-300-100): K tickets of one architecture trained
// as one computation. Weights of all members are stacked along a leading member axis, so each layer
// is one batched matrix product for all K, and each optimiser update one kernel per tensor.
//
// The step is written out by hand (forward, softmax cross-entropy, backward, fused masked update),
// not traced by TF.js's autodiff: each kernel is prepared once for its tensors (step-kernels.ts).
// Masks are folded into the update: pruned weights are exactly 0 after every update, so the forward
// pass can use the weights as they are, and the gradient of a pruned weight is never applied.
// Each product of a masked layer tells the kernels its mask, so a backend may skip the zeros.
import * as tf from '@tensorflow/tfjs';
import type { AdamStep, SgdStep } from '../../compute/kernels/optimizer-kernels';
import type { Architecture, ParamSpec } from '../../models/architectures';
import { type WeightSet, sizeOf } from '../../models/weights';
import type { MaskSet } from '../../pruning/mask';
import type { OptimizerConfig } from '../optimizers';
import type { DeviceImages, StepKernels } from './step-kernels';

export interface MlpLayer {
  kernel: ParamSpec;
  bias: ParamSpec;
  inputs: number;
  units: number;
  relu: boolean;
}

/** The dense layers of a fully connected architecture, or null if it has layers this engine does not run. */
export function mlpLayers(arch: Architecture, specs: readonly ParamSpec[]): MlpLayer[] | null {
  // Dense layers and flattens only: any other layer would be skipped, not run.
  if (arch.layers.some((l) => l.kind !== 'dense' && l.kind !== 'flatten')) return null;
  const layers: MlpLayer[] = [];
  for (const layer of arch.layers) {
    if (layer.kind !== 'dense') continue;
    const kernel = specs.find((s) => s.name === `${layer.name}.kernel`)!;
    const bias = specs.find((s) => s.name === `${layer.name}.bias`)!;
    layers.push({ kernel, bias, inputs: kernel.shape[0]!, units: kernel.shape[1]!, relu: layer.activation === 'relu' });
  }
  return layers;
}

export interface EngineMember {
  weights: WeightSet;
  masks: MaskSet;
}

export interface MemberEval {
  loss: number;
  accuracy: number;
}

/** Largest activation tensor we let one eval chunk make (the WebGPU default binding limit). */
const EVAL_CHUNK_BYTES = 128 * 1024 * 1024;
export const MAX_EVAL_CHUNK = 1000;

interface ParamSlot {
  spec: ParamSpec;
  w: tf.Tensor;
  best: tf.Tensor;
  g: tf.Tensor;
  mask?: tf.Tensor;
  /** Adam's m and v, or SGD's momentum buffer. */
  state: tf.Tensor[];
  perMember: number;
}

interface EvalPlan {
  rows: number;
  gather: (rowIds: Int32Array) => void;
  forward: { current: Array<() => void>; best: Array<() => void> };
  stats: () => void;
}

export class MlpStepEngine {
  readonly members: number;
  private readonly slots: ParamSlot[] = [];
  private readonly owned: tf.Tensor[] = [];
  private readonly trainStep: Array<() => void> = [];
  private readonly trainX: tf.Tensor;
  private readonly trainLabels: tf.Tensor;
  private trainGather: ((rowIds: Int32Array) => void) | undefined;
  private readonly optimizerSteps: Array<() => void> = [];
  private readonly lossSum: tf.Tensor;
  private readonly zeroLoss: () => void;
  private readonly copyBest: Array<(members: readonly number[]) => void> = [];
  private readonly evalStats: tf.Tensor;
  private readonly zeroStats: () => void;
  private readonly evalPlans = new Map<DeviceImages, Map<number, EvalPlan>>();
  private readonly evalX: tf.Tensor;
  private readonly evalLabels: tf.Tensor;
  private readonly evalActs: tf.Tensor[];
  private readonly evalChunk: number;
  private stepsSinceLoss = 0;
  private t = 0;
  private disposed = false;

  constructor(
    private readonly kernels: StepKernels,
    private readonly layers: readonly MlpLayer[],
    members: readonly EngineMember[],
    private readonly batchSize: number,
    private readonly optimizer: OptimizerConfig,
  ) {
    const K = members.length;
    const B = batchSize;
    this.members = K;
    const keep = <T extends tf.Tensor>(t: T): T => {
      this.owned.push(t);
      return tf.keep(t);
    };
    const stacked = (spec: ParamSpec, pick: (m: EngineMember) => Float32Array) => {
      const n = sizeOf(spec.shape);
      const values = new Float32Array(K * n);
      members.forEach((m, p) => values.set(pick(m), p * n));
      return keep(tf.tensor(values, [K, ...spec.shape], 'float32'));
    };

    // Parameters, their gradients and optimiser state, masks.
    for (const layer of layers) {
      for (const spec of [layer.kernel, layer.bias]) {
        const perMember = sizeOf(spec.shape);
        const w = stacked(spec, (m) => {
          const t = m.weights.find((x) => x.name === spec.name);
          if (!t || t.values.length !== perMember) throw new Error(`weights for ${spec.name} missing or mis-shaped`);
          const mask = m.masks.find((x) => x.name === spec.name);
          // The stored tensor is the truth at pruned entries: exactly 0.
          return mask ? Float32Array.from(t.values, (v, i) => (mask.bits[i] ? v : 0)) : t.values;
        });
        const hasMask = spec.prunable && members.some((m) => m.masks.some((x) => x.name === spec.name));
        const mask = hasMask
          ? stacked(spec, (m) => {
              const x = m.masks.find((y) => y.name === spec.name);
              return x ? Float32Array.from(x.bits) : new Float32Array(perMember).fill(1);
            })
          : undefined;
        const zeros = () => keep(tf.zeros([K, ...spec.shape], 'float32'));
        const state = optimizer.name === 'adam' ? [zeros(), zeros()] : optimizer.momentum > 0 ? [zeros()] : [];
        this.slots.push({ spec, w, best: keep(tf.zeros([K, ...spec.shape], 'float32')), g: zeros(), ...(mask ? { mask } : {}), state, perMember });
      }
    }

    // Activations of the training step and their gradients.
    const F0 = layers[0]!.inputs;
    const x = keep(tf.zeros([K, B, F0], 'float32'));
    const labels = keep(tf.zeros([K, B], 'int32'));
    const acts = layers.map((l) => keep(tf.zeros([K, B, l.units], 'float32')));
    const deltas = layers.map((l) => keep(tf.zeros([K, B, l.units], 'float32')));
    this.lossSum = keep(tf.zeros([K], 'float32'));
    this.zeroLoss = kernels.zero(this.lossSum);
    this.trainX = x;
    this.trainLabels = labels;

    const slot = (spec: ParamSpec) => this.slots.find((s) => s.spec === spec)!;
    // Forward: h_l = act(h_{l−1} · W_l + b_l), all members at once.
    layers.forEach((layer, l) => {
      const input = l === 0 ? x : acts[l - 1]!;
      const w = slot(layer.kernel);
      const b = slot(layer.bias);
      this.trainStep.push(
        kernels.gemm({
          batch: K, m: B, n: layer.units, k: layer.inputs,
          a: { tensor: input, offset: 0, batch: B * layer.inputs, row: layer.inputs, col: 1 },
          b: { tensor: w.w, offset: 0, batch: layer.inputs * layer.units, row: layer.units, col: 1 },
          c: { tensor: acts[l]!, offset: 0, batch: B * layer.units, row: layer.units },
          bias: { tensor: b.w, batch: layer.units },
          relu: layer.relu,
          mask: w.mask ? { tensor: w.mask, operand: 'b' } : undefined,
        }),
      );
    });
    const L = layers.length;
    const classes = layers[L - 1]!.units;
    this.trainStep.push(kernels.softmaxXent({ batch: K, rows: B, classes, logits: acts[L - 1]!, labels, dlogits: deltas[L - 1]!, lossSum: this.lossSum }));
    // Backward, last layer first: dz = dh ⊙ relu'(h); db = Σ_rows dz; dW = h_{l−1}ᵀ dz; dh_{l−1} = dz Wᵀ.
    for (let l = L - 1; l >= 0; l--) {
      const layer = layers[l]!;
      const input = l === 0 ? x : acts[l - 1]!;
      const w = slot(layer.kernel);
      const b = slot(layer.bias);
      this.trainStep.push(kernels.reluGradBias({ batch: K, rows: B, cols: layer.units, grad: deltas[l]!, output: acts[l]!, relu: layer.relu, biasGrad: b.g }));
      this.trainStep.push(
        kernels.gemm({
          batch: K, m: layer.inputs, n: layer.units, k: B,
          a: { tensor: input, offset: 0, batch: B * layer.inputs, row: 1, col: layer.inputs },
          b: { tensor: deltas[l]!, offset: 0, batch: B * layer.units, row: layer.units, col: 1 },
          c: { tensor: w.g, offset: 0, batch: layer.inputs * layer.units, row: layer.units },
          relu: false,
          // The update never applies a pruned entry's gradient: only the mask's entries are needed.
          mask: w.mask ? { tensor: w.mask, operand: 'c' } : undefined,
        }),
      );
      if (l > 0) {
        this.trainStep.push(
          kernels.gemm({
            batch: K, m: B, n: layer.inputs, k: layer.units,
            a: { tensor: deltas[l]!, offset: 0, batch: B * layer.units, row: layer.units, col: 1 },
            b: { tensor: w.w, offset: 0, batch: layer.inputs * layer.units, row: 1, col: layer.units },
            c: { tensor: deltas[l - 1]!, offset: 0, batch: B * layer.inputs, row: layer.inputs },
            relu: false,
            // The mask read through B's view: Wᵀ's zeros are W's.
            mask: w.mask ? { tensor: w.mask, operand: 'b' } : undefined,
          }),
        );
      }
    }
    for (const s of this.slots) {
      this.optimizerSteps.push(
        optimizer.name === 'adam'
          ? kernels.adam({ w: s.w, g: s.g, m: s.state[0]!, v: s.state[1]!, mask: s.mask })
          : kernels.sgd({ w: s.w, g: s.g, buffer: s.state[0], mask: s.mask }),
      );
      this.copyBest.push(kernels.copyMembers(s.w, s.best, s.perMember));
    }

    // Evaluation: one input chunk shared by every member, each member through its own weights.
    const widest = Math.max(...layers.map((l) => l.units));
    this.evalChunk = Math.max(1, Math.min(MAX_EVAL_CHUNK, Math.floor(EVAL_CHUNK_BYTES / (4 * K * widest))));
    this.evalX = keep(tf.zeros([this.evalChunk, F0], 'float32'));
    this.evalLabels = keep(tf.zeros([this.evalChunk], 'int32'));
    this.evalActs = layers.map((l) => keep(tf.zeros([K, this.evalChunk, l.units], 'float32')));
    this.evalStats = keep(tf.zeros([K, 2], 'float32'));
    this.zeroStats = kernels.zero(this.evalStats);
  }

  /** Binds the training split; call once before the first step. */
  useTrainingImages(images: DeviceImages): void {
    this.trainGather = this.kernels.gather({ source: images, rows: this.members * this.batchSize, x: this.trainX, labels: this.trainLabels });
  }

  /** One optimiser step of every member on its batch; rowIds holds members × batch rows, member-major. */
  step(rowIds: Int32Array): void {
    this.t += 1;
    const o = this.optimizer;
    const adam: AdamStep | null =
      o.name === 'adam'
        ? { beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon, weightDecay: o.weightDecay, stepSize: o.learningRate / (1 - o.beta1 ** this.t), invSqrtBc2: 1 / Math.sqrt(1 - o.beta2 ** this.t) }
        : null;
    const sgd: SgdStep | null = o.name === 'sgd' ? { learningRate: o.learningRate, momentum: o.momentum, weightDecay: o.weightDecay } : null;
    if (!this.trainGather) throw new Error('useTrainingImages first');
    this.kernels.setStepConstants(adam, sgd);
    this.trainGather(rowIds);
    for (const run of this.trainStep) run();
    for (const run of this.optimizerSteps) run();
    this.stepsSinceLoss += 1;
  }

  /** Mean training loss of each member over the steps since the last call (null before any step). */
  async takeLosses(): Promise<Array<number | null>> {
    if (this.stepsSinceLoss === 0) return Array.from({ length: this.members }, () => null);
    this.kernels.flush();
    const steps = this.stepsSinceLoss;
    // Copied before the sums are zeroed: the cpu backend hands out its own array.
    const means = Array.from((await this.lossSum.data()) as Float32Array, (s) => s / steps);
    this.kernels.assertHealthy();
    this.stepsSinceLoss = 0;
    this.zeroLoss();
    return means;
  }

  /** Loss and accuracy of every member on a split, with its current or its best weights. */
  async evaluate(images: DeviceImages, source: 'current' | 'best'): Promise<MemberEval[]> {
    const K = this.members;
    if (images.count === 0) return Array.from({ length: K }, () => ({ loss: Number.NaN, accuracy: Number.NaN }));
    this.zeroStats();
    for (let start = 0; start < images.count; start += this.evalChunk) {
      const rows = Math.min(this.evalChunk, images.count - start);
      const plan = this.evalPlan(images, rows);
      plan.gather(Int32Array.from({ length: rows }, (_, i) => start + i));
      for (const run of plan.forward[source]) run();
      plan.stats();
    }
    this.kernels.flush();
    const stats = (await this.evalStats.data()) as Float32Array;
    this.kernels.assertHealthy();
    return Array.from({ length: K }, (_, p) => ({ loss: stats[2 * p]! / images.count, accuracy: stats[2 * p + 1]! / images.count }));
  }

  private evalPlan(images: DeviceImages, rows: number): EvalPlan {
    let plans = this.evalPlans.get(images);
    if (!plans) {
      plans = new Map();
      this.evalPlans.set(images, plans);
    }
    let plan = plans.get(rows);
    if (!plan) {
      const K = this.members;
      const forward = (source: 'current' | 'best') =>
        this.layers.map((layer, l) => {
          const w = this.slots.find((s) => s.spec === layer.kernel)!;
          const b = this.slots.find((s) => s.spec === layer.bias)!;
          const input = l === 0 ? this.evalX : this.evalActs[l - 1]!;
          return this.kernels.gemm({
            batch: K, m: rows, n: layer.units, k: layer.inputs,
            // The chunk is the same for every member: batch stride 0 for the input layer.
            a: { tensor: input, offset: 0, batch: l === 0 ? 0 : this.evalChunk * layer.inputs, row: layer.inputs, col: 1 },
            b: { tensor: source === 'current' ? w.w : w.best, offset: 0, batch: layer.inputs * layer.units, row: layer.units, col: 1 },
            c: { tensor: this.evalActs[l]!, offset: 0, batch: this.evalChunk * layer.units, row: layer.units },
            bias: { tensor: source === 'current' ? b.w : b.best, batch: layer.units },
            relu: layer.relu,
            // Best weights are copies of current ones: zero off the same mask.
            mask: w.mask ? { tensor: w.mask, operand: 'b' } : undefined,
          });
        });
      const last = this.layers[this.layers.length - 1]!;
      plan = {
        rows,
        gather: this.kernels.gather({ source: images, rows, x: this.evalX, labels: this.evalLabels }),
        forward: { current: forward('current'), best: forward('best') },
        stats: this.kernels.evalStats({ batch: K, rows, classes: last.units, logits: this.evalActs[this.layers.length - 1]!, logitsBatch: this.evalChunk * last.units, labels: this.evalLabels, stats: this.evalStats }),
      };
      plans.set(rows, plan);
    }
    return plan;
  }

  /** Copies the current weights of these members to their best-so-far slots (early stopping). */
  keepBest(members: readonly number[]): void {
    if (members.length === 0) return;
    for (const copy of this.copyBest) copy(members);
  }

  /** The weights of every member, current or best, as plain arrays. */
  async readWeights(source: 'current' | 'best'): Promise<WeightSet[]> {
    this.kernels.flush();
    const out: WeightSet[] = Array.from({ length: this.members }, () => []);
    for (const s of this.slots) {
      const values = (await (source === 'current' ? s.w : s.best).data()) as Float32Array;
      for (let p = 0; p < this.members; p++) {
        out[p]!.push({ name: s.spec.name, shape: [...s.spec.shape], values: values.slice(p * s.perMember, (p + 1) * s.perMember) });
      }
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.kernels.flush();
    tf.dispose(this.owned);
    this.kernels.dispose();
  }
}
