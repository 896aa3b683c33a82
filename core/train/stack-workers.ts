// Trains a stack's members on several cores: the members are split into contiguous groups and
// each group trains in a worker thread with its own TF.js engine and WASM heap (TF.js runs WASM on
// one thread in Node). A member's steps do not depend on the other members of its stack, so a
// ticket gets the result it gets in one process (tests/core/train/stack-workers.test.ts).
//
// Workers are kept in a small pool across calls (IMP trains one stack per level): a new worker
// costs about 0.4 s to load TF.js and Ticket Lab's modules (1 s from the TypeScript sources). Idle workers are unref'd, so they never
// keep a process alive, and closed after IDLE_CLOSE_MS or by closeStackWorkers().
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import {
  BackendUnavailableError,
  CancelledError,
  DataFormatError,
  DatasetUnavailableError,
  InternalError,
  InvalidRequestError,
  type LabError,
  TrainingDivergedError,
  throwIfAborted,
} from '../api/errors';
import { startWorker, workerEntry } from '../compute/worker-bootstrap';
import type { ImageSplit, LoadedDataset } from '../data/datasets';
import type { TrainProgress, TrainResult } from './train';
import type { StackTrainInput } from './train-stack';

/** TF.js backends whose training moves into workers: both run on one CPU core per engine. */
export type WorkerBackend = 'wasm' | 'cpu';

export function isWorkerBackend(tfBackend: string): tfBackend is WorkerBackend {
  return tfBackend === 'wasm' || tfBackend === 'cpu';
}

/** Overrides the number of training threads of a stack (1: train in this thread). */
export const WORKERS_ENV = 'TICKET_LAB_WORKERS';

/** After the abort signal, how long a worker gets to stop at its next step before it is terminated. */
const CANCEL_GRACE_MS = 2000;
/** Idle workers are closed after this long, so a long-lived app does not keep their heaps. */
const IDLE_CLOSE_MS = 60_000;

/** What a worker is asked to train: a StackTrainInput without its callbacks. */
export type StackJob = Omit<StackTrainInput, 'signal' | 'onProgress' | 'workers'>;

export type WorkerRequest = { type: 'train'; backend: WorkerBackend; job: StackJob } | { type: 'cancel' };

export interface WireError {
  name: string;
  message: string;
}

export type WorkerReply =
  | { type: 'progress'; progress: TrainProgress }
  | { type: 'done'; results: TrainResult[] }
  | { type: 'failed'; error: WireError };

/**
 * How many threads train this stack: `input.workers`, else $TICKET_LAB_WORKERS, else every core
 * for WASM (one core for cpu, the JS reference backend), never more than there are members.
 * An explicit count is honoured beyond the core count (tests run on one-core machines too).
 */
export function stackThreads(input: Pick<StackTrainInput, 'workers' | 'members'>, backend: WorkerBackend): number {
  const asked = input.workers ?? workersFromEnv();
  const threads = asked ?? (backend === 'wasm' ? availableParallelism() : 1);
  if (threads < 2 || input.members.length < 2 || !existsSync(WORKER_ENTRY)) return 1;
  return Math.min(threads, input.members.length);
}

function workersFromEnv(): number | undefined {
  const value = process.env[WORKERS_ENV];
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidRequestError(`${WORKERS_ENV} must be a whole number of threads, 1 or more; got '${value}'.`);
  return n;
}

/** Splits `count` members into `groups` contiguous groups, the larger ones first. */
export function memberGroups(count: number, groups: number): Array<{ first: number; count: number }> {
  const out: Array<{ first: number; count: number }> = [];
  let first = 0;
  for (let g = 0; g < groups; g++) {
    const size = Math.floor(count / groups) + (g < count % groups ? 1 : 0);
    out.push({ first, count: size });
    first += size;
  }
  return out;
}

