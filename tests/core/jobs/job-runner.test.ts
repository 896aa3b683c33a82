// The job runner on a real database, with real workers and real training: a job runs to the end with
// its progress streamed and saved; a running job cancelled (here, or through the table from another
// connection, as another process would) keeps its finished levels and resumes to the end; a queued
// job cancelled never runs; bad requests never reach the table.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import type { SearchProgress, SearchSummary } from '../../../core/api/schemas';
import { type JobEvent, JobRunner } from '../../../core/jobs/job-runner';
import { LabStore } from '../../../core/store/lab-store';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-jobs-');
const imp = { model: 'lenet-300-100', dataset: 'mnist', iterations: 20, evalEvery: 10, validationSize: 500, backend: 'wasm', seed: 2 };
const runners: JobRunner[] = [];
afterEach(async () => {
  await Promise.all(runners.splice(0).map((r) => r.close()));
});

function runner(dbPath: string): JobRunner {
  const r = new JobRunner({ dbPath, pollMilliseconds: 100 });
  runners.push(r);
  return r;
}

function ticketLevels(dbPath: string, runId: string): number[] {
  const store = LabStore.open(dbPath, { create: false })!;
  try {
    return store
      .listTickets({ runId })
      .map((t) => t.level)
      .sort((a, b) => a - b);
  } finally {
    store.close();
  }
}

describe('the job runner', () => {
  it('runs a search in a worker, streams and saves its progress, and refuses bad requests', async () => {
    const db = join(temp(), 'lab.db');
    const jobs = runner(db);
    expect(() => jobs.submit('searchImp', { ...imp, levels: -1 })).toThrow(InvalidRequestError);
    expect(() => jobs.submit('dbInfo', {})).toThrow(/does not run as a job/);
    expect(jobs.list()).toEqual([]);

    const events: JobEvent[] = [];
    jobs.onEvent((e) => events.push(e));
    const job = jobs.submit('searchImp', { ...imp, levels: 2 });
    const done = await jobs.wait(job.id);
    expect(done).toMatchObject({ state: 'completed', error: null, kind: 'searchImp' });
    expect(done.runId).toMatch(/^run_/);
    expect((done.progress as unknown as SearchProgress).runId).toBe(done.runId);
    expect(ticketLevels(db, done.runId!)).toEqual([0, 1, 2]);
    // The job keeps its answer: the search's summary, as searchImp returned it.
    expect(done.result).toMatchObject({ runId: done.runId, status: 'completed' });
    expect((done.result as SearchSummary).tickets.map((t) => t.level)).toEqual([0, 1, 2]);
    const states = events.filter((e) => e.type === 'state').map((e) => (e as { job: { state: string } }).job.state);
    expect(states).toEqual(['queued', 'running', 'completed']);
    const progress = events.filter((e) => e.type === 'progress') as Array<{ progress: SearchProgress }>;
    expect(progress.length).toBeGreaterThan(2);
    expect(progress.at(-1)!.progress.fraction).toBeGreaterThan(0.9);
  }, 120_000);

  it('cancels a running job at a safe point, here or through the table, keeps its levels, and resumes it to the end', async () => {
    const db = join(temp(), 'lab.db');
    const jobs = runner(db);
    const job = jobs.submit('searchImp', { ...imp, levels: 4, iterations: 40 });
    let asked = false;
    jobs.onEvent((e) => {
      // Another connection asks, as `ticket-lab jobs cancel` from another process would.
      if (!asked && e.type === 'progress' && e.progress.level >= 2) {
        asked = true;
        const other = LabStore.open(db, { create: false })!;
        other.jobs.requestCancel(job.id);
        other.close();
      }
    });
    const cancelled = await jobs.wait(job.id);
    expect(cancelled.state).toBe('cancelled');
    const kept = ticketLevels(db, cancelled.runId!);
    expect(kept.length).toBeGreaterThanOrEqual(2);
    expect(kept).toEqual(kept.map((_, i) => i));

    expect(jobs.resume(job.id).state).toBe('queued');
    const resumed = await jobs.wait(job.id);
    expect(resumed).toMatchObject({ state: 'completed', runId: cancelled.runId });
    expect(ticketLevels(db, resumed.runId!)).toEqual([0, 1, 2, 3, 4]);
    expect(() => jobs.resume(job.id)).toThrow(/only an interrupted, cancelled or failed job resumes/);

    // A queued job cancelled before its turn never runs; the one ahead of it is cancelled here.
    const first = jobs.submit('searchImp', { ...imp, levels: 3, iterations: 40 });
    const second = jobs.submit('searchImp', { ...imp, levels: 1, seed: 9 });
    expect(jobs.cancel(second.id).state).toBe('cancelled');
    const stop = jobs.onEvent((e) => {
      if (e.type === 'progress' && e.job === first.id && e.progress.level >= 1) {
        stop();
        jobs.cancel(first.id);
      }
    });
    expect((await jobs.wait(first.id)).state).toBe('cancelled');
    expect(jobs.get(second.id)).toMatchObject({ state: 'cancelled', runId: null, progress: null });
  }, 120_000);
});
