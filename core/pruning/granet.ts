// GraNet's mask update (Liu et al., NeurIPS 2021; ALGORITHMS.md §8): gradual global magnitude pruning,
// then zero-cost neuroregeneration: per layer, the smallest active weights make room for as many
// entries of largest dense gradient. `regrow: false` is plain gradual magnitude pruning (GMP).
// One call is one update; the schedule that calls it every Δt iterations is gradual.ts.
import { z } from 'zod';
import { InternalError, InvalidRequestError } from '../api/errors';
import type { WeightSet } from '../models/weights';
import { ceilFraction } from './budget';
import { type LayerMask, type MaskSet, cloneMasks, countKept } from './mask';
import { pruneLowest, pruneToBudget } from './select';
import type { PruneBudget, PruningStrategy } from './strategy';

export const granetParams = z
  .object({
    regrowthRate: z
      .number()
      .min(0)
      .max(1)
      .default(0.5)
      .describe('ρ0: fraction of each layer\'s active weights swapped at the start of training (GraNet --death-rate 0.5).'),
    finalRegrowthRate: z
      .number()
      .min(0)
      .max(1)
      .default(0.005)
      .describe('ρ at the end of training: the rate follows a cosine from ρ0 to this (GraNet CosineDecay, eta_min 0.005).'),
    regrow: z.boolean().default(true).describe('false: no regeneration, plain gradual magnitude pruning (GMP).'),
    progress: z
      .number()
      .min(0)
      .max(1)
      .default(0)
      .describe('Fraction of training done at this update (iteration / total): picks ρ on the cosine.'),
  })
  .strict();
export type GranetParams = z.output<typeof granetParams>;

export function parseGranetParams(raw: unknown): GranetParams {
  const parsed = granetParams.safeParse(raw ?? {});
  if (!parsed.success) {
    throw new InvalidRequestError(`granet options: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; ')}.`);
  }
  return parsed.data;
}

/**
 * The regeneration rate after a fraction `progress` of training: a cosine from `initial` to `final`
 * (PyTorch's CosineAnnealingLR over all iterations, as GraNet's CosineDecay). Written as a blend so
 * both ends are exact.
 */
export function cosineRegrowthRate(progress: number, initial: number, final: number): number {
  const c = (1 + Math.cos(Math.PI * Math.min(1, Math.max(0, progress)))) / 2;
  return initial * c + final * (1 - c);
}

export interface GranetStepInput {
  weights: WeightSet;
  /** The masks to update; regeneration acts on each of them, the budget only on the pruning step. */
  masks: MaskSet;
  /** Keep count of the pruning step; tensors it does not name are not pruned (e.g. `{ scope: 'layer', keep: {} }` after the pruning window). */
  budget: PruneBudget;
  /** ρ of this update; 0 skips regeneration. */
  regrowthRate: number;
  /** Dense ∂L/∂w, needed when regrowthRate > 0. */
  gradients?: WeightSet | undefined;
}

export interface GranetStepResult {
  /** The masks after the update. */
  masks: MaskSet;
  /** The masks after the pruning step, before regeneration: an entry 0 here and 1 in `masks` was regrown from zero. */
  afterPruning: MaskSet;
  /** Entries removed by the pruning step. */
  pruned: number;
  /** Entries grown by regeneration (as many as it removed; some may be entries it had just removed). */
  regrown: number;
}

