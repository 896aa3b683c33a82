// The sweep folder on disk:
//   sweep.json       the plan (plan.ts's SweepFile), written last: its presence means the folder is whole
//   tasks.jsonl      one task per line, line i = array task i
//   sweep.sbatch     the job array
//   submitted.json   each `sweep submit`: Slurm's job id and the indices it asked for
//   tasks/task-<i>.db      the task's database
//   tasks/task-<i>.done    written (atomically) after its search succeeded: run id, tickets, wall time
//   tasks/task-<i>.error   its last failure, one line; removed when it succeeds
//   logs/task-<i>.out      Slurm's output of the task, every attempt appended
// Every file is replaced whole (write, fsync, rename), so a killed writer leaves the old one or the new one.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidRequestError } from '../api/errors';
import type { SweepMethod } from '../api/sweep-schemas';
import { writeFileAtomically } from '../formats/writers';
import { type PlannedSweep, SWEEP_FORMAT, type SweepFile, type SweepTask } from './plan';
import { sbatchScript } from './sbatch';

export const SWEEP_JSON = 'sweep.json';
export const TASKS_JSONL = 'tasks.jsonl';
export const SWEEP_SBATCH = 'sweep.sbatch';
export const SUBMITTED_JSON = 'submitted.json';

/** What a finished task leaves: enough for `sweep status` and a cost estimate without opening its database. */
export interface DoneMarker {
  index: number;
  method: SweepMethod;
  sparsity: number;
  seed: number;
  runId: string;
  status: string;
  tickets: Array<{ id: string; parentId: string | null; level: number; role: string; method: string; sparsity: number; testAccuracy: number | null }>;
  /** Wall time of this attempt's search (a resumed IMP run: of the rest only). */
  seconds: number;
  /** How the task ended up done: a search from scratch, a resumed IMP run, or a run found complete in its database. */
  how: 'searched' | 'resumed' | 'found';
  backend: string;
  host: string;
  slurmJobId: string | null;
  finishedAt: string;
}

export interface ErrorMarker {
  index: number;
  /** The last error, one line. */
  message: string;
  code: string;
  host: string;
  slurmJobId: string | null;
  at: string;
}

export interface Submission {
  jobId: string;
  array: string;
  tasks: number[];
  submittedAt: string;
}

export const markerPath = (dir: string, index: number, kind: 'done' | 'error') => join(dir, 'tasks', `task-${index}.${kind}`);
export const logPath = (dir: string, index: number) => join(dir, 'logs', `task-${index}.out`);

export function writeJsonAtomically(path: string, value: unknown): void {
  writeFileAtomically(path, new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`));
}

function writeTextAtomically(path: string, text: string): void {
  writeFileAtomically(path, new TextEncoder().encode(text));
}

function readJson<T>(path: string, what: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (error) {
    throw new InvalidRequestError(`${path}: cannot read ${what} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`, { cause: error });
  }
}

/** What a task is, as stored: its line, without the argv's readability. */
function sameTask(a: SweepTask, b: SweepTask): boolean {
  return a.index === b.index && a.method === b.method && a.sparsity === b.sparsity && a.seed === b.seed && a.db === b.db && a.call === b.call && canonical(a.request) === canonical(b.request);
}

function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
}

/**
 * Writes a planned sweep into `dir` (absolute). Idempotent: planning the same tasks again keeps the
 * folder's results and only rewrites sweep.json and sweep.sbatch (new Slurm requests, a moved folder);
 * other tasks in a folder that holds a sweep are refused, so finished results never get mixed up.
 */
export function writeSweep(dir: string, planned: PlannedSweep): { created: boolean } {
  if (/[\s'"\\$`]/.test(dir)) throw new InvalidRequestError(`The sweep folder ${dir} has a space or quote in its path; Slurm's #SBATCH lines cannot carry it. Choose a plainer path.`);
  let created = true;
  if (existsSync(join(dir, SWEEP_JSON))) {
    const old = readSweep(dir);
    const differs = planned.tasks.length !== old.tasks.length ? `${old.tasks.length} tasks there, ${planned.tasks.length} now` : firstDifference(old.tasks, planned.tasks);
    if (differs) throw new InvalidRequestError(`${dir} holds another sweep (${differs}); plan into a new folder, or remove that one first.`);
    created = false;
  } else if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new InvalidRequestError(`${dir} is not empty and holds no sweep.json; plan into a new or empty folder.`);
  }
  mkdirSync(join(dir, 'tasks'), { recursive: true });
  mkdirSync(join(dir, 'logs'), { recursive: true });
  if (created) writeTextAtomically(join(dir, TASKS_JSONL), planned.tasks.map((t) => JSON.stringify(t)).join('\n') + '\n');
  writeTextAtomically(join(dir, SWEEP_SBATCH), sbatchScript(planned.sweep, dir));
  writeJsonAtomically(join(dir, SWEEP_JSON), planned.sweep);
  return { created };
}

