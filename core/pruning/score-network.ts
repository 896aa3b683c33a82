// The network as data-dependent pruning scores see it (SNIP, GraSP; ALGORITHMS.md §0, §4, §5):
// a forward over plain weight tensors, with no mask in it. The stored weights are already zero at
// pruned entries, so the function is the masked network's, but the gradient there is the dense one
// (with w*m it would be 0). Only ops whose gradients TF.js can differentiate again, for GraSP's Hg.
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { InvalidRequestError, throwIfAborted } from '../api/errors';
import { Rng } from '../compute/rng';
import { type LoadedDataset, fillBatch } from '../data/datasets';
import type { Architecture, ParamSpec } from '../models/architectures';
import { maskedCopy, zooForward } from '../models/network';
import type { WeightSet } from '../models/weights';
import type { MaskSet } from './mask';
import type { PruneBudget, PruneContext, PruneInput } from './strategy';

/** What a data-dependent score needs, checked present. */
export interface ScoringContext {
  arch: Architecture;
  specs: readonly ParamSpec[];
  dataset: LoadedDataset;
}

/** The context, or an InvalidRequestError naming what is missing. */
export function requireScoringContext(strategyId: string, context: PruneContext | undefined): ScoringContext {
  if (!context?.arch || !context.specs || !context.dataset) {
    const missing = [
      ...(context?.arch ? [] : ['the architecture']),
      ...(context?.specs ? [] : ['its parameter specs']),
      ...(context?.dataset ? [] : ['the training dataset']),
    ];
    throw new InvalidRequestError(`Pruning strategy '${strategyId}' scores weights through the network on training data; it needs ${missing.join(', ')}.`);
  }
  return { arch: context.arch, specs: context.specs, dataset: context.dataset };
}

/** The tensors a budget prunes, in architecture order; each must be a prunable kernel (biases are never scored). */
export function budgetTensors(budget: PruneBudget, specs: readonly ParamSpec[]): string[] {
  const named = budget.scope === 'global' ? budget.tensors : Object.keys(budget.keep);
  for (const name of named) {
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw new InvalidRequestError(`The pruning budget names '${name}', which is not a parameter of this model.`);
    if (!spec.prunable) throw new InvalidRequestError(`The pruning budget names '${name}', which is not prunable (only conv and dense kernels are).`);
  }
  return specs.filter((s) => named.includes(s.name)).map((s) => s.name);
}

/** One batch of normalised inputs and labels. */
export interface ScoringBatch {
  x: Float32Array;
  labels: Int32Array;
  count: number;
}

/**
 * examplesPerClass × numClasses training examples drawn at random without replacement, as
 * Synaptic-Flow's prune loader takes them (not class-balanced). The stream is shared by SNIP and
 * GraSP, so for one seed both score on the same examples.
 */
export function scoringBatch(dataset: LoadedDataset, examplesPerClass: number, seed: number): ScoringBatch {
  const count = examplesPerClass * dataset.numClasses;
  if (count > dataset.train.count) {
    throw new InvalidRequestError(`Scoring asks for ${count} training examples (${examplesPerClass} per class); the training set has ${dataset.train.count}.`);
  }
  const rng = Rng.stream(seed, 'pruning-score-data', dataset.id);
  // Partial Fisher-Yates: the first `count` positions are a uniform sample without replacement.
  const rows = new Uint32Array(dataset.train.count);
  for (let i = 0; i < rows.length; i++) rows[i] = i;
  for (let i = 0; i < count; i++) {
    const j = i + rng.int(rows.length - i);
    const tmp = rows[i]!;
    rows[i] = rows[j]!;
    rows[j] = tmp;
  }
  const size = dataset.imageShape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(count * size);
  const labels = new Int32Array(count);
  fillBatch(dataset.train, rows.subarray(0, count), dataset.normalization, x, labels);
  return { x, labels, count };
}

/** SNIP's and GraSP's scoring batch size, per class (Synaptic-Flow: 10). */
export const examplesPerClassParam = z
  .number().int().min(1).max(1000).default(10)
  .describe('Scoring examples: this many times the number of classes, drawn at random from the training split, one batch (Synaptic-Flow: 10).');

/**
 * Every parameter's values, in spec order, zero where its mask prunes (a no-op on weights stored as
 * ALGORITHMS.md §0 says; it keeps the forward the masked network's otherwise). Refuses a missing or
 * mis-shaped tensor, naming what the weights were for.
 */
export function maskedValues(specs: readonly ParamSpec[], weights: WeightSet, masks: MaskSet, purpose: string): Float32Array[] {
  return specs.map((spec) => {
    const w = weights.find((t) => t.name === spec.name);
    if (!w || w.values.length !== spec.shape.reduce((a, b) => a * b, 1)) {
      throw new InvalidRequestError(`The weights to ${purpose} have no tensor '${spec.name}' of shape [${spec.shape.join(', ')}].`);
    }
    const mask = masks.find((m) => m.name === spec.name);
    return mask ? maskedCopy(w.values, mask.bits) : w.values;
  });
}

/**
 * Logits of `arch` for a batch [n, h, w, c], every parameter read through `param`. Plain ops (twice
 * differentiable), no masks, BatchNorm in eval mode on the running statistics (Synaptic-Flow scores
 * with prune_train_mode false).
 */
export function scoringForward(arch: Architecture, param: (name: string) => tf.Tensor, x: tf.Tensor4D): tf.Tensor2D {
  return zooForward(arch, param, x, { plainOps: true });
}

