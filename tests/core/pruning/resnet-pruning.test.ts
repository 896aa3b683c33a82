import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { Rng } from '../../../core/compute/rng';
import type { ImageSplit, LoadedDataset } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { type WeightSet, digestWeights, initWeights } from '../../../core/models/weights';
import { sparsityBudget } from '../../../core/pruning/budget';
import { denseMasks } from '../../../core/pruning/imp';
import { searchJackpot } from '../../../core/pruning/jackpot';
import { type MaskSet, countKept } from '../../../core/pruning/mask';
import { pruningStrategy } from '../../../core/pruning/registry';
import type { PruneBudget } from '../../../core/pruning/strategy';
import { synflowScores } from '../../../core/pruning/synflow';
import { useBackend } from '../../support/backends';

/** Seeded random 8×8×3 images: every kernel of resnet-20 is scored at a fraction of CIFAR's cost. */
function randomImages(count: number, stream: string): ImageSplit {
  const rng = Rng.stream(3, stream);
  return { images: Uint8Array.from({ length: count * 192 }, () => rng.int(256)), labels: Uint8Array.from({ length: count }, () => rng.int(10)), count };
}
const dataset: LoadedDataset = {
  id: 'random-8x8x3', source: 'test', digest: 'none', imageShape: [8, 8, 3], numClasses: 10,
  normalization: { mean: 0.5, std: 0.25 }, split: { seed: 0, validationSize: 4 },
  train: randomImages(40, 'train'), validation: randomImages(4, 'validation'), test: randomImages(4, 'test'),
};

/** Initial weights with BatchNorm statistics as after training (non-zero means, variances ≠ 1), so eval mode matters. */
function weightsFor(specs: ReturnType<typeof paramSpecs>, seed: number): WeightSet {
  const rng = Rng.stream(seed, 'resnet-pruning-state');
  return initWeights(specs, seed).map((t) => {
    if (t.name.endsWith('.runningMean')) return { ...t, values: t.values.map(() => 0.2 * rng.normal()) };
    if (t.name.endsWith('.runningVar')) return { ...t, values: t.values.map(() => 0.5 + rng.next()) };
    return t;
  });
}

/** Options that keep the slow scorers quick: one scoring example per class, a few SynFlow rounds. */
const params: Record<string, Record<string, unknown>> = { snip: { examplesPerClass: 1 }, grasp: { examplesPerClass: 1 }, synflow: { rounds: 3 } };
const GLOBAL = ['magnitude', 'random', 'erk', 'snip', 'grasp', 'synflow'];
const LAYER = ['magnitude', 'random', 'snip', 'grasp'];

