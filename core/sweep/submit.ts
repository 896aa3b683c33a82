// `sweep submit`: the sweep's sbatch script to Slurm, the job id kept in submitted.json so `sweep
// status` knows what to ask squeue and sacct about.
import { join } from 'node:path';
import type { SweepSubmitReport } from '../api/sweep-schemas';
import { arraySpec } from './sbatch';
import { type RunProgram, sbatch } from './slurm';
import { SWEEP_SBATCH, addSubmission, readDone, readSweep } from './sweep-folder';

export async function submitSweep(dir: string, options: { unfinished?: boolean; run?: RunProgram } = {}): Promise<SweepSubmitReport> {
  const { sweep, tasks } = readSweep(dir);
  // The whole array by default: tasks already done exit at once. --unfinished asks only for the rest.
  const indices = options.unfinished ? tasks.filter((t) => !readDone(dir, t.index)).map((t) => t.index) : tasks.map((t) => t.index);
  if (indices.length === 0) return { dir, jobId: null, array: null, tasks: 0 };
  const array = arraySpec(indices, sweep.slurm.parallel);
  const jobId = await sbatch(join(dir, SWEEP_SBATCH), { chdir: dir, ...(options.unfinished ? { array } : {}), ...(options.run ? { run: options.run } : {}) });
  addSubmission(dir, { jobId, array, tasks: indices, submittedAt: new Date().toISOString() });
  return { dir, jobId, array, tasks: indices.length };
}
