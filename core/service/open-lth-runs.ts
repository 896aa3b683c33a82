// open_lth experiments as Ticket Lab runs (`ticket-lab import-runs DIR`). Each replicate of a
// lottery experiment becomes one IMP run: its level-0 trained weights are an imported model (the
// same id `ticket-lab import` gives that .pth), its levels a lineage of tickets, each level's mask
// and start and final weights converted to the zoo's names and layouts. What open_lth measured is
// kept as it measured it: the headline accuracy is the last test accuracy of its logger (open_lth
// does not early-stop), the test-accuracy curve goes into the ticket's metrics, not into `curve`
// (which holds validation points of runs trained here).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { OpenLthExperiment, OpenLthLevel, OpenLthReplicate, OpenLthRun } from '../formats/open-lth';
import { matchZooArchitecture, tensorsOfMatch, type ZooMatch } from '../formats/zoo-match';
import type { WeightSet } from '../models/weights';
import { type MaskSet, onesMask } from '../pruning/mask';
import type { NewTicket } from '../store/lab-store';

/** One replicate, ready to store. */
export interface OpenLthRunPlan {
  experiment: string;
  replicate: number;
  path: string;
  /** The level-0 trained weights as an imported model. */
  model: { id: string; sourceDigest: string; fileName: string; match: ZooMatch };
  dataset: { id: string; name: string; digest: string; spec: Record<string, unknown> };
  /** Names the replicate and what was read of it: importing the same folder again finds the run. */
  runKey: string;
  seed: number;
  hparams: Record<string, unknown>;
  initWeights: WeightSet | null;
  rewindWeights: WeightSet | null;
  /** Level by level from 0; each ticket's parent is the one before it. */
  levels: Array<Omit<NewTicket, 'parentId'>>;
}

/** open_lth dataset names → Ticket Lab's, where they are the same data. */
const DATASET_NAMES: Record<string, string> = { mnist: 'mnist', cifar10: 'cifar10' };

/** Plans every replicate that can be stored; a replicate that cannot is a warning saying why. */
export function planOpenLthRuns(read: OpenLthExperiment): { plans: OpenLthRunPlan[]; warnings: string[] } {
  const plans: OpenLthRunPlan[] = [];
  const warnings = [...read.warnings];
  for (const experiment of read.experiments) {
    for (const replicate of experiment.replicates) {
      const plan = planReplicate(experiment.name, replicate, warnings);
      if (plan) plans.push(plan);
    }
  }
  return { plans, warnings };
}

function planReplicate(experiment: string, replicate: OpenLthReplicate, warnings: string[]): OpenLthRunPlan | null {
  const skip = (why: string) => {
    warnings.push(`${replicate.path}: not imported, ${why}.`);
    return null;
  };
  const dense = replicate.levels[0];
  if (!dense || dense.level !== 0) return skip('it has no level_0');
  if (!dense.finalWeights || !dense.finalWeightsFile) return skip('level_0 has no trained weights (model_ep<E>_it<I>.pth)');
  const match = matchZooArchitecture(dense.finalWeights, 'pytorch');
  if (!match) return skip('its network fits none Ticket Lab runs (`ticket-lab inspect` on a model file lists its tensors)');

  const sourceDigest = createHash('sha256').update(readFileSync(dense.finalWeightsFile)).digest('hex');
  const hparams = dense.hparams;
  const datasetSection = hparams['Dataset Hyperparameters'] ?? {};
  const openLthDataset = datasetSection.dataset_name ?? 'unknown';
  const datasetName = DATASET_NAMES[openLthDataset] ?? openLthDataset;
  // open_lth trained on its own copy of the data, split its own way: a dataset record of its own.
  const datasetDigest = createHash('sha256').update(JSON.stringify(['open_lth', datasetSection])).digest('hex');

  const levels: OpenLthRunPlan['levels'] = [];
  for (const level of replicate.levels) {
    if (level.level !== levels.length) {
      warnings.push(`${replicate.path}: level_${levels.length} is missing; levels from ${level.level} on are not imported.`);
      break;
    }
    const ticket = levelTicket(level, match, warnings);
    if (!ticket) {
      warnings.push(`${replicate.path}: levels from ${level.level} on are not imported.`);
      break;
    }
    levels.push(ticket);
  }

  const weightsOf = (run: OpenLthRun | null | undefined, which: 'initialWeights' | 'finalWeights') => {
    const tensors = run?.[which];
    return tensors ? completeWeights(match, tensors, run.path) : null;
  };
  const training = hparams['Training Hyperparameters'] ?? {};
  const pruning = hparams['Pruning Hyperparameters'] ?? {};
  const number = (value: string | undefined) => (value === undefined || Number.isNaN(Number(value)) ? undefined : Number(value));
  return {
    experiment,
    replicate: replicate.replicate,
    path: replicate.path,
    model: { id: `md_${sourceDigest.slice(0, 12)}`, sourceDigest, fileName: basename(dense.finalWeightsFile), match },
    dataset: {
      id: `${datasetName}@open_lth-${datasetDigest.slice(0, 12)}`,
      name: datasetName,
      digest: datasetDigest,
      spec: { imageShape: match.inputShape, numClasses: match.numClasses, openLth: datasetSection },
    },
    runKey: createHash('sha256')
      .update(JSON.stringify(['open_lth', experiment, replicate.replicate, sourceDigest, levels.length]))
      .digest('hex')
      .slice(0, 16),
    seed: replicate.replicate,
    hparams: {
      source: 'open_lth',
      experiment,
      replicate: replicate.replicate,
      folder: replicate.path,
      // What open_lth's names mean in ours; the sections below are the record.
      optimizer: training.optimizer_name,
      learningRate: number(training.lr),
      momentum: number(training.momentum),
      weightDecay: number(training.weight_decay),
      batchSize: number(datasetSection.batch_size),
      trainingSteps: training.training_steps,
      rewindStep: training.rewinding_steps ?? (replicate.pretrain ? 'level_pretrain' : '0it'),
      pruningStrategy: pruning.pruning_strategy,
      pruneFraction: number(pruning.pruning_fraction),
      openLth: hparams,
    },
    initWeights: weightsOf(dense, 'initialWeights'),
    rewindWeights: weightsOf(replicate.pretrain, 'finalWeights') ?? weightsOf(dense, 'initialWeights'),
    levels,
  };
}

