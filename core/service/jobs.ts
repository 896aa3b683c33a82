// The service side of jobs: following a job to its end for a caller that waits (the CLI), and the
// job as reports show it.
import type { CallOptions } from '../api/lab-api';
import { CancelledError, JobFailedError } from '../api/errors';
import type { JobReport, SearchProgress } from '../api/schemas';
import type { JobRunner } from '../jobs/job-runner';
import type { JobRecord } from '../store/job-table';

export function toJobReport(job: JobRecord): JobReport {
  return {
    id: job.id, method: job.kind, request: job.params, state: job.state, progress: job.progress as SearchProgress | null, error: job.error, runId: job.runId,
    result: job.result, cancelRequested: job.cancelRequested, createdAt: job.createdAt, updatedAt: job.updatedAt,
  };
}

/**
 * Waits for a job, passing its progress and warnings on and cancelling it when the caller's signal
 * fires; a cancelled job is a CancelledError, a failed one a JobFailedError with the job's error.
 */
export async function followJob(runner: JobRunner, id: string, options: CallOptions): Promise<JobRecord> {
  const stop = runner.onEvent((event) => {
    if (event.type === 'progress' && event.job === id) options.onProgress?.(event.progress);
    if (event.type === 'warning' && event.job === id) options.onWarning?.(event.message);
  });
  const cancel = () => runner.cancel(id);
  options.signal?.addEventListener('abort', cancel, { once: true });
  try {
    const job = await runner.wait(id);
    if (job.state === 'cancelled') throw new CancelledError(`Job ${job.id} was cancelled at a safe point${job.runId ? `; run ${job.runId} keeps its finished levels (\`ticket-lab jobs resume ${job.id}\` continues it)` : ''}.`);
    if (job.state !== 'completed') throw new JobFailedError(`Job ${job.id} ${job.state}: ${job.error ?? 'no error was recorded'}.`);
    return job;
  } finally {
    stop();
    options.signal?.removeEventListener('abort', cancel);
  }
}
