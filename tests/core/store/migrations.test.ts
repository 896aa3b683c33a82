import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import {
  CorruptDatabaseError,
  DatabaseOpenError,
  DatabaseTooNewError,
  NotTicketLabDatabaseError,
} from '../../../core/api/errors';
import { APPLICATION_ID, migrate, openDatabase, schemaVersion } from '../../../core/store/database';
import { MIGRATIONS, SCHEMA_VERSION } from '../../../core/store/migrations';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder();

function tables(db: Sqlite.Database): string[] {
  return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name);
}

/** The schema as SQLite sees it, to compare a migrated file with a fresh one. */
function schemaOf(db: Sqlite.Database): Array<{ name: string; columns: string }> {
  return tables(db).map((name) => ({ name, columns: JSON.stringify(db.prepare(`PRAGMA table_info(${name})`).all()) }));
}

describe('schema migrations', () => {
  it('creates the current schema from an empty file, with WAL and foreign keys', () => {
    const db = openDatabase(join(temp(), 'fresh.db'), { create: true })!;
    expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
    expect(db.pragma('application_id', { simple: true })).toBe(APPLICATION_ID);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(tables(db)).toEqual(expect.arrayContaining(['models', 'datasets', 'runs', 'tickets', 'masks', 'weights', 'keys', 'claims', 'verifications', 'jobs']));
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
  });

  it('numbers migrations 1..N without gaps', () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(Array.from({ length: MIGRATIONS.length }, (_, i) => i + 1));
  });

  it.each(Array.from({ length: SCHEMA_VERSION }, (_, v) => v))('migrates a file at version %i to the current schema, keeping its rows', (from) => {
    const path = join(temp(), `from-${from}.db`);
    const old = new Sqlite(path);
    migrate(old, from);
    expect(schemaVersion(old)).toBe(from);
    if (from >= 1) {
      old.prepare("INSERT INTO models (id, architecture, source, spec_json, created_at) VALUES ('m', 'lenet-300-100', 'zoo', '{}', 'now')").run();
    }
    old.close();

    const db = openDatabase(path, { create: false })!;
    expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
    if (from >= 1) expect(db.prepare('SELECT id FROM models').all()).toEqual([{ id: 'm' }]);
    const fresh = openDatabase(join(temp(), `reference-${from}.db`), { create: true })!;
    expect(schemaOf(db)).toEqual(schemaOf(fresh));
    db.close();
    fresh.close();
  });

  it('refuses a database from a newer Ticket Lab without touching it', () => {
    const path = join(temp(), 'newer.db');
    const db = openDatabase(path, { create: true })!;
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.pragma('journal_mode = DELETE');
    db.close();
    const before = readFileSync(path);
    expect(() => openDatabase(path, { create: false })).toThrow(DatabaseTooNewError);
    expect(readFileSync(path).equals(before)).toBe(true);
  });

  it('refuses a SQLite file of another application, and a damaged file, leaving both unchanged', () => {
    const foreign = join(temp(), 'foreign.db');
    const other = new Sqlite(foreign);
    other.exec('CREATE TABLE notes (body TEXT)');
    other.close();
    const foreignBytes = readFileSync(foreign);
    expect(() => openDatabase(foreign, { create: true })).toThrow(NotTicketLabDatabaseError);
    expect(readFileSync(foreign).equals(foreignBytes)).toBe(true);

    const corrupt = join(temp(), 'corrupt.db');
    writeFileSync(corrupt, Buffer.from('this is not a database, just text that happens to be here'.repeat(100)));
    const corruptBytes = readFileSync(corrupt);
    expect(() => openDatabase(corrupt, { create: true })).toThrow(CorruptDatabaseError);
    expect(readFileSync(corrupt).equals(corruptBytes)).toBe(true);
  });

  it('says so when the path is a folder or cannot be created', () => {
    expect(() => openDatabase(temp(), { create: true })).toThrow(/is a folder/);
    const file = join(temp(), 'plain-file');
    writeFileSync(file, 'x');
    expect(() => openDatabase(join(file, 'sub', 'lab.db'), { create: true })).toThrow(DatabaseOpenError);
    expect(openDatabase(join(temp(), 'missing.db'), { create: false })).toBeUndefined();
  });
});
