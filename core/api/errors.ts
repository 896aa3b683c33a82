// Typed errors that cross the LabApi boundary. `code` is stable (scripts and the UI branch on it);
// `message` speaks to the user: what happened and what to do. Internals go in `cause`.

export const ERROR_CODES = [
  'INVALID_REQUEST',
  'NOT_FOUND',
  'AMBIGUOUS_ID',
  'DB_OPEN_FAILED',
  'DB_CORRUPT',
  'DB_NOT_TICKET_LAB',
  'DB_TOO_NEW',
  'DB_WRITE_FAILED',
  'BACKEND_UNAVAILABLE',
  'DATASET_UNAVAILABLE',
  'DATA_FORMAT',
  'MASK_FORMAT',
  'BUNDLE_REJECTED',
  'JOB_FAILED',
  'TRAINING_DIVERGED',
  'CANCELLED',
  'RUNS_AS_JOB',
  'PATH_NOT_GRANTED',
  'FORBIDDEN_SENDER',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export abstract class LabError extends Error {
  abstract readonly code: ErrorCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The request does not follow the contract (bad option value, unknown name). */
export class InvalidRequestError extends LabError {
  readonly code = 'INVALID_REQUEST';
}

export class NotFoundError extends LabError {
  readonly code = 'NOT_FOUND';
  constructor(kind: string, id: string) {
    const hint = kind === 'model' ? 'Import a model file with `ticket-lab import FILE`' : `List them with \`ticket-lab ${kind === 'run' ? 'runs' : 'tickets'}\``;
    super(`No ${kind} matches '${id}'. ${hint}.`);
  }
}

export class AmbiguousIdError extends LabError {
  readonly code = 'AMBIGUOUS_ID';
  constructor(kind: string, prefix: string, matches: readonly string[]) {
    super(`'${prefix}' matches ${matches.length} ${kind}s (${matches.slice(0, 4).join(', ')}${matches.length > 4 ? ', ...' : ''}): give more characters of the id.`);
  }
}

export class DatabaseOpenError extends LabError {
  readonly code = 'DB_OPEN_FAILED';
}

export class CorruptDatabaseError extends LabError {
  readonly code = 'DB_CORRUPT';
}

export class NotTicketLabDatabaseError extends LabError {
  readonly code = 'DB_NOT_TICKET_LAB';
}

export class DatabaseTooNewError extends LabError {
  readonly code = 'DB_TOO_NEW';
}

export class DatabaseWriteError extends LabError {
  readonly code = 'DB_WRITE_FAILED';
}

export class BackendUnavailableError extends LabError {
  readonly code = 'BACKEND_UNAVAILABLE';
}

export class DatasetUnavailableError extends LabError {
  readonly code = 'DATASET_UNAVAILABLE';
}

export class DataFormatError extends LabError {
  readonly code = 'DATA_FORMAT';
}

export class MaskFormatError extends LabError {
  readonly code = 'MASK_FORMAT';
}

/** Why a signed bundle or signed folder was refused; scripts branch on it, the message names the entry. */
export const BUNDLE_REJECTIONS = [
  'malformed', // not a zip / not an OMS signature / a manifest that does not parse
  'bad-signature', // the DSSE signature does not verify with the key
  'unknown-key', // no key to verify with, or not the one asked for
  'digest-mismatch', // a signed file's bytes differ from its digest
  'unlisted-entry', // a file the signature does not list
  'missing-entry', // a file the signature lists is not there
  'path-traversal', // an entry name that would leave its folder (.., absolute, backslash, drive)
  'unsafe-entry', // a symlink, a duplicate name, an encrypted or zip64 entry
  'too-large', // over a count, size or compression-ratio limit
] as const;
export type BundleRejection = (typeof BUNDLE_REJECTIONS)[number];

/** A bundle (or signed folder) that must not be trusted or imported; nothing was written. */
export class BundleRejectedError extends LabError {
  readonly code = 'BUNDLE_REJECTED';
  constructor(
    readonly reason: BundleRejection,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A job (core/jobs) ended in failure; the message is the job's error as its worker reported it. */
export class JobFailedError extends LabError {
  readonly code = 'JOB_FAILED';
}

export class TrainingDivergedError extends LabError {
  readonly code = 'TRAINING_DIVERGED';
}

/** Raised at a safe point after the caller's AbortSignal fired; finished work is kept. */
export class CancelledError extends LabError {
  readonly code = 'CANCELLED';
  constructor(message = 'Cancelled at a safe point; finished levels are kept.') {
    super(message);
  }
}

/** A long call asked for directly where only jobs may run it (the app's main thread, the server's). */
export class RunsAsJobError extends LabError {
  readonly code = 'RUNS_AS_JOB';
}

/** The desktop app reads and writes only files the user chose (a dialog, a drop); this one was not. */
export class PathNotGrantedError extends LabError {
  readonly code = 'PATH_NOT_GRANTED';
}

/** An IPC message from a frame that is not the app's own page. */
export class ForbiddenSenderError extends LabError {
  readonly code = 'FORBIDDEN_SENDER';
}

export class InternalError extends LabError {
  readonly code = 'INTERNAL';
}

/** What crosses a process or network boundary: never a stack, never a cause. */
export interface ErrorPayload {
  code: ErrorCode;
  message: string;
}

export function toErrorPayload(error: unknown): ErrorPayload {
  if (error instanceof LabError) return { code: error.code, message: error.message };
  const detail = error instanceof Error ? error.message : String(error);
  return { code: 'INTERNAL', message: `Unexpected internal error: ${detail}. Please report it with the command you ran.` };
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError();
}
