// Attacks on an ownership claim (ALGORITHMS.md §9.6), run by the owner against their own claim: how
// much must a thief change the ticket before a verdict flips? Each attack is a function of the claimed
// network that returns the attacked network (its weights and the mask a verifier reads) and what was
// done, with its strength. Verifying, evaluating and storing the verdicts is the service's job.
//
// This file: fine-tuning, further pruning and re-training from the mask. The ambiguity attacks
// (random revival, a forged signature, a random-key claim) are in ambiguity-attacks.ts.
import { InvalidRequestError } from '../api/errors';
import type { LoadedDataset } from '../data/datasets';
import type { Architecture, ParamSpec } from '../models/architectures';
import { maskedCopy } from '../models/network';
import { type WeightSet, initWeights } from '../models/weights';
import { globalRateBudget, layerRateBudget } from '../pruning/budget';
import { denseMasks } from '../pruning/imp';
import { magnitudeStrategy } from '../pruning/magnitude';
import { type MaskSet, cloneMasks, countKept } from '../pruning/mask';
import { randomStrategy } from '../pruning/random';
import { DEFAULT_OPTIMIZER } from '../train/optimizers';
import { type TrainProgress, type TrainSchedule, trainMasked } from '../train/train';
import { masksFromWeights } from './mask-graph';

/** The claimed network an attack starts from, and the attacker's seed. */
export interface AttackInput {
  arch: Architecture;
  specs: readonly ParamSpec[];
  dataset: LoadedDataset;
  /** The claimed ticket's trained weights; entries its mask prunes are treated as zero. */
  weights: WeightSet;
  masks: MaskSet;
  /** The schedule the ticket was trained with: LR rewinding replays it; re-training from the mask uses it. */
  schedule?: TrainSchedule | undefined;
  /** Seeds the attacker's data order and every random choice the attack makes. */
  seed: number;
  signal?: AbortSignal | undefined;
  onProgress?: ((p: TrainProgress) => void) | undefined;
}

/** The attacked network. */
export interface AttackedNetwork {
  /** Zero wherever `masks` prunes, so a maskless reading (w ≠ 0) of them sees the same mask. */
  weights: WeightSet;
  /** The mask a verifier reads from the attacked network. */
  masks: MaskSet;
  /** What was done and how strongly: stored next to the verdicts. */
  description: Record<string, unknown>;
}

/** The weights with every entry their mask prunes set to exactly zero. */
export function maskedWeights(weights: WeightSet, masks: MaskSet): WeightSet {
  return weights.map((t) => {
    const m = masks.find((mask) => mask.name === t.name);
    return m ? { ...t, shape: [...t.shape], values: maskedCopy(t.values, m.bits) } : { ...t, shape: [...t.shape], values: t.values.slice() };
  });
}

function keptCount(masks: MaskSet): number {
  return masks.reduce((n, m) => n + countKept(m.bits), 0);
}

export interface FineTuneOptions {
  /** Training steps; or `epochs` passes over the training split (the default is 20 epochs, §9.6.1). */
  iterations?: number;
  epochs?: number;
  /** Constant SGD learning rate and momentum of plain fine-tuning (§9.6.1: 0.01 and 0.9). */
  learningRate?: number;
  momentum?: number;
  /** Default: the schedule's batch size, else 60. */
  batchSize?: number;
  /**
   * LR rewinding (Renda et al. 2020): replay the last N steps of the ticket's own schedule, its
   * optimiser, learning rate and drops included, instead of the small constant rate.
   */
  rewindLearningRate?: boolean;
  /** Train every weight (dense masks, pruned entries starting at zero) instead of keeping the mask fixed. */
  free?: boolean;
}

export interface FineTunedNetwork extends AttackedNetwork {
  /**
   * Free fine-tuning only: the mask keeping each layer's claimed count of largest |w| (§9.3,
   * "maskless suspect"), to be scored beside `masks` (w ≠ 0, which free training makes dense).
   */
  claimedCountMasks?: MaskSet;
}

const DEFAULT_FINE_TUNE_EPOCHS = 20;

function positiveInteger(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 1) throw new InvalidRequestError(`${what} must be a positive integer, got ${value}.`);
  return value;
}

