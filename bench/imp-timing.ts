// Section 3: wall time per IMP level, split into training, storing and the rest.
//
// runImp is driven directly, with an onOutcome that writes each level through LabStore.saveLevel
// as LabService.searchImp does, because only here can the store's share be clocked apart from
// training. What searchImp adds on top (request parsing, run registration, progress events) is
// paid once per run, not per level.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BackendInfo, selectBackend } from '../core/compute/backend';
import { softwareVersions } from '../core/compute/versions';
import type { ImageSplit, LoadedDataset } from '../core/data/datasets';
import { architecture, paramSpecs } from '../core/models/architectures';
import { MaskedNetwork } from '../core/models/network';
import { type WeightSet, initWeights } from '../core/models/weights';
import { type ImpPlan, denseMasks, runImp } from '../core/pruning/imp';
import { summarizeMasks } from '../core/pruning/mask';
import { LabStore } from '../core/store/lab-store';
import { DEFAULT_OPTIMIZER } from '../core/train/optimizers';
import { evaluate } from '../core/train/train';
import { MODEL_ID } from './lenet-ticket';
import { median, seconds } from './stopwatch';
import { type Table, approx, fixed, percent } from './text-table';
import { BATCH_SIZE, LEARNING_RATE } from './training-throughput';

export interface ImpTimingPlan {
  levels: number;
  iterations: number;
  evalEvery: number;
}

export interface ImpLevelTiming {
  level: number;
  sparsity: number;
  steps: number;
  /** From the end of the previous level's store to the end of this one's. */
  wallSeconds: number;
  /** trainMasked's own clock: the step loop and every evaluation in it. */
  trainSeconds: number;
  storeSeconds: number;
  /** Pruning, network and optimiser set-up: whatever trainMasked's clock and saveLevel leave over. */
  otherSeconds: number;
  testAccuracy: number;
}

export interface ImpTimingResult {
  backend: string;
  plan: ImpTimingPlan;
  levels: ImpLevelTiming[];
  totalSeconds: number;
  validationImages: number;
  testImages: number;
  /** One validation pass and one test pass, timed apart (median of 3) to price the evaluations in `trainSeconds`. */
  validationPassSeconds: number;
  testPassSeconds: number;
}

