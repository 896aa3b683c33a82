// The job runner (DESIGN.md "Layers": jobs run in a worker that owns the TF.js backend). Long LabApi
// calls are submitted as jobs: persisted in the jobs table, run one at a time, each in a fresh worker
// thread, their progress streamed to listeners and saved, cancelled at a safe point on request (from
// this process or, through the table, from another), and found again after a crash: the next start
// marks a killed process's jobs interrupted, and `resume` continues an IMP job's run after its last
// stored level.
import type { Worker } from 'node:worker_threads';
import { InvalidRequestError } from '../api/errors';
import { LAB_API_METHODS } from '../api/lab-api';
import type { SearchProgress } from '../api/schemas';
import { startWorker, workerEntry } from '../compute/worker-bootstrap';
import { parseRequest } from '../api/parse-request';
import { FINISHED_JOB_STATES, type JobRecord } from '../store/job-table';
import { LabStore } from '../store/lab-store';
import { isProcessAlive } from '../store/liveness';
import { JOB_METHODS, type JobMethod, type JobReply, type JobWork } from './job-messages';

export type JobEvent =
  | { type: 'progress'; job: string; progress: SearchProgress }
  | { type: 'warning'; job: string; message: string }
  | { type: 'state'; job: JobRecord };

export interface JobRunnerOptions {
  dbPath: string;
  ownerKeyPath?: string | undefined;
  /** How often a running job's cancel flag is read from the table (a cancel asked for by another process). */
  pollMilliseconds?: number;
  /** Progress is saved at most this often (every event still reaches listeners). */
  saveProgressMilliseconds?: number;
}

const WORKER = workerEntry(__dirname, 'job-worker', __filename);

export class JobRunner {
  private readonly store: LabStore;
  private readonly listeners = new Set<(event: JobEvent) => void>();
  private running: { id: string; worker: Worker } | undefined;
  private closing = false;

  constructor(private readonly options: JobRunnerOptions) {
    this.store = LabStore.open(options.dbPath, { create: true })!;
    this.store.jobs.markInterrupted(isProcessAlive);
    // Jobs queued by a process that stopped before running them are still this queue's.
    queueMicrotask(() => this.pump());
  }

  /** Validates the request as the method does, stores the job and queues it. */
  submit(method: string, request: unknown): JobRecord {
    if (!(JOB_METHODS as readonly string[]).includes(method)) throw new InvalidRequestError(`'${method}' does not run as a job; jobs run ${JOB_METHODS.join(', ')}.`);
    parseRequest(LAB_API_METHODS[method as JobMethod], request);
    const job = this.store.jobs.create(method, request as Record<string, unknown>);
    this.emit({ type: 'state', job });
    queueMicrotask(() => this.pump());
    return job;
  }

  list(): JobRecord[] {
    this.store.jobs.markInterrupted(isProcessAlive);
    return this.store.jobs.list();
  }

  get(idOrPrefix: string): JobRecord {
    return this.store.jobs.get(this.store.resolveJobId(idOrPrefix));
  }

  /** A queued job is cancelled now; a running one stops at its next safe point, keeping its finished levels. */
  cancel(idOrPrefix: string): JobRecord {
    const id = this.store.resolveJobId(idOrPrefix);
    const job = this.store.jobs.requestCancel(id);
    if (this.running?.id === id) this.running.worker.postMessage({ type: 'cancel' });
    if (job.state === 'cancelled') this.emit({ type: 'state', job });
    return job;
  }

  /**
   * Puts a stopped job back in the queue. A job with a run continues it after its last stored
   * level (IMP); one that never started a run starts again.
   */
  resume(idOrPrefix: string): JobRecord {
    const job = this.get(idOrPrefix);
    if (!['interrupted', 'cancelled', 'failed'].includes(job.state)) throw new InvalidRequestError(`Job ${job.id} is ${job.state}; only an interrupted, cancelled or failed job resumes.`);
    if (job.runId !== null && job.kind !== 'searchImp' && job.kind !== 'resumeRun') {
      throw new InvalidRequestError(`Job ${job.id} (${job.kind}) cannot continue where it stopped; only IMP jobs resume level by level. Submit it again.`);
    }
    const queued = this.store.jobs.requeue(job.id);
    this.emit({ type: 'state', job: queued });
    queueMicrotask(() => this.pump());
    return queued;
  }

