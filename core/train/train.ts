// Masked training of one network: a plain loop over iterations; evaluation, checkpoints and progress
// are callbacks and records, as in open_lth's training/train.py. The loop itself lives in
// train-stack.ts (many tickets at once, the step engine) and train-autodiff.ts (TF.js autodiff).
import type * as tf from '@tensorflow/tfjs';
import type { LoadedDataset } from '../data/datasets';
import type { Architecture, ParamSpec } from '../models/architectures';
import type { MaskedNetwork } from '../models/network';
import type { WeightSet } from '../models/weights';
import type { MaskSet } from '../pruning/mask';
import type { MaskedOptimizer, OptimizerConfig } from './optimizers';
import { needsAutodiff } from './schedule';
import { trainStack, trainsStacked } from './train-stack';
import { trainWithAutodiff } from './train-autodiff';

export { evaluate, evaluateWeights } from './train-autodiff';
export { learningRateAt, needsAutodiff } from './schedule';

export interface TrainSchedule {
  /** The end step T: training runs from `startIteration` to T. */
  iterations: number;
  batchSize: number;
  /** Validation (and the early-stop record) every this many iterations, as the LTH paper does every 100. */
  evalEvery: number;
  optimizer: OptimizerConfig;
  /**
   * Step decay: the learning rate is multiplied by `factor` at each of these iterations (PyTorch's
   * MultiStepLR, in iterations rather than epochs). A pure function of the iteration, so a rewound run
   * starts at the rate of its rewind point.
   */
  learningRateDrops?: { at: number[]; factor: number } | undefined;
  /** Seeded random crop with zero padding and left-right flip of each training image (core/data/augment.ts). */
  augment?: { padding: number; flip: boolean } | undefined;
}

/**
 * Changes the masks during training (gradual pruning with regrowth): asked after each step whether to
 * update, then given the network, its optimiser and the current batch's dense gradients.
 */
export interface MaskUpdater {
  /** `iteration` counts steps done (1 after the first). */
  updatesAfter(iteration: number): boolean;
  update(step: MaskUpdateStep): void | Promise<void>;
}

export interface MaskUpdateStep {
  iteration: number;
  net: MaskedNetwork;
  optimizer: MaskedOptimizer;
  /** ∂L/∂w on the step's batch at every weight, pruned ones included (ALGORITHMS.md §0). The caller disposes them. */
  denseGradients(): Record<string, tf.Tensor>;
}

export interface EvalResult {
  loss: number;
  accuracy: number;
}

export interface CurvePoint {
  iteration: number;
  /** Mean training loss over the steps since the previous point (sampled every few steps). */
  trainLoss: number | null;
  valLoss: number;
  valAccuracy: number;
}

export interface TrainProgress {
  iteration: number;
  endIteration: number;
  startIteration: number;
  loss: number | null;
  valAccuracy: number | null;
}

export interface TrainInput {
  arch: Architecture;
  specs: readonly ParamSpec[];
  dataset: LoadedDataset;
  weights: WeightSet;
  masks: MaskSet;
  schedule: TrainSchedule;
  /** Seeds the data order; the same seed and iteration give the same batch. */
  dataSeed: number;
  /** Where the step counter starts: 0, or the rewind point k for rewound levels. */
  startIteration?: number;
  /** Snapshot the weights after this many iterations (the rewind point θk). */
  checkpointAt?: number;
  signal?: AbortSignal | undefined;
  onProgress?: ((p: TrainProgress) => void) | undefined;
  /** Masks that change while training; the autodiff path runs it, and the result carries `finalMasks`. */
  maskUpdater?: MaskUpdater | undefined;
}

export interface TrainResult {
  finalWeights: WeightSet;
  /** The masks at the end, where a mask updater changed them. */
  finalMasks?: MaskSet;
  /** Weights at `checkpointAt`, when asked for and reached. */
  checkpoint?: WeightSet;
  /** The iteration of minimum validation loss, with test metrics of the weights at that iteration. */
  earlyStop: { iteration: number; validation: EvalResult; test: EvalResult };
  final: { iteration: number; validation: EvalResult; test: EvalResult };
  curve: CurvePoint[];
  steps: number;
  trainSeconds: number;
}

/** Trains one network: on the step engine where it runs (a stack of one), else with autodiff. */
export async function trainMasked(input: TrainInput): Promise<TrainResult> {
  if (!trainsStacked(input.arch, input.specs) || needsAutodiff(input.schedule) || input.maskUpdater) return trainWithAutodiff(input);
  const [result] = await trainStack({ ...input, members: [{ weights: input.weights, masks: input.masks, dataSeed: input.dataSeed }] });
  return result!;
}