/** One GraNet update on plain arrays. The strategy below and the training-time driver (gradual.ts) share it. */
export function granetStep({ weights, masks, budget, regrowthRate, gradients }: GranetStepInput): GranetStepResult {
  const magnitudes = new Map<string, Float32Array>();
  for (const mask of masks) magnitudes.set(mask.name, valuesFor(weights, mask, 'weights').map(Math.abs));

  // 1. Gradual magnitude pruning. An active weight at exactly 0 is never kept: GraNet keeps |w| strictly
  // above the threshold, so a zero threshold cannot densify. Mask-0 entries are never candidates (§0).
  const afterPruning = cloneMasks(masks);
  const before = afterPruning.reduce((n, m) => n + countKept(m.bits), 0);
  const named = budget.scope === 'global' ? budget.tensors : Object.keys(budget.keep);
  for (const name of named) {
    const mask = afterPruning.find((m) => m.name === name);
    if (!mask) throw new InvalidRequestError(`The pruning budget names ${name}, which has no mask.`);
    const abs = magnitudes.get(name)!;
    for (let i = 0; i < mask.bits.length; i++) if (mask.bits[i] && abs[i] === 0) mask.bits[i] = 0;
  }
  pruneToBudget(afterPruning, magnitudes, budget);
  const pruned = before - afterPruning.reduce((n, m) => n + countKept(m.bits), 0);

  // 2. Zero-cost neuroregeneration, layer by layer: the counts do not change.
  const next = cloneMasks(afterPruning);
  let regrown = 0;
  if (!(regrowthRate >= 0 && regrowthRate <= 1)) throw new InvalidRequestError(`The regrowth rate must be in [0, 1], got ${regrowthRate}.`);
  if (regrowthRate > 0) {
    for (const mask of next) {
      const active = countKept(mask.bits);
      const count = Math.min(active, ceilFraction(regrowthRate, active));
      if (count === 0) continue;
      if (!gradients) throw new InvalidRequestError('GraNet regrows where the dense gradient is largest: give the gradients (context.gradients), or set regrow: false for plain GMP.');
      pruneLowest([{ mask, scores: magnitudes.get(mask.name)! }], count);
      growLargest(mask, valuesFor(gradients, mask, 'gradients'), count);
      regrown += count;
    }
  }
  return { masks: next, afterPruning, pruned, regrown };
}

/**
 * Sets exactly `count` mask-0 entries to 1, those of largest |g| first, ties by position (lowest flat
 * index first): the growth counterpart of pruneLowest's exact-k rule (§0).
 */
function growLargest(mask: LayerMask, g: Float32Array, count: number): void {
  const bits = mask.bits;
  const candidates = bits.length - countKept(bits);
  const values = new Float32Array(candidates);
  let n = 0;
  for (let i = 0; i < bits.length; i++) {
    if (bits[i]) continue;
    const s = Math.abs(g[i]!);
    if (Number.isNaN(s)) throw new InternalError(`Gradient is NaN at ${mask.name}[${i}]: training diverged.`);
    values[n++] = s;
  }
  values.sort(); // ascending
  const threshold = values[candidates - count]!;
  let above = 0;
  while (above < count && values[candidates - 1 - above]! > threshold) above++;
  let atThreshold = count - above;
  for (let i = 0; i < bits.length; i++) {
    if (bits[i]) continue;
    const s = Math.abs(g[i]!);
    if (s > threshold) bits[i] = 1;
    else if (s === threshold && atThreshold > 0) {
      bits[i] = 1;
      atThreshold--;
    }
  }
}

function valuesFor(set: WeightSet, mask: LayerMask, what: string): Float32Array {
  const t = set.find((w) => w.name === mask.name);
  if (!t || t.values.length !== mask.bits.length) throw new InvalidRequestError(`GraNet needs ${what} for ${mask.name} (${mask.bits.length} entries); ${t ? `got ${t.values.length}` : 'none given'}.`);
  return t.values;
}

export const granetStrategy: PruningStrategy<GranetParams> = {
  id: 'granet',
  description:
    'GraNet (Liu et al. 2021): global magnitude pruning to the budget, then per layer the smallest active weights are swapped for the entries of largest dense gradient (regrow: false = GMP). Needs context.gradients; gradual.ts runs it during training.',
  params: granetParams,
  async prune({ weights, masks, budget, params, context }) {
    const p = parseGranetParams(params);
    const regrowthRate = p.regrow ? cosineRegrowthRate(p.progress, p.regrowthRate, p.finalRegrowthRate) : 0;
    return granetStep({ weights, masks, budget, regrowthRate, gradients: context?.gradients }).masks;
  },
};
