// Iterative magnitude pruning with rewinding (Frankle & Carbin, ICLR 2019; Frankle et al., ICML 2020):
// train → prune a fraction of what remains → rewind the kept weights to θk → train again.
// The driver knows nothing of storage: each finished piece goes to `onOutcome`, which the service
// writes in one transaction before the next piece starts.
import { throwIfAborted } from '../api/errors';
import { Rng } from '../compute/rng';
import type { LoadedDataset } from '../data/datasets';
import type { Architecture, ParamSpec } from '../models/architectures';
import { type WeightSet, initWeights } from '../models/weights';
import type { TrainResult, TrainSchedule } from '../train/train';
import { type StackMember, trainStack } from '../train/train-stack';
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
  /** 'weights': each level starts from θk (LTH); 'learning-rate': from the previous level's trained weights, schedule and optimiser restarted at k. */
  rewindTo: 'weights' | 'learning-rate';
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
  /** Which chain (seed) of a multi-seed search; 0 for a single one. */
  chain: number;
  level: number;
  /** null for the ticket itself; a control is trained beside the ticket of its level. */
  control: ControlKind | null;
  masks: MaskSet;
  /** The weights training started from (θk for tickets, or the previous level's trained ones when only the learning rate rewinds; fresh ones for the re-init control). */
  startWeights: WeightSet;
  result: TrainResult;
  /** θk, reported with level 0, the first time it is known. */
  rewindWeights?: WeightSet;
}

/** One lineage of a search: its own seed (data order, controls, tie-breaks) and initialisation. */
export interface ImpChain {
  seed: number;
  /** θ0, drawn by the caller from the seed so it can be stored before training starts. */
  initialWeights: WeightSet;
}

export interface ImpInput {
  arch: Architecture;
  specs: readonly ParamSpec[];
  dataset: LoadedDataset;
  plan: ImpPlan;
  /** θ0 of the single chain seeded by plan.seed; ignored when `chains` is given. */
  initialWeights?: WeightSet;
  /**
   * Several seeds searched at once: level by level, every chain's ticket (and control) train
   * together as one stack, and each chain prunes from its own trained weights.
   */
  chains?: ImpChain[];
  signal?: AbortSignal | undefined;
  onProgress?: ((p: ImpProgress) => void) | undefined;
  onOutcome(outcome: ImpOutcome): void | Promise<void>;
  /**
   * Continue a search whose levels up to `level` are finished (stored): per chain, that level's
   * ticket mask and trained weights and the rewind point. Levels after it train as they would have:
   * every step is a function of these and the seeds, so the result is the uninterrupted one.
   */
  resume?: { level: number; chains: Array<{ masks: MaskSet; trained: WeightSet; rewind: WeightSet }> } | undefined;
}

export function denseMasks(specs: readonly ParamSpec[]): MaskSet {
  return specs.filter((s) => s.prunable).map((s) => onesMask(s.name, s.shape));
}

interface ChainState {
  seed: number;
  masks: MaskSet;
  trained: WeightSet;
  rewind: WeightSet;
}

export async function runImp(input: ImpInput): Promise<void> {
  const { arch, specs, dataset, plan, signal } = input;
  const k = plan.rewindIteration;
  const chains = input.chains ?? [{ seed: plan.seed, initialWeights: input.initialWeights! }];
  /** Trains the members together (one stack: tickets and their controls share every step). */
  const trainTogether = (level: number, control: ControlKind | null, members: StackMember[], startIteration: number, checkpointAt?: number) =>
    trainStack({
      arch,
      specs,
      dataset,
      members,
      schedule: plan.schedule,
      startIteration,
      ...(checkpointAt !== undefined ? { checkpointAt } : {}),
      signal,
      onProgress: (p) => input.onProgress?.({ level, levels: plan.levels, control, ...p }),
    });

  const states: ChainState[] = [];
  const { resume } = input;
  if (resume) {
    if (resume.chains.length !== chains.length) throw new RangeError(`resume holds ${resume.chains.length} chains, the search ${chains.length}`);
    resume.chains.forEach((state, i) => states.push({ seed: chains[i]!.seed, ...state }));
  } else {
    // Level 0: the dense networks, trained from θ0; θk is snapshotted on the way.
    const dense = denseMasks(specs);
    const denseResults = await trainTogether(0, null, chains.map((c) => ({ weights: c.initialWeights, masks: dense, dataSeed: c.seed })), 0, k > 0 ? k : undefined);
    for (const [i, chain] of chains.entries()) {
      const result = denseResults[i]!;
      const rewind = k > 0 ? result.checkpoint! : chain.initialWeights;
      await input.onOutcome({ chain: i, level: 0, control: null, masks: dense, startWeights: chain.initialWeights, result, rewindWeights: rewind });
      states.push({ seed: chain.seed, masks: dense, trained: result.finalWeights, rewind });
    }
  }

  for (let level = (resume?.level ?? 0) + 1; level <= plan.levels; level++) {
    throwIfAborted(signal);
    const withControl = plan.control !== null && plan.controlLevels.includes(level);
    const members: StackMember[] = [];
    const controls: Array<{ weights: WeightSet; masks: MaskSet } | undefined> = [];
    const starts: WeightSet[] = [];
    for (const state of states) {
      const budget = plan.scope === 'layer' ? layerRateBudget(state.masks, plan.rates) : globalRateBudget(state.masks, plan.globalRate, plan.globalTensors);
      state.masks = await magnitudeStrategy.prune({ weights: state.trained, masks: state.masks, budget, params: {}, seed: state.seed }, signal);
      // Rewind: θk (or, rewinding only the learning rate, the trained weights) under the new mask,
      // a fresh optimiser, the step counter and data order at k.
      const start = plan.rewindTo === 'weights' ? state.rewind : state.trained;
      starts.push(start);
      members.push({ weights: start, masks: state.masks, dataSeed: state.seed });
      const control = withControl ? await controlStart(plan.control!, level, state.masks, state.rewind, specs, state.seed) : undefined;
      if (control) members.push({ ...control, dataSeed: state.seed });
      controls.push(control);
    }
    const results = await trainTogether(level, withControl ? plan.control : null, members, k);
    let at = 0;
    for (const [i, state] of states.entries()) {
      const result = results[at++]!;
      await input.onOutcome({ chain: i, level, control: null, masks: state.masks, startWeights: starts[i]!, result });
      state.trained = result.finalWeights;
      const control = controls[i];
      if (control) await input.onOutcome({ chain: i, level, control: plan.control, masks: control.masks, startWeights: control.weights, result: results[at++]! });
    }
  }
}

/**
 * Where the LTH paper's controls start, trained on the same schedule and data as the ticket of
 * their level: 'reinit' keeps the mask and draws new weights; 'random-mask' keeps θk and the
 * per-layer counts but places the kept weights at random.
 */
async function controlStart(control: ControlKind, level: number, ticketMasks: MaskSet, rewind: WeightSet, specs: readonly ParamSpec[], seed: number): Promise<{ weights: WeightSet; masks: MaskSet }> {
  if (control === 'reinit') return { weights: initWeights(specs, seed, `reinit-control-${level}`), masks: ticketMasks };
  const maskSeed = Rng.stream(seed, 'random-mask-control', level).nextU32();
  const masks = await randomStrategy.prune({ weights: rewind, masks: denseMasks(specs), budget: matchingBudget(ticketMasks), params: {}, seed: maskSeed });
  return { weights: rewind, masks };
}
