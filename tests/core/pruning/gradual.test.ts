import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { CancelledError, InvalidRequestError } from '../../../core/api/errors';
import { selectBackend } from '../../../core/compute/backend';
import { loadDataset } from '../../../core/data/datasets';
import type { Architecture } from '../../../core/models/architectures';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { MaskedNetwork } from '../../../core/models/network';
import { initWeights } from '../../../core/models/weights';
import { type GradualOptionsInput, type GradualUpdate, cubicSparsity, gradualSchedule, parseGradualOptions, runGradual } from '../../../core/pruning/gradual';
import { denseMasks } from '../../../core/pruning/imp';
import { type MaskSet, countKept } from '../../../core/pruning/mask';
import { DEFAULT_OPTIMIZER, type OptimizerConfig, createOptimizer } from '../../../core/train/optimizers';
import type { TrainSchedule } from '../../../core/train/train';

// A LeNet-like dense net small enough to train 200 steps in about a second: 784-32-10, 25,408 kernel weights.
const arch: Architecture = {
  ...architecture('lenet-300-100'),
  id: 'lenet-32',
  title: 'LeNet 32-10 (test)',
  layers: [{ kind: 'flatten' }, { kind: 'dense', name: 'fc1', units: 32, activation: 'relu', role: 'fc' }, { kind: 'dense', name: 'fc2', units: 10, activation: 'linear', role: 'output' }],
};
const full = loadDataset('mnist', { validationSize: 300 });
const dataset = { ...full, test: { images: full.test.images.subarray(0, 300 * 784), labels: full.test.labels.subarray(0, 300), count: 300 } };
const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
const N = 784 * 32 + 32 * 10;
const sgd: OptimizerConfig = { ...DEFAULT_OPTIMIZER, name: 'sgd', learningRate: 0.05, momentum: 0.9, weightDecay: 5e-4 };
const schedule: TrainSchedule = { iterations: 200, batchSize: 32, evalEvery: 100, optimizer: sgd };
// Δt 20, window to iteration 100: pruning at 20..100 (j 1..5 of j0 0, j_end 5), regeneration at 120..180.
const base: GradualOptionsInput = { finalDensity: 0.1, updateEvery: 20, pruneEnd: 0.5 };

const kept = (masks: MaskSet) => masks.reduce((n, m) => n + countKept(m.bits), 0);
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function run(options: GradualOptionsInput, seed = 3, onUpdate?: (u: GradualUpdate, masks: MaskSet) => void) {
  return runGradual({ arch, specs, dataset, schedule, options, seed, onUpdate });
}

describe('cubic schedule', () => {
  it('matches s = (1 − d_i) + (d_i − d_f)(1 − (1 − p)³), the ends exact', () => {
    for (const [di, df] of [[1, 0.1], [0.5, 0.02], [1, 0.05]] as const) {
      expect(cubicSparsity(0, di, df)).toBe(1 - di);
      expect(cubicSparsity(1, di, df)).toBe(1 - df);
      for (const p of [0.1, 0.25, 0.5, 0.75, 0.9]) expect(cubicSparsity(p, di, df)).toBeCloseTo(1 - di + (di - df) * (1 - (1 - p) ** 3), 12);
    }
  });

  it('updates every Δt, prunes for j0 ≤ j ≤ j_end with p = (j − j0)/(j_end − j0), regenerates after, not after the last step', () => {
    const granet = gradualSchedule(200, parseGradualOptions(base));
    expect([granet.firstIndex, granet.lastIndex]).toEqual([0, 5]);
    const updates = Array.from({ length: 200 }, (_, i) => i + 1).filter((t) => granet.updatesAfter(t));
    expect(updates).toEqual([20, 40, 60, 80, 100, 120, 140, 160, 180]);
    expect(granet.targetDensity(20)).toBeCloseTo(1 - cubicSparsity(0.2, 1, 0.1), 15);
    expect(granet.targetDensity(100)).toBe(0.1);
    expect(granet.targetDensity(120)).toBeNull();
    const gmp = gradualSchedule(200, parseGradualOptions({ ...base, regrow: false }));
    expect(Array.from({ length: 200 }, (_, i) => i + 1).filter((t) => gmp.updatesAfter(t))).toEqual([20, 40, 60, 80, 100]);
    // A window from iteration 50: j0 = 2, the first update at 60 is j = 3, p = 1/3 (GraNet's step ≥ start gate).
    const late = gradualSchedule(200, parseGradualOptions({ ...base, pruneStart: 0.25, pruneEnd: 0.8 }));
    expect([late.firstIndex, late.lastIndex]).toEqual([2, 8]);
    expect(late.updatesAfter(40)).toBe(false);
    expect(late.targetDensity(60)).toBeCloseTo(1 - cubicSparsity(1 / 6, 1, 0.1), 15);
    expect(late.targetDensity(160)).toBe(0.1);
  });
});

