import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { type WeightSet, initWeights } from '../../../core/models/weights';
import { matchingBudget, sparsityBudget } from '../../../core/pruning/budget';
import { denseMasks } from '../../../core/pruning/imp';
import type { MaskSet } from '../../../core/pruning/mask';
import { randomStrategy } from '../../../core/pruning/random';
import { DEFAULT_OPTIMIZER, type OptimizerConfig } from '../../../core/train/optimizers';
import type { TrainResult } from '../../../core/train/train';
import { trainWithAutodiff } from '../../../core/train/train-autodiff';
import { type StackMember, trainStack, trainsStacked } from '../../../core/train/train-stack';
import { KERNEL_BACKENDS, useBackend } from '../../support/backends';

const full = loadDataset('mnist', { validationSize: 300 });
/** Small evaluation splits keep the JS reference backend quick. */
const dataset = { ...full, test: { images: full.test.images.subarray(0, 400 * 784), labels: full.test.labels.subarray(0, 400), count: 400 } };
// A narrow LeNet: the engines' arithmetic is the same at any width, and WebGPU on SwiftShader (CI) is slow.
const arch = architecture('lenet-64-32');
const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
const adam: OptimizerConfig = { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 1.2e-3 };
const sgd: OptimizerConfig = { ...DEFAULT_OPTIMIZER, name: 'sgd', learningRate: 0.05, momentum: 0.9, weightDecay: 1e-3 };

async function masksAt(sparsity: number, seed: number): Promise<MaskSet> {
  const dense = denseMasks(specs);
  if (sparsity === 0) return dense;
  return randomStrategy.prune({ weights: [], masks: dense, budget: sparsityBudget(dense, sparsity, 'layer', dense.map((m) => m.name)), params: {}, seed });
}

/** ‖a − b‖ / ‖b‖ over every tensor of two weight sets. */
function relativeDistance(a: WeightSet, b: WeightSet): number {
  let diff = 0;
  let norm = 0;
  a.forEach((t, i) => {
    const u = b[i]!.values;
    for (let j = 0; j < t.values.length; j++) {
      diff += (t.values[j]! - u[j]!) ** 2;
      norm += u[j]! ** 2;
    }
  });
  return Math.sqrt(diff / norm);
}

function expectPrunedZero(result: TrainResult, masks: MaskSet) {
  for (const mask of masks) {
    const w = result.finalWeights.find((t) => t.name === mask.name)!.values;
    for (let i = 0; i < mask.bits.length; i++) if (!mask.bits[i] && !Object.is(w[i], 0)) throw new Error(`${mask.name}[${i}] is ${w[i]} but pruned`);
  }
}

const schedule = (iterations: number, optimizer: OptimizerConfig) => ({ iterations, batchSize: 60, evalEvery: 5, optimizer });

describe.each(KERNEL_BACKENDS)('the step engine on %s', (backend) => {
  it('runs fully connected LeNets stacked on this backend', async () => {
    await useBackend(backend);
    expect(trainsStacked(arch, specs)).toBe(true);
  });

  it.each([
    ['adam', adam],
    ['sgd + momentum + weight decay', sgd],
  ] as const)('trains like TF.js autodiff does (%s)', async (_name, optimizer) => {
    await useBackend(backend);
    const masks = await masksAt(0.5, 4);
    const weights = initWeights(specs, 4);
    const steps = backend === 'cpu' ? 3 : 8;
    const [engine] = await trainStack({ arch, specs, dataset, schedule: schedule(steps, optimizer), members: [{ weights, masks, dataSeed: 4 }] });
    const autodiff = await trainWithAutodiff({ arch, specs, dataset, schedule: schedule(steps, optimizer), weights, masks, dataSeed: 4 });
    expectPrunedZero(engine!, masks);
    // The mean training loss of the steps since the previous point: a real loss, not 0 or NaN.
    for (const point of engine!.curve.slice(1)) expect(point.trainLoss).toBeGreaterThan(0.05);
    expect(relativeDistance(engine!.finalWeights, autodiff.finalWeights)).toBeLessThan(1e-5);
    expect(engine!.curve.map((p) => p.iteration)).toEqual(autodiff.curve.map((p) => p.iteration));
    engine!.curve.forEach((p, i) => expect(p.valLoss).toBeCloseTo(autodiff.curve[i]!.valLoss, 4));
    expect(engine!.final.test.accuracy).toBeCloseTo(autodiff.final.test.accuracy, 2);
  });

  it('gives each member of a stack the result it gets trained alone', async () => {
    await useBackend(backend);
    const ticketMasks = await masksAt(0.6, 1);
    const members: StackMember[] = [
      { weights: initWeights(specs, 1), masks: ticketMasks, dataSeed: 1 },
      // The random re-initialisation control: same mask, new weights, same data order.
      { weights: initWeights(specs, 1, 'reinit-control-1'), masks: ticketMasks, dataSeed: 1 },
      // Another seed with another mask density and data order.
      { weights: initWeights(specs, 2), masks: await randomStrategy.prune({ weights: [], masks: denseMasks(specs), budget: matchingBudget(await masksAt(0.2, 2)), params: {}, seed: 2 }), dataSeed: 2 },
    ];
    const steps = backend === 'cpu' ? 3 : 12;
    const together = await trainStack({ arch, specs, dataset, schedule: schedule(steps, adam), members });
    for (const [p, member] of members.entries()) {
      const [alone] = await trainStack({ arch, specs, dataset, schedule: schedule(steps, adam), members: [member] });
      expect(relativeDistance(together[p]!.finalWeights, alone!.finalWeights)).toBeLessThan(1e-6);
      expect(together[p]!.earlyStop.iteration).toBe(alone!.earlyStop.iteration);
      expect(together[p]!.earlyStop.test.accuracy).toBeCloseTo(alone!.earlyStop.test.accuracy, 6);
      expectPrunedZero(together[p]!, member.masks);
    }
    // The members did train differently.
    expect(relativeDistance(together[0]!.finalWeights, together[1]!.finalWeights)).toBeGreaterThan(0.1);
  });

  it('checkpoints at the rewind point, resumes from it, and leaks no tensor', async () => {
    await useBackend(backend);
    const masks = await masksAt(0.3, 7);
    const member = { weights: initWeights(specs, 7), masks, dataSeed: 7 };
    const run = () => trainStack({ arch, specs, dataset, schedule: schedule(6, adam), members: [member], checkpointAt: 2 });
    await run();
    const before = tf.memory().numTensors;
    const [full6] = await run();
    expect(tf.memory().numTensors).toBe(before);
    expect(full6!.checkpoint).toBeDefined();
    // From θ2 with the step counter and data order at 2, as IMP's rewound levels do (fresh optimiser state).
    const [resumed] = await trainStack({ arch, specs, dataset, schedule: schedule(6, adam), members: [{ ...member, weights: full6!.checkpoint! }], startIteration: 2 });
    expect(resumed!.steps).toBe(4);
    expect(resumed!.curve[0]!.iteration).toBe(2);
  });
});