describe.each(['resnet-20', 'resnet-20-openlth'])('pruning %s', (id) => {
  const arch = architecture(id);
  const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
  const prunable = specs.filter((s) => s.prunable);
  const names = prunable.map((s) => s.name);
  const weights = weightsFor(specs, 9);
  const digest = digestWeights(weights);
  const context = { arch, specs, dataset };

  beforeAll(async () => {
    await useBackend('wasm');
  });

  function expectMasksOnKernels(masks: MaskSet): void {
    // One mask per conv and fc kernel, shortcut convs included; none on a bias or BatchNorm tensor.
    expect(masks.map((m) => m.name)).toEqual(names);
    for (const m of masks) expect(m.shape).toEqual(prunable.find((s) => s.name === m.name)!.shape);
    // The strategies read the weights and never write them: BatchNorm γ, β and statistics included.
    expect(digestWeights(weights)).toBe(digest);
  }

  it.each(GLOBAL)('%s reaches a global sparsity of 90 % exactly (ERK: within one weight per layer)', async (strategy) => {
    const dense = denseMasks(specs);
    const budget = sparsityBudget(dense, 0.9, 'global', names) as Extract<PruneBudget, { scope: 'global' }>;
    const masks = await pruningStrategy<Record<string, unknown>>(strategy).prune({ weights, masks: dense, budget, params: params[strategy] ?? {}, seed: 4, context });
    expectMasksOnKernels(masks);
    const kept = masks.reduce((n, m) => n + countKept(m.bits), 0);
    if (strategy === 'erk') expect(Math.abs(kept - budget.keep)).toBeLessThanOrEqual(names.length);
    else expect(kept).toBe(budget.keep);
    expect(budget.keep).toBe(Math.round(0.1 * prunable.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0)));
  });

  it.each(LAYER)('%s reaches 80 % in every layer exactly', async (strategy) => {
    const dense = denseMasks(specs);
    const budget = sparsityBudget(dense, 0.8, 'layer', names) as Extract<PruneBudget, { scope: 'layer' }>;
    const masks = await pruningStrategy<Record<string, unknown>>(strategy).prune({ weights, masks: dense, budget, params: params[strategy] ?? {}, seed: 4, context });
    expectMasksOnKernels(masks);
    for (const m of masks) expect(countKept(m.bits), m.name).toBe(budget.keep[m.name]);
  });

  it('the lottery jackpot searches the convs on frozen weights and BatchNorm statistics, the fc dense, each layer\'s count fixed', async () => {
    const dense = denseMasks(specs);
    const budget = sparsityBudget(dense, 0.9, 'global', names);
    const result = await searchJackpot({ weights, masks: dense, budget, params: { iterations: 3, batchSize: 8 }, seed: 4, context });
    expectMasksOnKernels(result.masks);
    expect(result.budget.classifier).toEqual(['fc.kernel']);
    expect(countKept(result.masks.find((m) => m.name === 'fc.kernel')!.bits)).toBe(640);
    for (const layer of result.budget.layers) expect(countKept(result.masks.find((m) => m.name === layer.name)!.bits), layer.name).toBe(layer.total - layer.pruned);
  });

  it('refuses a budget that names a BatchNorm tensor', async () => {
    const budget: PruneBudget = { scope: 'global', keep: 10, tensors: [...names, 'blocks.0.bn1.gamma'] };
    for (const strategy of ['snip', 'grasp']) {
      await expect(pruningStrategy<Record<string, unknown>>(strategy).prune({ weights, masks: denseMasks(specs), budget, params: params[strategy] ?? {}, seed: 4, context })).rejects.toBeInstanceOf(
        InvalidRequestError,
      );
    }
  });
});

describe('SynFlow on resnet-20', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('takes |θ| of every state tensor: flipping the sign of every weight, BatchNorm γ, β and running mean leaves the scores unchanged', async () => {
    const arch = architecture('resnet-20-openlth');
    const specs = paramSpecs(arch, [8, 8, 3], 10);
    const weights = weightsFor(specs, 10);
    const masks = denseMasks(specs);
    const flipped = weights.map((t) => (t.name.endsWith('.runningVar') ? t : { ...t, values: t.values.map((v) => -v) }));
    const a = await synflowScores({ arch, specs, weights, masks, imageShape: [8, 8, 3] });
    const b = await synflowScores({ arch, specs, weights: flipped, masks, imageShape: [8, 8, 3] });
    for (const [name, scores] of a) expect([...b.get(name)!], name).toEqual([...scores]);
    // The signs matter to the network: with them the scores are those of another function.
    const shifted = weights.map((t) => (t.name.endsWith('.runningMean') ? { ...t, values: t.values.map((v) => v + 1) } : t));
    const c = await synflowScores({ arch, specs, weights: shifted, masks, imageShape: [8, 8, 3] });
    expect([...c.get('fc.kernel')!]).not.toEqual([...a.get('fc.kernel')!]);
  });

  it('scores the 32×32 network at initialisation with finite values (R far below the float32 maximum)', async () => {
    for (const id of ['resnet-20', 'resnet-20-openlth']) {
      const arch = architecture(id);
      const specs = paramSpecs(arch, [32, 32, 3], 10);
      const scores = await synflowScores({ arch, specs, weights: initWeights(specs, 0), masks: denseMasks(specs), imageShape: [32, 32, 3] });
      expect([...scores.keys()]).toEqual(specs.filter((s) => s.prunable).map((s) => s.name));
      for (const [name, s] of scores) expect(s.some((v) => v > 0), name).toBe(true);
    }
  });
});