describe('gradual pruning during training', () => {
  it('GraNet dense-to-sparse ends at the target sparsity exactly, pruned weights exactly 0, bit for bit again from the seed, no tensor leaked', async () => {
    await selectBackend('wasm');
    const snapshots: MaskSet[] = [];
    const a = await run(base, 3, (_u, masks) => snapshots.push(masks));
    expect(a.initialMasks.every((m) => countKept(m.bits) === m.bits.length)).toBe(true);
    expect(kept(a.masks)).toBe(Math.floor(0.1 * N));
    for (const m of a.masks) {
      const w = a.finalWeights.find((t) => t.name === m.name)!.values;
      for (let i = 0; i < w.length; i++) if (!m.bits[i]) expect(w[i]).toBe(0);
    }
    // History: one record per update; sparsity on the cubic targets, then held while regenerating.
    expect(a.history.map((h) => h.iteration)).toEqual([20, 40, 60, 80, 100, 120, 140, 160, 180]);
    for (const h of a.history.slice(0, 5)) expect(h.sparsity).toBeCloseTo(h.targetSparsity!, 4);
    expect(a.history[4]!.targetSparsity).toBeCloseTo(0.9, 15);
    for (const h of a.history.slice(5)) {
      expect(h.targetSparsity).toBeNull();
      expect(h.pruned).toBe(0);
      expect(h.sparsity).toBe(a.history[4]!.sparsity);
    }
    expect(a.history.every((h) => h.regrown > 0 && h.regrowthRate > 0 && h.regrowthRate <= 0.5)).toBe(true);
    // Regeneration keeps every layer's count, and really moves the mask.
    for (let u = 5; u < snapshots.length; u++) {
      snapshots[u]!.forEach((m, i) => expect(countKept(m.bits)).toBe(countKept(snapshots[u - 1]![i]!.bits)));
    }
    expect(snapshots[8]!.some((m, i) => m.bits.some((b, k) => b !== snapshots[4]![i]!.bits[k]))).toBe(true);
    expect(a.result.finalMasks).toBe(a.masks);
    expect(a.result.final.validation.accuracy).toBeGreaterThan(0.5);

    const tensorsBefore = tf.memory().numTensors;
    const b = await run(base, 3);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    a.finalWeights.forEach((t, i) => expect(bytes(t.values).equals(bytes(b.finalWeights[i]!.values))).toBe(true));
    a.masks.forEach((m, i) => expect(Buffer.from(m.bits).equals(Buffer.from(b.masks[i]!.bits))).toBe(true));
    expect(b.history).toEqual(a.history);
  });

  it('sparse-to-sparse starts from ERK at d_i and ends at d_f', async () => {
    await selectBackend('wasm');
    const r = await run({ ...base, initialDensity: 0.5 }, 5);
    // ERK places round(d_l·n_l) per layer: within one weight per layer of d_i·N.
    expect(Math.abs(kept(r.initialMasks) - 0.5 * N)).toBeLessThanOrEqual(r.initialMasks.length);
    expect(countKept(r.initialMasks[0]!.bits) / r.initialMasks[0]!.bits.length).toBeLessThan(countKept(r.initialMasks[1]!.bits) / r.initialMasks[1]!.bits.length);
    expect(kept(r.masks)).toBe(Math.floor(0.1 * N));
    expect(r.history[0]!.targetSparsity).toBeCloseTo(cubicSparsity(0.2, 0.5, 0.1), 15);
  });

  it('GMP (no regrowth) never revives a pruned weight and stops updating after the window', async () => {
    await selectBackend('wasm');
    let previous: MaskSet = denseMasks(specs);
    const r = await run({ ...base, regrow: false }, 3, (_u, masks) => {
      masks.forEach((m, i) => m.bits.forEach((b, k) => (b && !previous[i]!.bits[k] ? expect.fail(`${m.name}[${k}] revived`) : undefined)));
      previous = masks;
    });
    expect(r.history.map((h) => h.iteration)).toEqual([20, 40, 60, 80, 100]);
    expect(r.history.every((h) => h.regrown === 0 && h.regrowthRate === 0)).toBe(true);
    expect(kept(r.masks)).toBe(Math.floor(0.1 * N));
    r.masks.forEach((m, i) => expect(Buffer.from(m.bits).equals(Buffer.from(previous[i]!.bits))).toBe(true));
  });

  it('refuses bad options with InvalidRequestError before training, and stops on cancel', async () => {
    const bad: GradualOptionsInput[] = [
      { regrowthRate: 1.5 },
      { finalRegrowthRate: -0.1 },
      { initialDensity: 0.5, finalDensity: 0.5 },
      { finalDensity: 0.6, initialDensity: 0.5 },
      { updateEvery: 0 },
      { updateEvery: 2.5 },
      { pruneStart: 0.6, pruneEnd: 0.5 },
      { tensors: ['fc1.bias'] },
      { updateEvery: 150 }, // the window 0–100 holds no second update
    ];
    for (const options of bad) await expect(run(options)).rejects.toThrow(InvalidRequestError);
    await expect(run({ updateEvery: 0 })).rejects.toThrow(/updateEvery/);
    const controller = new AbortController();
    controller.abort();
    await expect(runGradual({ arch, specs, dataset, schedule, options: base, seed: 1, signal: controller.signal })).rejects.toThrow(CancelledError);
  });
});

