import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { ESSENTIAL_SPARSITY_GRID, essentialSparsity, essentialSparsityOf, kneeOf } from '../../../core/compare/essential-sparsity';
import { loadDataset } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { type WeightSet, initWeights } from '../../../core/models/weights';
import { sparsityBudget } from '../../../core/pruning/budget';
import { denseMasks } from '../../../core/pruning/imp';
import { magnitudeStrategy } from '../../../core/pruning/magnitude';
import { DEFAULT_OPTIMIZER } from '../../../core/train/optimizers';
import { evaluateWeights, trainMasked } from '../../../core/train/train';
import { useBackend } from '../../support/backends';

const full = loadDataset('mnist', { validationSize: 500 });
/** 2,000 test examples: accuracy to about ±0.5 points, enough to see LeNet's plateau. */
const dataset = { ...full, test: { images: full.test.images.subarray(0, 2000 * 784), labels: full.test.labels.subarray(0, 2000), count: 2000 } };
const arch = architecture('lenet-300-100');
const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
const dense = denseMasks(specs);
let trained: WeightSet;

beforeAll(async () => {
  await useBackend('wasm');
  const schedule = { iterations: 300, batchSize: 60, evalEvery: 300, optimizer: { ...DEFAULT_OPTIMIZER, name: 'adam' as const, learningRate: 1.2e-3 } };
  trained = (await trainMasked({ arch, specs, dataset, weights: initWeights(specs, 0), masks: dense, schedule, dataSeed: 0 })).finalWeights;
});

describe('essential sparsity, the pure parts', () => {
  it('uses a strictly increasing grid 0, 5, …, 95 %, 96–99 %, and refuses others', async () => {
    expect(ESSENTIAL_SPARSITY_GRID).toHaveLength(24);
    expect(ESSENTIAL_SPARSITY_GRID[0]).toBe(0);
    expect(ESSENTIAL_SPARSITY_GRID[19]).toBe(0.95);
    expect(ESSENTIAL_SPARSITY_GRID.slice(19)).toEqual([0.95, 0.96, 0.97, 0.98, 0.99]);
    for (let i = 1; i < ESSENTIAL_SPARSITY_GRID.length; i++) expect(ESSENTIAL_SPARSITY_GRID[i]).toBeGreaterThan(ESSENTIAL_SPARSITY_GRID[i - 1]!);
    for (const grid of [[0, 0.5, 0.5], [0.5, 0.2], [0, 1], []]) {
      await expect(essentialSparsity({ arch, specs, dataset, weights: initWeights(specs, 0), grid })).rejects.toBeInstanceOf(InvalidRequestError);
    }
  });

  it('finds s_ess and the knee on a hand-made curve with unequal spacing', () => {
    // Flat at 98 % up to 95 % sparsity, then down 10 points per 1 % of sparsity: a kink at 0.95.
    const s = [0, 0.5, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99];
    const a = [0.98, 0.98, 0.98, 0.98, 0.88, 0.78, 0.68, 0.58];
    expect(essentialSparsityOf(s, a, 0.98)).toBe(0.95);
    const knee = kneeOf(s, a)!;
    expect(knee.sparsity).toBe(0.95);
    // Slope 0 on the left, −10 per unit sparsity on the right: κ = −10, whatever the spacing.
    expect(knee.secondDifference).toBeCloseTo(-10, 6);

    // Exactly one point below dense still counts; a point past a dip counts too (the largest wins).
    expect(essentialSparsityOf([0, 0.5, 0.9], [0.97, 0.9, 0.96], 0.97)).toBe(0.9);
    expect(essentialSparsityOf([0.5, 0.9], [0.5, 0.4], 0.97)).toBeNull();

    // On an even grid κ is the plain second difference over h.
    const even = kneeOf([0, 0.1, 0.2, 0.3], [0.9, 0.9, 0.85, 0.6])!;
    expect(even.sparsity).toBe(0.2);
    expect(even.secondDifference).toBeCloseTo((0.6 - 2 * 0.85 + 0.9) / 0.1, 9);
    expect(kneeOf([0, 0.5], [1, 0])).toBeNull();
  });
});

describe('essential sparsity of a trained LeNet-300-100', () => {
  it('starts at the unpruned accuracy and stays within a point of it past 50 % sparsity', async () => {
    const done: number[] = [];
    const r = await essentialSparsity({ arch, specs, dataset, weights: trained, onProgress: (p) => done.push(p.done) });
    const unpruned = await evaluateWeights(arch, specs, dataset, trained, dense);
    expect(r.denseAccuracy).toBe(unpruned.test.accuracy);
    expect(r.curve[0]!.accuracy).toBe(unpruned.test.accuracy);
    expect(r.curve.map((p) => p.target)).toEqual(ESSENTIAL_SPARSITY_GRID);
    for (const p of r.curve) expect(p.sparsity).toBeCloseTo(p.target, 5);
    expect(done).toHaveLength(24);
    expect(r.examples).toBe(2000);
    expect(r.essentialSparsity).toBeGreaterThanOrEqual(0.5);
    expect(r.knee).not.toBeNull();
  });

  it('keeps a ticket\'s pruned entries pruned: grid points below its sparsity give the ticket', async () => {
    const names = dense.map((m) => m.name);
    const ticket = await magnitudeStrategy.prune({ weights: trained, masks: dense, budget: sparsityBudget(dense, 0.5, 'global', names), params: {}, seed: 0 });
    const r = await essentialSparsity({ arch, specs, dataset, weights: trained, masks: ticket, grid: [0, 0.25, 0.75], examples: 500 });
    expect(r.curve.map((p) => p.sparsity.toFixed(6))).toEqual(['0.500000', '0.500000', '0.750000']);
    expect(r.curve[0]!.accuracy).toBe(r.denseAccuracy);
    expect(r.examples).toBe(500);
  });
});
