// Opening the one SQLite file: checks before any write, then WAL, foreign keys and migrations.
// A file that is not ours, damaged, or from a newer Ticket Lab is refused untouched.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Sqlite, { type Database } from 'better-sqlite3';
import {
  CorruptDatabaseError,
  DatabaseOpenError,
  DatabaseTooNewError,
  DatabaseWriteError,
  LabError,
  NotTicketLabDatabaseError,
} from '../api/errors';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations';

/** 'TLAB' in PRAGMA application_id marks a Ticket Lab file. */
export const APPLICATION_ID = 0x544c4142;

interface SqliteError extends Error {
  code?: string;
}

const WRITE_FAILURE_HINTS: Record<string, string> = {
  SQLITE_FULL: 'the disk is full: free space and run the command again',
  SQLITE_READONLY: 'the file or its folder is read-only: fix the permissions or pass --db with a writable path',
  SQLITE_IOERR: 'the disk reported an I/O error',
  SQLITE_BUSY: 'another process holds a write lock for too long: wait for it or stop it',
  SQLITE_CANTOPEN: 'the file cannot be opened for writing',
};

/** Turns a SQLite failure during a write into a typed error that says what to do. */
export function asWriteError(path: string, error: unknown): LabError {
  if (error instanceof LabError) return error;
  const code = (error as SqliteError).code ?? '';
  const base = Object.keys(WRITE_FAILURE_HINTS).find((c) => code.startsWith(c));
  const hint = base ? WRITE_FAILURE_HINTS[base] : (error as Error).message;
  return new DatabaseWriteError(`Could not write to the database ${path} (${code || 'error'}): ${hint}. Nothing from this step was saved.`, { cause: error });
}

export interface OpenDatabaseOptions {
  /** Create the file (and its folder) when missing. Read-only commands pass false and never create files. */
  create: boolean;
}

/**
 * Opens and migrates the database at `path`. Returns undefined when the file does not exist and
 * `create` is false.
 */
export function openDatabase(path: string, options: OpenDatabaseOptions): Database | undefined {
  if (existsSync(path) && statSync(path).isDirectory()) {
    throw new DatabaseOpenError(`The database path ${path} is a folder. Pass --db with a file path, e.g. ${path}/lab.db.`);
  }
  if (!existsSync(path)) {
    if (!options.create) return undefined;
    try {
      mkdirSync(dirname(path), { recursive: true });
    } catch (error) {
      throw new DatabaseOpenError(`Cannot create the folder for the database ${path} (${(error as NodeJS.ErrnoException).code}). Pass --db with a writable path.`, { cause: error });
    }
  }

  let db: Database;
  try {
    db = new Sqlite(path, { fileMustExist: !options.create });
  } catch (error) {
    throw new DatabaseOpenError(`Cannot open the database ${path} (${(error as SqliteError).code ?? (error as Error).message}). Check the path and its permissions, or pass --db.`, { cause: error });
  }

  try {
    checkIdentity(db, path);
    db.pragma('busy_timeout = 5000');
    db.pragma('journal_mode = WAL');
    // FULL: a committed level survives a power cut too, not only a killed process.
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    migrate(db);
    return db;
  } catch (error) {
    db.close();
    throw error instanceof LabError ? error : asWriteError(path, error);
  }
}

/** Reads the header only: nothing is written until the file is known to be ours (or empty). */
function checkIdentity(db: Database, path: string): void {
  let applicationId: number;
  let version: number;
  let tables: number;
  try {
    applicationId = db.pragma('application_id', { simple: true }) as number;
    version = db.pragma('user_version', { simple: true }) as number;
    tables = (db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number }).n;
  } catch (error) {
    const code = (error as SqliteError).code ?? '';
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
      throw new CorruptDatabaseError(`${path} is not a readable SQLite database (${code}): it is damaged or another kind of file. Move it aside, or pass --db with another path.`, { cause: error });
    }
    throw new DatabaseOpenError(`Cannot read the database ${path} (${code || (error as Error).message}).`, { cause: error });
  }
  const fresh = applicationId === 0 && version === 0 && tables === 0;
  if (!fresh && applicationId !== APPLICATION_ID) {
    throw new NotTicketLabDatabaseError(`${path} is a SQLite database of another application (application_id ${applicationId}); Ticket Lab will not change it. Pass --db with another path.`);
  }
  if (version > SCHEMA_VERSION) {
    throw new DatabaseTooNewError(`${path} has schema version ${version}, newer than this Ticket Lab understands (${SCHEMA_VERSION}). Upgrade Ticket Lab to open it.`);
  }
}

/** Applies every pending migration, each in its own transaction with its version bump. */
export function migrate(db: Database, upTo = SCHEMA_VERSION): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (const migration of MIGRATIONS) {
    if (migration.version <= current || migration.version > upTo) continue;
    db.transaction(() => {
      migration.up(db);
      db.pragma(`user_version = ${migration.version}`);
      db.pragma(`application_id = ${APPLICATION_ID}`);
    })();
  }
}

export function schemaVersion(db: Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}