describe('optimiser state at changed masks', () => {
  it.each(['sgd', 'adam'] as const)('%s: a weight pruned, then regrown, starts at 0 without stale momentum', async (name) => {
    await selectBackend('wasm');
    const masks = denseMasks(specs);
    const net = new MaskedNetwork(arch, specs, initWeights(specs, 1), masks);
    const optimizer = createOptimizer(name === 'sgd' ? sgd : { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 1e-3 }, net);
    try {
      const ones = (shape: number[]) => tf.ones(shape);
      const grads = Object.fromEntries([...net.params].map(([n, v]) => [n, ones(v.shape)]));
      optimizer.step(grads); // state now non-zero everywhere
      const bits = masks[1]!.bits.slice();
      bits[0] = 0;
      net.setMask('fc2.kernel', bits);
      optimizer.maskState('fc2.kernel', bits);
      bits[0] = 1;
      net.setMask('fc2.kernel', bits); // regrown: weight 0
      const zeros = Object.fromEntries([...net.params].map(([n, v]) => [n, tf.zeros(v.shape)]));
      optimizer.step(zeros);
      const w = (await net.params.get('fc2.kernel')!.data()) as Float32Array;
      expect(w[0]).toBe(0); // no momentum moved it
      expect(w[1]).not.toBe(0);
      for (const t of [...Object.values(grads), ...Object.values(zeros)]) t.dispose();
    } finally {
      optimizer.dispose();
      net.dispose();
    }
  });
});
