// Magnitude pruning: keep the largest |w| (Han et al. 2015; the LTH paper's criterion).
// Layer-wise or global is the budget's scope, so one strategy serves IMP, one-shot and controls.
import { z } from 'zod';
import { cloneMasks } from './mask';
import { pruneToBudget } from './select';
import type { PruningStrategy } from './strategy';

export const magnitudeStrategy: PruningStrategy<Record<string, never>> = {
  id: 'magnitude',
  description: 'Keep the weights of largest magnitude (layer-wise or global, as the budget says).',
  params: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
  async prune({ weights, masks, budget }) {
    const next = cloneMasks(masks);
    const scores = new Map<string, Float32Array>();
    for (const mask of next) {
      const w = weights.find((t) => t.name === mask.name);
      if (!w) throw new Error(`no weights for ${mask.name}`);
      scores.set(mask.name, w.values.map(Math.abs));
    }
    pruneToBudget(next, scores, budget);
    return next;
  },
};
