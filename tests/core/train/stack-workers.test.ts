import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { CancelledError, TrainingDivergedError } from '../../../core/api/errors';
import { loadDataset } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { type WeightSet, initWeights } from '../../../core/models/weights';
import { sparsityBudget } from '../../../core/pruning/budget';
import { denseMasks } from '../../../core/pruning/imp';
import { randomStrategy } from '../../../core/pruning/random';
import { DEFAULT_OPTIMIZER, type OptimizerConfig } from '../../../core/train/optimizers';
import type { TrainProgress } from '../../../core/train/train';
import { closeStackWorkers, memberGroups } from '../../../core/train/stack-workers';
import { type StackMember, type StackTrainInput, trainStack } from '../../../core/train/train-stack';
import { useBackend } from '../../support/backends';

const full = loadDataset('mnist', { validationSize: 300 });
const dataset = { ...full, test: { images: full.test.images.subarray(0, 400 * 784), labels: full.test.labels.subarray(0, 400), count: 400 } };
const arch = architecture('lenet-300-100');
const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
const adam: OptimizerConfig = { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 1.2e-3 };
const schedule = (iterations: number, optimizer = adam) => ({ iterations, batchSize: 60, evalEvery: 5, optimizer });

async function members(): Promise<StackMember[]> {
  const dense = denseMasks(specs);
  const sparse = await randomStrategy.prune({ weights: [], masks: dense, budget: sparsityBudget(dense, 0.6, 'layer', dense.map((m) => m.name)), params: {}, seed: 1 });
  return [
    { weights: initWeights(specs, 1), masks: sparse, dataSeed: 1 },
    { weights: initWeights(specs, 1, 'reinit-control-1'), masks: sparse, dataSeed: 1 },
    { weights: initWeights(specs, 2), masks: dense, dataSeed: 2 },
  ];
}

function expectSameWeights(a: WeightSet, b: WeightSet): void {
  a.forEach((t, i) => {
    const u = b[i]!.values;
    let worst = 0;
    for (let j = 0; j < t.values.length; j++) worst = Math.max(worst, Math.abs(t.values[j]! - u[j]!));
    expect(worst, t.name).toBeLessThanOrEqual(1e-6);
  });
}

afterAll(() => closeStackWorkers());

describe('stacks trained in worker threads', () => {
  it('splits members into contiguous groups, larger first', () => {
    expect(memberGroups(3, 2)).toEqual([{ first: 0, count: 2 }, { first: 2, count: 1 }]);
    expect(memberGroups(4, 2)).toEqual([{ first: 0, count: 2 }, { first: 2, count: 2 }]);
  });

  it('gives every member the result it gets in one thread, with progress, and leaks no tensor', async () => {
    await useBackend('wasm');
    const input: StackTrainInput = { arch, specs, dataset, schedule: schedule(20), members: await members(), startIteration: 2, checkpointAt: 7 };
    const inProcess = await trainStack({ ...input, workers: 1 });
    const progress: TrainProgress[] = [];
    const before = tf.memory().numTensors;
    const inWorkers = await trainStack({ ...input, workers: 2, onProgress: (p) => progress.push(p) });
    expect(tf.memory().numTensors).toBe(before);
    inWorkers.forEach((r, p) => {
      const q = inProcess[p]!;
      expectSameWeights(r.finalWeights, q.finalWeights);
      expectSameWeights(r.checkpoint!, q.checkpoint!);
      expect(r.earlyStop.iteration).toBe(q.earlyStop.iteration);
      expect(r.curve.map((c) => c.iteration)).toEqual(q.curve.map((c) => c.iteration));
      expect(r.final.test.accuracy).toBeCloseTo(q.final.test.accuracy, 6);
      expect(r.steps).toBe(18);
    });
    // The slowest group's iteration, rising to the end; the first member's loss.
    expect(progress.map((p) => p.iteration)).toEqual([10, 20]);
    expect(progress.every((p) => p.startIteration === 2 && p.endIteration === 20 && p.loss !== null)).toBe(true);
  });

  it('stops the workers when the signal fires, with the CancelledError of one thread', async () => {
    await useBackend('wasm');
    const controller = new AbortController();
    const began = performance.now();
    let stoppedAt = 0;
    const run = trainStack({
      arch, specs, dataset, schedule: schedule(100_000), members: await members(), workers: 2, signal: controller.signal,
      onProgress: (p) => {
        if (p.iteration >= 20 && !controller.signal.aborted) {
          stoppedAt = performance.now();
          controller.abort();
        }
      },
    });
    const error = await run.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect((error as Error).message).toBe(new CancelledError().message);
    // Stopped at a step, cooperatively: before the 2 s grace after which a worker is terminated.
    expect(performance.now() - stoppedAt).toBeLessThan(1900);
    expect(performance.now() - began).toBeLessThan(15_000);
    // The pool still trains afterwards.
    const again = await trainStack({ arch, specs, dataset, schedule: schedule(5), members: (await members()).slice(0, 2), workers: 2 });
    expect(again).toHaveLength(2);
  });

  it('rebuilds a worker\'s error as the error class and message of one thread', async () => {
    await useBackend('wasm');
    const [calm] = await members();
    // Weights of 1e30 overflow the logits: the second member's loss is not finite.
    const wild: StackMember = { ...calm!, weights: calm!.weights.map((t) => ({ ...t, values: t.values.map(() => 1e30) })) };
    const input: StackTrainInput = { arch, specs, dataset, schedule: schedule(10), members: [calm!, wild] };
    const inProcess = await trainStack({ ...input, workers: 1 }).catch((e: unknown) => e);
    const inWorkers = await trainStack({ ...input, workers: 2 }).catch((e: unknown) => e);
    expect(inProcess).toBeInstanceOf(TrainingDivergedError);
    expect(inWorkers).toBeInstanceOf(TrainingDivergedError);
    expect((inWorkers as Error).message).toBe((inProcess as Error).message);
    expect((inWorkers as Error).message).toContain('member 2 of 2');
  });
});
