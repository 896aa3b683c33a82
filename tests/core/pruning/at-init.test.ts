import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { PRUNE_AT_INIT_METHODS, type PruneAtInitMethod } from '../../../core/api/schemas';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { initWeights } from '../../../core/models/weights';
import { countKept } from '../../../core/pruning/mask';
import { LabService } from '../../../core/service/lab-service';
import { LabStore } from '../../../core/store/lab-store';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder();
const small = { model: 'lenet-300-100', dataset: 'mnist', iterations: 20, evalEvery: 10, validationSize: 500, backend: 'wasm' as const };
const sizes = { 'fc1.kernel': 784 * 300, 'fc2.kernel': 300 * 100, 'fc3.kernel': 100 * 10 };
const total = Object.values(sizes).reduce((a, b) => a + b, 0);
/** Options that keep the slow scorers quick here. */
const quick: Partial<Record<PruneAtInitMethod, Record<string, unknown>>> = { synflow: { rounds: 5 } };

describe('pruning at initialisation', () => {
  it.each(PRUNE_AT_INIT_METHODS)('%s: prunes θ0 to the requested sparsity, keeps pruned weights at zero, trains from θ0', async (method) => {
    const dbPath = join(temp(), `${method}.db`);
    const service = new LabService({ dbPath });
    const summary = await service.searchAtInit({ ...small, method, sparsity: 0.9, ...quick[method] });
    service.close();
    expect(summary.tickets).toHaveLength(1);
    const [ticket] = summary.tickets;
    expect(ticket!.method).toBe(method);
    expect(ticket!.level).toBe(1);
    // Within one weight per layer of round(0.1·n) (ERK rounds each layer's own density).
    expect(Math.abs(ticket!.kept - Math.round(0.1 * total))).toBeLessThanOrEqual(3);

    const store = LabStore.open(dbPath, { create: false })!;
    const record = store.getTicket(ticket!.id);
    const masks = store.getMasks(ticket!.id);
    const start = store.getWeights(record.startWeights!);
    const final = store.getWeights(record.finalWeights!);
    const theta0 = initWeights(paramSpecs(architecture('lenet-300-100'), [28, 28, 1], 10), 0);
    for (const m of masks) {
      if (method === 'random') expect(countKept(m.bits)).toBe(Math.round(0.1 * sizes[m.name as keyof typeof sizes]));
      const s = start.find((t) => t.name === m.name)!.values;
      const w = final.find((t) => t.name === m.name)!.values;
      const init = theta0.find((t) => t.name === m.name)!.values;
      // The start is θ0 itself (stored once per run, masks beside it); training keeps pruned weights at 0.
      expect(Buffer.from(s.buffer, s.byteOffset, s.byteLength).equals(Buffer.from(init.buffer, init.byteOffset, init.byteLength))).toBe(true);
      for (let i = 0; i < m.bits.length; i++) if (!m.bits[i]) expect(w[i]).toBe(0);
    }
    const run = store.getRun(record.runId);
    expect(run.method).toBe(method);
    expect(run.hparams.method).toBe(method);
    expect(run.hparams.sparsity).toBe(0.9);
    // How GraSP took its Hessian-gradient product under 'auto' is kept with the ticket (exact on LeNet).
    expect(record.metrics.strategy).toEqual(method === 'grasp' ? { hessianPath: 'exact' } : undefined);
    store.close();
  });

  it('the lottery jackpot searches a mask on a stored ticket\'s trained weights, classifier dense, no weight training', async () => {
    const dbPath = join(temp(), 'jackpot.db');
    const service = new LabService({ dbPath });
    const dense = await service.searchOneShot({ ...small, sparsity: 0.9, scope: 'global', retrain: false });
    const source = dense.tickets[0]!;
    const progress: string[] = [];
    const jackpot = await service.searchOneShot({ fromTicket: source.id, sparsity: 0.9, criterion: 'jackpot', retrain: false, searchIterations: 20, searchBatchSize: 60, backend: 'wasm' }, { onProgress: (p) => progress.push(p.piece) });
    service.close();
    expect(progress).toContain('prune');
    const [ticket] = jackpot.tickets;
    expect(ticket!.method).toBe('jackpot');
    expect(ticket!.parentId).toBe(source.id);
    const store = LabStore.open(dbPath, { create: false })!;
    const masks = store.getMasks(ticket!.id);
    const record = store.getTicket(ticket!.id);
    // No weight training: the final weights are the source's trained weights under the new mask.
    const trained = store.getWeights(store.getTicket(source.id).finalWeights!);
    const final = store.getWeights(record.finalWeights!);
    expect(countKept(masks.find((m) => m.name === 'fc3.kernel')!.bits)).toBe(1000);
    const hidden = masks.filter((m) => m.name !== 'fc3.kernel').reduce((n, m) => n + countKept(m.bits), 0);
    // floor(0.1 · 265,200) over the hidden layers: the jackpot's budget leaves the classifier out.
    expect(hidden).toBe(26_520);
    for (const m of masks) {
      const w = final.find((t) => t.name === m.name)!.values;
      const t = trained.find((x) => x.name === m.name)!.values;
      for (let i = 0; i < m.bits.length; i++) expect(w[i]).toBe(m.bits[i] ? t[i] : 0);
    }
    expect(store.getRun(record.runId).hparams.criterion).toBe('jackpot');
    store.close();
  });

  it('refuses bad requests before writing anything', async () => {
    const dbPath = join(temp(), 'bad.db');
    const service = new LabService({ dbPath });
    const bad = [
      { ...small, method: 'snip', sparsity: 1 },
      { ...small, method: 'snip', sparsity: 0 },
      { ...small, method: 'snip', sparsity: 0.9, rounds: 10 },
      { ...small, method: 'synflow', sparsity: 0.9, rounds: 0 },
      { ...small, method: 'grasp', sparsity: 0.9, hessian: 'approximate' },
      { ...small, method: 'erk', sparsity: 0.9, scope: 'layer' },
      { ...small, method: 'random', sparsity: 0.9, rewindIteration: 100 },
      { ...small, method: 'magnitude', sparsity: 0.9 },
    ];
    await expect(service.searchOneShot({ ...small, sparsity: 0.9, searchIterations: 10 })).rejects.toThrow(/searchIterations: an option of the jackpot/);
    await expect(service.searchOneShot({ ...small, sparsity: 0.9, criterion: 'jackpot', scope: 'layer' })).rejects.toBeInstanceOf(InvalidRequestError);
    for (const request of bad) {
      await expect(service.searchAtInit(request as never), JSON.stringify(request)).rejects.toBeInstanceOf(InvalidRequestError);
    }
    await expect(service.searchAtInit({ ...small, method: 'snip', sparsity: 0.9, examplesPerClass: 5000 })).rejects.toThrow(/examplesPerClass/);
    service.close();
    expect(existsSync(dbPath)).toBe(false);
  });
});
