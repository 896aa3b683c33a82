// Section 1: masked LeNet-300-100 training steps per second on each TF.js backend in this process.
//
// The steps are core's own: trainMasked runs unchanged, and the clock reads its onProgress calls
// (every 10 iterations), so the timed window is exactly the step loop: batch fill, tensor upload,
// forward, backward, MaskedAdam, mask guard, a loss read-back every 10 steps and the event-loop
// yield. Evaluation is kept out: evalEvery lies past the end, the run is aborted through its
// AbortSignal right after the window (skipping the final test passes), and the dataset given
// here has an empty validation split, so the evaluation at the start costs nothing either.
import * as tf from '@tensorflow/tfjs';
import { CancelledError, LabError } from '../core/api/errors';
import { type BackendChoice, type BackendInfo, isInstalled, selectBackend } from '../core/compute/backend';
import type { LoadedDataset } from '../core/data/datasets';
import { DEFAULT_OPTIMIZER, type OptimizerConfig } from '../core/train/optimizers';
import { trainMasked } from '../core/train/train';
import type { BenchTicket, LenetTicket } from './lenet-ticket';
import { seconds } from './stopwatch';
import { STEP_TIMING_COLUMNS, type Table, fixed, stepTimingCells } from './text-table';
import type { TorchResult } from './torch-reference';

export const BATCH_SIZE = 60;
export const LEARNING_RATE = 1.2e-3;
/** trainMasked reports progress every 10 iterations: the clock can only start and stop there. */
const PROGRESS_EVERY = 10;

export interface StepPlan {
  warmup: number;
  steps: number;
}

export interface ThroughputRow {
  backend: Exclude<BackendChoice, 'auto'>;
  tfBackend: string;
  simd: boolean | null;
  threads: boolean | null;
  warmupSteps: number;
  timedSteps: number;
  seconds: number;
  stepsPerSecond: number;
  samplesPerSecond: number;
  /** Training loss of step 10 (after 10 updates): same seed, data and init on every backend, so the rows should agree. */
  lossAtStep10: number | null;
  /** Tensors alive after the run minus before: anything but 0 is a leak in the training loop. */
  leakedTensors: number;
}

export interface ThroughputSkip {
  backend: Exclude<BackendChoice, 'auto'>;
  reason: string;
}

export interface ThroughputResult {
  rows: ThroughputRow[];
  skipped: ThroughputSkip[];
}


export async function measureThroughput(
  dataset: LoadedDataset,
  ticket: LenetTicket,
  plans: Partial<Record<Exclude<BackendChoice, 'auto'>, StepPlan>>,
  log: (line: string) => void,
): Promise<ThroughputResult> {
  const rows: ThroughputRow[] = [];
  const skipped: ThroughputSkip[] = [];
  for (const [backend, plan] of Object.entries(plans) as Array<[Exclude<BackendChoice, 'auto'>, StepPlan]>) {
    // Native TensorFlow only where someone installed it: its install downloads libtensorflow.
    if ((backend === 'tfjs-node' || backend === 'tfjs-node-gpu') && !isInstalled(`@tensorflow/${backend}`)) {
      skipped.push({ backend, reason: `@tensorflow/${backend} not installed` });
      continue;
    }
    let info: BackendInfo;
    try {
      info = await selectBackend(backend);
    } catch (error) {
      if (!(error instanceof LabError)) throw error;
      skipped.push({ backend, reason: error.message });
      continue;
    }
    log(`training ${plan.warmup} + ${plan.steps} steps on ${backend}`);
    rows.push(await timeSteps(info, dataset, ticket, plan, LEARNING_RATE));
  }
  return { rows, skipped };
}

/**
 * Trains `ticket` with core trainMasked (Adam at `learningRate`, batch 60, unless `training` says
 * otherwise) for `plan.warmup` + `plan.steps` steps on the backend already selected, timing the
 * steps after the warm-up.
 */