/** A level as a ticket; null (with a warning) when it has no mask beyond level 0. */
function levelTicket(level: OpenLthLevel, match: ZooMatch, warnings: string[]): Omit<NewTicket, 'parentId'> | null {
  let masks: MaskSet;
  if (level.mask) {
    const converted = tensorsOfMatch(match, level.mask, 'pytorch', `${level.path}/mask.pth`);
    // A prunable tensor the mask leaves out was never pruned (open_lth's pruning_layers_to_ignore).
    masks = match.specs.flatMap((spec, i) => {
      if (!spec.prunable) return [];
      const mask = converted[i];
      return [mask ? { name: spec.name, shape: [...spec.shape], bits: Uint8Array.from(mask.values, (v) => (v !== 0 ? 1 : 0)) } : onesMask(spec.name, spec.shape)];
    });
  } else if (level.level === 0) {
    masks = match.specs.filter((s) => s.prunable).map((s) => onesMask(s.name, s.shape));
  } else {
    warnings.push(`${level.path}: level ${level.level} has no mask.pth.`);
    return null;
  }
  const accuracy = level.metrics.test_accuracy ?? [];
  const loss = level.metrics.test_loss ?? [];
  const last = accuracy[accuracy.length - 1];
  return {
    level: level.level,
    method: 'imp',
    role: 'ticket',
    testAccuracy: last?.value ?? null,
    earlyStopIteration: null,
    metrics: {
      reported: 'final',
      final: last ? { iteration: last.step, testAccuracy: last.value, testLoss: loss[loss.length - 1]?.value ?? null } : null,
      openLth: {
        folder: level.path,
        sparsityReport: level.sparsityReport,
        initialStep: level.initialStep,
        finalStep: level.finalStep,
        iterationsPerEpoch: level.iterationsPerEpoch,
        testAccuracy: accuracy.map((p) => ({ step: p.step, value: p.value })),
      },
    },
    curve: [],
    masks,
    startWeights: level.initialWeights ? completeWeights(match, level.initialWeights, level.path) : null,
    finalWeights: level.finalWeights ? completeWeights(match, level.finalWeights, level.path) : null,
  };
}

/** A checkpoint in the zoo's names and layouts, or null when it lacks a tensor of the network. */
function completeWeights(match: ZooMatch, tensors: Parameters<typeof tensorsOfMatch>[1], path: string): WeightSet | null {
  const converted = tensorsOfMatch(match, tensors, 'pytorch', path);
  return converted.every((t) => t !== null) ? (converted as WeightSet) : null;
}
