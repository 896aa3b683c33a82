// Iterative magnitude pruning with rewinding (Frankle & Carbin, ICLR 2019; Frankle et al., ICML 2020):
// train → prune a fraction of what remains → rewind the kept weights to θk → train again.
// The driver knows nothing of storage: each finished piece goes to `onOutcome`, which the service
// writes in one transaction before the next piece starts.
import { throwIfAborted } from '../api/errors';
import { Rng } from '../compute/rng';
import type { LoadedDataset } from '../data/datasets';
import type { Architecture, ParamSpec } from '../models/architectures';
import { type WeightSet, initWeights } from '../models/weights';
import { type TrainResult, type TrainSchedule, trainMasked } from '../train/train';
import { globalRateBudget, layerRateBudget, matchingBudget } from './budget';
import { type MaskSet, onesMask } from './mask';
import { magnitudeStrategy } from './magnitude';
import { randomStrategy } from './random';

export type ControlKind = 'reinit' | 'random-mask';

export interface ImpPlan {
  /** Pruned levels after the dense level 0. */
  levels: number;
  /** 'layer': each tensor loses rates[name] of what remains (LTH). 'global': one ranking over `globalTensors` (open_lth). */
  scope: 'layer' | 'global';
  rates: Record<string, number>;
  globalRate: number;
  globalTensors: string[];
  /** k: kept weights are rewound to their values after k iterations (0 = the initialisation). */
  rewindIteration: number;
  control: ControlKind | null;
  controlLevels: number[];
  seed: number;
  schedule: TrainSchedule;
}

export interface ImpProgress {
  level: number;
  levels: number;
  control: ControlKind | null;
  iteration: number;
  startIteration: number;
  endIteration: number;
  loss: number | null;
  valAccuracy: number | null;
}

export interface ImpOutcome {
  level: number;
  /** null for the ticket itself; a control is trained beside the ticket of its level. */
  control: ControlKind | null;
  masks: MaskSet;
  /** The weights training started from (θk for tickets, fresh ones for the re-init control). */
  startWeights: WeightSet;
  result: TrainResult;
  /** θk, reported with level 0, the first time it is known. */
  rewindWeights?: WeightSet;
}

/** Where an interrupted run left off: the last finished ticket level. */
export interface ImpResumePoint {
  level: number;
  masks: MaskSet;
  finalWeights: WeightSet;
  rewindWeights: WeightSet;
}

export interface ImpInput {
  arch: Architecture;
  specs: readonly ParamSpec[];
  dataset: LoadedDataset;
  plan: ImpPlan;
  /** θ0, drawn by the caller from the run's seed so it can be stored before training starts. */
  initialWeights: WeightSet;
  resume?: ImpResumePoint;
  signal?: AbortSignal | undefined;
  onProgress?: ((p: ImpProgress) => void) | undefined;
  onOutcome(outcome: ImpOutcome): void | Promise<void>;
}

export function denseMasks(specs: readonly ParamSpec[]): MaskSet {
  return specs.filter((s) => s.prunable).map((s) => onesMask(s.name, s.shape));
}

export async function runImp(input: ImpInput): Promise<void> {
  const { arch, specs, dataset, plan, signal } = input;
  const k = plan.rewindIteration;
  const train = (level: number, control: ControlKind | null, weights: WeightSet, masks: MaskSet, startIteration: number, checkpointAt?: number) =>
    trainMasked({
      arch,
      specs,
      dataset,
      weights,
      masks,
      schedule: plan.schedule,
      dataSeed: plan.seed,
      startIteration,
      ...(checkpointAt !== undefined ? { checkpointAt } : {}),
      signal,
      onProgress: (p) => input.onProgress?.({ level, levels: plan.levels, control, ...p }),
    });

  let masks: MaskSet;
  let trained: WeightSet;
  let rewind: WeightSet;
  let firstLevel: number;
  if (input.resume) {
    ({ masks, finalWeights: trained, rewindWeights: rewind } = input.resume);
    firstLevel = input.resume.level + 1;
  } else {
    // Level 0: the dense network, trained from θ0; θk is snapshotted on the way.
    masks = denseMasks(specs);
    const result = await train(0, null, input.initialWeights, masks, 0, k > 0 ? k : undefined);
    rewind = k > 0 ? result.checkpoint! : input.initialWeights;
    await input.onOutcome({ level: 0, control: null, masks, startWeights: input.initialWeights, result, rewindWeights: rewind });
    trained = result.finalWeights;
    firstLevel = 1;
  }

  for (let level = firstLevel; level <= plan.levels; level++) {
    throwIfAborted(signal);
    const budget = plan.scope === 'layer' ? layerRateBudget(masks, plan.rates) : globalRateBudget(masks, plan.globalRate, plan.globalTensors);
    masks = await magnitudeStrategy.prune({ weights: trained, masks, budget, params: {}, seed: plan.seed }, signal);
    // Rewind: θk under the new mask, a fresh optimiser, the step counter and data order at k.
    const result = await train(level, null, rewind, masks, k);
    await input.onOutcome({ level, control: null, masks, startWeights: rewind, result });
    trained = result.finalWeights;

    if (plan.control && plan.controlLevels.includes(level)) {
      await input.onOutcome(await runControl(plan.control, level, masks, rewind, (w, m) => train(level, plan.control, w, m, k), specs, plan.seed));
    }
  }
}

type TrainFromRewindPoint = (weights: WeightSet, masks: MaskSet) => Promise<TrainResult>;

/**
 * The LTH paper's controls, trained on the same schedule as the ticket of their level:
 * 're-init' keeps the mask and draws new weights; 'random-mask' keeps θk and per-layer counts but
 * places the kept weights at random.
 */
async function runControl(control: ControlKind, level: number, ticketMasks: MaskSet, rewind: WeightSet, train: TrainFromRewindPoint, specs: readonly ParamSpec[], seed: number): Promise<ImpOutcome> {
  if (control === 'reinit') {
    const weights = initWeights(specs, seed, `reinit-control-${level}`);
    return { level, control, masks: ticketMasks, startWeights: weights, result: await train(weights, ticketMasks) };
  }
  const maskSeed = Rng.stream(seed, 'random-mask-control', level).nextU32();
  const masks = await randomStrategy.prune({ weights: rewind, masks: denseMasks(specs), budget: matchingBudget(ticketMasks), params: {}, seed: maskSeed });
  return { level, control, masks, startWeights: rewind, result: await train(rewind, masks) };
}
