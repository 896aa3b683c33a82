// SNIP (Lee et al., ICLR 2019; Synaptic-Flow's Pruners/pruners.py `SNIP`, ALGORITHMS.md §4):
// score each weight by |∂L/∂m| = |g ⊙ w|, the loss's sensitivity to removing it, with g the dense
// gradient on one batch of training data. The paper ranks globally; the budget's scope decides.
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { throwIfAborted } from '../api/errors';
import { cloneMasks } from './mask';
import { examplesPerClassParam, openScoring, readAndDispose } from './score-network';
import { pruneToBudget } from './select';
import type { PruneInput, PruningStrategy } from './strategy';

export const snipParams = z
  .object({
    examplesPerClass: examplesPerClassParam,
  })
  .strict();
export type SnipParams = z.output<typeof snipParams>;

/** |g ⊙ w| for every tensor in the budget, by name. */
export async function snipScores(input: PruneInput<Partial<SnipParams>>, signal?: AbortSignal): Promise<Map<string, Float32Array>> {
  const { net } = openScoring('snip', input, snipParams, signal);
  try {
    const scores = tf.tidy(() => {
      const grads = net.gradient();
      return grads.map((g, i) => tf.abs(tf.mul(g, net.theta[i]!)));
    });
    const values = await readAndDispose(scores);
    throwIfAborted(signal);
    return new Map(net.names.map((name, i) => [name, values[i]!]));
  } finally {
    net.dispose();
  }
}

export const snipStrategy: PruningStrategy<SnipParams> = {
  id: 'snip',
  description: 'SNIP: keep the weights whose removal changes the loss most, |gradient × weight| on a batch of training data (global or layer-wise, as the budget says).',
  params: snipParams,
  async prune(input, signal) {
    const scores = await snipScores(input, signal);
    const next = cloneMasks(input.masks);
    pruneToBudget(next, scores, input.budget);
    return next;
  },
};
