// The jobs table: a persisted queue of long calls (searches, attacks, resumes) that the job runner
// (core/jobs) executes in worker threads. Its rows say what each job is, how far it got and which run
// it writes, so a UI can show them, another process can ask for a cancel, and a killed process's
// jobs are found again on the next start.
import type { Database } from 'better-sqlite3';
import { NotFoundError } from '../api/errors';
import { newId } from './ids';
import { isOrphaned } from './liveness';

export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'interrupted';

export interface JobRecord {
  id: string;
  /** The LabApi method the job calls (searchImp, attack, ...). */
  kind: string;
  state: JobState;
  /** The method's request, as validated when the job was submitted. */
  params: Record<string, unknown>;
  /** The last progress event, as the method reported it. */
  progress: Record<string, unknown> | null;
  error: string | null;
  /** The run the job writes, once it has one: a resumed job continues it. */
  runId: string | null;
  /** A completed job's answer, as its method returned it. */
  result: unknown;
  pid: number | null;
  cancelRequested: boolean;
  createdAt: string;
  updatedAt: string;
}

interface JobRow {
  id: string;
  kind: string;
  state: JobState;
  params_json: string;
  progress_json: string | null;
  error: string | null;
  run_id: string | null;
  result_json: string | null;
  pid: number | null;
  cancel_requested: number;
  created_at: string;
  updated_at: string;
}

function toJob(row: JobRow): JobRecord {
  return {
    id: row.id, kind: row.kind, state: row.state, params: JSON.parse(row.params_json) as Record<string, unknown>,
    progress: row.progress_json === null ? null : (JSON.parse(row.progress_json) as Record<string, unknown>), error: row.error, runId: row.run_id,
    result: row.result_json === null ? null : (JSON.parse(row.result_json) as unknown), pid: row.pid, cancelRequested: row.cancel_requested === 1, createdAt: row.created_at, updatedAt: row.updated_at,
  };
}

const now = (): string => new Date().toISOString();
export const FINISHED_JOB_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled', 'interrupted'];

export class JobTable {
  constructor(
    private readonly db: Database,
    private readonly write: <T>(fn: () => T) => T,
  ) {}

  create(kind: string, params: Record<string, unknown>): JobRecord {
    const id = newId('jb');
    const at = now();
    this.write(() => {
      this.db.prepare("INSERT INTO jobs (id, kind, state, params_json, created_at, updated_at) VALUES (?, ?, 'queued', ?, ?, ?)").run(id, kind, JSON.stringify(params), at, at);
    });
    return this.get(id);
  }

  get(id: string): JobRecord {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    if (!row) throw new NotFoundError('job', id);
    return toJob(row);
  }

  list(): JobRecord[] {
    return (this.db.prepare('SELECT * FROM jobs ORDER BY created_at, id').all() as JobRow[]).map(toJob);
  }

  /** Queued jobs in the order they were submitted (a resumed job keeps its place by creation). */
  queued(): JobRecord[] {
    return (this.db.prepare("SELECT * FROM jobs WHERE state = 'queued' ORDER BY created_at, id").all() as JobRow[]).map(toJob);
  }

  /** Claims a queued job for this process; false when another one got it first. */
  start(id: string): boolean {
    return this.write(
      () => this.db.prepare("UPDATE jobs SET state = 'running', pid = ?, updated_at = ? WHERE id = ? AND state = 'queued' AND cancel_requested = 0").run(process.pid, now(), id).changes === 1,
    );
  }

  progress(id: string, progress: Record<string, unknown>, runId: string | null): void {
    this.write(() => {
      this.db.prepare('UPDATE jobs SET progress_json = ?, run_id = coalesce(run_id, ?), updated_at = ? WHERE id = ?').run(JSON.stringify(progress), runId, now(), id);
    });
  }

  finish(id: string, state: Exclude<JobState, 'queued' | 'running'>, error: string | null = null, result: unknown = null): void {
    this.write(() => {
      this.db
        .prepare('UPDATE jobs SET state = ?, error = ?, result_json = ?, pid = NULL, updated_at = ? WHERE id = ?')
        .run(state, error, result === null || result === undefined ? null : JSON.stringify(result), now(), id);
    });
  }

  /** Asks for a cancel: a queued job is cancelled now, a running one at its next safe point (its runner polls). */
  requestCancel(id: string): JobRecord {
    this.write(() => {
      this.db.prepare("UPDATE jobs SET state = 'cancelled', updated_at = ? WHERE id = ? AND state = 'queued'").run(now(), id);
      this.db.prepare("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ? AND state = 'running'").run(now(), id);
    });
    return this.get(id);
  }

  cancelRequested(id: string): boolean {
    return (this.db.prepare('SELECT cancel_requested FROM jobs WHERE id = ?').get(id) as { cancel_requested: number } | undefined)?.cancel_requested === 1;
  }

  /** Puts a stopped job back in the queue; with a run, the runner continues that run. */
  requeue(id: string): JobRecord {
    this.write(() => {
      this.db.prepare("UPDATE jobs SET state = 'queued', error = NULL, pid = NULL, cancel_requested = 0, updated_at = ? WHERE id = ?").run(now(), id);
    });
    return this.get(id);
  }

  /** Jobs left 'running' by a process that no longer exists (killed, crashed) become 'interrupted'. */
  markInterrupted(isAlive: (pid: number) => boolean): number {
    const stale = (this.db.prepare("SELECT id, pid FROM jobs WHERE state = 'running'").all() as Array<{ id: string; pid: number | null }>).filter(
      (j) => isOrphaned(j.pid, isAlive),
    );
    if (stale.length === 0) return 0;
    this.write(() => {
      const update = this.db.prepare("UPDATE jobs SET state = 'interrupted', error = 'the process running it stopped before it finished', pid = NULL, updated_at = ? WHERE id = ?");
      for (const j of stale) update.run(now(), j.id);
    });
    return stale.length;
  }
}
