import { beforeAll, describe, expect, it } from 'vitest';
import { CancelledError } from '../../../core/api/errors';
import { STABLE_BARRIER, errorBarrier, instability, interpolateWeights } from '../../../core/compare/instability';
import { loadDataset } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { type WeightSet, initWeights } from '../../../core/models/weights';
import { sparsityBudget } from '../../../core/pruning/budget';
import { denseMasks } from '../../../core/pruning/imp';
import type { MaskSet } from '../../../core/pruning/mask';
import { randomStrategy } from '../../../core/pruning/random';
import { DEFAULT_OPTIMIZER } from '../../../core/train/optimizers';
import { useBackend } from '../../support/backends';

const dataset = loadDataset('mnist', { validationSize: 500 });
const arch = architecture('lenet-300-100');
const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
const theta0 = initWeights(specs, 0);
const schedule = { iterations: 60, batchSize: 60, evalEvery: 60, optimizer: { ...DEFAULT_OPTIMIZER, name: 'adam' as const, learningRate: 1.2e-3 } };
let masks: MaskSet;

const sameValues = (a: WeightSet, b: WeightSet) => a.every((t, i) => Buffer.from(t.values.buffer).equals(Buffer.from(b[i]!.values.buffer)));

beforeAll(async () => {
  await useBackend('wasm');
  const dense = denseMasks(specs);
  masks = await randomStrategy.prune({ weights: [], masks: dense, budget: sparsityBudget(dense, 0.5, 'layer', dense.map((m) => m.name)), params: {}, seed: 7 });
});

describe('the error barrier', () => {
  it('is max e(α) − (e(0) + e(1))/2 on hand-made curves', () => {
    const alphas = Array.from({ length: 31 }, (_, i) => i / 30);
    // A bump of height 0.3 at α = 1/2 over endpoints at 10 % error.
    expect(errorBarrier(alphas.map((a) => 0.1 + 0.3 * 4 * a * (1 - a)))).toBeCloseTo(0.3, 12);
    // A straight line from 10 % to 30 %: the maximum is an endpoint, half the gap above the mean.
    expect(errorBarrier(alphas.map((a) => 0.1 + 0.2 * a))).toBeCloseTo(0.1, 12);
    // A dip below the endpoints is no barrier.
    expect(errorBarrier([0.1, 0.05, 0.1])).toBe(0);
    expect(errorBarrier([0.1, 0.25, 0.15, 0.2])).toBeCloseTo(0.25 - 0.15, 12);
    expect(STABLE_BARRIER).toBe(0.02);
  });

  it('interpolates every parameter with exact endpoints', () => {
    const a = initWeights(specs, 1);
    expect(sameValues(interpolateWeights(a, theta0, 1), a)).toBe(true);
    expect(sameValues(interpolateWeights(a, theta0, 0), theta0)).toBe(true);
    expect(sameValues(interpolateWeights(a, a, 0.3), a)).toBe(true);
    const half = interpolateWeights(a, theta0, 0.5);
    expect(half[0]!.values[5]).toBeCloseTo((a[0]!.values[5]! + theta0[0]!.values[5]!) / 2, 6);
  });
});

describe('instability', () => {
  it('is 0 for two copies with the same data order: θ1 = θ2, e(α) constant', async () => {
    const r = await instability({
      arch, specs, dataset, masks, points: 31, testExamples: 1000,
      endpoints: { kind: 'train', weights: theta0, startIteration: 0, schedule, seed: 3, sameDataOrder: true },
    });
    expect(r.dataSeeds).toEqual([3, 3]);
    expect(sameValues(r.trained![0].finalWeights, r.trained![1].finalWeights)).toBe(true);
    expect(r.curve).toHaveLength(31);
    expect(r.curve[30]!.alpha).toBe(1);
    for (const p of r.curve) expect(Math.abs(p.error - r.e0)).toBeLessThan(1e-12);
    expect(Math.abs(r.barrier)).toBeLessThan(1e-6);
    expect(r.stable).toBe(true);
    expect(r.e0).toBeLessThan(0.5);
  });

  it('trains the two copies on different data orders by default, keeping the mask', async () => {
    const r = await instability({
      arch, specs, dataset, masks, points: 5, testExamples: 500,
      endpoints: { kind: 'train', weights: theta0, startIteration: 0, schedule, seed: 3 },
    });
    expect(r.dataSeeds).toEqual([3, 4]);
    const [t1, t2] = r.trained!;
    expect(sameValues(t1.finalWeights, t2.finalWeights)).toBe(false);
    for (const t of [t1, t2]) {
      for (const m of masks) {
        const w = t.finalWeights.find((x) => x.name === m.name)!.values;
        for (let i = 0; i < m.bits.length; i++) if (!m.bits[i]) expect(w[i]).toBe(0);
      }
    }
    expect(r.barrier).toBeGreaterThanOrEqual(0);
    expect(r.curve.map((p) => p.alpha)).toEqual([0, 0.25, 0.5, 0.75, 1]);
  });

  it('takes two trained endpoints as given, evaluates θ1 at α = 1 and θ2 at α = 0, and stops when cancelled', async () => {
    const theta1 = initWeights(specs, 1);
    const alone = await instability({ arch, specs, dataset, masks, points: 2, testExamples: 300, endpoints: { kind: 'trained', weights: [theta1, theta1] } });
    const r = await instability({ arch, specs, dataset, masks, points: 3, testExamples: 300, endpoints: { kind: 'trained', weights: [theta1, theta0] } });
    expect(r.testExamples).toBe(300);
    expect(r.e1).toBe(alone.e0);
    expect(r.dataSeeds).toBeUndefined();

    const controller = new AbortController();
    const done: number[] = [];
    const run = instability({
      arch, specs, dataset, masks, points: 31, testExamples: 300,
      endpoints: { kind: 'trained', weights: [theta1, theta0] },
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase === 'interpolate') done.push(p.done);
        if (done.length === 2) controller.abort();
      },
    });
    await expect(run).rejects.toBeInstanceOf(CancelledError);
    expect(done).toEqual([1, 2]);
  });
});
