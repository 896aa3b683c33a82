// One interface for every way of choosing which weights to keep (open_lth's pruning/base.py).
// A strategy gets the current weights and mask and a budget, and returns the next mask.
import type { z } from 'zod';
import type { LoadedDataset } from '../data/datasets';
import type { Architecture, ParamSpec } from '../models/architectures';
import type { WeightSet } from '../models/weights';
import type { MaskSet } from './mask';

/**
 * How many entries to keep. `layer`: a count per tensor (the original LTH's layer-wise rates).
 * `global`: one count over the listed tensors, distributed by the strategy's own ranking (open_lth).
 * Tensors not named in the budget keep their current mask.
 */
export type PruneBudget =
  | { scope: 'layer'; keep: Record<string, number> }
  | { scope: 'global'; keep: number; tensors: string[] };

export interface PruneInput<P> {
  weights: WeightSet;
  /** The current mask; pruned entries are never candidates to keep (ALGORITHMS.md §0). */
  masks: MaskSet;
  budget: PruneBudget;
  params: P;
  /** Seed for strategies that draw at random. */
  seed: number;
  /** The network and data, for strategies that score through the network (SNIP, GraSP, SynFlow) or by its shapes (ERK). */
  context?: PruneContext | undefined;
  /** Progress of a long search (the lottery jackpot's score training, SynFlow's rounds). */
  onProgress?: ((p: PruneProgress) => void) | undefined;
  /** How the strategy chose, where that is not fixed by its parameters (GraSP's Hessian path under 'auto'): stored with the ticket. */
  onReport?: ((report: Record<string, unknown>) => void) | undefined;
}

export interface PruneProgress {
  done: number;
  total: number;
  /** The search's own loss, where it has one. */
  loss?: number | null | undefined;
}

/** What scores beyond the weights' own values need. */
export interface PruneContext {
  arch: Architecture;
  specs: readonly ParamSpec[];
  /** Training data, for data-dependent scores (SNIP, GraSP); SynFlow and ERK need none. */
  dataset?: LoadedDataset | undefined;
  /**
   * ∂L/∂w of the current batch at every entry, pruned ones included (ALGORITHMS.md §0), for
   * strategies that grow by the gradient during training (GraNet); keyed and shaped like `weights`.
   */
  gradients?: WeightSet | undefined;
}

export interface PruningStrategy<P = unknown> {
  readonly id: string;
  readonly description: string;
  /** Its own parameters with defaults, as open_lth's strategies carry their hparams. */
  readonly params: z.ZodType<P>;
  prune(input: PruneInput<P>, signal?: AbortSignal): Promise<MaskSet>;
}
