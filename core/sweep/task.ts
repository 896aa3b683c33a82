// One array task of a sweep: its search through LabService in this process, into the task's own
// database, then the .done marker. Idempotent, so a resubmitted or requeued array resumes:
//   - tasks/task-<i>.done exists: nothing to do.
//   - the database holds the task's run, completed (killed between the last commit and the marker):
//     the marker is written from it.
//   - it holds an IMP run that stopped (time limit, preemption, a killed node): the run continues
//     after its last stored level (`ticket-lab resume`), ending where an uninterrupted run would.
//   - anything else left over (another method's unfinished run, a file from a killed first open):
//     those searches store their tickets only at the end, so there is nothing to keep; the file is
//     removed and the search starts again.
// A failure writes tasks/task-<i>.error with the last error line and is rethrown (the task fails in Slurm).
import { hostname } from 'node:os';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { InvalidRequestError, LabError } from '../api/errors';
import type { CallOptions } from '../api/lab-api';
import type { SearchAtInitRequest, SearchGradualRequest, SearchImpRequest, SearchOneShotRequest, SearchSummary } from '../api/schemas';
import { LabService } from '../service/lab-service';
import { LabStore, type RunRecord } from '../store/lab-store';
import type { SweepTask } from './plan';
import { type DoneMarker, readDone, readSweep, writeDone, writeError } from './sweep-folder';

export interface RunTaskOptions extends CallOptions {
  /** Lines for the task's log (Slurm's output file). */
  log?: (line: string) => void;
  /** Where SLURM_ARRAY_JOB_ID and SLURM_ARRAY_TASK_ID come from (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

export interface RunTaskReport {
  index: number;
  /** True when the task was done before this call. */
  skipped: boolean;
  marker: DoneMarker;
}

export async function runTask(dir: string, index: number, options: RunTaskOptions = {}): Promise<RunTaskReport> {
  const { tasks } = readSweep(dir);
  const task = tasks[index];
  if (!Number.isInteger(index) || !task) throw new InvalidRequestError(`The sweep in ${dir} has tasks 0..${tasks.length - 1}; there is no task ${index}.`);
  const log = options.log ?? (() => {});
  const env = options.env ?? process.env;
  const slurmJobId = env.SLURM_ARRAY_JOB_ID ? `${env.SLURM_ARRAY_JOB_ID}_${env.SLURM_ARRAY_TASK_ID ?? index}` : (env.SLURM_JOB_ID ?? null);

  const existing = readDone(dir, index);
  if (existing) {
    log(`task ${index} (${describe(task)}) is already done: run ${existing.runId}, ${existing.tickets.length} tickets; skipped.`);
    return { index, skipped: true, marker: existing };
  }

  log(`task ${index}: ${describe(task)} into ${task.db} on ${hostname()}${slurmJobId ? `, Slurm job ${slurmJobId}` : ''}`);
  const dbPath = join(dir, task.db);
  mkdirSync(dirname(dbPath), { recursive: true });
  const started = performance.now();
  const service = new LabService({ dbPath });
  try {
    const { summary, how } = await searchOrResume(service, task, dbPath, options, log);
    const seconds = (performance.now() - started) / 1000;
    const marker: DoneMarker = {
      index,
      method: task.method,
      sparsity: task.sparsity,
      seed: task.seed,
      runId: summary.runId,
      status: summary.status,
      tickets: summary.tickets.map((t) => ({ id: t.id, parentId: t.parentId, level: t.level, role: t.role, method: t.method, sparsity: t.sparsity, testAccuracy: t.testAccuracy })),
      seconds: Math.round(seconds * 1000) / 1000,
      how,
      backend: summary.backend,
      host: hostname(),
      slurmJobId,
      finishedAt: new Date().toISOString(),
    };
    writeDone(dir, marker);
    const last = summary.tickets.filter((t) => t.role === 'ticket').at(-1);
    const accuracy = last?.testAccuracy != null ? `, test accuracy ${(100 * last.testAccuracy).toFixed(2)} % at ${(100 * last.sparsity).toFixed(2)} % sparsity` : '';
    log(`task ${index} done in ${seconds.toFixed(1)} s (${how}): run ${summary.runId}, ${summary.tickets.length} tickets${accuracy}.`);
    return { index, skipped: false, marker };
  } catch (error) {
    const message = firstLine(error instanceof Error ? error.message : String(error));
    try {
      writeError(dir, { index, message, code: error instanceof LabError ? error.code : 'INTERNAL', host: hostname(), slurmJobId, at: new Date().toISOString() });
    } catch {
      // The folder itself may be what failed (a full disk): Slurm's state and the log still tell.
    }
    throw error;
  } finally {
    service.close();
  }
}

