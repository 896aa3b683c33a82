// Where a sweep stands: the task files first (a .done marker is the truth, whatever Slurm says),
// then Slurm for the rest: squeue for tasks it still holds, sacct for ended ones where the cluster
// keeps accounting, and the task's .error marker or log for why one failed.
import type { SweepMethod, SweepStatusReport, SweepTaskState, SweepTaskStatus } from '../api/sweep-schemas';
import { SWEEP_TASK_STATES } from '../api/sweep-schemas';
import { LabError } from '../api/errors';
import { type RunProgram, runProgram, type SlurmTaskState, sacctTasks, squeueTasks } from './slurm';
import { type Submission, lastLogLine, readDone, readError, readSubmissions, readSweep } from './sweep-folder';

const LIVE = { PENDING: 'pending', REQUEUED: 'pending', REQUEUE_HOLD: 'pending', REQUEUE_FED: 'pending', CONFIGURING: 'pending', RESV_DEL_HOLD: 'pending', RUNNING: 'running', COMPLETING: 'running', SUSPENDED: 'running', STAGE_OUT: 'running', SIGNALING: 'running', RESIZING: 'running', STOPPED: 'running' } as const;

export async function sweepStatus(dir: string, options: { run?: RunProgram } = {}): Promise<SweepStatusReport> {
  const run = options.run ?? runProgram;
  const { sweep, tasks } = readSweep(dir);
  const submissions = readSubmissions(dir);

  // The latest submission that asked for each task.
  const lastSubmission = new Map<number, Submission>();
  for (const s of submissions) for (const i of s.tasks) lastSubmission.set(i, s);

  // Slurm is asked only about jobs that still have unfinished tasks.
  const done = tasks.map((t) => readDone(dir, t.index));
  const wanted = new Set<string>();
  tasks.forEach((t, i) => {
    const s = lastSubmission.get(t.index);
    if (!done[i] && s) wanted.add(s.jobId);
  });
  const fromQueue = new Map<string, SlurmTaskState>();
  const fromAccounting = new Map<string, SlurmTaskState>();
  let queue = wanted.size > 0;
  let accounting = wanted.size > 0;
  const notes: string[] = [];
  for (const jobId of wanted) {
    try {
      for (const t of (await squeueTasks(jobId, run)) ?? []) fromQueue.set(t.jobId, t);
    } catch (error) {
      if (queue) notes.push(`squeue: ${error instanceof LabError ? error.message : String(error)}`);
      queue = false;
    }
    if (!accounting) continue;
    try {
      const answer = await sacctTasks(jobId, run);
      if ('unavailable' in answer) {
        notes.push(`sacct: ${answer.unavailable}; states come from squeue (which forgets a job some minutes after it ends) and the task files`);
        accounting = false;
      } else for (const t of answer.tasks) fromAccounting.set(t.jobId, t);
    } catch (error) {
      notes.push(`sacct: ${error instanceof LabError ? error.message : String(error)}`);
      accounting = false;
    }
  }
  const slurmAsked = queue || accounting;

  const statuses: SweepTaskStatus[] = tasks.map((task, i) => {
    const marker = done[i];
    const submission = lastSubmission.get(task.index);
    const jobId = submission ? `${submission.jobId}_${task.index}` : null;
    const slurm = jobId ? (fromQueue.get(jobId) ?? fromAccounting.get(jobId)) : undefined;
    const base = { index: task.index, method: task.method, sparsity: task.sparsity, seed: task.seed, db: task.db, jobId, slurmState: slurm ? `${slurm.state}${slurm.detail ? ` (${slurm.detail})` : ''}` : null };
    if (marker) {
      const sparsest = marker.tickets.filter((t) => t.role === 'ticket').at(-1);
      return { ...base, state: 'done', error: null, runId: marker.runId, tickets: marker.tickets.length, seconds: marker.seconds, testAccuracy: sparsest?.testAccuracy ?? null };
    }
    const empty = { runId: null, tickets: null, seconds: null, testAccuracy: null };
    const live = slurm ? (LIVE as Record<string, 'pending' | 'running'>)[slurm.state] : undefined;
    if (live) return { ...base, ...empty, state: live, error: null };
    const failure = readError(dir, task.index);
    if (failure) return { ...base, ...empty, state: 'failed', error: failure.message };
    if (slurm) {
      const why = slurm.state === 'COMPLETED' ? 'Slurm says COMPLETED but the task left no result' : `Slurm: ${slurm.state}${slurm.detail ? ` (${slurm.detail})` : ''}`;
      return { ...base, ...empty, state: 'failed', error: withLog(why, lastLogLine(dir, task.index)) };
    }
    if (!submission) return { ...base, ...empty, state: 'unsubmitted', error: null };
    if (!slurmAsked) return { ...base, ...empty, state: 'unknown', error: null };
    return { ...base, ...empty, state: 'failed', error: withLog('left Slurm without a result', lastLogLine(dir, task.index)) };
  });

  const totals = Object.fromEntries(SWEEP_TASK_STATES.map((s) => [s, 0])) as Record<SweepTaskState, number>;
  for (const s of statuses) totals[s.state]++;
  const timing = new Map<SweepMethod, number[]>();
  for (const s of statuses) if (s.seconds !== null) timing.set(s.method, [...(timing.get(s.method) ?? []), s.seconds]);

  return {
    dir,
    model: sweep.model,
    dataset: sweep.dataset,
    tasks: statuses,
    totals,
    jobIds: submissions.map((s) => s.jobId),
    slurm: { queue, accounting, note: notes.length > 0 ? [...new Set(notes)].join('; ') : null },
    timing: [...timing].map(([method, seconds]) => ({ method, tasks: seconds.length, meanSeconds: Math.round((1000 * seconds.reduce((a, b) => a + b, 0)) / seconds.length) / 1000 })),
  };
}

function withLog(why: string, line: string | null): string {
  return line ? `${why}; its log ends: ${line}` : why;
}