/** Trains `input`'s members in `threads` workers; resolves with one result per member, in order. */
export async function trainInWorkers(input: StackTrainInput, backend: WorkerBackend, threads: number): Promise<TrainResult[]> {
  throwIfAborted(input.signal);
  const { signal, onProgress } = input;
  const groups = memberGroups(input.members.length, threads);
  const dataset = sharedDataset(input.dataset);
  const workers = groups.map(() => takeWorker());

  let firstFailure: unknown;
  const cancelAll = (): void => workers.forEach((w) => w.cancel());

  const latest: Array<TrainProgress | undefined> = groups.map(() => undefined);
  let reported = -1;
  // The slowest group's iteration, with the first member's loss and accuracy, as in one process.
  const onGroupProgress = (g: number, p: TrainProgress): void => {
    latest[g] = p;
    if (!onProgress || latest.some((q) => q === undefined)) return;
    const iteration = Math.min(...latest.map((q) => q!.iteration));
    if (iteration <= reported) return;
    reported = iteration;
    try {
      onProgress({ ...p, iteration, loss: latest[0]!.loss, valAccuracy: latest[0]!.valAccuracy });
    } catch (error) {
      // In one thread a throwing listener ends training with its error: the same here.
      firstFailure ??= error;
      cancelAll();
    }
  };

  signal?.addEventListener('abort', cancelAll);
  try {
    const settled = await Promise.allSettled(
      groups.map(async (group, g) => {
        const job: StackJob = {
          arch: input.arch,
          specs: input.specs,
          dataset,
          members: input.members.slice(group.first, group.first + group.count),
          schedule: input.schedule,
          ...(input.startIteration !== undefined ? { startIteration: input.startIteration } : {}),
          ...(input.checkpointAt !== undefined ? { checkpointAt: input.checkpointAt } : {}),
          group: { first: (input.group?.first ?? 0) + group.first, stackSize: input.group?.stackSize ?? input.members.length },
        };
        try {
          return await workers[g]!.train({ type: 'train', backend, job }, (p) => onGroupProgress(g, p));
        } catch (error) {
          // One group failing fails the stack, as one member diverging does in one process: stop the others.
          if (firstFailure === undefined && !(error instanceof CancelledError)) {
            firstFailure = error;
            cancelAll();
          }
          throw error;
        }
      }),
    );
    if (firstFailure !== undefined) throw firstFailure;
    const results: TrainResult[] = [];
    for (const outcome of settled) {
      if (outcome.status === 'rejected') throw outcome.reason;
      results.push(...outcome.value);
    }
    return results;
  } finally {
    signal?.removeEventListener('abort', cancelAll);
    workers.forEach(releaseWorker);
  }
}

// ---- the pool ----

/** The worker script beside this file (the compiled .js, or the .ts source under vitest: core/compute/worker-bootstrap.ts). */
const WORKER_ENTRY = workerEntry(__dirname, 'stack-worker', __filename);

class StackWorker {
  private readonly worker = startWorker(WORKER_ENTRY);
  /** Set while a job runs: where the worker's replies and failures go. */
  private job: { reply(message: WorkerReply): void; fail(error: unknown): void } | undefined;
  private cancelTimer: NodeJS.Timeout | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  /** False once it crashed, exited or was terminated: never handed out again. */
  usable = true;

  constructor() {
    this.worker.on('message', (message: WorkerReply) => this.job?.reply(message));
    this.worker.on('error', (error) => {
      this.usable = false;
      this.job?.fail(new InternalError(`A training worker failed: ${error.message}`, { cause: error }));
    });
    this.worker.on('exit', (code) => {
      this.usable = false;
      forgetIdle(this);
      this.job?.fail(new InternalError(`A training worker stopped unexpectedly (exit code ${code}).`));
    });
  }

  train(request: WorkerRequest & { type: 'train' }, onProgress: (p: TrainProgress) => void): Promise<TrainResult[]> {
    return new Promise<TrainResult[]>((resolve, reject) => {
      const settle = (): void => {
        this.job = undefined;
        clearTimeout(this.cancelTimer);
        this.cancelTimer = undefined;
      };
      this.job = {
        reply: (message) => {
          if (message.type === 'progress') return onProgress(message.progress);
          settle();
          if (message.type === 'done') resolve(message.results);
          else reject(errorFromWire(message.error));
        },
        fail: (error) => {
          settle();
          reject(error);
        },
      };
      this.worker.postMessage(request);
    });
  }