function describe(task: SweepTask): string {
  return `${task.method} at sparsity ${task.sparsity}, seed ${task.seed}`;
}

function firstLine(text: string): string {
  return text.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'failed without a message';
}

/** The run a previous attempt left in the task's database, or null after clearing whatever cannot be continued. */
function previousRun(task: SweepTask, dbPath: string, log: (line: string) => void): RunRecord | null {
  if (!existsSync(dbPath)) return null;
  let runs: RunRecord[] = [];
  try {
    const store = LabStore.open(dbPath, { create: false });
    try {
      // The task's database belongs to this array task alone (Slurm runs one attempt at a time), so a
      // 'running' run there is a killed attempt's, whichever host it ran on.
      store?.markInterruptedRuns(() => false);
      runs = store?.listRuns() ?? [];
    } finally {
      store?.close();
    }
  } catch (error) {
    log(`task ${task.index}: ${task.db} from an earlier attempt cannot be read (${firstLine((error as Error).message)}); starting again.`);
  }
  const [run, ...others] = runs;
  if (run && others.length === 0 && run.seed === task.seed && (run.status === 'completed' || (task.method === 'imp' && run.method === 'imp'))) return run;
  if (runs.length > 0) log(`task ${task.index}: ${task.db} holds an unfinished ${run!.method} run (${run!.status}) that cannot be continued; starting again.`);
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${dbPath}${suffix}`, { force: true });
  return null;
}

async function searchOrResume(service: LabService, task: SweepTask, dbPath: string, options: RunTaskOptions, log: (line: string) => void): Promise<{ summary: SearchSummary; how: DoneMarker['how'] }> {
  const call: CallOptions = {
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.onWarning ? { onWarning: options.onWarning } : {}),
  };
  const previous = previousRun(task, dbPath, log);
  if (previous?.status === 'completed') {
    log(`task ${task.index}: run ${previous.id} in ${task.db} is complete (its marker was not written); marking it done.`);
    return { summary: await service.showRun({ run: previous.id }), how: 'found' };
  }
  if (previous) {
    log(`task ${task.index}: resuming IMP run ${previous.id} (${previous.status}) after its ${previous.ticketCount} stored tickets.`);
    const backend = task.request.backend as SearchImpRequest['backend'];
    return { summary: await service.resumeRun({ run: previous.id, ...(backend ? { backend } : {}), ...(task.request.dataDir ? { dataDir: task.request.dataDir as string } : {}) }, call), how: 'resumed' };
  }
  switch (task.call) {
    case 'searchImp':
      return { summary: await service.searchImp(task.request as SearchImpRequest, call), how: 'searched' };
    case 'searchOneShot':
      return { summary: await service.searchOneShot(task.request as SearchOneShotRequest, call), how: 'searched' };
    case 'searchAtInit':
      return { summary: await service.searchAtInit(task.request as SearchAtInitRequest, call), how: 'searched' };
    case 'searchGradual':
      return { summary: await service.searchGradual(task.request as SearchGradualRequest, call), how: 'searched' };
  }
}
