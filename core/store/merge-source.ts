// A task database opened for merging: read-only, checked whole before a row of it is copied, and
// left as it was found. A file that is damaged, not ours or from a newer Ticket Lab is refused.
import { existsSync, statSync, unlinkSync } from 'node:fs';
import Sqlite, { type Database } from 'better-sqlite3';
import { CorruptDatabaseError, DatabaseOpenError, DatabaseTooNewError, LabError, NotTicketLabDatabaseError } from '../api/errors';
import { APPLICATION_ID } from './database';
import { SCHEMA_VERSION } from './migrations';

/** The tables a merge reads: their references must all resolve inside the file. */
const READ_TABLES = ['models', 'datasets', 'weights', 'runs', 'tickets', 'masks', 'keys', 'claims', 'verifications'];

interface SqliteError extends Error {
  code?: string;
}

export function isCorruption(error: unknown): boolean {
  const code = (error as SqliteError).code ?? '';
  return code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB';
}

export interface TaskDatabase {
  path: string;
  schemaVersion: number;
  /** Walks a table in order while `lookup` fetches what a row refers to (better-sqlite3 allows one open cursor per connection). */
  rows: Database;
  lookup: Database;
  close(): void;
}

/**
 * Opens a task database read-only and checks it: Ticket Lab's application id, a schema version this
 * build reads (older ones are fine: merge reads only columns of version 1), SQLite's integrity check
 * and every foreign key. Throws a LabError whose message names the file.
 */
export function openTaskDatabase(path: string): TaskDatabase {
  if (!existsSync(path)) throw new DatabaseOpenError(`${path}: no such file. Give the task databases' paths.`);
  if (statSync(path).isDirectory()) throw new DatabaseOpenError(`${path} is a folder; give the task databases' files.`);
  // A read-only connection to a WAL file makes -wal and -shm files when there are none; they are removed on close.
  const sidecars = [`${path}-wal`, `${path}-shm`].filter((p) => !existsSync(p));
  const connections: Database[] = [];
  const close = () => {
    for (const db of connections) if (db.open) db.close();
    for (const p of sidecars) {
      try {
        if (existsSync(p) && (!p.endsWith('-wal') || statSync(p).size === 0)) unlinkSync(p);
      } catch {
        // Left behind: harmless, SQLite ignores an empty -wal and rebuilds -shm.
      }
    }
  };
  const open = () => {
    try {
      const db = new Sqlite(path, { readonly: true, fileMustExist: true });
      connections.push(db);
      return db;
    } catch (error) {
      throw new DatabaseOpenError(`${path}: cannot be opened (${(error as SqliteError).code ?? (error as Error).message}).`, { cause: error });
    }
  };
  try {
    const rows = open();
    const schemaVersion = checkTaskDatabase(rows, path);
    return { path, schemaVersion, rows, lookup: open(), close };
  } catch (error) {
    close();
    if (error instanceof LabError) throw error;
    if (isCorruption(error)) throw corrupt(path, error);
    throw new DatabaseOpenError(`${path}: cannot be read (${(error as SqliteError).code ?? (error as Error).message}).`, { cause: error });
  }
}

const corrupt = (path: string, cause: unknown) =>
  new CorruptDatabaseError(`${path} is not a readable SQLite database (${(cause as SqliteError).code ?? 'damaged'}): it is damaged or another kind of file. Nothing of it was merged; run its task again.`, { cause });

/** Returns the schema version of a file that passes every check. */
function checkTaskDatabase(db: Database, path: string): number {
  const applicationId = db.pragma('application_id', { simple: true }) as number;
  const version = db.pragma('user_version', { simple: true }) as number;
  if (applicationId !== APPLICATION_ID || version < 1) {
    throw new NotTicketLabDatabaseError(`${path} is not a Ticket Lab database (application_id ${applicationId}, schema version ${version}); nothing of it was merged.`);
  }
  if (version > SCHEMA_VERSION) {
    throw new DatabaseTooNewError(`${path} has schema version ${version}, newer than this Ticket Lab understands (${SCHEMA_VERSION}). Upgrade Ticket Lab, then merge it.`);
  }
  const problems = (db.pragma('integrity_check(20)') as Array<{ integrity_check: string }>).map((r) => r.integrity_check);
  if (problems.length !== 1 || problems[0] !== 'ok') {
    throw new CorruptDatabaseError(`${path} is damaged (SQLite's integrity check: ${problems.slice(0, 3).join('; ')}). Nothing of it was merged; run its task again.`);
  }
  for (const table of READ_TABLES) {
    const broken = db.pragma(`foreign_key_check(${table})`) as Array<{ table: string; rowid: number; parent: string }>;
    if (broken.length > 0) {
      throw new CorruptDatabaseError(`${path} is inconsistent: ${broken.length} row(s) of ${table} refer to ${broken[0]!.parent} rows that are not there. Nothing of it was merged.`);
    }
  }
  return version;
}
