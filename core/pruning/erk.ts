// Erdős–Rényi-Kernel masks (ALGORITHMS.md §3; RigL's get_sparsities_erdos_renyi, Evci et al. 2020):
// small layers get higher density, so a random sparse net at a given overall density stays trainable.
// Layer densities come from the shapes alone; which entries are kept is drawn uniformly at random.
import { z } from 'zod';
import { InvalidRequestError } from '../api/errors';
import { Rng } from '../compute/rng';
import { sizeOf } from '../models/weights';
import { roundFraction } from './budget';
import { cloneMasks, countKept } from './mask';
import { pruneToBudget } from './select';
import type { PruningStrategy } from './strategy';

export const erkParams = z
  .object({
    kernelAware: z
      .boolean()
      .default(true)
      .describe('ERK: raw density (sum of dims)/(product of dims), kernel included. false: plain ER, (in+out)/(in·out).'),
  })
  .strict();
export type ErkParams = z.output<typeof erkParams>;

/** Unnormalised density of a tensor: ERK counts every dimension, ER only the last two (in, out). */
function rawDensity(shape: readonly number[], kernelAware: boolean): number {
  const dims = kernelAware || shape.length < 2 ? shape : shape.slice(-2);
  return dims.reduce((a, b) => a + b, 0) / sizeOf(dims);
}

/**
 * Per-tensor densities d_l = ε·raw_l with Σ d_l·n_l = density·Σ n_l. A tensor whose d_l would
 * exceed 1 is made dense and ε solved again over the rest (RigL's loop; ALGORITHMS.md §3 step 1).
 */
export function erkDensities(shapes: Record<string, number[]>, density: number, kernelAware: boolean): Record<string, number> {
  if (!(density >= 0 && density <= 1)) throw new InvalidRequestError(`ERK needs an overall density in [0, 1], got ${density}.`);
  const names = Object.keys(shapes);
  const size = new Map(names.map((name) => [name, sizeOf(shapes[name]!)]));
  const raw = new Map(names.map((name) => [name, rawDensity(shapes[name]!, kernelAware)]));
  // At density 1 the loop below would make every layer dense one by one and end on 0/0.
  if (density === 1) return Object.fromEntries(names.map((name) => [name, 1]));
  const dense = new Set<string>();
  for (;;) {
    let rhs = 0;
    let divisor = 0;
    let maxRaw = 0;
    for (const name of names) {
      const n = size.get(name)!;
      if (dense.has(name)) {
        rhs -= (1 - density) * n;
      } else {
        rhs += density * n;
        divisor += raw.get(name)! * n;
        maxRaw = Math.max(maxRaw, raw.get(name)!);
      }
    }
    // rhs stays positive for density < 1 (each dense layer took less than it was due), so some layer is left.
    const epsilon = divisor === 0 ? 0 : rhs / divisor;
    if (epsilon * maxRaw <= 1) {
      return Object.fromEntries(names.map((name) => [name, dense.has(name) ? 1 : epsilon * raw.get(name)!]));
    }
    for (const name of names) if (!dense.has(name) && raw.get(name) === maxRaw) dense.add(name);
  }
}

export const erkStrategy: PruningStrategy<ErkParams> = {
  id: 'erk',
  description: 'Random mask with Erdős–Rényi-Kernel layer densities (RigL): smaller layers stay denser. Global budget only.',
  params: erkParams,
  async prune({ masks, budget, params, seed }) {
    if (budget.scope !== 'global') {
      throw new InvalidRequestError('ERK sets its own per-layer densities from the layer shapes: give it a global budget (one overall sparsity), not per-layer counts.');
    }
    const { kernelAware } = erkParams.parse(params);
    const next = cloneMasks(masks);
    const scoped = budget.tensors.map((name) => {
      const mask = next.find((m) => m.name === name);
      if (!mask) throw new InvalidRequestError(`ERK budget names ${name}, which has no mask.`);
      return mask;
    });
    const total = scoped.reduce((n, m) => n + m.bits.length, 0);
    const densities = erkDensities(Object.fromEntries(scoped.map((m) => [m.name, m.shape])), total === 0 ? 0 : budget.keep / total, kernelAware);
    const keep: Record<string, number> = {};
    const scores = new Map<string, Float32Array>();
    for (const mask of scoped) {
      // Pruned entries are never revived: a layer already sparser than its ERK count keeps what it has.
      keep[mask.name] = Math.min(countKept(mask.bits), roundFraction(densities[mask.name]!, mask.bits.length));
      const rng = Rng.stream(seed, 'erk', mask.name);
      const s = new Float32Array(mask.bits.length);
      for (let i = 0; i < s.length; i++) s[i] = rng.next();
      scores.set(mask.name, s);
    }
    pruneToBudget(next, scores, { scope: 'layer', keep });
    return next;
  },
};