/**
 * Mean softmax cross-entropy from ops that TF.js differentiates twice correctly. tf.exp (like tanh
 * and sigmoid) reuses its saved output in its gradient, and TF.js records that saved copy on the
 * tape before the op that made it; tf.losses.softmaxCrossEntropy and logSoftmax save values made
 * off the tape. Either way a gradient of the gradient takes them as constants and silently drops
 * the softmax's curvature (on LeNet at T = 200, Hg 1–3 % off per layer; with tanh, several times off).
 */
export function crossEntropy(labels: tf.Tensor2D, logits: tf.Tensor2D): tf.Scalar {
  const shift = rowMaxConstant(logits);
  const logSumExp = tf.add(shift, tf.log(tf.sum(expRecomputed(tf.sub(logits, shift)), 1, true)));
  return tf.mean(tf.sub(tf.squeeze(logSumExp, [1]), tf.sum(tf.mul(labels, logits), 1)));
}

/**
 * exp whose gradient recomputes exp(x) from its saved input: a saved input's copy is recorded after
 * the input's maker, so the gradient stays a function of x on the tape.
 */
const expRecomputed = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  save([x]);
  return { value: tf.exp(x), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.exp(saved[0]!)) };
}) as unknown as (x: tf.Tensor) => tf.Tensor;

/**
 * The row-wise max as a constant (zero gradient), to keep exp() from overflowing: any constant
 * shift gives the same loss, and tf.max's own gradient goes through Equal, which has no gradient.
 */
const rowMaxConstant = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor2D;
  return { value: tf.max(x, 1, true), gradFunc: () => tf.zerosLike(x) };
}) as unknown as (x: tf.Tensor2D) => tf.Tensor2D;

/**
 * What a scoring strategy starts from, checked in this order: its context, its parameters, the
 * budget's tensors; then its seeded batch of `examplesPerClass` images per class and the network
 * over the budget's kernels (dispose() it).
 */
export function openScoring<P extends { examplesPerClass: number }>(
  strategyId: string,
  input: PruneInput<unknown>,
  paramsSchema: z.ZodType<P>,
  signal?: AbortSignal,
): { net: ScoringNetwork; params: P } {
  const context = requireScoringContext(strategyId, input.context);
  const params = paramsSchema.parse(input.params ?? {});
  const names = budgetTensors(input.budget, context.specs);
  const batch = scoringBatch(context.dataset, params.examplesPerClass, input.seed);
  throwIfAborted(signal);
  return { net: new ScoringNetwork(context, input.weights, input.masks, names, batch), params };
}

/**
 * The loss of the network as a function of the scored kernels θ, on one fixed batch. Every other
 * tensor (biases, BatchNorm parameters and running statistics, kernels outside the budget) is a
 * constant. Holds tensors: dispose() it.
 */
export class ScoringNetwork {
  /** The scored kernels' names, in architecture order. */
  readonly names: string[];
  /** θ: the stored weights of the scored kernels, pruned entries zero. */
  readonly theta: tf.Tensor[];
  private readonly fixed = new Map<string, tf.Tensor>();
  private readonly x: tf.Tensor4D;
  private readonly labels: tf.Tensor2D;
  private disposed = false;

  constructor(
    private readonly context: ScoringContext,
    weights: WeightSet,
    masks: MaskSet,
    names: readonly string[],
    batch: ScoringBatch,
  ) {
    this.names = [...names];
    // Every check before the first tensor, so a refusal leaks nothing.
    const values = maskedValues(context.specs, weights, masks, 'score');
    const theta = new Map<string, tf.Tensor>();
    context.specs.forEach((spec, i) => {
      (names.includes(spec.name) ? theta : this.fixed).set(spec.name, tf.tensor(values[i]!, spec.shape, 'float32'));
    });
    this.theta = this.names.map((name) => theta.get(name)!);
    const [h, wd, c] = context.dataset.imageShape;
    this.x = tf.tensor4d(batch.x, [batch.count, h, wd, c]);
    this.labels = tf.tidy(() => tf.oneHot(tf.tensor1d(batch.labels, 'int32'), context.dataset.numClasses) as tf.Tensor2D);
  }

  /** Mean softmax cross-entropy on the batch with θ replaced by `theta`, the logits divided by `temperature`. */
  loss(theta: readonly tf.Tensor[], temperature = 1): tf.Scalar {
    const byName = new Map(this.names.map((name, i) => [name, theta[i]!]));
    const param = (name: string) => byName.get(name) ?? this.fixed.get(name)!;
    const logits = scoringForward(this.context.arch, param, this.x);
    return crossEntropy(this.labels, temperature === 1 ? logits : tf.div(logits, temperature));
  }

  /** ∇_θ L at `theta` (default: the stored weights), dense at pruned entries. */
  gradient(theta: readonly tf.Tensor[] = this.theta, temperature = 1): tf.Tensor[] {
    return tf.grads((...t: tf.Tensor[]) => this.loss(t, temperature))([...theta]);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.theta) t.dispose();
    for (const t of this.fixed.values()) t.dispose();
    this.x.dispose();
    this.labels.dispose();
  }
}

/** Reads tensors into typed arrays and disposes them. */
export async function readAndDispose(tensors: readonly tf.Tensor[]): Promise<Float32Array[]> {
  try {
    // Copy: some backends hand out their own backing array.
    return await Promise.all(tensors.map(async (t) => ((await t.data()) as Float32Array).slice()));
  } finally {
    for (const t of tensors) t.dispose();
  }
}
