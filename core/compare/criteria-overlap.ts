// How much of a ticket's mask other pruning criteria would choose too (ALGORITHMS.md §10, mask
// similarity; the lottery-jackpots paper's overlap with magnitude masks): each criterion prunes the
// same tensors to exactly the ticket's kept count, from a dense start, through the registry
// strategy, and its mask is compared with the ticket's.
import { InvalidRequestError, throwIfAborted } from '../api/errors';
import type { LoadedDataset } from '../data/datasets';
import type { Architecture, ParamSpec } from '../models/architectures';
import type { WeightSet } from '../models/weights';
import { type LayerMask, type MaskSet, countKept, onesMask } from '../pruning/mask';
import { pruningStrategy } from '../pruning/registry';
import type { PruneBudget } from '../pruning/strategy';
import { type MaskSimilarity, compareMasks } from './mask-metrics';

export const OVERLAP_CRITERIA = ['magnitude', 'snip', 'grasp', 'synflow', 'random'] as const;
export type OverlapCriterion = (typeof OVERLAP_CRITERIA)[number];

/**
 * Which of the ticket's weights each criterion scores. Magnitude is a criterion after training
 * (OMP, §2); SNIP, GraSP and SynFlow score the network at its start (§4–6); random scores nothing.
 */
export const SCORED_WEIGHTS: Readonly<Record<OverlapCriterion, 'trained' | 'start' | 'none'>> = {
  magnitude: 'trained',
  snip: 'start',
  grasp: 'start',
  synflow: 'start',
  random: 'none',
};

export interface CriteriaOverlapInput {
  arch: Architecture;
  specs: readonly ParamSpec[];
  /** Training data for SNIP and GraSP; SynFlow, magnitude and random need none. */
  dataset?: LoadedDataset | undefined;
  /** The ticket's mask (A in |A∩B|/|A|). */
  masks: MaskSet;
  /** θ0 or θk, where the ticket's training starts: what SNIP, GraSP and SynFlow score. */
  startWeights: WeightSet;
  /**
   * The trained weights the ticket was pruned from, what magnitude scores: the dense trained
   * network for a one-shot ticket, the previous level's trained weights for an IMP level. A
   * ticket's own trained weights are zero wherever it prunes, so magnitude would return its mask.
   */
  trainedWeights: WeightSet;
  /** Default: all five; without synflow for a layer scope (SynFlow ranks globally only). */
  criteria?: readonly OverlapCriterion[] | undefined;
  /**
   * global (default, as the jackpots paper reports it): each criterion keeps the ticket's total kept
   * count over `tensors` and spreads it by its own ranking. layer: the ticket's count in each tensor.
   */
  scope?: 'global' | 'layer' | undefined;
  /** The tensors compared and re-pruned. Default: every tensor of the ticket's mask. Pass the ticket's prune list to leave its ignored tensors out. */
  tensors?: readonly string[] | undefined;
  /** Seeds random and the scoring batch of SNIP and GraSP. */
  seed?: number | undefined;
  /** Each criterion's own parameters (its strategy's schema), e.g. `{ synflow: { rounds: 10 } }` for a quick run. */
  params?: Partial<Record<OverlapCriterion, unknown>> | undefined;
  signal?: AbortSignal | undefined;
  /** After each criterion: how many are done, of how many. */
  onProgress?: ((p: { done: number; total: number; criterion: OverlapCriterion }) => void) | undefined;
}

export interface CriterionOverlap {
  criterion: OverlapCriterion;
  /** The weights it scored. */
  scored: 'trained' | 'start' | 'none';
  /** The mask it chose (B), over the compared tensors. */
  masks: MaskSet;
  /** Ticket (A) against this criterion (B): overlap, IoU, Hamming and their chance values. */
  total: MaskSimilarity;
  layers: MaskSimilarity[];
}

export interface CriteriaOverlapResult {
  scope: 'global' | 'layer';
  tensors: string[];
  /** The ticket's kept count and sparsity over `tensors`, which every criterion matches. */
  kept: number;
  sparsity: number;
  criteria: CriterionOverlap[];
  /**
   * Whether the scored weights are exactly zero wherever the ticket prunes. Then a criterion sees the
   * ticket's mask in its input and its overlap is inflated (magnitude returns the mask itself).
   */
  weightsZeroWherePruned: { start: boolean; trained: boolean };
}

export async function criteriaOverlap(input: CriteriaOverlapInput): Promise<CriteriaOverlapResult> {
  const scope = input.scope ?? 'global';
  const criteria = [...(input.criteria ?? OVERLAP_CRITERIA.filter((c) => scope === 'global' || c !== 'synflow'))];
  const tensors = input.tensors ? [...input.tensors] : input.masks.map((m) => m.name);
  const ticket = tensors.map((name) => {
    const mask = input.masks.find((m) => m.name === name);
    if (!mask) throw new InvalidRequestError(`The ticket has no mask for '${name}'; the criteria can only be compared on masked tensors.`);
    return mask;
  });
  const kept = ticket.reduce((n, m) => n + countKept(m.bits), 0);
  const total = ticket.reduce((n, m) => n + m.bits.length, 0);
  // Exactly the ticket's counts, not a rounded sparsity: |A| = |B|, so overlap and IoU compare like with like.
  const budget: PruneBudget =
    scope === 'global' ? { scope, keep: kept, tensors } : { scope, keep: Object.fromEntries(ticket.map((m) => [m.name, countKept(m.bits)])) };
  const context = { arch: input.arch, specs: input.specs, dataset: input.dataset };
  const weightsFor = { trained: input.trainedWeights, start: input.startWeights, none: input.startWeights };

  const results: CriterionOverlap[] = [];
  for (const criterion of criteria) {
    throwIfAborted(input.signal);
    const strategy = pruningStrategy(criterion);
    const scored = SCORED_WEIGHTS[criterion];
    const parsed = strategy.params.safeParse(input.params?.[criterion] ?? {});
    if (!parsed.success) throw new InvalidRequestError(`Bad options for the ${criterion} criterion: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`).join('; ')}.`);
    // A dense start: each criterion chooses from every entry, as it would when pruning from scratch.
    const dense = ticket.map((m) => onesMask(m.name, m.shape));
    const masks = await strategy.prune({ weights: weightsFor[scored], masks: dense, budget, params: parsed.data, seed: input.seed ?? 0, context }, input.signal);
    const comparison = compareMasks(ticket, masks);
    results.push({ criterion, scored, masks, total: comparison.total, layers: comparison.layers });
    input.onProgress?.({ done: results.length, total: criteria.length, criterion });
  }
  return {
    scope,
    tensors,
    kept,
    sparsity: total === 0 ? 0 : 1 - kept / total,
    criteria: results,
    weightsZeroWherePruned: { start: zeroWherePruned(input.startWeights, ticket), trained: zeroWherePruned(input.trainedWeights, ticket) },
  };
}

/** True when every entry the ticket prunes is exactly 0 in these weights (and it prunes something). */
function zeroWherePruned(weights: WeightSet, ticket: readonly LayerMask[]): boolean {
  let pruned = 0;
  for (const mask of ticket) {
    const w = weights.find((t) => t.name === mask.name)?.values;
    if (!w) return false;
    for (let i = 0; i < mask.bits.length; i++) {
      if (mask.bits[i]) continue;
      if (w[i] !== 0) return false;
      pruned++;
    }
  }
  return pruned > 0;
}
