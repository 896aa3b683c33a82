// Lottery jackpots (Zhang et al., TPAMI 2023; zyxxmu/lottery-jackpots utils/conv_type.py
// `PretrainConv`, imagenet.py; ALGORITHMS.md §7): search a mask on frozen pretrained weights.
// Each searched layer prunes a fixed count P_l taken from one global magnitude threshold; scores
// start at 1 (kept) and 0.99 (pruned), train by SGD through a straight-through estimator, and after
// every step the "short restriction" swaps pruned and kept entries whose scores crossed the layer's
// P_l-th smallest score. The weights never change. As the ImageNet script does, the pretrained
// weights are kept (the CIFAR script rebuilds the model and loses them).
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { InvalidRequestError, TrainingDivergedError, throwIfAborted } from '../api/errors';
import { BatchOrder, fillBatch } from '../data/datasets';
import type { ParamSpec } from '../models/architectures';
import { variableFrom, zooForward } from '../models/network';
import type { WeightSet } from '../models/weights';
import { ceilFraction } from './budget';
import { type LayerMask, type MaskSet, cloneMasks, countKept } from './mask';
import { type ScoringContext, budgetTensors, maskedValues, requireScoringContext } from './score-network';
import { pruneLowest } from './select';
import type { PruneBudget, PruneInput, PruningStrategy } from './strategy';

/** Search steps when neither `iterations` nor `epochs` is given (why: see the param's help). */
export const DEFAULT_JACKPOT_ITERATIONS = 2000;

export const jackpotParams = z
  .object({
    iterations: z
      .number().int().min(1).max(1e6).optional()
      .describe(
        `Search steps (score updates). Default ${DEFAULT_JACKPOT_ITERATIONS}: about 9 epochs of MNIST at batch 256, by which most of the gain is in (LeNet-300-100 at 90 %: 97.1 % validation accuracy after 1000 steps, 97.5 % after 2000). Give this or epochs, not both.`,
      ),
    epochs: z
      .number().int().min(1).max(10_000).optional()
      .describe('Search length in passes over the training split, as the paper counts it (E = 30 or 160). Give this or iterations, not both.'),
    batchSize: z.number().int().min(1).max(65_536).default(256).describe('Examples per score update (the paper: 256).'),
    learningRate: z.number().positive().max(100).default(0.1).describe('Initial learning rate of the scores, decayed to 0 by a cosine over the steps (the paper: 0.1).'),
    momentum: z.number().min(0).max(0.999).default(0.9).describe('SGD momentum on the scores, PyTorch convention (the paper: 0.9).'),
    weightDecay: z.number().min(0).max(1).default(5e-4).describe('L2 weight decay on the scores (the paper\'s CIFAR configs: 5e-4; ImageNet: 1e-4).'),
    rate: z
      .number().gt(0).max(1).default(1)
      .describe('Short restriction: swap ceil(rate·|A|) pairs when |A| = |B| (the released code: 1).'),
  })
  .strict()
  .refine((p) => p.iterations === undefined || p.epochs === undefined, { message: 'give iterations or epochs, not both', path: ['epochs'] });
export type JackpotParams = z.output<typeof jackpotParams>;

/** One searched tensor's fixed budget. */
export interface JackpotLayerBudget {
  name: string;
  shape: number[];
  /** P_l: entries pruned throughout the search. */
  pruned: number;
  total: number;
}

export interface JackpotBudget {
  /** The sparsity s the global magnitude threshold is taken at, over the searched tensors. */
  sparsity: number;
  /** The classifier kernels in the budget: never searched, their masks left as they are. */
  classifier: string[];
  layers: JackpotLayerBudget[];
  /** The magnitude mask (§7.2): b = 0 on each layer's P_l smallest |w|, ties by position. */
  masks: MaskSet;
}

/**
 * §7.1: the per-layer counts from one global magnitude threshold. The driver's budget is global
 * ({keep, tensors}, from sparsityBudget), so the sparsity asked for is s = 1 − keep/Σn over the
 * budget's tensors; the threshold is then taken at s over those tensors minus the classifier (role
 * 'output'), keeping floor((1−s)·N) of their N entries as the paper's int(N·(1 − s)) does, and the
 * classifier's mask is left as it is (dense for a dense source). Where the driver leaves the
 * classifier out of the tensors, this is exactly its keep count. Exact-k by (|w|, position) instead
 * of the paper's threshold: P_l = floor(r_l·n_l) with r_l the fraction of layer l below it, and ties
 * at the threshold cannot prune extra entries. Entries the input mask prunes stay pruned and count in P_l.
 */
