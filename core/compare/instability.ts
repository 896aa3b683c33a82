// Instability, or linear mode connectivity (Frankle et al., ICML 2020 §2–3; ALGORITHMS.md §10):
// train two copies of one state with different data orders, then walk the straight line between
// the two trained networks. A ticket is stable when the test error along it never rises more than
// 2 points above the endpoints' mean: both copies ended in one linearly connected minimum.
import { InvalidRequestError, throwIfAborted } from '../api/errors';
import type { LoadedDataset } from '../data/datasets';
import type { Architecture, ParamSpec } from '../models/architectures';
import { MaskedNetwork } from '../models/network';
import type { WeightSet } from '../models/weights';
import type { MaskSet } from '../pruning/mask';
import { type TrainProgress, type TrainResult, type TrainSchedule, evaluate } from '../train/train';
import { trainStack } from '../train/train-stack';
import { firstRows } from './split-subset';

/** The paper's threshold: a barrier below 2 points of error is stable. */
export const STABLE_BARRIER = 0.02;

/** Where the two endpoints come from. */
export type InstabilityEndpoints =
  | {
      kind: 'train';
      /** θk, the state both copies start from (unmasked or masked: the mask is applied either way). */
      weights: WeightSet;
      /** k, the step counter the copies resume at (the learning-rate schedule and the data order continue from it). */
      startIteration: number;
      /** Trains to schedule.iterations, the end step T. */
      schedule: TrainSchedule;
      /** Copy 1 sees data order `seed`, copy 2 `seed + 1`. */
      seed: number;
      /**
       * Both copies use `seed`: the control in which nothing differs, so θ1 = θ2 and the barrier is 0
       * up to rounding. Checks the measurement, not the ticket.
       */
      sameDataOrder?: boolean | undefined;
    }
  /** Two networks already trained from one state, e.g. two stored tickets of one lineage. */
  | { kind: 'trained'; weights: readonly [WeightSet, WeightSet] };

export interface InstabilityInput {
  arch: Architecture;
  specs: readonly ParamSpec[];
  dataset: LoadedDataset;
  /** The mask m both copies train under and every θ_α keeps. */
  masks: MaskSet;
  endpoints: InstabilityEndpoints;
  /** α = i/(points − 1), i = 0..points − 1. Default 31 (α = i/30, the Ticket Lab choice). */
  points?: number | undefined;
  /** Evaluate on the first this many test examples, for speed. Default: the whole test split. */
  testExamples?: number | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((p: InstabilityProgress) => void) | undefined;
}

export type InstabilityProgress = ({ phase: 'train' } & TrainProgress) | { phase: 'interpolate'; done: number; total: number };

export interface InterpolationPoint {
  alpha: number;
  /** Test error of θ_α = α·θ1 + (1 − α)·θ2, 1 − accuracy. */
  error: number;
  loss: number;
}

export interface InstabilityResult {
  curve: InterpolationPoint[];
  /** e(0), the error of θ2. */
  e0: number;
  /** e(1), the error of θ1. */
  e1: number;
  /** max_α e(α) − (e(0) + e(1))/2, one pair. */
  barrier: number;
  /** barrier < 2 points (STABLE_BARRIER). */
  stable: boolean;
  testExamples: number;
  /** The data-order seeds of θ1 and θ2, when trained here. */
  dataSeeds?: [number, number];
  /** The two trainings (θ1, θ2), when trained here, so a caller can store them. */
  trained?: [TrainResult, TrainResult];
}

/** The error barrier of a curve e(α) sampled from α = 0 to α = 1: max e(α) − (e(0) + e(1))/2. */
export function errorBarrier(errors: readonly number[]): number {
  if (errors.length < 2) throw new InvalidRequestError('An error barrier needs the curve at both endpoints, at least two points.');
  return Math.max(...errors) - (errors[0]! + errors[errors.length - 1]!) / 2;
}

/**
 * θ_α = α·θ1 + (1 − α)·θ2 over every parameter, biases too. In doubles, rounded once to float32:
 * the endpoints come out exact, and equal networks interpolate to themselves.
 */
export function interpolateWeights(theta1: WeightSet, theta2: WeightSet, alpha: number): WeightSet {
  return theta1.map((t1) => {
    const t2 = theta2.find((t) => t.name === t1.name);
    if (!t2 || t2.values.length !== t1.values.length) throw new InvalidRequestError(`The two networks differ in '${t1.name}': they are not copies of one model.`);
    const values = new Float32Array(t1.values.length);
    for (let i = 0; i < values.length; i++) values[i] = alpha * t1.values[i]! + (1 - alpha) * t2.values[i]!;
    return { name: t1.name, shape: [...t1.shape], values };
  });
}

export async function instability(input: InstabilityInput): Promise<InstabilityResult> {
  const { arch, specs, dataset, masks, endpoints, signal } = input;
  const points = input.points ?? 31;
  if (!Number.isInteger(points) || points < 2) throw new InvalidRequestError(`Instability needs at least 2 interpolation points (both endpoints), got ${points}.`);
  const test = firstRows(dataset.test, input.testExamples);

  let theta1: WeightSet;
  let theta2: WeightSet;
  let dataSeeds: [number, number] | undefined;
  let trained: [TrainResult, TrainResult] | undefined;
  if (endpoints.kind === 'train') {
    dataSeeds = [endpoints.seed, endpoints.sameDataOrder ? endpoints.seed : endpoints.seed + 1];
    // One stack: both copies train together, each with the result it would get alone.
    const [r1, r2] = await trainStack({
      arch, specs, dataset,
      members: dataSeeds.map((dataSeed) => ({ weights: endpoints.weights, masks, dataSeed })),
      schedule: endpoints.schedule,
      startIteration: endpoints.startIteration,
      signal,
      onProgress: input.onProgress && ((p) => input.onProgress!({ phase: 'train', ...p })),
    });
    trained = [r1!, r2!];
    theta1 = r1!.finalWeights;
    theta2 = r2!.finalWeights;
  } else {
    [theta1, theta2] = endpoints.weights;
  }

  const curve: InterpolationPoint[] = [];
  const net = new MaskedNetwork(arch, specs, theta2, masks);
  try {
    for (let i = 0; i < points; i++) {
      throwIfAborted(signal);
      const alpha = i / (points - 1);
      // Masks are applied on assignment: θ_α keeps m even where stored endpoints are not zero.
      net.assignWeights(interpolateWeights(theta1, theta2, alpha));
      const { loss, accuracy } = await evaluate(net, test, dataset);
      curve.push({ alpha, error: 1 - accuracy, loss });
      input.onProgress?.({ phase: 'interpolate', done: i + 1, total: points });
    }
  } finally {
    net.dispose();
  }
  const errors = curve.map((p) => p.error);
  const barrier = errorBarrier(errors);
  return {
    curve,
    e0: errors[0]!,
    e1: errors[errors.length - 1]!,
    barrier,
    stable: barrier < STABLE_BARRIER,
    testExamples: test.count,
    ...(dataSeeds ? { dataSeeds } : {}),
    ...(trained ? { trained } : {}),
  };
}
