import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { OVERLAP_CRITERIA, criteriaOverlap } from '../../../core/compare/criteria-overlap';
import { loadDataset } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { maskedCopy } from '../../../core/models/network';
import { initWeights } from '../../../core/models/weights';
import { sparsityBudget } from '../../../core/pruning/budget';
import { denseMasks } from '../../../core/pruning/imp';
import { type MaskSet, countKept } from '../../../core/pruning/mask';
import { magnitudeStrategy } from '../../../core/pruning/magnitude';
import { randomStrategy } from '../../../core/pruning/random';
import { useBackend } from '../../support/backends';

const dataset = loadDataset('mnist', { validationSize: 500 });
const arch = architecture('lenet-300-100');
const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
const theta0 = initWeights(specs, 0);
/** Stands in for trained weights: any weights other than θ0. */
const trained = initWeights(specs, 1);
const dense = denseMasks(specs);
const kernels = dense.map((m) => m.name);
const N = dense.reduce((n, m) => n + m.bits.length, 0);
const base = { arch, specs, dataset, startWeights: theta0, trainedWeights: trained };

const globalAt = (sparsity: number) => sparsityBudget(dense, sparsity, 'global', kernels);
const randomMask = (seed: number): Promise<MaskSet> => randomStrategy.prune({ weights: [], masks: dense, budget: globalAt(0.9), params: {}, seed });

beforeAll(async () => {
  await useBackend('wasm');
});

describe('criteria overlap', () => {
  it('gives overlap 1 for the criterion that made the mask, on the same weights', async () => {
    const ticket = await magnitudeStrategy.prune({ weights: trained, masks: dense, budget: globalAt(0.9), params: {}, seed: 0 });
    const result = await criteriaOverlap({ ...base, masks: ticket, criteria: ['magnitude'] });
    const [magnitude] = result.criteria;
    expect(magnitude!.scored).toBe('trained');
    expect(magnitude!.total.overlap).toBe(1);
    expect(magnitude!.total.iou).toBe(1);
    for (const layer of magnitude!.layers) expect(layer.overlap).toBe(1);
    expect(result.kept).toBe(Math.round(0.1 * N));
    expect(magnitude!.total.chanceOverlap).toBeCloseTo(0.1, 5);
    expect(result.weightsZeroWherePruned).toEqual({ start: false, trained: false });

    // Masked trained weights (a ticket's own) carry the mask: flagged.
    const masked = trained.map((t) => {
      const m = ticket.find((x) => x.name === t.name);
      return m ? { ...t, values: maskedCopy(t.values, m.bits) } : t;
    });
    const flagged = await criteriaOverlap({ ...base, trainedWeights: masked, masks: ticket, criteria: ['magnitude'] });
    expect(flagged.weightsZeroWherePruned.trained).toBe(true);
  });

  it('finds random masks of different seeds overlapping at chance, within the hypergeometric spread', async () => {
    const ticket = await randomMask(1);
    const same = await criteriaOverlap({ ...base, masks: ticket, criteria: ['random'], seed: 1 });
    expect(same.criteria[0]!.total.overlap).toBe(1);

    const other = await criteriaOverlap({ ...base, masks: ticket, criteria: ['random'], seed: 2 });
    const total = other.criteria[0]!.total;
    // |A∩B| is hypergeometric (N entries, K kept by each): overlap = |A∩B|/K has mean d = K/N and
    // variance d(1 − d)(N − K)/((N − 1)K). Five standard deviations: a false alarm about once in 10^6.
    const K = total.keptA;
    const d = K / N;
    const sd = Math.sqrt((d * (1 - d) * (N - K)) / ((N - 1) * K));
    expect(total.chanceOverlap).toBeCloseTo(d, 12);
    expect(Math.abs(total.overlap - d)).toBeLessThan(5 * sd);
    expect(Math.abs(total.iou - total.chanceIou)).toBeLessThan(0.01);
  });

  it('runs every criterion at the ticket\'s exact kept count, globally and per layer', async () => {
    const ticket = await randomMask(3);
    const params = { synflow: { rounds: 5 } };
    const global = await criteriaOverlap({ ...base, masks: ticket, params, seed: 4 });
    expect(global.criteria.map((c) => c.criterion)).toEqual([...OVERLAP_CRITERIA]);
    for (const c of global.criteria) {
      expect(c.total.keptB, c.criterion).toBe(c.total.keptA);
      expect(c.total.overlap).toBeGreaterThanOrEqual(0);
      expect(c.total.overlap).toBeLessThanOrEqual(1);
      expect(c.layers.map((l) => l.name)).toEqual(kernels);
    }
    expect(global.criteria.find((c) => c.criterion === 'snip')!.scored).toBe('start');

    const progress: number[] = [];
    const layer = await criteriaOverlap({ ...base, masks: ticket, scope: 'layer', seed: 4, onProgress: (p) => progress.push(p.done) });
    expect(layer.criteria.map((c) => c.criterion)).toEqual(['magnitude', 'snip', 'grasp', 'random']);
    expect(progress).toEqual([1, 2, 3, 4]);
    for (const c of layer.criteria) {
      for (const m of c.masks) expect(countKept(m.bits)).toBe(countKept(ticket.find((t) => t.name === m.name)!.bits));
    }
  });

  it('refuses tensors the ticket has no mask for, and bad criterion options', async () => {
    await expect(criteriaOverlap({ ...base, masks: dense, tensors: ['fc1.bias'] })).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(criteriaOverlap({ ...base, masks: dense, criteria: ['synflow'], params: { synflow: { rounds: 0 } } })).rejects.toThrow(/synflow criterion: rounds/);
  });
});
