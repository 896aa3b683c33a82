// A search killed with SIGKILL (no handler runs) must leave a consistent database that keeps every
// level finished before the kill, the next start must mark the run as interrupted, and `resume`
// must finish it from the last stored level.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { LabStore } from '../../core/store/lab-store';
import { runCliProcess, startCli, waitForStderr } from '../support/cli-process';
import { useTempFolder } from '../support/temp-folder';

const temp = useTempFolder();
const args = ['search', 'imp', '--model', 'lenet-300-100', '--dataset', 'mnist', '--iterations', '100', '--eval-every', '10', '--validation-size', '500', '--levels', '8'];

async function killAt(db: string, pattern: RegExp, extraDelayMs: number): Promise<void> {
  const { child, done } = startCli([...args, '--db', db]);
  await waitForStderr(child, pattern);
  await new Promise((resolve) => setTimeout(resolve, extraDelayMs));
  child.kill('SIGKILL');
  const result = await done;
  expect(result.signal).toBe('SIGKILL');
}

describe('a killed search', () => {
  it.each([
    // Level 2 has 100 iterations of about 40 ms: 1.5 s after it starts, it is in the middle.
    ['mid-level', /level 2\/8 ticket/, 1500],
    ['around a level boundary', /level 3\/8 ticket .* iter 100\/100/, 15],
  ])('leaves the database intact and every finished level readable (killed %s)', async (_when, pattern, delay) => {
    const db = join(temp(), `killed-${delay}.db`);
    await killAt(db, pattern, delay);

    const raw = new Sqlite(db, { readonly: true });
    expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(raw.pragma('foreign_key_check')).toEqual([]);
    raw.close();

    const store = LabStore.open(db, { create: false })!;
    const tickets = store.listTickets();
    const levels = tickets.map((t) => t.level);
    expect(levels.length).toBeGreaterThanOrEqual(delay === 15 ? 3 : 2);
    expect(levels).toEqual(Array.from({ length: levels.length }, (_, i) => i));
    for (const t of tickets) {
      const masks = store.getMasks(t.id);
      expect(masks).toHaveLength(3);
      expect(masks.reduce((n, m) => n + m.bits.reduce((a, b) => a + b, 0), 0)).toBe(t.kept);
      expect(store.getWeights(t.finalWeights!).map((w) => w.name)).toEqual(['fc1.kernel', 'fc1.bias', 'fc2.kernel', 'fc2.bias', 'fc3.kernel', 'fc3.bias']);
    }
    store.close();

    // The next start notices that the process is gone.
    const runs = await runCliProcess(['runs', '--db', db, '--json']);
    const [run] = JSON.parse(runs.stdout) as Array<{ id: string }>;
    expect(JSON.parse(runs.stdout)).toMatchObject([{ status: 'interrupted', tickets: levels.length }]);
    if (delay !== 1500) return; // one resume is enough: the service test checks it against an uninterrupted run

    const resumed = await runCliProcess(['resume', run!.id, '--db', db, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const summary = JSON.parse(resumed.stdout) as { status: string; tickets: Array<{ id: string; level: number; parentId: string | null }> };
    expect(summary.status).toBe('completed');
    expect(summary.tickets.map((t) => t.level)).toEqual(Array.from({ length: 9 }, (_, i) => i));
    // The levels stored before the kill are the same rows; each later level hangs off the one before.
    expect(summary.tickets.slice(0, levels.length).map((t) => t.id)).toEqual(tickets.map((t) => t.id));
    summary.tickets.slice(1).forEach((t, i) => expect(t.parentId).toBe(summary.tickets[i]!.id));
    const after = new Sqlite(db, { readonly: true });
    expect(after.pragma('integrity_check', { simple: true })).toBe('ok');
    after.close();
  });
});

describe('a killed job', () => {
  it('is marked interrupted on the next start, and `jobs resume` completes it from its last stored level', async () => {
    const db = join(temp(), 'job.db');
    const request = join(temp(), 'imp.json');
    writeFileSync(request, JSON.stringify({ model: 'lenet-300-100', dataset: 'mnist', iterations: 100, evalEvery: 10, validationSize: 500, levels: 4, backend: 'wasm' }));
    const { child, done } = startCli(['jobs', 'run', 'searchImp', '--request', request, '--db', db]);
    await waitForStderr(child, /level 2\/4 ticket/);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    child.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');

    const raw = new Sqlite(db, { readonly: true });
    expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
    raw.close();
    const listed = await runCliProcess(['jobs', '--db', db, '--json']);
    const [job] = JSON.parse(listed.stdout) as Array<{ id: string; state: string; runId: string }>;
    expect(job).toMatchObject({ state: 'interrupted', runId: expect.stringMatching(/^run_/) });
    const before = LabStore.open(db, { create: false })!;
    const kept = before.listTickets({ runId: job!.runId }).map((t) => t.id);
    before.close();
    expect(kept.length).toBeGreaterThanOrEqual(2);

    const resumed = await runCliProcess(['jobs', 'resume', job!.id, '--db', db, '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ id: job!.id, state: 'completed', runId: job!.runId });
    const after = LabStore.open(db, { create: false })!;
    const tickets = after.listTickets({ runId: job!.runId });
    after.close();
    expect(tickets.map((t) => t.level)).toEqual([0, 1, 2, 3, 4]);
    expect(tickets.slice(0, kept.length).map((t) => t.id)).toEqual(kept);
    const check = new Sqlite(db, { readonly: true });
    expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
    check.close();
  });
});
