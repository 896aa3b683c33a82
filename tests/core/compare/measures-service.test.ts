import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidRequestError, NotFoundError } from '../../../core/api/errors';
import type { SearchProgress } from '../../../core/api/schemas';
import { LabService } from '../../../core/service/lab-service';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder();
const small = { model: 'lenet-300-100', dataset: 'mnist', iterations: 30, evalEvery: 10, validationSize: 500, backend: 'wasm' as const };

describe('measures on stored tickets, through the service', () => {
  it('essential sparsity, instability and criteria overlap of a stored ticket, with progress; the same data order gives no barrier', async () => {
    const service = new LabService({ dbPath: join(temp(), 'measures.db') });
    const search = await service.searchImp({ ...small, levels: 1, rewindIteration: 10 });
    const [dense, pruned] = search.tickets;

    const progress: SearchProgress[] = [];
    const sweep = await service.essentialSparsity({ ticket: dense!.id, examples: 500 }, { onProgress: (p) => progress.push(p) });
    expect(sweep.ticket?.id).toBe(dense!.id);
    expect(sweep.curve[0]!.target).toBe(0);
    expect(sweep.curve[0]!.accuracy).toBe(sweep.denseAccuracy);
    expect(sweep.curve.map((p) => p.sparsity)).toEqual([...sweep.curve.map((p) => p.sparsity)].sort((a, b) => a - b));
    expect(progress.at(-1)!.fraction).toBe(1);

    const same = await service.instability({ ticket: pruned!.id, points: 5, testExamples: 300, sameDataOrder: true, backend: 'wasm' });
    expect(same.startIteration).toBe(10);
    expect(same.endIteration).toBe(30);
    expect(Math.abs(same.barrier)).toBeLessThan(1e-6);
    const different = await service.instability({ ticket: pruned!.id, points: 5, testExamples: 300, backend: 'wasm' });
    expect(different.dataSeeds).toEqual([0, 1]);
    expect(different.curve.map((p) => p.alpha)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(different.curve.some((p) => p.error !== different.curve[0]!.error)).toBe(true);

    // IMP's level 1 is layer-wise magnitude of level 0's trained weights: the same criterion, per layer, finds the same mask.
    const overlap = await service.criteriaOverlap({ ticket: pruned!.id, scope: 'layer', criteria: ['magnitude', 'random', 'snip'] });
    expect(overlap.trainedFrom).toBe('parent');
    const byName = Object.fromEntries(overlap.criteria.map((c) => [c.criterion, c.total]));
    expect(byName.magnitude!.overlap).toBe(1);
    expect(Math.abs(byName.random!.overlap - byName.random!.chanceOverlap)).toBeLessThan(0.02);
    expect(overlap.warnings).toEqual([]);
    await expect(service.criteriaOverlap({ ticket: pruned!.id, criteria: ['obd'] } as never)).rejects.toBeInstanceOf(InvalidRequestError);

    await expect(service.instability({ ticket: 'tk_nosuch' })).rejects.toBeInstanceOf(NotFoundError);
    await expect(service.essentialSparsity({ ticket: dense!.id, tolerance: 2 })).rejects.toBeInstanceOf(InvalidRequestError);
    service.close();
  });
});