/** Fine-tuning on clean data (§9.6.1): with the claimed mask fixed, or free. */
export async function fineTuneAttack(input: AttackInput, options: FineTuneOptions = {}): Promise<FineTunedNetwork> {
  const { specs, dataset } = input;
  if (options.iterations !== undefined && options.epochs !== undefined) throw new InvalidRequestError('Fine-tuning takes iterations or epochs, not both.');
  const batchSize = positiveInteger(options.batchSize ?? input.schedule?.batchSize ?? 60, 'The fine-tuning batch size');
  const iterations = positiveInteger(options.iterations ?? Math.ceil(((options.epochs ?? DEFAULT_FINE_TUNE_EPOCHS) * dataset.train.count) / batchSize), 'Fine-tuning iterations');
  const free = options.free ?? false;
  const rewind = options.rewindLearningRate ?? false;

  let schedule: TrainSchedule;
  let startIteration = 0;
  if (rewind) {
    const original = input.schedule;
    if (!original) throw new InvalidRequestError('Fine-tuning with LR rewinding replays the ticket\'s own schedule; none was given.');
    if (iterations > original.iterations) {
      throw new InvalidRequestError(`LR rewinding replays the last ${iterations} of the schedule's ${original.iterations} iterations: ask for at most ${original.iterations}.`);
    }
    // The learning rate is a pure function of the iteration, so starting at T − N replays the last N steps' rates.
    startIteration = original.iterations - iterations;
    schedule = { ...original, batchSize, evalEvery: original.iterations + 1 };
  } else {
    const learningRate = options.learningRate ?? 0.01;
    if (!(learningRate > 0)) throw new InvalidRequestError(`The fine-tuning learning rate must be positive, got ${learningRate}.`);
    const momentum = options.momentum ?? 0.9;
    if (!(momentum >= 0 && momentum < 1)) throw new InvalidRequestError(`SGD momentum must lie in [0, 1), got ${momentum}.`);
    // Evaluated only at the ends: the attack's result is its last weights, not an early-stopped copy.
    schedule = { iterations, batchSize, evalEvery: iterations + 1, optimizer: { ...DEFAULT_OPTIMIZER, name: 'sgd', learningRate, momentum } };
  }

  const start = maskedWeights(input.weights, input.masks);
  const trainingMasks = free ? denseMasks(specs) : cloneMasks(input.masks);
  const result = await trainMasked({
    arch: input.arch, specs, dataset, weights: start, masks: trainingMasks, schedule, startIteration,
    dataSeed: input.seed, signal: input.signal, onProgress: input.onProgress,
  });
  const description = {
    attack: 'fine-tune', mask: free ? 'free' : 'fixed', iterations, epochs: (iterations * batchSize) / dataset.train.count, batchSize,
    rewindLearningRate: rewind, startIteration, optimizer: schedule.optimizer, learningRateDrops: schedule.learningRateDrops ?? null, dataSeed: input.seed,
  };
  if (!free) return { weights: result.finalWeights, masks: trainingMasks, description };

  const claimedCounts = new Map(input.masks.map((m) => [m.name, countKept(m.bits)]));
  const masks = masksFromWeights(result.finalWeights, specs);
  return { weights: result.finalWeights, masks, claimedCountMasks: masksFromWeights(result.finalWeights, specs, claimedCounts), description: { ...description, keptAfter: keptCount(masks) } };
}

export interface PruneAttackOptions {
  /** The fraction of the remaining (kept) weights to prune further: ceil(fraction · kept) go. */
  fraction: number;
  by?: 'magnitude' | 'random';
  /** One ranking over every masked tensor, or the same fraction of each. */
  scope?: 'global' | 'layer';
}

/**
 * Further pruning without fine-tuning (§9.6.2, the repo's `--evaluate-p`): a signature bit flips
 * 1 → 0 only when every kernel entry of its pair goes, which the verifier's adjacency already reads.
 */
export async function pruneAttack(input: AttackInput, options: PruneAttackOptions): Promise<AttackedNetwork> {
  const { fraction } = options;
  const by = options.by ?? 'magnitude';
  const scope = options.scope ?? 'global';
  if (!(fraction >= 0 && fraction < 1)) throw new InvalidRequestError(`The pruning attack removes a fraction in [0, 1) of the remaining weights, got ${fraction}.`);
  const names = input.masks.map((m) => m.name);
  const budget = scope === 'global' ? globalRateBudget(input.masks, fraction, names) : layerRateBudget(input.masks, Object.fromEntries(names.map((n) => [n, fraction])));
  const strategy = by === 'magnitude' ? magnitudeStrategy : randomStrategy;
  // Magnitude ranks the claimed weights as they are (pruned ones count as zero but are never candidates).
  const weights = maskedWeights(input.weights, input.masks);
  const masks = await strategy.prune({ weights, masks: input.masks, budget, params: {}, seed: input.seed }, input.signal ?? new AbortController().signal);
  const keptBefore = keptCount(input.masks);
  const keptAfter = keptCount(masks);
  return {
    weights: maskedWeights(weights, masks), masks,
    description: { attack: 'prune', fraction, by, scope, keptBefore, keptAfter, pruned: keptBefore - keptAfter, ...(by === 'random' ? { seed: input.seed } : {}) },
  };
}

export interface RetrainFromMaskOptions {
  /** Default: the input's schedule. */
  schedule?: TrainSchedule;
  /** The fresh initialisation's and the data order's seed; default the input's. */
  seed?: number;
}

/**
 * Re-training from the mask (§9.6): the thief keeps the claimed topology and replaces every weight,
 * training from a fresh initialisation. The signature lives in the topology and should survive; a
 * trigger set lives in the weights and should not.
 */
export async function retrainFromMaskAttack(input: AttackInput, options: RetrainFromMaskOptions = {}): Promise<AttackedNetwork> {
  const schedule = options.schedule ?? input.schedule;
  if (!schedule) throw new InvalidRequestError('Re-training from the mask needs a training schedule; none was given.');
  const seed = options.seed ?? input.seed;
  const masks = cloneMasks(input.masks);
  // Its own stream: with the owner's run seed the default 'init' stream would give back the owner's init.
  const init = maskedWeights(initWeights(input.specs, seed, 'retrain-from-mask-attack'), masks);
  const result = await trainMasked({
    arch: input.arch, specs: input.specs, dataset: input.dataset, weights: init, masks, schedule: { ...schedule, evalEvery: schedule.iterations + 1 },
    dataSeed: seed, signal: input.signal, onProgress: input.onProgress,
  });
  return {
    weights: result.finalWeights, masks,
    description: { attack: 'retrain-from-mask', seed, iterations: schedule.iterations, batchSize: schedule.batchSize, optimizer: schedule.optimizer, learningRateDrops: schedule.learningRateDrops ?? null },
  };
}
