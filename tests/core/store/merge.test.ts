// `ticket-lab merge`: task databases made by real (tiny) searches fold into a catalogue with every
// run, ticket, lineage edge, metric, checkpoint and claim intact; a second merge is a no-op; ids taken
// by other rows are remapped (lineage following, nothing overwritten); a damaged or foreign file is
// refused by name and leaves the catalogue as it was; task files are never modified.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MergeReport } from '../../../core/api/merge-schemas';
import { MERGE_COMMAND } from '../../../core/cli/merge-command';
import type { CommandContext } from '../../../core/cli/commands';
import { LabService } from '../../../core/service/lab-service';
import { mergeTaskDatabases } from '../../../core/service/merge';
import { migrate } from '../../../core/store/database';
import { LabStore } from '../../../core/store/lab-store';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-merge-');
const tiny = { model: 'lenet-300-100', dataset: 'mnist', iterations: 10, evalEvery: 10, validationSize: 500, backend: 'wasm' as const };
const path = (name: string) => join(temp(), name);
const merge = (catalog: string, files: string[], dryRun = false): MergeReport => mergeTaskDatabases(path(catalog), { files, dryRun });

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Every row of every table, by table, in rowid order (blobs as hex): what "unchanged" means row for row. */
function dump(file: string): Record<string, string> {
  const db = new Sqlite(file, { readonly: true });
  try {
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>).map((t) => t.name);
    return Object.fromEntries(
      tables.map((t) => [t, JSON.stringify(db.prepare(`SELECT * FROM ${t} ORDER BY rowid`).all(), (_k, v: unknown) => (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' ? Buffer.from((v as { data: number[] }).data).toString('hex') : v))]),
    );
  } finally {
    db.close();
  }
}

/** What a lab holds, through LabStore: runs, tickets with masks, weights, ancestors and claims with their verifications. */
function contents(file: string) {
  const store = LabStore.open(file, { create: false })!;
  try {
    const bits = (digest: string | null) => (digest === null ? null : createHash('sha256').update(JSON.stringify(store.getWeights(digest).map((w) => [w.name, w.shape, Array.from(w.values)]))).digest('hex'));
    return {
      runs: store.listRuns().map((r) => ({ ...r, init: bits(r.initWeights), rewind: bits(r.rewindWeights) })),
      tickets: store.listTickets().map((t) => ({
        ...t,
        masks: store.getMasks(t.id).map((m) => [m.name, m.shape, Buffer.from(m.bits).toString('base64')]),
        ancestors: store.ancestors(t.id).map((a) => a.id),
        start: bits(t.startWeights),
        final: bits(t.finalWeights),
      })),
      claims: store.listClaims().map((c) => ({ ...c, verifications: store.listVerifications(c.id) })),
      keys: store.listKeys().map((k) => ({ fingerprint: k.fingerprint, publicKeyPem: k.publicKeyPem })),
      counts: store.info().counts,
    };
  } finally {
    store.close();
  }
}

/** A copy of a task file changed with SQL (the original stays as it is). */
function altered(from: string, name: string, sql: (db: Sqlite.Database) => void): string {
  copyFileSync(from, path(name));
  const db = new Sqlite(path(name));
  sql(db);
  db.close();
  return path(name);
}

const byId = <T extends { id: string }>(rows: readonly T[]) => new Map(rows.map((r) => [r.id, r]));

describe('merging task databases', () => {
  let taskA: string;
  let taskB: string;
  /** The claimed ticket of task A and its original; the IMP lineage of task B, root first. */
  let claimed: { original: string; ticket: string; claim: string };
  let lineage: string[];
  let hashes: Map<string, string>;

  beforeAll(async () => {
    taskA = path('task-a.db');
    taskB = path('task-b.db');
    const a = new LabService({ dbPath: taskA, ownerKeyPath: path('owner.pem') });
    try {
      const oneShot = await a.searchOneShot({ ...tiny, sparsity: 0.8, seed: 1 });
      const report = await a.claim({ ticket: oneShot.tickets.at(-1)!.id, retrain: false, backend: 'wasm' });
      claimed = { original: report.original.id, ticket: report.ticket.id, claim: report.claims[0]!.id };
    } finally {
      a.close();
    }
    const b = new LabService({ dbPath: taskB, ownerKeyPath: path('owner.pem') });
    try {
      const imp = await b.searchImp({ ...tiny, levels: 2, control: 'reinit', seed: 2 });
      lineage = imp.tickets.filter((t) => t.role === 'ticket').sort((x, y) => x.level - y.level).map((t) => t.id);
    } finally {
      b.close();
    }
    hashes = new Map([taskA, taskB].map((f) => [f, sha256(f)]));
  });

  it('folds two task files into a new catalogue with every run, ticket, lineage edge, metric and claim; a second merge is a no-op', () => {
    const listing = readdirSync(temp()).sort();
    const first = merge('catalog.db', [taskA, taskB]);
    expect(first.files.map((f) => [f.merged, f.refused])).toEqual([[true, null], [true, null]]);
    const [a, b] = [contents(taskA), contents(taskB)];
    expect(first.files[0]!.counts).toMatchObject({ runs: { new: 1, skipped: 0, remapped: 0 }, tickets: { new: a.tickets.length, skipped: 0, remapped: 0 }, claims: { new: 1 }, verifications: { new: 1 }, keys: { new: 1 } });
    expect(first.files[1]!.counts).toMatchObject({ runs: { new: 1 }, tickets: { new: b.tickets.length, remapped: 0 } });

    const catalog = contents(path('catalog.db'));
    const runs = byId(catalog.runs);
    const tickets = byId(catalog.tickets);
    for (const task of [a, b]) {
      for (const run of task.runs) expect(runs.get(run.id)).toEqual(run);
      for (const ticket of task.tickets) expect(tickets.get(ticket.id)).toEqual(ticket);
    }
    expect(catalog.tickets).toHaveLength(a.tickets.length + b.tickets.length);
    expect(tickets.get(lineage[2]!)!.ancestors).toEqual(lineage.slice(0, 2));
    expect(tickets.get(claimed.ticket)!.parentId).toBe(claimed.original);
    expect(catalog.claims).toEqual(a.claims);
    expect(catalog.claims[0]!.verifications[0]!.subject).toBe(claimed.ticket);
    expect(catalog.keys).toEqual(a.keys);
    expect(catalog.counts.weights).toBe(new Set([...a.tickets, ...b.tickets].flatMap((t) => [t.startWeights, t.finalWeights]).concat([...a.runs, ...b.runs].flatMap((r) => [r.initWeights, r.rewindWeights])).filter(Boolean)).size);

    const rows = dump(path('catalog.db'));
    const again = merge('catalog.db', [taskA, taskB]);
    for (const file of again.files) {
      expect(file.merged).toBe(true);
      expect(file.remapped).toEqual([]);
      expect(file.runsUpdated).toBe(0);
      for (const count of Object.values(file.counts)) expect(count.new + count.remapped).toBe(0);
    }
    expect(again.files[0]!.counts.tickets.skipped).toBe(a.tickets.length);
    expect(dump(path('catalog.db'))).toEqual(rows);

    for (const [file, hash] of hashes) expect(sha256(file)).toBe(hash);
    // No -wal or -shm left beside the task files by the read-only connections.
    expect(readdirSync(temp()).filter((n) => n.startsWith('task-')).sort()).toEqual(listing.filter((n) => n.startsWith('task-')));
  });

  it('stores rows whose id is taken by another row under derived ids, lineage following, and finds them there the next time', () => {
    merge('conflicts.db', [taskB]);
    const before = contents(path('conflicts.db'));
    const [root, middle, leaf] = lineage as [string, string, string];
    // The same ids, other contents: the root ticket at another level, and (in another file) the run with another seed.
    const otherRoot = altered(taskB, 'other-root.db', (db) => db.prepare('UPDATE tickets SET level = 7 WHERE id = ?').run(root));
    const otherRun = altered(taskB, 'other-run.db', (db) => db.prepare('UPDATE runs SET seed = 99').run());

    const report = merge('conflicts.db', [otherRoot, otherRun]);
    const [byRoot, byRun] = report.files as [MergeReport['files'][number], MergeReport['files'][number]];
    const moved = (f: typeof byRoot) => new Map(f.remapped.map((r) => [r.from, r.to]));
    // The root moved, and so did every ticket below it (its parent is another now); the run stayed.
    expect(byRoot.counts.runs).toEqual({ new: 0, skipped: 1, remapped: 0 });
    expect([...moved(byRoot).keys()].sort()).toEqual(before.tickets.filter((t) => t.id === root || t.ancestors.includes(root)).map((t) => t.id).sort());
    expect(byRun.counts.runs).toEqual({ new: 0, skipped: 0, remapped: 1 });
    expect(byRun.counts.tickets).toEqual({ new: 0, skipped: 0, remapped: before.tickets.length });

    const after = contents(path('conflicts.db'));
    const tickets = byId(after.tickets);
    // Nothing overwritten: every row of the first merge is as it was.
    for (const ticket of before.tickets) expect(tickets.get(ticket.id)).toEqual(ticket);
    // (The run's ticket count grew: the moved tickets of the first file are its tickets too.)
    for (const run of before.runs) expect(after.runs.find((r) => r.id === run.id)).toEqual({ ...run, ticketCount: before.tickets.length + moved(byRoot).size });
    expect(after.tickets).toHaveLength(3 * before.tickets.length - (before.tickets.length - moved(byRoot).size));

    const rootMoves = moved(byRoot);
    expect(tickets.get(rootMoves.get(root)!)).toMatchObject({ level: 7, parentId: null, runId: before.tickets[0]!.runId });
    expect(tickets.get(rootMoves.get(leaf)!)!.ancestors).toEqual([rootMoves.get(root), rootMoves.get(middle)]);
    const runMoves = moved(byRun);
    const newRun = runMoves.get(before.runs[0]!.id)!;
    expect(after.runs.find((r) => r.id === newRun)).toMatchObject({ seed: 99, runKey: before.runs[0]!.runKey, ticketCount: before.tickets.length });
    expect(tickets.get(runMoves.get(leaf)!)).toMatchObject({ runId: newRun, ancestors: [runMoves.get(root), runMoves.get(middle)] });
    expect(tickets.get(runMoves.get(leaf)!)!.masks).toEqual(tickets.get(leaf)!.masks);

    const rows = dump(path('conflicts.db'));
    const again = merge('conflicts.db', [otherRoot, otherRun, taskB]);
    for (const file of again.files) {
      expect(file.remapped).toEqual([]);
      expect(file.counts.tickets.new + file.counts.runs.new).toBe(0);
    }
    expect(dump(path('conflicts.db'))).toEqual(rows);
  });

  it('refuses a damaged, foreign or newer task file by name and keeps nothing of it; the files beside it merge', () => {
    merge('guarded.db', [taskA]);
    const rows = dump(path('guarded.db'));
    const bytes = sha256(path('guarded.db'));

    const whole = readFileSync(taskB);
    writeFileSync(path('truncated.db'), whole.subarray(0, Math.floor(whole.length / 2)));
    const flipped = altered(taskB, 'flipped.db', () => undefined);
    const page = (() => {
      const db = new Sqlite(flipped, { readonly: true });
      const size = db.pragma('page_size', { simple: true }) as number;
      const root = (db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'tickets'").get() as { rootpage: number }).rootpage;
      db.close();
      return { size, root };
    })();
    const damaged = readFileSync(flipped);
    damaged.fill(0xa5, (page.root - 1) * page.size, (page.root - 1) * page.size + 64);
    writeFileSync(flipped, damaged);
    writeFileSync(path('notes.db'), 'not a database at all\n'.repeat(100));
    const newer = altered(taskB, 'newer.db', (db) => db.pragma('user_version = 99'));
    const foreign = path('foreign.db');
    const other = new Sqlite(foreign);
    other.exec('CREATE TABLE notes (text TEXT)');
    other.close();
    // Passes SQLite's checks, fails the merge's own: a weights checkpoint whose bytes are not its digest (copied after rows of the file were written).
    const lastTicket = lineage.at(-1)!;
    const badWeights = altered(taskB, 'bad-weights.db', (db) => {
      const { digest } = db.prepare('SELECT final_weights AS digest FROM tickets WHERE id = ?').get(lastTicket) as { digest: string };
      db.prepare('UPDATE weights SET blob = zeroblob(length(blob)) WHERE digest = ?').run(digest);
    });

    const expected: Array<[string, string]> = [
      [path('truncated.db'), 'DB_CORRUPT'],
      [flipped, 'DB_CORRUPT'],
      [path('notes.db'), 'DB_CORRUPT'],
      [newer, 'DB_TOO_NEW'],
      [foreign, 'DB_NOT_TICKET_LAB'],
      [badWeights, 'DB_CORRUPT'],
      [path('missing.db'), 'DB_OPEN_FAILED'],
    ];
    const hashesBefore = expected.filter(([f]) => existsSync(f)).map(([f]) => sha256(f));
    for (const [file, code] of expected) {
      const report = merge('guarded.db', [file]);
      expect(report.files[0]).toMatchObject({ merged: false, refused: { code }, counts: { tickets: { new: 0 } } });
      expect(report.files[0]!.refused!.message).toContain(file);
      expect(dump(path('guarded.db'))).toEqual(rows);
      expect(sha256(path('guarded.db'))).toBe(bytes);
    }
    expect(expected.filter(([f]) => existsSync(f)).map(([f]) => sha256(f))).toEqual(hashesBefore);

    // A refused file between good ones: the others merge, each in its own transaction.
    const mixed = merge('guarded.db', [flipped, badWeights, taskB]);
    expect(mixed.files.map((f) => f.merged)).toEqual([false, false, true]);
    expect(contents(path('guarded.db')).tickets).toHaveLength(contents(taskA).tickets.length + contents(taskB).tickets.length);
  });

  it('a task merged while it ran is stored as interrupted, and merged again once finished gets its status and its last tickets', () => {
    const last = lineage.at(-1)!;
    const running = altered(taskB, 'running.db', (db) => {
      db.prepare("UPDATE runs SET status = 'running', finished_at = NULL").run();
      db.prepare('DELETE FROM masks WHERE ticket_id IN (SELECT id FROM tickets WHERE level = 2)').run();
      db.prepare('DELETE FROM tickets WHERE level = 2').run();
    });
    const early = merge('progress.db', [running]);
    expect(early.files[0]!.merged).toBe(true);
    const [run] = contents(path('progress.db')).runs;
    expect(run).toMatchObject({ status: 'interrupted', error: 'still running in its task database when merged', finishedAt: null });

    const late = merge('progress.db', [taskB]);
    expect(late.files[0]).toMatchObject({ runsUpdated: 1, counts: { runs: { new: 0, skipped: 1, remapped: 0 }, tickets: { new: 2, remapped: 0 } } });
    const finished = contents(path('progress.db'));
    expect(finished.runs).toEqual(contents(taskB).runs);
    expect(finished.tickets.find((t) => t.id === last)!.ancestors).toEqual(lineage.slice(0, 2));
    expect(merge('progress.db', [taskB]).files[0]!.runsUpdated).toBe(0);
  });

  it('reads a task file of an older schema version', () => {
    const old = new Sqlite(path('v1.db'));
    migrate(old, 1);
    old.close();
    const report = merge('from-v1.db', [path('v1.db')]);
    expect(report.files[0]).toMatchObject({ merged: true, schemaVersion: 1, refused: null, counts: { runs: { new: 0 } } });
  });

  it('a dry run says what would be merged and writes nothing, not even a new catalogue', () => {
    const report = merge('never.db', [taskA, taskB], true);
    expect(report.dryRun).toBe(true);
    expect(report.files.map((f) => f.counts.runs.new)).toEqual([1, 1]);
    expect(existsSync(path('never.db'))).toBe(false);
  });

  it('prints a table per file and exits with the refusal when a file is refused', async () => {
    const out: string[] = [];
    const ctx = {
      api: { mergeDatabases: async (request: { files: string[]; dryRun?: boolean }) => mergeTaskDatabases(path('cli.db'), { files: request.files, dryRun: request.dryRun ?? false }) },
      json: false, out: (t: string) => out.push(t), err: () => undefined, signal: new AbortController().signal, progress: undefined,
    } as unknown as CommandContext;
    await MERGE_COMMAND.run(ctx, {}, [taskA]);
    expect(out.join('\n')).toMatch(/task-a\.db\s+merged\s+1 \/ 0 \/ 0/);
    writeFileSync(path('junk.db'), 'junk');
    await expect(MERGE_COMMAND.run(ctx, {}, [taskA, path('junk.db')])).rejects.toMatchObject({ code: 'DB_CORRUPT', message: expect.stringContaining('junk.db') });
    expect(out.at(-1)).toContain('refused (nothing of these was written)');
  });
});
