// The CLI end to end, as a user runs it: the built binary in a child process, a real SQLite file.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../core/store/migrations';
import { runCliProcess, startCli, waitForStderr } from '../support/cli-process';
import { useTempFolder } from '../support/temp-folder';

const temp = useTempFolder();
const tiny = ['--model', 'lenet-300-100', '--dataset', 'mnist', '--iterations', '30', '--eval-every', '10', '--validation-size', '500'];

describe('ticket-lab CLI', () => {
  it('searches, lists, shows and compares tickets on a tiny budget', async () => {
    const db = join(temp(), 'e2e', 'lab.db');
    const search = await runCliProcess(['search', 'imp', ...tiny, '--levels', '2', '--control', 'reinit', '--control-levels', '2', '--json'], { TICKET_LAB_DB: db });
    expect(search.stderr).toMatch(/level 2\/2/);
    expect(search.code).toBe(0);
    const summary = JSON.parse(search.stdout) as { runId: string; backend: string; tickets: Array<{ id: string; level: number; sparsity: number; testAccuracy: number; earlyStopIteration: number; role: string }> };
    expect(summary.backend).toBe('wasm');
    expect(summary.tickets.map((t) => [t.level, t.role])).toEqual([[0, 'ticket'], [1, 'ticket'], [2, 'ticket'], [2, 'control']]);
    for (const t of summary.tickets) {
      expect(t.testAccuracy).toBeGreaterThan(0.5);
      expect(t.earlyStopIteration % 10).toBe(0);
    }
    expect(summary.tickets[1]!.sparsity).toBeCloseTo((0.2 * (784 * 300 + 300 * 100) + 100) / (784 * 300 + 300 * 100 + 1000), 4);

    const listed = await runCliProcess(['tickets', '--db', db, '--min-sparsity', '0.3', '--json']);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as Array<{ level: number }>).map((t) => t.level)).toEqual([2, 2]);
    const controlsOnly = await runCliProcess(['tickets', '--db', db, '--method', 'reinit-control', '--json']);
    expect(JSON.parse(controlsOnly.stdout)).toHaveLength(1);

    const last = summary.tickets[2]!;
    const show = await runCliProcess(['show', last.id.slice(0, 8), '--db', db, '--json']);
    expect(show.code).toBe(0);
    const detail = JSON.parse(show.stdout) as { id: string; layers: Array<{ name: string; sparsity: number }>; lineage: { ancestors: Array<{ id: string }>; children: Array<{ role: string }> }; run: { backend: { tfBackend: string }; versions: Record<string, string> } };
    expect(detail.id).toBe(last.id);
    expect(detail.layers.map((l) => l.name)).toEqual(['fc1.kernel', 'fc2.kernel', 'fc3.kernel']);
    expect(detail.layers[0]!.sparsity).toBeCloseTo(0.36, 3);
    expect(detail.layers[2]!.sparsity).toBeCloseTo(0.19, 3);
    expect(detail.lineage.ancestors.map((a) => a.id)).toEqual([summary.tickets[0]!.id, summary.tickets[1]!.id]);
    expect(detail.lineage.children.map((c) => c.role)).toEqual(['control']);
    expect(detail.run.versions['tfjs-core']).toBe('4.22.0');

    const human = await runCliProcess(['show', last.id, '--db', db]);
    expect(human.stdout).toMatch(/per-layer sparsity/);

    const compare = await runCliProcess(['compare', summary.tickets[1]!.id, last.id, '--db', db, '--json']);
    expect(compare.code).toBe(0);
    const c = JSON.parse(compare.stdout) as { total: { iou: number; keptA: number; keptB: number; hamming: number }; layers: unknown[] };
    // Level 2 is nested in level 1: IoU = |level 2| / |level 1|.
    expect(c.total.iou).toBeCloseTo(c.total.keptB / c.total.keptA, 10);
    expect(c.total.hamming).toBe(c.total.keptA - c.total.keptB);
    expect(c.layers).toHaveLength(3);

    const runs = await runCliProcess(['runs', '--db', db, '--json']);
    expect((JSON.parse(runs.stdout) as Array<{ status: string; tickets: number }>)[0]).toMatchObject({ status: 'completed', tickets: 4 });
    const curve = await runCliProcess(['curve', summary.runId.slice(0, 8), '--db', db, '--json']);
    expect((JSON.parse(curve.stdout) as { tickets: Array<{ id: string }> }).tickets.map((t) => t.id)).toEqual(summary.tickets.map((t) => t.id));
    expect((await runCliProcess(['curve', summary.runId, '--db', db])).stdout).toMatch(/reinit-control acc/);
    const info = await runCliProcess(['db', 'info', '--db', db, '--json']);
    expect(JSON.parse(info.stdout)).toMatchObject({ exists: true, schemaVersion: SCHEMA_VERSION, counts: { runs: 1, tickets: 4, masks: 12 } });

    const oneshot = await runCliProcess(['search', 'oneshot', '--from', last.id, '--sparsity', '0.9', '--no-retrain', '--db', db, '--json']);
    expect(oneshot.code).toBe(0);
    expect((JSON.parse(oneshot.stdout) as { tickets: Array<{ sparsity: number; parentId: string }> }).tickets[0]).toMatchObject({ parentId: last.id });
  });

  it('answers bad input with one clear error line, the right exit code, and writes nothing', async () => {
    const folder = join(temp(), 'bad');
    mkdirSync(folder);
    const db = join(folder, 'lab.db');
    const cases: Array<[string[], number, RegExp]> = [
      [['search', 'imp', '--model', 'resnet-9000', '--dataset', 'mnist'], 2, /Unknown model 'resnet-9000'. Valid models: lenet-300-100, conv-2, conv-4, conv-6/],
      [['search', 'imp', '--model', 'lenet-300-100', '--dataset', 'svhn'], 2, /Unknown dataset 'svhn'. Valid datasets: mnist, fashion-mnist, cifar10/],
      [['search', 'imp', ...tiny, '--rate', '1.5'], 2, /rate: must be less than 1/],
      [['search', 'imp', ...tiny, '--rate', '0'], 2, /rate: must be greater than 0/],
      [['search', 'imp', ...tiny, '--rate', 'fast'], 2, /--rate expects a number, got 'fast'/],
      [['search', 'imp', ...tiny, '--rewind', '30'], 2, /rewindIteration: 30 must be less than the 30 training iterations/],
      [['search', 'imp', ...tiny, '--frobnicate'], 2, /Unknown option '--frobnicate'/],
      [['search', 'imp', ...tiny, '--backend', 'tpu'], 2, /backend/],
      [['search', 'imp', ...tiny, '--data-dir', join(folder, 'none')], 1, /Dataset 'mnist' not found/],
      [['search', 'dance'], 2, /unknown command 'search dance'/],
      [['show', 'tk_nothing'], 1, /No ticket matches 'tk_nothing'/],
      [['compare', 'tk_a'], 2, /compare takes A B/],
      [['search', 'granet', ...tiny, '--sparsity', '0.9', '--regrowth-rate', '2'], 2, /regrowthRate/],
      [['search', 'gmp', ...tiny, '--sparsity', '0.9', '--regrowth-rate', '0.3'], 2, /Unknown option '--regrowth-rate'/],
      [['search', 'imp', ...tiny, '--lr-drops', '0.5,x'], 2, /--lr-drops expects numbers separated by commas/],
      [['search', 'imp', ...tiny, '--lr-drops', '1.5'], 2, /lrDrops/],
    ];
    for (const [args, code, message] of cases) {
      const result = await runCliProcess([...args, '--db', db]);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(code);
      expect(result.stderr.trim().split('\n').filter((l) => l.startsWith('error:'))).toHaveLength(1);
      expect(result.stderr).toMatch(message);
      expect(result.stdout).toBe('');
    }
    expect(readdirSync(folder)).toEqual([]);
  });

  it('ends quietly when the reader closes its output early (`ticket-lab ... | head`)', async () => {
    const { child, done } = startCli(['db', 'info', '--json'], { TICKET_LAB_DB: join(temp(), 'pipe.db') });
    child.stdout!.destroy();
    const result = await done;
    expect(result.stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(result.code).toBe(0);
  });

  it('refuses an unwritable or corrupt database file and leaves it as it was', async () => {
    const file = join(temp(), 'not-a-folder');
    writeFileSync(file, 'x');
    const unwritable = await runCliProcess(['search', 'imp', ...tiny, '--levels', '1', '--db', join(file, 'lab.db')]);
    expect(unwritable.code).toBe(1);
    expect(unwritable.stderr).toMatch(/^error: Cannot create the folder for the database .*\(E[A-Z]+\)\. Pass --db with a writable path/m);

    const corrupt = join(temp(), 'corrupt.db');
    const garbage = Buffer.alloc(8192, 'garbage!');
    writeFileSync(corrupt, garbage);
    for (const args of [['search', 'imp', ...tiny, '--levels', '1'], ['tickets'], ['db', 'info']]) {
      const result = await runCliProcess([...args, '--db', corrupt]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/is not a readable SQLite database .*Move it aside/);
    }
    expect(readFileSync(corrupt).equals(garbage)).toBe(true);
    expect(existsSync(`${corrupt}-wal`)).toBe(false);
  });

  it('stops at a safe point on Ctrl-C: the run is cancelled, finished levels kept, exit code 130', async () => {
    const db = join(temp(), 'cancel.db');
    const { child, done } = startCli(['search', 'imp', ...tiny, '--iterations', '200', '--levels', '5', '--db', db]);
    await waitForStderr(child, /level 1\/5/);
    child.kill('SIGINT');
    const result = await done;
    expect(result.code).toBe(130);
    expect(result.stderr).toMatch(/stopping at the next safe point/);
    expect(result.stderr).toMatch(/^cancelled: .*Run run_\w+ keeps 1 finished ticket/m);
    const sqlite = new Sqlite(db, { readonly: true });
    expect(sqlite.prepare('SELECT status FROM runs').all()).toEqual([{ status: 'cancelled' }]);
    expect(sqlite.prepare('SELECT level FROM tickets').all()).toEqual([{ level: 0 }]);
    sqlite.close();
  });
});