export async function timeSteps(
  info: BackendInfo,
  dataset: LoadedDataset,
  ticket: BenchTicket,
  plan: StepPlan,
  learningRate: number,
  training?: { batchSize: number; optimizer: OptimizerConfig },
): Promise<ThroughputRow> {
  const batchSize = training?.batchSize ?? BATCH_SIZE;
  if (plan.warmup < PROGRESS_EVERY || plan.warmup % PROGRESS_EVERY !== 0 || plan.steps <= 0 || plan.steps % PROGRESS_EVERY !== 0) {
    throw new RangeError(`warm-up and timed steps must be positive multiples of ${PROGRESS_EVERY} (got ${plan.warmup} and ${plan.steps})`);
  }
  const stopAt = plan.warmup + plan.steps;
  const controller = new AbortController();
  let startedMs: number | undefined;
  let stoppedMs: number | undefined;
  let lossAtStep10: number | null = null;
  const tensorsBefore = tf.memory().numTensors;
  try {
    await trainMasked({
      arch: ticket.arch,
      specs: ticket.specs,
      dataset,
      weights: ticket.weights,
      masks: ticket.masks,
      schedule: {
        // Past the window, so trainMasked's end-of-run evaluation is never reached before the abort.
        iterations: stopAt + PROGRESS_EVERY,
        batchSize,
        evalEvery: stopAt + 10 * PROGRESS_EVERY,
        optimizer: training?.optimizer ?? { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate },
      },
      dataSeed: 0,
      signal: controller.signal,
      onProgress: (p) => {
        // trainMasked samples the loss of steps 0, 10, 20, ...; at 20 done, the latest is step 10's.
        if (p.iteration === 2 * PROGRESS_EVERY) lossAtStep10 = p.loss;
        if (p.iteration === plan.warmup) startedMs = performance.now();
        if (p.iteration === stopAt) {
          stoppedMs = performance.now();
          controller.abort();
        }
      },
    });
  } catch (error) {
    if (!(error instanceof CancelledError) || stoppedMs === undefined) throw error;
  }
  if (startedMs === undefined || stoppedMs === undefined) throw new Error(`training on ${info.provider} ended before the timed window closed`);
  const elapsed = seconds(startedMs, stoppedMs);
  const stepsPerSecond = plan.steps / elapsed;
  return {
    backend: info.provider,
    tfBackend: info.tfBackend,
    simd: info.features.simd ?? null,
    threads: info.features.threads ?? null,
    warmupSteps: plan.warmup,
    timedSteps: plan.steps,
    seconds: elapsed,
    stepsPerSecond,
    samplesPerSecond: stepsPerSecond * batchSize,
    lossAtStep10,
    leakedTensors: tf.memory().numTensors - tensorsBefore,
  };
}

/** "0.085×", or a dash when there is nothing to compare with. */
export function ratioText(tfjs: number, torch: TorchResult): string {
  return torch.kind === 'measured' ? `${fixed(tfjs / torch.stepsPerSecond, 3)}×` : '—';
}

export function throughputTable(result: ThroughputResult, torch: TorchResult): Table {
  const yesNo = (v: boolean | null): string => (v === null ? '' : v ? 'yes' : 'no');
  const leaks = result.rows.filter((r) => r.leakedTensors !== 0);
  return {
    title: '1. Training throughput: masked LeNet-300-100, MNIST, batch 60, Adam lr 1.2e-3, 50 % random masks',
    measures: [
      'Timed: only the step loop of core trainMasked (batch fill, forward, backward, MaskedAdam, mask guard,',
      'loss read-back every 10 steps), after the warm-up steps; no evaluation inside the window.',
      `"vs PyTorch" is steps/s divided by PyTorch's steps/s from section 2, measured in this same run.`,
    ],
    columns: [
      { header: 'backend' },
      { header: 'tf backend' },
      { header: 'SIMD' },
      { header: 'threads' },
      ...STEP_TIMING_COLUMNS,
      { header: 'loss@10', align: 'right' },
      { header: 'vs PyTorch', align: 'right' },
    ],
    rows: result.rows.map((r) => [
      r.backend,
      r.tfBackend,
      yesNo(r.simd),
      yesNo(r.threads),
      ...stepTimingCells(r),
      r.lossAtStep10 === null ? '' : fixed(r.lossAtStep10, 5),
      ratioText(r.stepsPerSecond, torch),
    ]),
    notes: [
      ...result.skipped.map((s) => `${s.backend}: ${s.reason}`),
      ...leaks.map((r) => `${r.backend}: ${r.leakedTensors} tensors left alive after training (a leak in the training loop)`),
      'loss@10: training loss of step 10; same seed, weights, masks and batches on every backend, so the rows should agree.',
    ],
  };
}
