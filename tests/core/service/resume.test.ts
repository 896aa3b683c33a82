// Resuming an IMP run: cancelled after its first pruned level, then resumed, it must end exactly where
// the same search run without a stop ends (same masks, same weights, same accuracies), its controls
// and lineage included.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CancelledError, InvalidRequestError } from '../../../core/api/errors';
import { LabService } from '../../../core/service/lab-service';
import { LabStore } from '../../../core/store/lab-store';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-resume-');
const search = {
  model: 'lenet-300-100', dataset: 'mnist', levels: 3, iterations: 30, evalEvery: 15, validationSize: 500, control: 'reinit' as const, seed: 4, backend: 'wasm' as const,
};

/** Each ticket of the run as (level, role, masks, final weights, accuracy), in order. */
function contents(path: string) {
  const store = LabStore.open(path, { create: false })!;
  try {
    const run = store.listRuns().find((r) => r.method === 'imp');
    return store
      .listTickets({ runId: run!.id })
      .sort((a, b) => a.level - b.level || a.role.localeCompare(b.role))
      .map((t) => ({
        level: t.level, role: t.role, method: t.method, testAccuracy: t.testAccuracy, parentLevel: t.parentId ? store.getTicket(t.parentId).level : null,
        masks: store.getMasks(t.id).map((m) => Buffer.from(m.bits).toString('base64')),
        weights: store.getWeights(t.finalWeights!).map((w) => Buffer.from(w.values.buffer, w.values.byteOffset, w.values.byteLength).toString('base64')),
      }));
  } finally {
    store.close();
  }
}

describe('resuming an IMP run', () => {
  it('ends where the uninterrupted run ends, controls and lineage included', async () => {
    const whole = new LabService({ dbPath: join(temp(), 'whole.db') });
    await whole.searchImp(search);
    whole.close();

    const stoppedPath = join(temp(), 'stopped.db');
    const stopped = new LabService({ dbPath: stoppedPath });
    const controller = new AbortController();
    await expect(
      stopped.searchImp(search, { signal: controller.signal, onProgress: (p) => (p.level >= 2 ? controller.abort() : undefined) }),
    ).rejects.toThrow(CancelledError);
    const [run] = await stopped.listRuns({});
    expect(run).toMatchObject({ status: 'cancelled' });
    // Levels 0 and 1 (with its control) are stored whole; level 2 was cut off.
    expect((await stopped.listTickets({ run: run!.id })).map((t) => t.level).sort()).toEqual([0, 1, 1]);

    const resumed = await stopped.resumeRun({ run: run!.id, backend: 'wasm' });
    expect(resumed.status).toBe('completed');
    await expect(stopped.resumeRun({ run: run!.id })).rejects.toThrow(InvalidRequestError);
    const oneShot = await stopped.searchOneShot({ model: 'lenet-300-100', dataset: 'mnist', sparsity: 0.5, iterations: 10, evalEvery: 10, validationSize: 500, backend: 'wasm' });
    await expect(stopped.resumeRun({ run: oneShot.runId })).rejects.toThrow(/IMP runs level by level/);
    stopped.close();

    const expected = contents(join(temp(), 'whole.db'));
    const actual = contents(stoppedPath);
    expect(actual.map(({ level, role }) => [level, role])).toEqual([[0, 'ticket'], [1, 'control'], [1, 'ticket'], [2, 'control'], [2, 'ticket'], [3, 'control'], [3, 'ticket']]);
    expect(actual).toEqual(expected);
  }, 120_000);
});
