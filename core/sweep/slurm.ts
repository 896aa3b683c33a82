// Slurm's client commands (sbatch, squeue, sacct), called with execFile and a timeout, and their
// answers parsed. Nothing here keeps state: the sweep folder and Slurm itself are the state.
import { execFile } from 'node:child_process';
import { LabError } from '../api/errors';

/** Slurm's commands are not installed here, or the controller does not answer. */
export class SlurmUnavailableError extends LabError {
  readonly code = 'BACKEND_UNAVAILABLE';
}

/** A Slurm command ran and refused: its own message says why (a partition that does not exist, a GPU request the cluster cannot meet). */
export class SlurmCommandError extends LabError {
  readonly code = 'JOB_FAILED';
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program; tests give a fake. Rejects only when the program cannot be run at all (ENOENT) or times out. */
export type RunProgram = (program: string, args: string[], options: { timeoutMs: number; cwd?: string; env?: NodeJS.ProcessEnv }) => Promise<CommandResult>;

export const runProgram: RunProgram = (program, args, options) =>
  new Promise((resolve, reject) => {
    execFile(program, args, { timeout: options.timeoutMs, cwd: options.cwd, env: options.env ?? process.env, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new SlurmUnavailableError(`${program} is not installed here (not on PATH): run this on a node of the Slurm cluster (the login node), where Slurm's commands are.`, { cause: error }));
        return;
      }
      if (error && error.killed) {
        reject(new SlurmUnavailableError(`${program} did not answer in ${options.timeoutMs / 1000} s: is the Slurm controller up? (\`sinfo\` tells.)`, { cause: error }));
        return;
      }
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });

const TIMEOUT_MS = 30_000;

function firstLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? '';
}

/** A Slurm command's complaint, every line (the first is often a symptom, the last the cause), its own name dropped. */
function complaint(program: string, text: string): string {
  const lines = text.split('\n').map((l) => l.trim().replace(new RegExp(`^${program}: `), '')).filter((l) => l !== '');
  const joined = lines.join('; ');
  return joined.length > 600 ? `${joined.slice(0, 600)}…` : joined;
}

/** Submits a batch script; returns Slurm's job id. `array` overrides the script's #SBATCH --array. */
export async function sbatch(script: string, options: { chdir: string; array?: string; run?: RunProgram }): Promise<string> {
  const run = options.run ?? runProgram;
  const args = ['--parsable', `--chdir=${options.chdir}`, ...(options.array ? [`--array=${options.array}`] : []), script];
  const result = await run('sbatch', args, { timeoutMs: TIMEOUT_MS, cwd: options.chdir });
  if (result.code !== 0) {
    const why = complaint('sbatch', result.stderr) || `exit code ${result.code}`;
    // No slurm.conf and no DNS record of a controller: not a node of a cluster.
    if (/could not establish a configuration source|fetch_config/i.test(why)) throw new SlurmUnavailableError(`sbatch finds no Slurm cluster here (no slurm.conf, SLURM_CONF unset): run this on the cluster's login node. sbatch said: ${why}.`);
    throw new SlurmCommandError(`sbatch refused the sweep: ${why}.`);
  }
  // --parsable: "jobid" or "jobid;cluster".
  const jobId = firstLine(result.stdout).split(';')[0]!;
  if (!/^\d+$/.test(jobId)) throw new SlurmCommandError(`sbatch answered '${firstLine(result.stdout)}', not a job id.`);
  return jobId;
}

/** One array task as Slurm reports it. */
export interface SlurmTaskState {
  /** `12_3`. */
  jobId: string;
  index: number;
  /** RUNNING, PENDING, COMPLETED, FAILED, TIMEOUT, CANCELLED, OUT_OF_MEMORY, ... */
  state: string;
  /** squeue's reason (JobArrayTaskLimit, Resources, NonZeroExitCode); sacct's exit code. */
  detail: string | null;
}

/** Expands an array task field: `3`, `[4-7%2]`, `[1,3-5]`. */
export function expandIndices(field: string): number[] {
  const inner = field.replace(/^\[/, '').replace(/\]$/, '').replace(/%\d+$/, '');
  const out: number[] = [];
  for (const part of inner.split(',')) {
    const m = /^(\d+)(?:-(\d+))?(?::(\d+))?$/.exec(part.trim());
    if (!m) continue;
    const from = Number(m[1]);
    const to = m[2] !== undefined ? Number(m[2]) : from;
    const step = m[3] !== undefined ? Number(m[3]) : 1;
    for (let i = from; i <= to; i += step) out.push(i);
  }
  return out;
}

/** squeue -o '%F|%K|%T|%r' lines: array job id, task index, state, reason. */
export function parseSqueue(text: string): SlurmTaskState[] {
  const out: SlurmTaskState[] = [];
  for (const line of text.split('\n')) {
    const [arrayJob, task, state, reason] = line.trim().split('|');
    if (!arrayJob || !task || !state || task === 'N/A') continue;
    for (const index of expandIndices(task)) out.push({ jobId: `${arrayJob}_${index}`, index, state, detail: reason && reason !== 'None' ? reason : null });
  }
  return out;
}

/** sacct -n -P -X -o JobID,State,ExitCode lines: `12_3|COMPLETED|0:0`, pending ranges as `12_[4-7%2]`. */
export function parseSacct(text: string): SlurmTaskState[] {
  const out: SlurmTaskState[] = [];
  for (const line of text.split('\n')) {
    const [id, state, exit] = line.trim().split('|');
    const m = /^(\d+)_(.+)$/.exec(id ?? '');
    if (!m || !state) continue;
    // "CANCELLED by 1000": the state is the first word.
    for (const index of expandIndices(m[2]!)) out.push({ jobId: `${m[1]}_${index}`, index, state: state.split(' ')[0]!, detail: exit && exit !== '0:0' ? `exit code ${exit}` : null });
  }
  return out;
}

/**
 * The array's tasks in Slurm's queue, finished ones included while the controller still holds them
 * (MinJobAge, 300 s by default). null: the controller does not know the job (any more).
 */
export async function squeueTasks(jobId: string, run: RunProgram = runProgram): Promise<SlurmTaskState[] | null> {
  const result = await run('squeue', ['-h', '-r', '-t', 'all', '-j', jobId, '-o', '%F|%K|%T|%r'], { timeoutMs: TIMEOUT_MS });
  if (result.code !== 0) {
    if (/invalid job id/i.test(result.stderr)) return null;
    throw new SlurmUnavailableError(`squeue failed: ${complaint('squeue', result.stderr) || `exit code ${result.code}`}.`);
  }
  return parseSqueue(result.stdout);
}

/** The array's tasks in Slurm's accounting, or why there is none (no accounting storage configured). */
export async function sacctTasks(jobId: string, run: RunProgram = runProgram): Promise<{ tasks: SlurmTaskState[] } | { unavailable: string }> {
  const result = await run('sacct', ['-n', '-P', '-X', '-j', jobId, '-o', 'JobID,State,ExitCode'], { timeoutMs: TIMEOUT_MS, env: { ...process.env, SLURM_BITSTR_LEN: '0' } });
  if (result.code !== 0) return { unavailable: complaint('sacct', result.stderr) || `sacct exit code ${result.code}` };
  return { tasks: parseSacct(result.stdout) };
}