  onEvent(listener: (event: JobEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the job once it has finished (completed, failed, cancelled or interrupted). */
  wait(idOrPrefix: string): Promise<JobRecord> {
    const id = this.store.resolveJobId(idOrPrefix);
    return new Promise((resolve) => {
      const check = (job: JobRecord) => {
        if (!FINISHED_JOB_STATES.includes(job.state)) return false;
        stop();
        resolve(job);
        return true;
      };
      const stop = this.onEvent((event) => {
        if (event.type === 'state' && event.job.id === id) check(event.job);
      });
      check(this.store.jobs.get(id));
    });
  }

  /** Stops taking jobs; a running one is cancelled at its next safe point and waited for. */
  async close(): Promise<void> {
    this.closing = true;
    const running = this.running;
    if (running) {
      const finished = this.wait(running.id);
      running.worker.postMessage({ type: 'cancel' });
      await finished;
    }
    this.store.close();
  }

  /** A bookkeeping write that may fail (a full or locked disk) without taking the runner down: undefined then, with a warning event. */
  private safely<T>(job: string, write: () => T): T | undefined {
    try {
      return write();
    } catch (error) {
      this.emit({ type: 'warning', job, message: `The job table could not be updated: ${(error as Error).message}` });
      return undefined;
    }
  }

  private emit(event: JobEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private pump(): void {
    if (this.running || this.closing) return;
    // The first queued job this process manages to claim (another process may take one first).
    const next = this.store.jobs.queued().find((j) => this.store.jobs.start(j.id));
    if (!next) return;
    const job = this.store.jobs.get(next.id);
    this.emit({ type: 'state', job });
    // A job with a run continues it (resumed); otherwise it calls its method.
    const params = job.params as { backend?: string; dataDir?: string };
    const work: JobWork =
      job.runId !== null
        ? { dbPath: this.options.dbPath, ownerKeyPath: this.options.ownerKeyPath, method: 'resumeRun', request: { run: job.runId, ...(params.backend ? { backend: params.backend } : {}), ...(params.dataDir ? { dataDir: params.dataDir } : {}) } }
        : { dbPath: this.options.dbPath, ownerKeyPath: this.options.ownerKeyPath, method: job.kind as JobMethod, request: job.params };
    const worker = startWorker(WORKER, { ...work });
    this.running = { id: job.id, worker };

    let settled = false;
    let lastSaved = 0;
    let latest: SearchProgress | undefined;
    const saveEvery = this.options.saveProgressMilliseconds ?? 250;
    const poll = setInterval(() => {
      if (this.safely(job.id, () => this.store.jobs.cancelRequested(job.id))) worker.postMessage({ type: 'cancel' });
    }, this.options.pollMilliseconds ?? 500);
    const finish = (state: 'completed' | 'failed' | 'cancelled', error: string | null, result: unknown = null) => {
      if (settled) return;
      settled = true;
      clearInterval(poll);
      this.running = undefined;
      void worker.terminate();
      // A database that cannot be written (a full disk) must not stop the runner or the process: the
      // job stays 'running' in the table, and the next start marks it interrupted.
      const saved = this.safely(job.id, () => {
        if (latest) this.store.jobs.progress(job.id, latest as unknown as Record<string, unknown>, latest.runId || null);
        this.store.jobs.finish(job.id, state, error, result);
        return this.store.jobs.get(job.id);
      });
      this.emit({ type: 'state', job: saved ?? { ...job, state, error, result } });
      this.pump();
    };
    worker.on('message', (reply: JobReply) => {
      if (reply.type === 'progress') {
        latest = reply.progress;
        const at = Date.now();
        if (at - lastSaved >= saveEvery) {
          lastSaved = at;
          this.safely(job.id, () => this.store.jobs.progress(job.id, reply.progress as unknown as Record<string, unknown>, reply.progress.runId || null));
        }
        this.emit({ type: 'progress', job: job.id, progress: reply.progress });
      } else if (reply.type === 'warning') {
        this.emit({ type: 'warning', job: job.id, message: reply.message });
      } else if (reply.type === 'done') {
        finish('completed', null, reply.result);
      } else {
        finish(reply.error.code === 'CANCELLED' ? 'cancelled' : 'failed', reply.error.message);
      }
    });
    worker.on('error', (error) => finish('failed', `The job's worker failed: ${error.message}`));
    worker.on('exit', (code) => finish('failed', `The job's worker stopped (exit code ${code}) before it reported a result.`));
  }
}
