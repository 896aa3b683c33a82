// Essential sparsity (Jaiswal et al. 2023; ALGORITHMS.md §10): how far one-shot global magnitude
// pruning of a trained network goes before its accuracy drops, evaluated directly, no retraining.
// s_ess is the largest grid sparsity within 1 point of dense; the knee is where the curve bends down most.
import { InvalidRequestError, throwIfAborted } from '../api/errors';
import type { LoadedDataset } from '../data/datasets';
import type { Architecture, ParamSpec } from '../models/architectures';
import { MaskedNetwork, maskedCopy } from '../models/network';
import type { WeightSet } from '../models/weights';
import { sparsityBudget } from '../pruning/budget';
import { denseMasks } from '../pruning/imp';
import { type MaskSet, countKept } from '../pruning/mask';
import { pruningStrategy } from '../pruning/registry';
import { evaluate } from '../train/train';
import { firstRows } from './split-subset';

/** 0, 5, …, 95 %, then 96–99 %: the Ticket Lab grid, finer where LeNet-like nets give way. */
export const ESSENTIAL_SPARSITY_GRID: readonly number[] = [...Array.from({ length: 20 }, (_, i) => i / 20), 0.96, 0.97, 0.98, 0.99];

export interface EssentialSparsityInput {
  arch: Architecture;
  specs: readonly ParamSpec[];
  dataset: LoadedDataset;
  /** The trained weights to prune. */
  weights: WeightSet;
  /**
   * Their mask, for a ticket (default: dense). Entries it prunes stay pruned, so grid points below
   * its sparsity give the ticket itself (see each point's `sparsity`).
   */
  masks?: MaskSet | undefined;
  /** The tensors ranked together. Default: every masked tensor (the whole prunable set). */
  tensors?: readonly string[] | undefined;
  /** Target sparsities, strictly increasing, in [0, 1). Default ESSENTIAL_SPARSITY_GRID. */
  grid?: readonly number[] | undefined;
  /** Accuracy drop allowed at s_ess, as a fraction. Default 0.01, one point. */
  tolerance?: number | undefined;
  /** Evaluate on the test split (default) or the validation split. */
  split?: 'test' | 'validation' | undefined;
  /** Evaluate on its first this many examples, for speed. Default: all. */
  examples?: number | undefined;
  signal?: AbortSignal | undefined;
  /** After each grid point. */
  onProgress?: ((p: { done: number; total: number }) => void) | undefined;
}

export interface SparsityPoint {
  /** The grid's target sparsity over the ranked tensors. */
  target: number;
  /** The sparsity reached over them: the target, or the input mask's where that is higher. */
  sparsity: number;
  accuracy: number;
  loss: number;
}

export interface EssentialSparsityResult {
  curve: SparsityPoint[];
  /** Accuracy of the weights as given, before any pruning. */
  denseAccuracy: number;
  /** The largest grid target whose accuracy is ≥ dense − tolerance; null when none is. */
  essentialSparsity: number | null;
  /** See kneeOf. */
  knee: { sparsity: number; secondDifference: number } | null;
  examples: number;
}

