// `sweep run-task`, in this process on tiny searches: a finished task writes its .done marker and is
// skipped next time; a stopped IMP task resumes its run and ends where an unstopped one ends; a run
// completed without its marker is found, not redone; anything else left over is started again; a
// failure leaves the last error in .error.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CancelledError, DatasetUnavailableError } from '../../../core/api/errors';
import type { SweepPlanRequest } from '../../../core/api/sweep-schemas';
import { LabService } from '../../../core/service/lab-service';
import { planSweep } from '../../../core/sweep/plan';
import { readDone, readError, readSweep, writeSweep } from '../../../core/sweep/sweep-folder';
import { runTask } from '../../../core/sweep/task';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-sweep-task-');
const tiny = { model: 'lenet-300-100', dataset: 'mnist', iterations: 10, evalEvery: 10, validationSize: 500, backend: 'wasm' as const };
const env = { SLURM_ARRAY_JOB_ID: '77', SLURM_ARRAY_TASK_ID: '0' };

function sweep(name: string, request: Omit<SweepPlanRequest, 'dir'>): string {
  const dir = join(temp(), name);
  writeSweep(dir, planSweep({ ...request, dir }, ['ticket-lab']));
  return dir;
}

describe('runTask', () => {
  it('runs the search into the task database, marks it done, and skips it the next time', async () => {
    const dir = sweep('oneshot', { ...tiny, methods: ['oneshot'], sparsities: [0.8], seeds: [5] });
    const lines: string[] = [];
    const report = await runTask(dir, 0, { env, log: (l) => lines.push(l) });
    expect(report.skipped).toBe(false);
    const marker = readDone(dir, 0)!;
    expect(marker).toEqual(report.marker);
    expect(marker).toMatchObject({ index: 0, method: 'oneshot', seed: 5, status: 'completed', how: 'searched', backend: 'wasm', slurmJobId: '77_0' });
    expect(marker.tickets.map((t) => [t.level, t.method, t.sparsity])).toEqual([[0, 'dense', 0], [1, 'oneshot-magnitude', expect.closeTo(0.8, 3)]]);
    expect(marker.tickets[1]!.parentId).toBe(marker.tickets[0]!.id);
    expect(marker.seconds).toBeGreaterThan(0);
    expect(lines.at(-1)).toMatch(/^task 0 done in .* \(searched\): run run_\w+, 2 tickets, test accuracy/);

    // The database holds exactly that run, with the task's seed.
    const service = new LabService({ dbPath: join(dir, 'tasks', 'task-0.db') });
    expect((await service.listRuns({})).map((r) => [r.id, r.seed, r.status])).toEqual([[marker.runId, 5, 'completed']]);
    service.close();

    const text = readFileSync(join(dir, 'tasks', 'task-0.done'), 'utf8');
    const again = await runTask(dir, 0, { env, log: (l) => lines.push(l) });
    expect(again).toMatchObject({ skipped: true, marker });
    expect(readFileSync(join(dir, 'tasks', 'task-0.done'), 'utf8')).toBe(text);
    expect(lines.at(-1)).toMatch(/is already done: run run_\w+, 2 tickets; skipped\./);
    await expect(runTask(dir, 1)).rejects.toThrow(/has tasks 0..0; there is no task 1/);
  });

  it('resumes a stopped IMP task after its last stored level, ending where the unstopped task ends', async () => {
    const request = { ...tiny, methods: ['imp' as const], sparsities: [0.5], seeds: [2] };
    const whole = sweep('imp-whole', request);
    await runTask(whole, 0);
    const stopped = sweep('imp-stopped', request);
    expect(readSweep(stopped).tasks[0]!.request.levels).toBe(4);

    const controller = new AbortController();
    await expect(runTask(stopped, 0, { signal: controller.signal, onProgress: (p) => (p.level >= 2 ? controller.abort() : undefined) })).rejects.toThrow(CancelledError);
    expect(readError(stopped, 0)).toMatchObject({ code: 'CANCELLED' });
    expect(readDone(stopped, 0)).toBeNull();

    const lines: string[] = [];
    const resumed = await runTask(stopped, 0, { log: (l) => lines.push(l) });
    expect(resumed.marker.how).toBe('resumed');
    const stored = Number(/resuming IMP run run_\w+ \(cancelled\) after its (\d+) stored tickets/.exec(lines.join('\n'))?.[1]);
    expect(stored).toBeGreaterThanOrEqual(2);
    expect(stored).toBeLessThan(5);
    expect(readError(stopped, 0)).toBeNull();
    const a = readDone(whole, 0)!.tickets;
    const b = resumed.marker.tickets;
    expect(b.map((t) => [t.level, t.sparsity, t.testAccuracy])).toEqual(a.map((t) => [t.level, t.sparsity, t.testAccuracy]));
    expect(b).toHaveLength(5);
    // Lineage: each level is the child of the one before.
    for (let i = 1; i < b.length; i++) expect(b[i]!.parentId).toBe(b[i - 1]!.id);
  });

  it('marks a completed run done without searching again, and starts over from a file it cannot continue', async () => {
    const dir = sweep('found', { ...tiny, methods: ['snip'], sparsities: [0.7], seeds: [0, 1] });
    const first = await runTask(dir, 0);
    // Killed between the search's last commit and the marker.
    rmSync(join(dir, 'tasks', 'task-0.done'));
    const found = await runTask(dir, 0);
    expect(found.marker).toMatchObject({ how: 'found', runId: first.marker.runId });
    expect(found.marker.tickets).toEqual(first.marker.tickets);

    // A file a killed first open left half-written: not a database; removed, the search runs.
    writeFileSync(join(dir, 'tasks', 'task-1.db'), 'half a header');
    const lines: string[] = [];
    const fresh = await runTask(dir, 1, { log: (l) => lines.push(l) });
    expect(fresh.marker.how).toBe('searched');
    expect(lines.join('\n')).toMatch(/cannot be read .*; starting again/);
  });

  it('leaves the last error in .error and fails', async () => {
    const dir = sweep('broken', { ...tiny, methods: ['random'], sparsities: [0.5], seeds: [0], dataDir: join(temp(), 'no-such-mnist') });
    await expect(runTask(dir, 0, { env })).rejects.toThrow(DatasetUnavailableError);
    const error = readError(dir, 0)!;
    expect(error).toMatchObject({ index: 0, code: 'DATASET_UNAVAILABLE', slurmJobId: '77_0' });
    expect(error.message).toMatch(/no-such-mnist/);
    expect(error.message).not.toMatch(/\n/);
    expect(existsSync(join(dir, 'tasks', 'task-0.done'))).toBe(false);
  });
});