export async function measureImp(dataset: LoadedDataset, plan: ImpTimingPlan, seed: number, log: (line: string) => void): Promise<ImpTimingResult> {
  const backend: BackendInfo = await selectBackend('auto');
  const arch = architecture(MODEL_ID);
  const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
  const prunable = specs.filter((s) => s.prunable);
  const impPlan: ImpPlan = {
    levels: plan.levels,
    scope: 'layer',
    rates: Object.fromEntries(prunable.map((s) => [s.name, arch.lthRates[s.role]])),
    globalRate: arch.lthRates.fc,
    globalTensors: prunable.map((s) => s.name),
    rewindIteration: 0,
    rewindTo: 'weights',
    control: null,
    controlLevels: [],
    seed,
    schedule: {
      iterations: plan.iterations,
      batchSize: BATCH_SIZE,
      evalEvery: plan.evalEvery,
      optimizer: { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: LEARNING_RATE },
    },
  };

  const dir = mkdtempSync(join(tmpdir(), 'ticket-lab-bench-'));
  const store = LabStore.open(join(dir, 'lab.db'), { create: true })!;
  try {
    const initial = initWeights(specs, seed);
    const runId = registerRun(store, dataset, backend, initial, impPlan);
    const levels: ImpLevelTiming[] = [];
    const began = performance.now();
    let levelBegan = began;
    await runImp({
      arch,
      specs,
      dataset,
      plan: impPlan,
      initialWeights: initial,
      onOutcome: (outcome) => {
        const storeBegan = performance.now();
        store.saveLevel(
          runId,
          [
            {
              parentId: null,
              level: outcome.level,
              method: 'imp',
              role: 'ticket',
              testAccuracy: outcome.result.earlyStop.test.accuracy,
              earlyStopIteration: outcome.result.earlyStop.iteration,
              metrics: { steps: outcome.result.steps, trainSeconds: outcome.result.trainSeconds },
              curve: outcome.result.curve,
              masks: outcome.masks,
              startWeights: outcome.startWeights,
              finalWeights: outcome.result.finalWeights,
            },
          ],
          outcome.rewindWeights ? { rewindWeights: outcome.rewindWeights } : {},
        );
        const now = performance.now();
        const wallSeconds = seconds(levelBegan, now);
        const storeSeconds = seconds(storeBegan, now);
        levels.push({
          level: outcome.level,
          sparsity: summarizeMasks(outcome.masks).sparsity,
          steps: outcome.result.steps,
          wallSeconds,
          trainSeconds: outcome.result.trainSeconds,
          storeSeconds,
          otherSeconds: wallSeconds - outcome.result.trainSeconds - storeSeconds,
          testAccuracy: outcome.result.earlyStop.test.accuracy,
        });
        log(`IMP level ${outcome.level} of ${plan.levels}: ${fixed(wallSeconds, 1)} s`);
        levelBegan = now;
      },
    });
    const totalSeconds = seconds(began);
    const passes = await timeEvaluationPasses(dataset, initial);
    return { backend: backend.tfBackend, plan, levels, totalSeconds, validationImages: dataset.validation.count, testImages: dataset.test.count, ...passes };
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The rows a run's tickets hang from: model, dataset, run. Mirrors what LabService registers. */
function registerRun(store: LabStore, dataset: LoadedDataset, backend: BackendInfo, initial: WeightSet, plan: ImpPlan): string {
  const modelId = `zoo/${MODEL_ID}/${dataset.imageShape.join('x')}-${dataset.numClasses}`;
  const datasetId = `${dataset.id}@${dataset.digest.slice(0, 16)}`;
  store.ensureModel({ id: modelId, architecture: MODEL_ID, source: 'zoo', sourceDigest: null, spec: {} });
  store.ensureDataset({ id: datasetId, name: dataset.id, source: dataset.source, digest: dataset.digest, spec: {} });
  return store.createRun({
    method: 'imp',
    modelId,
    datasetId,
    runKey: 'bench',
    seed: plan.seed,
    hparams: { levels: plan.levels, iterations: plan.schedule.iterations, evalEvery: plan.schedule.evalEvery },
    backend: { ...backend },
    versions: softwareVersions(backend.versions),
    initWeights: initial,
  });
}

async function timeEvaluationPasses(dataset: LoadedDataset, weights: WeightSet): Promise<{ validationPassSeconds: number; testPassSeconds: number }> {
  const arch = architecture(MODEL_ID);
  const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
  const net = new MaskedNetwork(arch, specs, weights, denseMasks(specs));
  const passSeconds = async (split: ImageSplit): Promise<number> => {
    const all: number[] = [];
    for (let r = 0; r < 3; r++) {
      const began = performance.now();
      await evaluate(net, split, dataset);
      all.push(seconds(began));
    }
    return median(all);
  };
  try {
    return { validationPassSeconds: await passSeconds(dataset.validation), testPassSeconds: await passSeconds(dataset.test) };
  } finally {
    net.dispose();
  }
}

export function impTable(result: ImpTimingResult): Table {
  const { plan } = result;
  const valPasses = Math.floor(plan.iterations / plan.evalEvery) + (plan.iterations % plan.evalEvery === 0 ? 1 : 2);
  const evalPerLevel = valPasses * result.validationPassSeconds + 2 * result.testPassSeconds;
  const totalSteps = result.levels.reduce((n, l) => n + l.steps, 0);
  return {
    title: `3. Time per IMP level: LeNet-300-100, MNIST, dense level 0 + ${plan.levels} pruned level${plan.levels === 1 ? '' : 's'}, ${plan.iterations} iterations each, on ${result.backend}`,
    measures: [
      'Timed: runImp (train, evaluate, prune) with each level written by LabStore.saveLevel into a temp SQLite file.',
      `Per level: wall = from the previous level's commit to this one's; train = trainMasked's clock (steps + evaluations:`,
      `validation every ${plan.evalEvery} iterations, test at early stop and at the end); store = saveLevel; other = the rest (pruning, set-up).`,
    ],
    columns: [
      { header: 'level', align: 'right' },
      { header: 'sparsity', align: 'right' },
      { header: 'steps', align: 'right' },
      { header: 'wall s', align: 'right' },
      { header: 'train s', align: 'right' },
      { header: 'store s', align: 'right' },
      { header: 'other s', align: 'right' },
      { header: 'it/s incl. eval', align: 'right' },
      { header: 'it/s wall', align: 'right' },
      { header: 'test acc', align: 'right' },
    ],
    rows: result.levels.map((l) => [
      String(l.level),
      percent(l.sparsity),
      String(l.steps),
      fixed(l.wallSeconds, 2),
      fixed(l.trainSeconds, 2),
      fixed(l.storeSeconds, 3),
      fixed(l.otherSeconds, 3),
      approx(l.steps / l.trainSeconds),
      approx(l.steps / l.wallSeconds),
      percent(l.testAccuracy, 2),
    ]),
    notes: [
      `Whole run: ${fixed(result.totalSeconds, 1)} s for ${result.levels.length} levels (${fixed(median(result.levels.map((l) => l.wallSeconds)), 2)} s median per level), ${approx(totalSteps / result.totalSeconds)} it/s overall.`,
      `One validation pass (${fixed(result.validationImages, 0)} images) ${fixed(result.validationPassSeconds, 3)} s, one test pass (${fixed(result.testImages, 0)}) ${fixed(result.testPassSeconds, 3)} s:`,
      `about ${fixed(evalPerLevel, 2)} s of evaluation per level (${valPasses} validation + 2 test passes).`,
    ],
  };
}