export function jackpotBudget(weights: WeightSet, masks: MaskSet, budget: PruneBudget, specs: readonly ParamSpec[]): JackpotBudget {
  if (budget.scope !== 'global') {
    throw new InvalidRequestError('Lottery jackpots take each layer\'s pruned count from one global magnitude threshold: give a global budget (one overall sparsity), not per-layer counts.');
  }
  const named = budgetTensors(budget, specs);
  const classifier = named.filter((name) => specs.find((s) => s.name === name)!.role === 'output');
  const searched = named.filter((name) => !classifier.includes(name));
  if (searched.length === 0) throw new InvalidRequestError('Lottery jackpots search the layers before the classifier; the budget names none.');
  const maskOf = (name: string, set: MaskSet): LayerMask => {
    const mask = set.find((m) => m.name === name);
    if (!mask) throw new InvalidRequestError(`The pruning budget names '${name}', which has no mask.`);
    return mask;
  };
  const all = named.reduce((n, name) => n + maskOf(name, masks).bits.length, 0);
  const sparsity = Math.min(1, Math.max(0, 1 - budget.keep / all));

  const next = cloneMasks(masks);
  const group = searched.map((name) => {
    const mask = maskOf(name, next);
    const w = weights.find((t) => t.name === name);
    if (!w || w.values.length !== mask.bits.length) throw new InvalidRequestError(`The weights to search have no tensor '${name}' of ${mask.bits.length} entries.`);
    return { mask, scores: w.values.map(Math.abs) };
  });
  const total = group.reduce((n, t) => n + t.mask.bits.length, 0);
  const alreadyPruned = group.reduce((n, t) => n + t.mask.bits.length - countKept(t.mask.bits), 0);
  // N − int(N·(1−s)) = ceil(s·N); entries already pruned are never revived.
  const prune = Math.max(ceilFraction(sparsity, total), alreadyPruned);
  pruneLowest(group, prune - alreadyPruned);
  return {
    sparsity,
    classifier,
    layers: group.map(({ mask }) => ({ name: mask.name, shape: [...mask.shape], pruned: mask.bits.length - countKept(mask.bits), total: mask.bits.length })),
    masks: next,
  };
}

/**
 * §7.6, the short restriction of one layer, in place on `bits`; returns the number of swaps. θ is
 * the `pruned`-th smallest score; A = pruned entries scored above θ, B = kept entries scored at or
 * below it. Only when |A| = |B| > 0, ceil(rate·|A|) pairs swap: the highest-scored of A are kept,
 * the lowest-scored of B pruned (ties by position). The pruned count never changes. Entries that must
 * stay pruned carry the score −∞, so they sit below θ and are in neither set.
 */
export function shortRestriction(bits: Uint8Array, scores: Float32Array, pruned: number, rate: number): number {
  if (pruned <= 0 || pruned > bits.length) return 0;
  const theta = kthSmallest(scores, pruned);
  const revive: number[] = [];
  const drop: number[] = [];
  for (let i = 0; i < bits.length; i++) {
    const s = scores[i]!;
    if (bits[i] === 0 && s > theta) revive.push(i);
    else if (bits[i] === 1 && s <= theta) drop.push(i);
  }
  if (revive.length === 0 || revive.length !== drop.length) return 0;
  const swaps = ceilFraction(rate, revive.length);
  revive.sort((a, b) => scores[b]! - scores[a]! || a - b);
  drop.sort((a, b) => scores[a]! - scores[b]! || a - b);
  for (let j = 0; j < swaps; j++) {
    bits[revive[j]!] = 1;
    bits[drop[j]!] = 0;
  }
  return swaps;
}

/** The k-th smallest value (1-based) by quickselect on a copy: the scores of a layer change every step, a full sort each time is the slow part. */
function kthSmallest(values: Float32Array, k: number): number {
  const a = values.slice();
  let lo = 0;
  let hi = a.length - 1;
  const target = k - 1;
  while (lo < hi) {
    // Median of three as pivot; Hoare partition.
    const mid = (lo + hi) >>> 1;
    const x = a[lo]!;
    const y = a[mid]!;
    const z = a[hi]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target]!;
  }
  return a[target]!;
}

export interface JackpotProgress {
  iteration: number;
  iterations: number;
  /** Training loss of the latest step, on its batch. */
  loss: number;
  /** Pairs swapped by the short restriction since the previous report, over all layers. */
  swaps: number;
}

export interface JackpotResult {
  masks: MaskSet;
  budget: Omit<JackpotBudget, 'masks'>;
  iterations: number;
  /** Pairs swapped over the whole search, per searched layer. */
  swaps: Record<string, number>;
}

export interface JackpotOptions {
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: JackpotProgress) => void) | undefined;
}

/** Report progress and give the event loop a turn (Ctrl-C, rendering) this often. */
const REPORT_EVERY = 10;

