// What the job runner and its worker thread say to each other, and which LabApi methods run as jobs.
import type { ErrorPayload } from '../api/errors';
import { JOB_METHOD_NAMES, type SearchProgress } from '../api/schemas';

/** The long LabApi calls: they take a cancel signal and report progress. */
export const JOB_METHODS = JOB_METHOD_NAMES;
export type JobMethod = (typeof JOB_METHODS)[number];

/** Sent to the worker as workerData. */
export interface JobWork {
  dbPath: string;
  ownerKeyPath?: string | undefined;
  method: JobMethod;
  request: unknown;
}

export type JobReply =
  | { type: 'progress'; progress: SearchProgress }
  | { type: 'warning'; message: string }
  | { type: 'done'; result: unknown }
  | { type: 'error'; error: ErrorPayload };
