import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { selectBackend } from '../../../core/compute/backend';
import { loadDataset } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { initWeights } from '../../../core/models/weights';
import { denseMasks } from '../../../core/pruning/imp';
import { randomStrategy } from '../../../core/pruning/random';
import { matchingBudget, sparsityBudget } from '../../../core/pruning/budget';
import { DEFAULT_OPTIMIZER, type OptimizerConfig } from '../../../core/train/optimizers';
import { trainMasked } from '../../../core/train/train';

const full = loadDataset('mnist', { validationSize: 500 });
/** The pure-JS cpu backend evaluates 10,000 test images in tens of seconds: tests use the first 500. */
const dataset = { ...full, test: { images: full.test.images.subarray(0, 500 * 784), labels: full.test.labels.subarray(0, 500), count: 500 } };
const arch = architecture('lenet-300-100');
const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);

async function halfMasks() {
  const dense = denseMasks(specs);
  const tensors = dense.map((m) => m.name);
  return randomStrategy.prune({ weights: [], masks: dense, budget: sparsityBudget(dense, 0.5, 'layer', tensors), params: {}, seed: 11 });
}

const optimizers: Array<[string, OptimizerConfig]> = [
  ['sgd', { ...DEFAULT_OPTIMIZER, name: 'sgd', learningRate: 0.1 }],
  ['sgd + momentum + weight decay', { ...DEFAULT_OPTIMIZER, name: 'sgd', learningRate: 0.05, momentum: 0.9, weightDecay: 1e-3 }],
  ['adam', { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 1.2e-3 }],
  ['adam + weight decay', { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 1.2e-3, weightDecay: 1e-3 }],
];

describe.each(['wasm', 'cpu'] as const)('masked training on %s', (backend) => {
  it.each(optimizers)('keeps pruned weights exactly zero and kept weights moving (%s)', async (_name, optimizer) => {
    await selectBackend(backend);
    const masks = await halfMasks();
    const weights = initWeights(specs, 3);
    const result = await trainMasked({
      arch, specs, dataset, weights, masks, dataSeed: 3,
      schedule: { iterations: backend === 'cpu' ? 4 : 25, batchSize: 60, evalEvery: 1000, optimizer },
    });
    for (const mask of masks) {
      const before = weights.find((w) => w.name === mask.name)!.values;
      const after = result.finalWeights.find((w) => w.name === mask.name)!.values;
      let moved = 0;
      for (let i = 0; i < mask.bits.length; i++) {
        if (mask.bits[i]) moved += after[i] !== before[i] ? 1 : 0;
        else if (!Object.is(after[i], 0)) throw new Error(`${mask.name}[${i}] is ${after[i]} but pruned`);
      }
      expect(moved).toBeGreaterThan(0.5 * (mask.bits.length / 2));
    }
  });

  it('trains: validation accuracy rises well above chance, and no tensor outlives a run', async () => {
    await selectBackend(backend);
    const masks = await halfMasks();
    const run = () =>
      trainMasked({
        arch, specs, dataset, weights: initWeights(specs, 5), masks, dataSeed: 5,
        schedule: { iterations: backend === 'cpu' ? 20 : 150, batchSize: 60, evalEvery: backend === 'cpu' ? 20 : 50, optimizer: { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 1.2e-3 } },
      });
    await run(); // warm-up: backends cache kernels and constants on first use
    const before = tf.memory().numTensors;
    const result = await run();
    expect(tf.memory().numTensors).toBe(before);
    expect(result.curve[0]!.valAccuracy).toBeLessThan(0.3);
    expect(result.final.validation.accuracy).toBeGreaterThan(backend === 'cpu' ? 0.5 : 0.85);
    expect(result.earlyStop.iteration).toBeGreaterThan(0);
    expect(result.earlyStop.validation.loss).toBeLessThanOrEqual(Math.min(...result.curve.map((p) => p.valLoss)));
  });
});

describe('data order and determinism', () => {
  it('repeats a run bit for bit from the same seed, and differs with another seed', async () => {
    await selectBackend('wasm');
    const masks = await halfMasks();
    const schedule = { iterations: 20, batchSize: 60, evalEvery: 1000, optimizer: { ...DEFAULT_OPTIMIZER, name: 'adam' as const, learningRate: 1.2e-3 } };
    const train = (seed: number) => trainMasked({ arch, specs, dataset, weights: initWeights(specs, 1), masks, dataSeed: seed, schedule });
    const [a, b, c] = [await train(1), await train(1), await train(2)];
    expect(Buffer.from(a.finalWeights[0]!.values.buffer).equals(Buffer.from(b.finalWeights[0]!.values.buffer))).toBe(true);
    expect(Buffer.from(a.finalWeights[0]!.values.buffer).equals(Buffer.from(c.finalWeights[0]!.values.buffer))).toBe(false);
  });

  it('matches the random-mask control budget to the ticket, tensor by tensor', async () => {
    const ticket = await halfMasks();
    const control = await randomStrategy.prune({ weights: [], masks: denseMasks(specs), budget: matchingBudget(ticket), params: {}, seed: 99 });
    for (const [i, m] of control.entries()) {
      expect(m.bits.reduce((a, b) => a + b, 0)).toBe(ticket[i]!.bits.reduce((a, b) => a + b, 0));
      expect(Array.from(m.bits)).not.toEqual(Array.from(ticket[i]!.bits));
    }
  });
});