/** A searched layer's tensors: the frozen weights, the binary mask b, the scores and their momentum. */
interface SearchLayer {
  name: string;
  mask: LayerMask;
  pruned: number;
  /** Entries the input mask prunes: −∞ in the restriction, so never revived. */
  locked: Uint32Array;
  weight: tf.Tensor;
  binary: tf.Tensor;
  score: tf.Variable;
  momentum: tf.Variable;
  swaps: number;
}

/**
 * The search itself (§7.2–7.6), with progress: the strategy's prune() calls it, a driver that
 * shows progress calls it directly. `input.weights` are the trained weights; they stay frozen.
 */
export async function searchJackpot(input: PruneInput<Partial<JackpotParams>>, options: JackpotOptions = {}): Promise<JackpotResult> {
  const { signal, onProgress } = options;
  const context = requireScoringContext('jackpot', input.context);
  const params = parseParams(input.params);
  const { masks: initial, ...budget } = jackpotBudget(input.weights, input.masks, input.budget, context.specs);
  const train = context.dataset.train;
  if (params.batchSize > train.count) throw new InvalidRequestError(`batchSize ${params.batchSize} is larger than the training split (${train.count} examples).`);
  const order = new BatchOrder(train.count, params.batchSize, input.seed);
  const iterations = params.iterations ?? (params.epochs !== undefined ? params.epochs * order.batchesPerEpoch : DEFAULT_JACKPOT_ITERATIONS);
  throwIfAborted(signal);

  const next = cloneMasks(input.masks);
  const model = new JackpotModel(context, input.weights, input.masks, initial, budget.layers);
  const [h, w, c] = context.dataset.imageShape;
  const x = new Float32Array(params.batchSize * h * w * c);
  const y = new Int32Array(params.batchSize);
  let reportedSwaps = 0;
  try {
    for (let step = 0; step < iterations; step++) {
      throwIfAborted(signal);
      fillBatch(train, order.rowsAt(step), context.dataset.normalization, x, y);
      // Cosine over the steps, from lr at step 0 (imagenet.py's `cos` policy, per step rather than per epoch).
      const learningRate = 0.5 * params.learningRate * (1 + Math.cos((Math.PI * step) / iterations));
      const done = step + 1;
      const report = done % REPORT_EVERY === 0 || done === iterations;
      const lossTensor = model.step(x, y, learningRate, params);
      let loss = Number.NaN;
      try {
        reportedSwaps += await model.restrict(params.rate);
        if (report) loss = (await lossTensor.data())[0]!;
      } finally {
        lossTensor.dispose();
      }
      if (!report) continue;
      if (!Number.isFinite(loss)) throw new TrainingDivergedError(`The jackpot search diverged at step ${done} (loss ${loss}). Lower the learning rate.`);
      onProgress?.({ iteration: done, iterations, loss, swaps: reportedSwaps });
      reportedSwaps = 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
    for (const layer of model.layers) maskOf(next, layer.name).bits.set(layer.mask.bits);
    return { masks: next, budget, iterations, swaps: Object.fromEntries(model.layers.map((l) => [l.name, l.swaps])) };
  } finally {
    model.dispose();
  }
}

function parseParams(raw: Partial<JackpotParams> | undefined): JackpotParams {
  const parsed = jackpotParams.safeParse(raw ?? {});
  if (!parsed.success) {
    throw new InvalidRequestError(`jackpot options: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

function maskOf(masks: MaskSet, name: string): LayerMask {
  return masks.find((m) => m.name === name)!;
}

/** The network with frozen weights and trainable scores on the searched kernels. Holds tensors: dispose() it. */
class JackpotModel {
  readonly layers: SearchLayer[] = [];
  private readonly fixed = new Map<string, tf.Tensor>();
  private disposed = false;

  constructor(
    private readonly context: ScoringContext,
    weights: WeightSet,
    inputMasks: MaskSet,
    initial: MaskSet,
    budget: readonly JackpotLayerBudget[],
  ) {
    // Every check before the first tensor, so a refusal leaks nothing.
    const values = maskedValues(context.specs, weights, inputMasks, 'search');
    context.specs.forEach((spec, i) => {
      const layer = budget.find((l) => l.name === spec.name);
      const weight = tf.tensor(values[i]!, spec.shape, 'float32');
      if (!layer) {
        this.fixed.set(spec.name, weight);
        return;
      }
      const mask = cloneMasks([maskOf(initial, spec.name)])[0]!;
      const inputBits = maskOf(inputMasks, spec.name).bits;
      const locked: number[] = [];
      for (let k = 0; k < inputBits.length; k++) if (!inputBits[k]) locked.push(k);
      // §7.2: scores 1 where kept, 0.99 where pruned.
      const scores = Float32Array.from(mask.bits, (bit) => (bit ? 1 : 0.99));
      this.layers.push({
        name: spec.name,
        mask,
        pruned: layer.pruned,
        locked: Uint32Array.from(locked),
        weight,
        binary: tf.tensor(Float32Array.from(mask.bits), spec.shape, 'float32'),
        score: variableFrom(tf.tensor(scores, spec.shape, 'float32'), true),
        momentum: variableFrom(tf.zeros(spec.shape, 'float32'), false),
        swaps: 0,
      });
    });
  }

  /**
   * One SGD step on the scores: the forward sees w ⊙ b, the backward sends ∂L/∂(w ⊙ b) ⊙ w to the
   * scores (straight-through, the paper's GetMask). Returns the loss, for the caller to dispose.
   */
  step(x: Float32Array, y: Int32Array, learningRate: number, params: JackpotParams): tf.Scalar {
    const [h, w, c] = this.context.dataset.imageShape;
    return tf.tidy(() => {
      const images = tf.tensor4d(x, [y.length, h, w, c]);
      const labels = tf.oneHot(tf.tensor1d(y, 'int32'), this.context.dataset.numClasses);
      const scores = this.layers.map((l) => l.score);
      const { value, grads } = tf.variableGrads(() => {
        const effective = new Map(this.layers.map((l) => [l.name, straightThrough(l.weight, l.binary)(l.score)]));
        const param = (name: string) => effective.get(name) ?? this.fixed.get(name)!;
        // BatchNorm in eval mode on the pretrained running statistics, which stay frozen with the
        // weights: the result is a mask on exactly these weights and statistics. (The paper's code
        // trains in train mode and lets the statistics drift, but keeps only the mask.)
        return tf.losses.softmaxCrossEntropy(labels, zooForward(this.context.arch, param, images)) as tf.Scalar;
      }, scores);
      // PyTorch SGD: g += wd·s; buf = μ·buf + g; s -= lr·buf (the first step's buf is g, as from a zero buffer).
      for (const layer of this.layers) {
        const g = tf.add(grads[layer.score.name]!, tf.mul(params.weightDecay, layer.score));
        layer.momentum.assign(tf.add(tf.mul(params.momentum, layer.momentum), g));
        layer.score.assign(tf.sub(layer.score, tf.mul(learningRate, layer.momentum)));
      }
      return tf.keep(value);
    });
  }

  /** The short restriction on every layer; b follows the new bits. Returns the swaps made. */
  async restrict(rate: number): Promise<number> {
    const all = await Promise.all(this.layers.map(async (l) => ((await l.score.data()) as Float32Array).slice()));
    let total = 0;
    for (const [i, layer] of this.layers.entries()) {
      const scores = all[i]!;
      for (let k = 0; k < scores.length; k++) {
        if (Number.isNaN(scores[k]!)) throw new TrainingDivergedError(`The jackpot search diverged: the score of ${layer.name}[${k}] is NaN. Lower the learning rate.`);
      }
      for (const k of layer.locked) scores[k] = Number.NEGATIVE_INFINITY;
      const swaps = shortRestriction(layer.mask.bits, scores, layer.pruned, rate);
      if (swaps === 0) continue;
      layer.swaps += swaps;
      total += swaps;
      layer.binary.dispose();
      layer.binary = tf.tensor(Float32Array.from(layer.mask.bits), layer.mask.shape, 'float32');
    }
    return total;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.fixed.values()) t.dispose();
    for (const l of this.layers) tf.dispose([l.weight, l.binary, l.score, l.momentum]);
  }
}

/**
 * w ⊙ b forward, ∂L/∂s = dy ⊙ w backward: the ALGORITHMS.md form w ⊙ (b + s − stopGradient(s))
 * without its rounding (b + s − s is not always exactly b in float32), and TF.js has no stopGradient.
 */
export function straightThrough(weight: tf.Tensor, binary: tf.Tensor): (score: tf.Tensor) => tf.Tensor {
  return tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    void args;
    return { value: tf.mul(weight, binary), gradFunc: (dy: tf.Tensor) => tf.mul(dy, weight) };
  }) as unknown as (score: tf.Tensor) => tf.Tensor;
}

export const jackpotStrategy: PruningStrategy<JackpotParams> = {
  id: 'jackpot',
  description:
    'Lottery jackpots (Zhang et al. 2023): search a mask on frozen trained weights by training scores, per-layer counts from a global magnitude threshold, the classifier left dense. Global budget only; needs training data.',
  params: jackpotParams,
  async prune(input, signal) {
    const onProgress = input.onProgress;
    return (await searchJackpot(input, { signal, onProgress: onProgress && ((p) => onProgress({ done: p.iteration, total: p.iterations, loss: p.loss })) })).masks;
  },
};
