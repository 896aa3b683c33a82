// One-shot pruning to a target sparsity. After training (ALGORITHMS.md §2): from trained weights
// keep the round(d·N) best by the strategy's score (magnitude: largest |w|), per layer or globally,
// then optionally retrain from the rewind point (IMP with one level). At initialisation (§3–6:
// random, ERK, SNIP, GraSP, SynFlow): score θ0 itself, then train the masked network from θ0.
import type { LoadedDataset } from '../data/datasets';
import type { Architecture, ParamSpec } from '../models/architectures';
import type { WeightSet } from '../models/weights';
import { type EvalResult, type TrainResult, type TrainSchedule, evaluateWeights, trainMasked } from '../train/train';
import { sparsityBudget } from './budget';
import { denseMasks } from './imp';
import type { MaskSet } from './mask';
import { maskedCopy } from '../models/network';
import { pruningStrategy } from './registry';

export interface OneShotPlan {
  /** The pruning strategy's id (registry.ts) and its parsed parameters. */
  method: string;
  methodParams: unknown;
  sparsity: number;
  scope: 'layer' | 'global';
  /** The tensors pruned (the rest keep their mask). */
  tensors: string[];
  rewindIteration: number;
  retrain: boolean;
  seed: number;
  schedule: TrainSchedule;
}

/** Start from scratch (train the dense network first), from a stored ticket's trained weights, or prune θ0 itself. */
export type OneShotSource =
  | { kind: 'train'; initialWeights: WeightSet }
  | { kind: 'init'; initialWeights: WeightSet }
  | { kind: 'ticket'; level: number; masks: MaskSet; trainedWeights: WeightSet; rewindWeights: WeightSet };

export interface OneShotProgress {
  /** dense: the dense network before pruning; prune: a strategy's own search; retrain: the pruned one from the rewind point; train: the one pruned at θ0. */
  phase: 'dense' | 'prune' | 'retrain' | 'train';
  iteration: number;
  startIteration: number;
  endIteration: number;
  loss: number | null;
  valAccuracy: number | null;
}

export interface OneShotOutcome {
  level: number;
  kind: 'dense' | 'pruned';
  masks: MaskSet;
  startWeights: WeightSet;
  /** Training of this piece; null for a pruned ticket that is not retrained. */
  result: TrainResult | null;
  /** The pruned trained weights, before any retraining. */
  pruned?: { validation: EvalResult; test: EvalResult };
  finalWeights: WeightSet;
  rewindWeights?: WeightSet;
  /** What the strategy reported about its choice (PruneInput.onReport). */
  strategyReport?: Record<string, unknown>;
}

export interface OneShotInput {
  arch: Architecture;
  specs: readonly ParamSpec[];
  dataset: LoadedDataset;
  plan: OneShotPlan;
  source: OneShotSource;
  signal?: AbortSignal | undefined;
  onProgress?: ((p: OneShotProgress) => void) | undefined;
  onOutcome(outcome: OneShotOutcome): void | Promise<void>;
}

export async function runOneShot(input: OneShotInput): Promise<void> {
  const { arch, specs, dataset, plan, signal } = input;
  const k = plan.rewindIteration;
  const train = (phase: OneShotProgress['phase'], weights: WeightSet, masks: MaskSet, startIteration: number, checkpointAt?: number) =>
    trainMasked({
      arch, specs, dataset, weights, masks, schedule: plan.schedule, dataSeed: plan.seed, startIteration,
      ...(checkpointAt !== undefined ? { checkpointAt } : {}),
      signal,
      onProgress: (p) => input.onProgress?.({ phase, ...p }),
    });

  let level: number;
  let masks: MaskSet;
  let trained: WeightSet;
  let rewind: WeightSet;
  if (input.source.kind === 'train') {
    masks = denseMasks(specs);
    const result = await train('dense', input.source.initialWeights, masks, 0, k > 0 ? k : undefined);
    rewind = k > 0 ? result.checkpoint! : input.source.initialWeights;
    await input.onOutcome({ level: 0, kind: 'dense', masks, startWeights: input.source.initialWeights, result, finalWeights: result.finalWeights, rewindWeights: rewind });
    level = 1;
    trained = result.finalWeights;
  } else if (input.source.kind === 'init') {
    masks = denseMasks(specs);
    trained = input.source.initialWeights;
    rewind = input.source.initialWeights;
    level = 1;
  } else {
    ({ masks, trainedWeights: trained, rewindWeights: rewind } = input.source);
    level = input.source.level + 1;
  }

  const budget = sparsityBudget(masks, plan.sparsity, plan.scope, plan.tensors);
  const strategy = pruningStrategy(plan.method);
  let report: Record<string, unknown> | undefined;
  const prunedMasks = await strategy.prune(
    {
      weights: trained, masks, budget, params: plan.methodParams as never, seed: plan.seed, context: { arch, specs, dataset },
      onReport: (r) => (report = { ...report, ...r }),
      onProgress: (p) => input.onProgress?.({ phase: 'prune', iteration: p.done, startIteration: 0, endIteration: p.total, loss: p.loss ?? null, valAccuracy: null }),
    },
    signal,
  );
  const prunedWeights = trained.map((t) => {
    const m = prunedMasks.find((x) => x.name === t.name);
    return m ? { ...t, values: maskedCopy(t.values, m.bits) } : t;
  });
  const pruned = await evaluateWeights(arch, specs, dataset, prunedWeights, prunedMasks);
  if (!plan.retrain) {
    await input.onOutcome({ level, kind: 'pruned', masks: prunedMasks, startWeights: prunedWeights, result: null, pruned, finalWeights: prunedWeights, ...(report ? { strategyReport: report } : {}) });
    return;
  }
  const result = await train(input.source.kind === 'init' ? 'train' : 'retrain', rewind, prunedMasks, k);
  await input.onOutcome({ level, kind: 'pruned', masks: prunedMasks, startWeights: rewind, result, pruned, finalWeights: result.finalWeights, ...(report ? { strategyReport: report } : {}) });
}