export async function essentialSparsity(input: EssentialSparsityInput): Promise<EssentialSparsityResult> {
  const { arch, specs, dataset, weights, signal } = input;
  const grid = [...(input.grid ?? ESSENTIAL_SPARSITY_GRID)];
  checkGrid(grid);
  const tolerance = input.tolerance ?? 0.01;
  const masks = input.masks ?? denseMasks(specs);
  const tensors = input.tensors ? [...input.tensors] : masks.map((m) => m.name);
  const split = firstRows(input.split === 'validation' ? dataset.validation : dataset.test, input.examples);
  if (split.count === 0) throw new InvalidRequestError(`The ${input.split ?? 'test'} split is empty: nothing to evaluate essential sparsity on.`);
  const magnitude = pruningStrategy('magnitude');

  // One network under the input mask; each grid point assigns weights already zero where it prunes.
  const net = new MaskedNetwork(arch, specs, weights, masks);
  try {
    const dense = await evaluate(net, split, dataset);
    const curve: SparsityPoint[] = [];
    for (const target of grid) {
      throwIfAborted(signal);
      const budget = sparsityBudget(masks, target, 'global', tensors);
      const pruned = await magnitude.prune({ weights, masks, budget, params: {}, seed: 0 }, signal);
      net.assignWeights(weights.map((t) => {
        const m = pruned.find((x) => x.name === t.name);
        return m ? { ...t, values: maskedCopy(t.values, m.bits) } : t;
      }));
      const { accuracy, loss } = await evaluate(net, split, dataset);
      curve.push({ target, sparsity: sparsityOver(pruned, tensors), accuracy, loss });
      input.onProgress?.({ done: curve.length, total: grid.length });
    }
    const sparsities = curve.map((p) => p.target);
    const accuracies = curve.map((p) => p.accuracy);
    return {
      curve,
      denseAccuracy: dense.accuracy,
      essentialSparsity: essentialSparsityOf(sparsities, accuracies, dense.accuracy, tolerance),
      knee: kneeOf(sparsities, accuracies),
      examples: split.count,
    };
  } finally {
    net.dispose();
  }
}

/**
 * The largest sparsity whose accuracy is ≥ dense − tolerance, null when none is. The largest, not the
 * first failure: a point past a noisy dip still counts, as the paper reads its curves.
 */
export function essentialSparsityOf(sparsities: readonly number[], accuracies: readonly number[], denseAccuracy: number, tolerance = 0.01): number | null {
  let best: number | null = null;
  // A hair of slack so that "exactly one point lower" passes despite 0.97 − 0.01 ≠ 0.96 in doubles.
  const floor = denseAccuracy - tolerance - 1e-12;
  sparsities.forEach((s, i) => {
    if (accuracies[i]! >= floor && (best === null || s > best)) best = s;
  });
  return best;
}

/**
 * The knee: the interior grid point where the slope of accuracy against sparsity falls most,
 *   κ_i = (a_{i+1} − a_i)/(s_{i+1} − s_i) − (a_i − a_{i−1})/(s_i − s_{i−1}),
 * the most negative κ_i (ties: the lower sparsity). On an even grid κ_i = (a_{i+1} − 2a_i + a_{i−1})/h,
 * the plain second difference over h, so the choice is the same. Unlike the second derivative
 * (κ_i divided by (s_{i+1} − s_{i−1})/2) it does not grow where the grid is finer: a kink whose slope
 * drops by Δ scores Δ at 5 % spacing and at 1 %. Null with fewer than three points.
 */
export function kneeOf(sparsities: readonly number[], accuracies: readonly number[]): { sparsity: number; secondDifference: number } | null {
  let knee: { sparsity: number; secondDifference: number } | null = null;
  for (let i = 1; i + 1 < sparsities.length; i++) {
    const right = (accuracies[i + 1]! - accuracies[i]!) / (sparsities[i + 1]! - sparsities[i]!);
    const left = (accuracies[i]! - accuracies[i - 1]!) / (sparsities[i]! - sparsities[i - 1]!);
    const kappa = right - left;
    if (knee === null || kappa < knee.secondDifference) knee = { sparsity: sparsities[i]!, secondDifference: kappa };
  }
  return knee;
}

function checkGrid(grid: readonly number[]): void {
  if (grid.length === 0) throw new InvalidRequestError('The essential-sparsity grid is empty: give at least one sparsity.');
  grid.forEach((s, i) => {
    if (!(s >= 0 && s < 1)) throw new InvalidRequestError(`Grid sparsity ${s} is outside [0, 1).`);
    if (i > 0 && !(s > grid[i - 1]!)) throw new InvalidRequestError(`The essential-sparsity grid must increase strictly: ${grid[i - 1]} is followed by ${s}.`);
  });
}

function sparsityOver(masks: MaskSet, tensors: readonly string[]): number {
  const scoped = masks.filter((m) => tensors.includes(m.name));
  const total = scoped.reduce((n, m) => n + m.bits.length, 0);
  return total === 0 ? 0 : 1 - scoped.reduce((n, m) => n + countKept(m.bits), 0) / total;
}
