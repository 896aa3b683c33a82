// Random pruning with exact counts (RigL's uniform random masks; open_lth's randomly_prune branch):
// the control that asks whether a ticket's structure matters or only its per-layer sparsity.
import { z } from 'zod';
import { Rng } from '../compute/rng';
import { cloneMasks } from './mask';
import { pruneToBudget } from './select';
import type { PruningStrategy } from './strategy';

export const randomStrategy: PruningStrategy<Record<string, never>> = {
  id: 'random',
  description: 'Keep entries chosen uniformly at random (exact counts, seeded).',
  params: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
  async prune({ masks, budget, seed }) {
    const next = cloneMasks(masks);
    const scores = new Map<string, Float32Array>();
    for (const mask of next) {
      const rng = Rng.stream(seed, 'random-mask', mask.name);
      const s = new Float32Array(mask.bits.length);
      // Distinct scores almost surely; ties would fall back to position order, still exact.
      for (let i = 0; i < s.length; i++) s[i] = rng.next();
      scores.set(mask.name, s);
    }
    pruneToBudget(next, scores, budget);
    return next;
  },
};
