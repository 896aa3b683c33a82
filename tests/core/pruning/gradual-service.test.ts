// `search granet` / `search gmp` through the service: the stored ticket, its hyper-parameters, and
// requests refused before anything is written.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { countKept } from '../../../core/pruning/mask';
import { LabService } from '../../../core/service/lab-service';
import { LabStore } from '../../../core/store/lab-store';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder();
const small = { model: 'lenet-300-100', dataset: 'mnist', iterations: 64, evalEvery: 32, validationSize: 500, backend: 'wasm' as const };
const total = 784 * 300 + 300 * 100 + 100 * 10;

describe('gradual pruning through the service', () => {
  it.each([true, false])('regrow %s: one ticket at the requested sparsity, trained weights zero where pruned, the history recorded', async (regrow) => {
    const dbPath = join(temp(), `gradual-${regrow}.db`);
    const service = new LabService({ dbPath });
    const progress: number[] = [];
    const summary = await service.searchGradual({ ...small, sparsity: 0.9, regrow }, { onProgress: (p) => progress.push(p.fraction) });
    service.close();
    expect(summary.tickets).toHaveLength(1);
    const [ticket] = summary.tickets;
    expect(ticket!.method).toBe(regrow ? 'granet' : 'gmp');
    // ⌊d_f · N⌋ kept over every prunable kernel.
    expect(ticket!.kept).toBe(Math.floor(0.1 * total));
    expect(progress.at(-1)).toBeCloseTo(1, 6);

    const store = LabStore.open(dbPath, { create: false })!;
    const record = store.getTicket(ticket!.id);
    const final = store.getWeights(record.finalWeights!);
    let kept = 0;
    for (const m of store.getMasks(ticket!.id)) {
      kept += countKept(m.bits);
      const w = final.find((t) => t.name === m.name)!.values;
      for (let i = 0; i < m.bits.length; i++) if (!m.bits[i]) expect(Math.abs(w[i]!)).toBe(0);
    }
    expect(kept).toBe(Math.floor(0.1 * total));
    const run = store.getRun(record.runId);
    // 64 iterations: an update every 1 (64/64), pruning until 32.
    expect(run.hparams.gradual).toMatchObject({ finalDensity: expect.closeTo(0.1, 12), updateEvery: 1, regrow });
    const history = (record.metrics.gradual as { history: Array<{ iteration: number; regrown: number }> }).history;
    expect(history.length).toBeGreaterThan(10);
    expect(history.some((u) => u.regrown > 0)).toBe(regrow);
    expect(record.testAccuracy).toBe((record.metrics.final as { testAccuracy: number }).testAccuracy);
    store.close();
  });

  it('refuses bad requests before it writes anything', async () => {
    const dbPath = join(temp(), 'bad.db');
    const service = new LabService({ dbPath });
    const bad = [
      { ...small, sparsity: 1 },
      { ...small, sparsity: 0.4, initialDensity: 0.5 },
      { ...small, sparsity: 0.9, initialDensity: 0 },
      { ...small, sparsity: 0.9, regrowthRate: 1.5 },
      { ...small, sparsity: 0.9, regrow: false, regrowthRate: 0.3 },
      { ...small, sparsity: 0.9, updateEvery: 0 },
      { ...small, sparsity: 0.9, pruneStart: 0.6, pruneEnd: 0.5 },
      { ...small, sparsity: 0.9, rewindIteration: 10 },
      { ...small, sparsity: 0.9, updateEvery: 60 },
      { ...small, model: 'resnet-50', sparsity: 0.9 },
    ];
    for (const request of bad) {
      await expect(service.searchGradual(request as never), JSON.stringify(request)).rejects.toBeInstanceOf(InvalidRequestError);
    }
    service.close();
    expect(existsSync(dbPath)).toBe(false);
  });
});
