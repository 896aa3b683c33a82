import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { loadDataset } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { initWeights } from '../../../core/models/weights';
import { sparsityBudget } from '../../../core/pruning/budget';
import { denseMasks } from '../../../core/pruning/imp';
import { randomStrategy } from '../../../core/pruning/random';
import { cpuStepKernels } from '../../../core/train/engine/kernels-cpu';
import { MlpStepEngine, mlpLayers } from '../../../core/train/engine/mlp-engine';
import { STACK_MEMORY_ENV, engineBytesPerMember, maxStackMembers, stackBudgetBytes } from '../../../core/train/engine/stack-size';
import { DEFAULT_OPTIMIZER, type OptimizerConfig } from '../../../core/train/optimizers';
import type { TrainProgress } from '../../../core/train/train';
import { type StackMember, type StackTrainInput, trainStack } from '../../../core/train/train-stack';
import { useBackend } from '../../support/backends';

const full = loadDataset('mnist', { validationSize: 200 });
const dataset = { ...full, test: { images: full.test.images.subarray(0, 300 * 784), labels: full.test.labels.subarray(0, 300), count: 300 } };
const arch = architecture('lenet-300-100');
const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
const layers = mlpLayers(arch, specs)!;
const adam: OptimizerConfig = { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 1.2e-3 };

async function members(count: number): Promise<StackMember[]> {
  const dense = denseMasks(specs);
  const sparse = await randomStrategy.prune({ weights: [], masks: dense, budget: sparsityBudget(dense, 0.5, 'layer', dense.map((m) => m.name)), params: {}, seed: 3 });
  return Array.from({ length: count }, (_, p) => ({ weights: initWeights(specs, p), masks: p % 2 === 0 ? sparse : dense, dataSeed: p }));
}

afterEach(() => {
  delete process.env[STACK_MEMORY_ENV];
});

describe('stack size', () => {
  it('counts the bytes the engine holds per member', async () => {
    await useBackend('cpu');
    const sizeOf = async (k: number) => {
      const before = tf.memory().numBytes;
      const engine = new MlpStepEngine(cpuStepKernels(), layers, await members(k), 60, adam);
      const bytes = tf.memory().numBytes - before;
      engine.dispose();
      return bytes;
    };
    // One more member: its parameters, state, mask and activations; the shared buffers cancel out.
    const perMember = (await sizeOf(3)) - (await sizeOf(2));
    const estimate = engineBytesPerMember(layers, 60, adam);
    expect(perMember).toBeLessThanOrEqual(estimate);
    expect(perMember).toBeGreaterThan(0.97 * estimate);
    // SGD without momentum keeps no state: two fewer copies of the weights.
    expect(engineBytesPerMember(layers, 60, { name: 'sgd', momentum: 0 })).toBe(estimate - 2 * 4 * (266_200 + 410));
  });

  it('fits the budget and the largest binding', () => {
    const perMember = engineBytesPerMember(layers, 60, adam);
    expect(maxStackMembers(layers, 60, adam, { budgetBytes: 10 * perMember })).toBe(10);
    expect(maxStackMembers(layers, 60, adam, { budgetBytes: 10 * perMember - 1 })).toBe(9);
    // The 784 × 300 kernel is 940,800 bytes per member.
    expect(maxStackMembers(layers, 60, adam, { budgetBytes: 1e12, maxBindingBytes: 128 * 1024 * 1024 })).toBe(Math.floor((128 * 1024 * 1024) / 940_800));
    expect(maxStackMembers(layers, 60, adam, { budgetBytes: 1 })).toBe(1);
  });

  it('reads its budget from the environment, and rejects nonsense', () => {
    expect(stackBudgetBytes('wasm')).toBe(2048 * 1024 * 1024);
    process.env[STACK_MEMORY_ENV] = '64';
    expect(stackBudgetBytes('webgpu')).toBe(64 * 1024 * 1024);
    process.env[STACK_MEMORY_ENV] = 'lots';
    expect(() => stackBudgetBytes('wasm')).toThrow(InvalidRequestError);
  });

  it('trains a stack over its budget in parts, each member as in one stack, progress rising once', async () => {
    await useBackend('wasm');
    const input: StackTrainInput = { arch, specs, dataset, members: await members(3), schedule: { iterations: 20, batchSize: 60, evalEvery: 10, optimizer: adam }, startIteration: 2, workers: 1 };
    const whole = await trainStack(input);
    // Room for 1.5 members: parts of 1.
    process.env[STACK_MEMORY_ENV] = String((1.5 * engineBytesPerMember(layers, 60, adam)) / (1024 * 1024));
    const progress: TrainProgress[] = [];
    const parts = await trainStack({ ...input, onProgress: (p) => progress.push(p) });
    parts.forEach((r, p) => {
      r.finalWeights.forEach((t, i) => {
        const u = whole[p]!.finalWeights[i]!.values;
        let worst = 0;
        for (let j = 0; j < t.values.length; j++) worst = Math.max(worst, Math.abs(t.values[j]! - u[j]!));
        expect(worst, `${t.name} of member ${p}`).toBeLessThanOrEqual(1e-6);
      });
      expect(r.earlyStop.iteration).toBe(whole[p]!.earlyStop.iteration);
    });
    // Three parts of one member, each reporting at its iterations 10 and 20 of 2..20, mapped onto one pass.
    expect(progress.map((p) => p.iteration)).toEqual([4, 8, 10, 14, 16, 20]);
  });
});
