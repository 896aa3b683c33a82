// Trains K tickets of one architecture together: one loop, one batched step for all of them, each
// with its own weights, mask and data order, each with its own early-stop record. A ticket trained
// in a stack gets the result it gets trained alone (tests/core/train/train-stack.test.ts).
//
// Fully connected nets run on the step engine (engine/mlp-engine.ts) on the cpu, wasm and webgpu
// backends; anything else (conv nets, tfjs-node) trains its members one after the other on
// TF.js's autodiff (train-autodiff.ts). On wasm (TF.js's WASM is one thread in Node) a stack is
// split over the cores, a worker thread per group of members (stack-workers.ts). A stack larger
// than the memory allows (engine/stack-size.ts) trains in parts, one after the other.
import * as tf from '@tensorflow/tfjs';
import { TrainingDivergedError, throwIfAborted } from '../api/errors';
import { BatchOrder, type LoadedDataset } from '../data/datasets';
import type { Architecture, ParamSpec } from '../models/architectures';
import type { WeightSet } from '../models/weights';
import type { MaskSet } from '../pruning/mask';
import { cpuStepKernels } from './engine/kernels-cpu';
import { wasmStepKernels } from './engine/kernels-wasm';
import { webgpuStepKernels } from './engine/kernels-webgpu';
import { type MemberEval, type MlpLayer, MlpStepEngine, mlpLayers } from './engine/mlp-engine';
import { type StackLimits, maxStackMembers, stackBudgetBytes } from './engine/stack-size';
import type { StepKernels } from './engine/step-kernels';
import { isWorkerBackend, memberGroups, stackThreads, trainInWorkers } from './stack-workers';
import { needsAutodiff } from './schedule';
import { trainWithAutodiff } from './train-autodiff';
import type { CurvePoint, EvalResult, TrainProgress, TrainResult, TrainSchedule } from './train';

export interface StackMember {
  weights: WeightSet;
  masks: MaskSet;
  /** Seeds this member's data order; members with equal seeds see the same batches. */
  dataSeed: number;
}

export interface StackTrainInput {
  arch: Architecture;
  specs: readonly ParamSpec[];
  dataset: LoadedDataset;
  members: readonly StackMember[];
  schedule: TrainSchedule;
  /** Where the step counter starts for every member: 0, or the rewind point k. */
  startIteration?: number;
  /** Snapshot every member's weights after this many iterations (the rewind point θk). */
  checkpointAt?: number;
  signal?: AbortSignal | undefined;
  /** Progress of the stack; loss and accuracy are the first member's. */
  onProgress?: ((p: TrainProgress) => void) | undefined;
  /**
   * Threads to train on (1: this one). Default: $TICKET_LAB_WORKERS, else every core on wasm;
   * never more than there are members.
   */
  workers?: number | undefined;
  /** Where these members sit in a larger stack split over workers: errors number members as that stack does. */
  group?: { first: number; stackSize: number } | undefined;
}

/** Give the event loop a turn (Ctrl-C, progress rendering) this often. */
const YIELD_EVERY = 10;

/** The step kernels of the current TF.js backend, where Ticket Lab has them. */
export function stepKernelsForBackend(tfBackend: string): (() => StepKernels) | null {
  if (tfBackend === 'webgpu') return webgpuStepKernels;
  if (tfBackend === 'wasm') return wasmStepKernels;
  if (tfBackend === 'cpu') return cpuStepKernels;
  return null;
}

/** Whether this architecture trains as one batched stack on the current backend. */
export function trainsStacked(arch: Architecture, specs: readonly ParamSpec[]): boolean {
  return mlpLayers(arch, specs) !== null && stepKernelsForBackend(tf.getBackend()) !== null;
}

export async function trainStack(input: StackTrainInput): Promise<TrainResult[]> {
  const tfBackend = tf.getBackend();
  if (needsAutodiff(input.schedule)) return trainEachWithAutodiff(input);
  if (isWorkerBackend(tfBackend)) {
    const threads = stackThreads(input, tfBackend);
    if (threads > 1) return trainInWorkers(input, tfBackend, threads);
  }
  const layers = mlpLayers(input.arch, input.specs);
  const makeKernels = stepKernelsForBackend(tfBackend);
  if (!layers || !makeKernels) return trainEachWithAutodiff(input);
  const limit = maxStackMembers(layers, input.schedule.batchSize, input.schedule.optimizer, stackLimits(tfBackend));
  if (input.members.length > limit) return trainInParts(input, layers, makeKernels, limit);
  return trainOnEngine(input, layers, makeKernels());
}

/** One member at a time on TF.js's own ops and autodiff. */
async function trainEachWithAutodiff(input: StackTrainInput): Promise<TrainResult[]> {
  const results: TrainResult[] = [];
  for (const member of input.members) {
    results.push(await trainWithAutodiff({ ...input, weights: member.weights, masks: member.masks, dataSeed: member.dataSeed }));
  }
  return results;
}

/** How much memory a stack may take on this backend, and WebGPU's largest binding. */
function stackLimits(tfBackend: string): StackLimits {
  const device = (tf.backend() as { device?: { limits?: { maxStorageBufferBindingSize?: number } } }).device;
  return { budgetBytes: stackBudgetBytes(tfBackend), maxBindingBytes: tfBackend === 'webgpu' ? device?.limits?.maxStorageBufferBindingSize : undefined };
}

/**
 * A stack too large for the memory trains in parts of at most `limit` members, one after the
 * other: each member still gets the result it gets alone. Progress runs once over the level:
 * part i of n reports its iteration t as start + (i·span + t − start) / n.
 */
