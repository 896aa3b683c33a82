// Exact-k selection (ALGORITHMS.md §0, Ticket Lab choice): to prune k entries, order the
// candidates by (score ascending, position ascending) and prune exactly the first k. The papers'
// repos threshold with <= and prune extra entries on ties; we never do.
import { InternalError } from '../api/errors';
import { type LayerMask, type MaskSet, countKept } from './mask';
import type { PruneBudget } from './strategy';

export interface ScoredTensor {
  mask: LayerMask;
  /** One score per entry, same layout as the mask; higher = more worth keeping. */
  scores: Float32Array;
}

/**
 * Prunes exactly `count` of the currently kept entries of `group`, the lowest scores first, ties
 * broken by position (tensor order, then flat index). Writes into the masks' bits.
 */
export function pruneLowest(group: readonly ScoredTensor[], count: number): void {
  if (count <= 0) return;
  const candidates = group.reduce((n, t) => n + countKept(t.mask.bits), 0);
  if (count >= candidates) {
    for (const { mask } of group) mask.bits.fill(0);
    return;
  }
  const values = new Float32Array(candidates);
  let n = 0;
  for (const { mask, scores } of group) {
    for (let i = 0; i < mask.bits.length; i++) {
      if (!mask.bits[i]) continue;
      const s = scores[i]!;
      if (Number.isNaN(s)) throw new InternalError(`Pruning score is NaN at ${mask.name}[${i}]: the weights or gradients diverged.`);
      values[n++] = s;
    }
  }
  values.sort(); // numeric for typed arrays
  const threshold = values[count - 1]!;
  // Entries strictly below the threshold all go; of those equal to it, the first ones by position.
  let below = 0;
  while (below < count && values[below]! < threshold) below++;
  let atThreshold = count - below;
  for (const { mask, scores } of group) {
    const bits = mask.bits;
    for (let i = 0; i < bits.length; i++) {
      if (!bits[i]) continue;
      const s = scores[i]!;
      if (s < threshold) bits[i] = 0;
      else if (s === threshold && atThreshold > 0) {
        bits[i] = 0;
        atThreshold--;
      }
    }
  }
}

/** Applies a budget to scored masks: per tensor for `layer`, one ranking over the named tensors for `global`. */
export function pruneToBudget(masks: MaskSet, scoresByName: Map<string, Float32Array>, budget: PruneBudget): void {
  const scored = (name: string): ScoredTensor => {
    const mask = masks.find((m) => m.name === name);
    const scores = scoresByName.get(name);
    if (!mask || !scores) throw new InternalError(`No mask or scores for ${name}.`);
    return { mask, scores };
  };
  if (budget.scope === 'layer') {
    for (const [name, keep] of Object.entries(budget.keep)) {
      const t = scored(name);
      pruneLowest([t], countKept(t.mask.bits) - keep);
    }
  } else {
    const group = budget.tensors.map(scored);
    const kept = group.reduce((n, t) => n + countKept(t.mask.bits), 0);
    pruneLowest(group, kept - budget.keep);
  }
}