function firstDifference(old: readonly SweepTask[], now: readonly SweepTask[]): string | null {
  const i = old.findIndex((t, k) => !sameTask(t, now[k]!));
  if (i < 0) return null;
  const say = (t: SweepTask) => `${t.method} at ${t.sparsity}, seed ${t.seed}: ${canonical(t.request)}`;
  return `task ${i} there is ${say(old[i]!)}; now ${say(now[i]!)}`;
}

export function readSweep(dir: string): { sweep: SweepFile; tasks: SweepTask[] } {
  if (!existsSync(join(dir, SWEEP_JSON))) throw new InvalidRequestError(`${dir} is not a sweep folder (no ${SWEEP_JSON}); make one with \`ticket-lab sweep plan ... -o ${dir}\`.`);
  const sweep = readJson<SweepFile>(join(dir, SWEEP_JSON), 'the sweep');
  if (sweep.format !== SWEEP_FORMAT) throw new InvalidRequestError(`${join(dir, SWEEP_JSON)} is ${String(sweep.format)}, not ${SWEEP_FORMAT}: a sweep of another Ticket Lab version.`);
  let text: string;
  try {
    text = readFileSync(join(dir, TASKS_JSONL), 'utf8');
  } catch (error) {
    throw new InvalidRequestError(`${join(dir, TASKS_JSONL)}: cannot read the tasks (${(error as NodeJS.ErrnoException).code}).`, { cause: error });
  }
  const tasks = text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as SweepTask);
  if (tasks.length !== sweep.tasks || tasks.some((t, i) => t.index !== i)) throw new InvalidRequestError(`${join(dir, TASKS_JSONL)} does not hold tasks 0..${sweep.tasks - 1} in order; plan the sweep again into a new folder.`);
  return { sweep, tasks };
}

/** A marker's contents, or null when there is none (or a half-written one from a killed writer of an older version). */
export function readMarker<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

export const readDone = (dir: string, index: number) => readMarker<DoneMarker>(markerPath(dir, index, 'done'));
export const readError = (dir: string, index: number) => readMarker<ErrorMarker>(markerPath(dir, index, 'error'));

export function writeDone(dir: string, marker: DoneMarker): void {
  writeJsonAtomically(markerPath(dir, marker.index, 'done'), marker);
  rmSync(markerPath(dir, marker.index, 'error'), { force: true });
}

export function writeError(dir: string, marker: ErrorMarker): void {
  writeJsonAtomically(markerPath(dir, marker.index, 'error'), marker);
}

export function readSubmissions(dir: string): Submission[] {
  const path = join(dir, SUBMITTED_JSON);
  return existsSync(path) ? readJson<{ submissions: Submission[] }>(path, 'the submissions').submissions : [];
}

export function addSubmission(dir: string, submission: Submission): void {
  writeJsonAtomically(join(dir, SUBMITTED_JSON), { submissions: [...readSubmissions(dir), submission] });
}

/** The last line of a task's Slurm log that says something, preferring an `error:` line: what it died of when it left no marker. */
export function lastLogLine(dir: string, index: number): string | null {
  let text: string;
  try {
    const bytes = readFileSync(logPath(dir, index));
    text = bytes.subarray(Math.max(0, bytes.length - 8192)).toString('utf8');
  } catch {
    return null;
  }
  const lines = text.split(/\r?\n|\r/).map((l) => l.trim()).filter((l) => l !== '');
  return [...lines].reverse().find((l) => /^(error|slurmstepd: error)/i.test(l)) ?? lines.at(-1) ?? null;
}