async function trainInParts(input: StackTrainInput, layers: MlpLayer[], makeKernels: () => StepKernels, limit: number): Promise<TrainResult[]> {
  const members = input.members.length;
  const parts = memberGroups(members, Math.ceil(members / limit));
  const start = input.startIteration ?? 0;
  const span = input.schedule.iterations - start;
  const results: TrainResult[] = [];
  for (const [index, part] of parts.entries()) {
    const { onProgress } = input;
    const partInput: StackTrainInput = {
      ...input,
      members: input.members.slice(part.first, part.first + part.count),
      group: { first: (input.group?.first ?? 0) + part.first, stackSize: input.group?.stackSize ?? members },
      onProgress: onProgress && ((p) => onProgress({ ...p, iteration: start + Math.floor((index * span + p.iteration - start) / parts.length) })),
    };
    results.push(...(await trainOnEngine(partInput, layers, makeKernels())));
  }
  return results;
}

async function trainOnEngine(input: StackTrainInput, layers: MlpLayer[], kernels: StepKernels): Promise<TrainResult[]> {
  const { dataset, schedule, signal, members } = input;
  const K = members.length;
  const B = schedule.batchSize;
  const start = input.startIteration ?? 0;
  const end = schedule.iterations;
  if (start > end) throw new Error(`start iteration ${start} is past the end ${end}`);

  const engine = new MlpStepEngine(kernels, layers, members, B, schedule.optimizer);
  try {
    const norm = dataset.normalization;
    const trainImages = kernels.images(dataset.train, norm);
    const validation = kernels.images(dataset.validation, norm);
    engine.useTrainingImages(trainImages);
    // Members with one seed share one order object: the permutation is drawn once per epoch.
    const orders = new Map<number, BatchOrder>();
    const orderOf = members.map((m) => {
      let order = orders.get(m.dataSeed);
      if (!order) {
        order = new BatchOrder(dataset.train.count, B, m.dataSeed);
        orders.set(m.dataSeed, order);
      }
      return order;
    });
    const rowIds = new Int32Array(K * B);

    const curves: CurvePoint[][] = members.map(() => []);
    const best: Array<{ iteration: number; validation: EvalResult } | undefined> = members.map(() => undefined);
    let checkpoint: WeightSet[] | undefined;
    let lastLoss: number | null = null;
    let lastValAccuracy: number | null = null;
    const began = performance.now();

    const record = async (iteration: number): Promise<void> => {
      const losses = await engine.takeLosses();
      losses.forEach((loss, p) => {
        if (loss !== null && !Number.isFinite(loss)) {
          const stackSize = input.group?.stackSize ?? K;
          const member = (input.group?.first ?? 0) + p + 1;
          throw new TrainingDivergedError(`Training diverged by iteration ${iteration}${stackSize > 1 ? ` (member ${member} of ${stackSize} trained together)` : ''}: mean loss ${loss}. Lower the learning rate (--lr).`);
        }
      });
      const evals: MemberEval[] = await engine.evaluate(validation, 'current');
      const improved: number[] = [];
      evals.forEach((validationResult, p) => {
        curves[p]!.push({ iteration, trainLoss: losses[p] ?? null, valLoss: validationResult.loss, valAccuracy: validationResult.accuracy });
        const b = best[p];
        // Strictly lower, so ties keep the earlier iteration; NaN (no validation split) never improves after the first point.
        if (!b || validationResult.loss < b.validation.loss) {
          best[p] = { iteration, validation: validationResult };
          improved.push(p);
        }
      });
      engine.keepBest(improved);
      lastLoss = losses[0] ?? lastLoss;
      lastValAccuracy = evals[0]!.accuracy;
    };

    if (input.checkpointAt === start) checkpoint = await engine.readWeights('current');
    await record(start);
    for (let iteration = start; iteration < end; iteration++) {
      throwIfAborted(signal);
      members.forEach((_, p) => rowIds.set(orderOf[p]!.rowsAt(iteration), p * B));
      engine.step(rowIds);
      const done = iteration + 1;
      if (done === input.checkpointAt) checkpoint = await engine.readWeights('current');
      if (done % schedule.evalEvery === 0 || done === end) await record(done);
      if (done % YIELD_EVERY === 0 || done === end) {
        input.onProgress?.({ iteration: done, endIteration: end, startIteration: start, loss: lastLoss, valAccuracy: lastValAccuracy });
        await kernels.settle();
        await new Promise((resolve) => setImmediate(resolve));
      }
    }

    const finalWeights = await engine.readWeights('current');
    const test = kernels.images(dataset.test, norm);
    const finalTest = await engine.evaluate(test, 'current');
    const earlyTest = best.some((b) => b!.iteration !== end) ? await engine.evaluate(test, 'best') : finalTest;
    const trainSeconds = (performance.now() - began) / 1000;
    return members.map((_, p) => {
      const curve = curves[p]!;
      const last = curve[curve.length - 1]!;
      const b = best[p]!;
      return {
        finalWeights: finalWeights[p]!,
        ...(checkpoint ? { checkpoint: checkpoint[p]! } : {}),
        earlyStop: { iteration: b.iteration, validation: b.validation, test: b.iteration === end ? finalTest[p]! : earlyTest[p]! },
        final: { iteration: end, validation: { loss: last.valLoss, accuracy: last.valAccuracy }, test: finalTest[p]! },
        curve,
        steps: end - start,
        trainSeconds,
      };
    });
  } finally {
    engine.dispose();
  }
}
