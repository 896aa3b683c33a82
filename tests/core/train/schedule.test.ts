// Learning-rate drops and augmentation in the training loop: checked against runs that do the same
// by other means (a run split at the drop; augmentation that changes nothing).
import { describe, expect, it } from 'vitest';
import { selectBackend } from '../../../core/compute/backend';
import { loadDataset } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { initWeights, type WeightSet } from '../../../core/models/weights';
import { denseMasks } from '../../../core/pruning/imp';
import { DEFAULT_OPTIMIZER } from '../../../core/train/optimizers';
import { type TrainSchedule, learningRateAt, needsAutodiff, trainMasked } from '../../../core/train/train';
import { trainWithAutodiff } from '../../../core/train/train-autodiff';

const full = loadDataset('mnist', { validationSize: 200 });
const dataset = { ...full, test: { images: full.test.images.subarray(0, 200 * 784), labels: full.test.labels.subarray(0, 200), count: 200 } };
const arch = architecture('lenet-300-100');
const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
const masks = denseMasks(specs);
const sgd = (learningRate: number) => ({ ...DEFAULT_OPTIMIZER, name: 'sgd' as const, learningRate });

const same = (a: WeightSet, b: WeightSet) => a.every((t, i) => Buffer.from(t.values.buffer).equals(Buffer.from(b[i]!.values.buffer)));

describe('learning-rate drops', () => {
  it('gives the rate of each iteration, a drop applying from its own iteration on', () => {
    const schedule: TrainSchedule = { iterations: 100, batchSize: 10, evalEvery: 10, optimizer: sgd(0.1), learningRateDrops: { at: [50, 75], factor: 0.1 } };
    expect(learningRateAt(schedule, 0)).toBe(0.1);
    expect(learningRateAt(schedule, 49)).toBe(0.1);
    expect(learningRateAt(schedule, 50)).toBeCloseTo(0.01, 12);
    expect(learningRateAt(schedule, 75)).toBeCloseTo(0.001, 12);
    expect(learningRateAt({ ...schedule, learningRateDrops: undefined }, 99)).toBe(0.1);
    expect(needsAutodiff(schedule)).toBe(true);
    expect(needsAutodiff({ ...schedule, learningRateDrops: { at: [], factor: 0.1 } })).toBe(false);
  });

  it('trains as a run split at the drop and resumed at the lower rate', async () => {
    await selectBackend('wasm');
    const weights = initWeights(specs, 4);
    const base = { arch, specs, dataset, masks, dataSeed: 4 };
    // Plain SGD keeps no state, so the split run's fresh optimiser changes nothing.
    const dropped = await trainMasked({ ...base, weights, schedule: { iterations: 6, batchSize: 30, evalEvery: 100, optimizer: sgd(0.1), learningRateDrops: { at: [3], factor: 0.25 } } });
    // A schedule with drops trains on autodiff (the step engine rounds differently): so do these.
    const first = await trainWithAutodiff({ ...base, weights, schedule: { iterations: 3, batchSize: 30, evalEvery: 100, optimizer: sgd(0.1) } });
    const second = await trainWithAutodiff({ ...base, weights: first.finalWeights, startIteration: 3, schedule: { iterations: 6, batchSize: 30, evalEvery: 100, optimizer: sgd(0.025) } });
    expect(same(dropped.finalWeights, second.finalWeights)).toBe(true);
    const undropped = await trainWithAutodiff({ ...base, weights, schedule: { iterations: 6, batchSize: 30, evalEvery: 100, optimizer: sgd(0.1) } });
    expect(same(dropped.finalWeights, undropped.finalWeights)).toBe(false);
  });
});

describe('augmentation in training', () => {
  const schedule = (augment?: { padding: number; flip: boolean }): TrainSchedule => ({ iterations: 4, batchSize: 30, evalEvery: 100, optimizer: sgd(0.1), augment });

  it('changes nothing when it crops nothing and never flips, and changes the run when it does', async () => {
    await selectBackend('wasm');
    const weights = initWeights(specs, 6);
    const run = (augment?: { padding: number; flip: boolean }, dataSeed = 6) => trainMasked({ arch, specs, dataset, masks, weights, dataSeed, schedule: schedule(augment) });
    const plain = await trainWithAutodiff({ arch, specs, dataset, masks, weights, dataSeed: 6, schedule: schedule() });
    expect(same((await run({ padding: 0, flip: false })).finalWeights, plain.finalWeights)).toBe(true);
    const augmented = await run({ padding: 4, flip: true });
    expect(same(augmented.finalWeights, plain.finalWeights)).toBe(false);
    // Seeded: the same seed repeats the crops and flips, another draws others.
    expect(same((await run({ padding: 4, flip: true })).finalWeights, augmented.finalWeights)).toBe(true);
    expect(same((await run({ padding: 4, flip: true }, 7)).finalWeights, augmented.finalWeights)).toBe(false);
  });
});