  /** Asks the running job to stop at its next step; a worker that does not is terminated. */
  cancel(): void {
    if (!this.job || this.cancelTimer) return;
    this.worker.postMessage({ type: 'cancel' } satisfies WorkerRequest);
    this.cancelTimer = setTimeout(() => {
      this.usable = false;
      this.job?.fail(new CancelledError());
      void this.worker.terminate();
    }, CANCEL_GRACE_MS);
  }

  /** Whether the worker keeps the process alive: only while it trains. */
  hold(busy: boolean): void {
    if (busy) this.worker.ref();
    else this.worker.unref();
  }

  close(): Promise<number> {
    this.usable = false;
    clearTimeout(this.idleTimer);
    return this.worker.terminate();
  }
}

const idle: StackWorker[] = [];

function takeWorker(): StackWorker {
  const worker = idle.pop() ?? new StackWorker();
  clearTimeout(worker.idleTimer);
  worker.hold(true);
  return worker;
}

function releaseWorker(worker: StackWorker): void {
  if (!worker.usable) {
    void worker.close();
    return;
  }
  worker.hold(false);
  worker.idleTimer = setTimeout(() => {
    forgetIdle(worker);
    void worker.close();
  }, IDLE_CLOSE_MS).unref();
  idle.push(worker);
}

function forgetIdle(worker: StackWorker): void {
  const at = idle.indexOf(worker);
  if (at >= 0) idle.splice(at, 1);
}

/** Closes the idle training workers (a service closing); running ones finish their job first. */
export async function closeStackWorkers(): Promise<void> {
  await Promise.all(idle.splice(0).map((w) => w.close()));
}

// ---- data and errors across the thread boundary ----

const sharedSplits = new WeakMap<ImageSplit, ImageSplit>();

/** The dataset with its pixels and labels in shared memory: copied once, then read by every worker in place. */
function sharedDataset(dataset: LoadedDataset): LoadedDataset {
  return { ...dataset, train: sharedSplit(dataset.train), validation: sharedSplit(dataset.validation), test: sharedSplit(dataset.test) };
}

function sharedSplit(split: ImageSplit): ImageSplit {
  let shared = sharedSplits.get(split);
  if (!shared) {
    shared = { ...split, images: toShared(split.images), labels: toShared(split.labels) };
    sharedSplits.set(split, shared);
  }
  return shared;
}

function toShared(bytes: Uint8Array): Uint8Array {
  if (bytes.buffer instanceof SharedArrayBuffer) return bytes;
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
  shared.set(bytes);
  return shared;
}

/** The buffers of a stack's results, moved rather than copied to the parent (each weight tensor owns its buffer). */
export function resultBuffers(results: readonly TrainResult[]): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const r of results) {
    for (const t of [...r.finalWeights, ...(r.checkpoint ?? [])]) {
      if (t.values.buffer instanceof ArrayBuffer) buffers.add(t.values.buffer);
    }
  }
  return [...buffers];
}

export function errorToWire(error: unknown): WireError {
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: 'Error', message: String(error) };
}

/** The errors training raises, rebuilt by name so callers can tell them apart as in one thread. */
const REBUILT: Record<string, (message: string) => LabError> = {
  CancelledError: (message) => new CancelledError(message),
  TrainingDivergedError: (message) => new TrainingDivergedError(message),
  InvalidRequestError: (message) => new InvalidRequestError(message),
  BackendUnavailableError: (message) => new BackendUnavailableError(message),
  DatasetUnavailableError: (message) => new DatasetUnavailableError(message),
  DataFormatError: (message) => new DataFormatError(message),
  InternalError: (message) => new InternalError(message),
};

export function errorFromWire(wire: WireError): Error {
  const rebuild = REBUILT[wire.name];
  if (rebuild) return rebuild(wire.message);
  const error = new Error(wire.message);
  error.name = wire.name;
  return error;
}
