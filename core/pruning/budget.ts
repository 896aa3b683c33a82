// Turning rates and target sparsities into exact kept counts.
import type { MaskSet } from './mask';
import { countKept } from './mask';
import type { PruneBudget } from './strategy';

/** f·n with the last bits of floating-point error removed: 0.2·5 is 1.0000000000000002 in doubles. */
function product(f: number, n: number): number {
  return Number((f * n).toPrecision(12));
}

/** ceil(f·n), exact where f·n is an integer: a plain ceil would prune 2 of 5 weights at rate 0.2. */
export function ceilFraction(f: number, n: number): number {
  return Math.ceil(product(f, n));
}

export function roundFraction(f: number, n: number): number {
  return Math.round(product(f, n));
}

/**
 * One IMP level: per tensor, prune ceil(rate · remaining) of the remaining weights (the LTH paper's
 * layer-wise rates; a tensor with rate 0 is left alone).
 */
export function layerRateBudget(masks: MaskSet, rates: Readonly<Record<string, number>>): PruneBudget {
  const keep: Record<string, number> = {};
  for (const m of masks) {
    const rate = rates[m.name] ?? 0;
    if (rate <= 0) continue;
    const remaining = countKept(m.bits);
    keep[m.name] = remaining - ceilFraction(rate, remaining);
  }
  return { scope: 'layer', keep };
}

/** One IMP level, open_lth style: prune ceil(rate · remaining) over all the named tensors together. */
export function globalRateBudget(masks: MaskSet, rate: number, tensors: readonly string[]): PruneBudget {
  const remaining = masks.filter((m) => tensors.includes(m.name)).reduce((n, m) => n + countKept(m.bits), 0);
  return { scope: 'global', keep: remaining - ceilFraction(rate, remaining), tensors: [...tensors] };
}

/**
 * One-shot to a target sparsity S: keep round((1 − S)·n) per tensor, or over the named tensors
 * together. Never asks to keep more than is kept already.
 */
export function sparsityBudget(masks: MaskSet, sparsity: number, scope: 'layer' | 'global', tensors: readonly string[]): PruneBudget {
  const scoped = masks.filter((m) => tensors.includes(m.name));
  if (scope === 'layer') {
    const keep: Record<string, number> = {};
    for (const m of scoped) keep[m.name] = Math.min(countKept(m.bits), roundFraction(1 - sparsity, m.bits.length));
    return { scope, keep };
  }
  const total = scoped.reduce((n, m) => n + m.bits.length, 0);
  const kept = scoped.reduce((n, m) => n + countKept(m.bits), 0);
  return { scope, keep: Math.min(kept, roundFraction(1 - sparsity, total)), tensors: [...tensors] };
}

/** The same per-tensor counts as an existing mask: for the random-mask control. */
export function matchingBudget(masks: MaskSet): PruneBudget {
  return { scope: 'layer', keep: Object.fromEntries(masks.map((m) => [m.name, countKept(m.bits)])) };
}
