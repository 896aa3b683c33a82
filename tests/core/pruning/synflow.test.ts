import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, InvalidRequestError, TrainingDivergedError } from '../../../core/api/errors';
import { Rng } from '../../../core/compute/rng';
import type { LoadedDataset } from '../../../core/data/datasets';
import { type Architecture, type ParamSpec, architecture, paramSpecs } from '../../../core/models/architectures';
import { type WeightSet, initWeights } from '../../../core/models/weights';
import { sparsityBudget } from '../../../core/pruning/budget';
import { type MaskSet, countKept, onesMask } from '../../../core/pruning/mask';
import type { PruneContext } from '../../../core/pruning/strategy';
import { synflowParams, synflowScores, synflowStrategy } from '../../../core/pruning/synflow';
import { useBackend } from '../../support/backends';

// A 2-layer net 4 → 3 → 2 as a zoo-style architecture, for the closed form.
const tinyArch: Architecture = {
  id: 'tiny',
  title: 'tiny 4-3-2',
  layers: [
    { kind: 'flatten' },
    { kind: 'dense', name: 'fc1', units: 3, activation: 'relu', role: 'fc' },
    { kind: 'dense', name: 'fc2', units: 2, activation: 'linear', role: 'output' },
  ],
  lthRates: { conv: 0, fc: 0.2, output: 0.1 },
  lthScope: 'layer',
  lthTraining: { optimizer: 'adam', learningRate: 1e-3, momentum: 0, weightDecay: 0, batchSize: 1, iterations: 1 },
};
const tinySpecs = paramSpecs(tinyArch, [1, 1, 4], 2);
const lenet = architecture('lenet-300-100');
const lenetSpecs = paramSpecs(lenet, [28, 28, 1], 10);
const lenetKernels = lenetSpecs.filter((s) => s.prunable).map((s) => s.name);

/** Weights with signs and non-zero biases, so |θ| and the biases both matter. */
function signedWeights(specs: readonly ParamSpec[], seed: number): WeightSet {
  const rng = Rng.stream(seed, 'synflow-test');
  return specs.map((s) => ({ name: s.name, shape: [...s.shape], values: Float32Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => rng.normal()) }));
}

function kernelMasks(specs: readonly ParamSpec[]): MaskSet {
  return specs.filter((s) => s.prunable).map((s) => onesMask(s.name, s.shape));
}

function values(weights: WeightSet, name: string): Float32Array {
  return weights.find((t) => t.name === name)!.values;
}

/**
 * SynFlow scores of a chain of dense layers in closed form: with |θ| and an all-ones input every
 * ReLU passes its input, so a_l = a_{l-1}·|W_l| + |b_l|, g_l = |W_{l+1}|·g_{l+1} (g of the output 1),
 * and the score of W_l[i, j] is a_{l-1,i}·|W_l[i, j]|·g_{l,j}.
 */
function closedForm(layers: string[], weights: WeightSet, masks: MaskSet, inputSize: number): Map<string, Float64Array> {
  const w = layers.map((l) => {
    const bits = masks.find((m) => m.name === `${l}.kernel`)!.bits;
    return values(weights, `${l}.kernel`).map((v, i) => (bits[i] ? Math.abs(v) : 0));
  });
  const b = layers.map((l) => values(weights, `${l}.bias`).map(Math.abs));
  const sizes = [inputSize, ...b.map((x) => x.length)];
  const a: Float64Array[] = [new Float64Array(inputSize).fill(1)];
  for (let l = 0; l < layers.length; l++) {
    const next = Float64Array.from(b[l]!);
    for (let i = 0; i < sizes[l]!; i++) for (let j = 0; j < sizes[l + 1]!; j++) next[j]! += a[l]![i]! * w[l]![i * sizes[l + 1]! + j]!;
    a.push(next);
  }
  const g: Float64Array[] = [];
  g[layers.length] = new Float64Array(sizes[layers.length]!).fill(1);
  for (let l = layers.length - 1; l >= 1; l--) {
    const prev = new Float64Array(sizes[l]!);
    for (let i = 0; i < sizes[l]!; i++) for (let j = 0; j < sizes[l + 1]!; j++) prev[i]! += w[l]![i * sizes[l + 1]! + j]! * g[l + 1]![j]!;
    g[l] = prev;
  }
  const out = new Map<string, Float64Array>();
  layers.forEach((name, l) => {
    const s = new Float64Array(w[l]!.length);
    for (let i = 0; i < sizes[l]!; i++) for (let j = 0; j < sizes[l + 1]!; j++) s[i * sizes[l + 1]! + j] = a[l]![i]! * w[l]![i * sizes[l + 1]! + j]! * g[l + 1]![j]!;
    out.set(`${name}.kernel`, s);
  });
  return out;
}

function expectClose(actual: Float32Array, expected: Float64Array, relative: number): void {
  expect(actual.length).toBe(expected.length);
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  for (let i = 0; i < actual.length; i++) {
    if (Math.abs(actual[i]! - expected[i]!) > relative * scale) expect.fail(`entry ${i}: ${actual[i]} against ${expected[i]}`);
  }
}

const keptPerLayer = (masks: MaskSet) => masks.map((m) => countKept(m.bits));
const lenetContext: PruneContext = { arch: lenet, specs: lenetSpecs };
const defaults = synflowParams.parse({});

beforeAll(async () => {
  await useBackend('cpu');
});

describe('SynFlow scores', () => {
  it('match the closed form on a 2-layer net, pruned entries scoring 0', async () => {
    const weights = signedWeights(tinySpecs, 1);
    const masks = kernelMasks(tinySpecs);
    masks[0]!.bits[4] = 0; // w1[1, 1]
    masks[1]!.bits[1] = 0; // w2[0, 1]
    const scores = await synflowScores({ arch: tinyArch, specs: tinySpecs, weights, masks, imageShape: [1, 1, 4] });
    const w1 = values(weights, 'fc1.kernel').map((v, i) => (masks[0]!.bits[i] ? Math.abs(v) : 0));
    const b1 = values(weights, 'fc1.bias').map(Math.abs);
    const w2 = values(weights, 'fc2.kernel').map((v, i) => (masks[1]!.bits[i] ? Math.abs(v) : 0));
    // score(w1[i,j]) = |w1[i,j]|·1·Σ_k |w2[j,k]|; score(w2[j,k]) = (Σ_i |w1[i,j]|·1 + |b1_j|)·|w2[j,k]|.
    const expected1 = new Float64Array(12);
    for (let i = 0; i < 4; i++) for (let j = 0; j < 3; j++) expected1[i * 3 + j] = w1[i * 3 + j]! * (w2[j * 2]! + w2[j * 2 + 1]!);
    const expected2 = new Float64Array(6);
    for (let j = 0; j < 3; j++) {
      const h = w1[j]! + w1[3 + j]! + w1[6 + j]! + w1[9 + j]! + b1[j]!;
      for (let k = 0; k < 2; k++) expected2[j * 2 + k] = h * w2[j * 2 + k]!;
    }
    expectClose(scores.get('fc1.kernel')!, expected1, 1e-6);
    expectClose(scores.get('fc2.kernel')!, expected2, 1e-6);
    expect(scores.get('fc1.kernel')![4]).toBe(0);
    expect(scores.get('fc2.kernel')![1]).toBe(0);
  });

  it('match the 3-layer path products on LeNet-300-100 with a random mask', async () => {
    const weights = initWeights(lenetSpecs, 3);
    const masks = kernelMasks(lenetSpecs);
    const rng = Rng.stream(3, 'mask');
    for (const m of masks) for (let i = 0; i < m.bits.length; i++) m.bits[i] = rng.next() < 0.5 ? 1 : 0;
    const scores = await synflowScores({ arch: lenet, specs: lenetSpecs, weights, masks, imageShape: [28, 28, 1] });
    const expected = closedForm(['fc1', 'fc2', 'fc3'], weights, masks, 784);
    for (const name of lenetKernels) expectClose(scores.get(name)!, expected.get(name)!, 1e-5);
  });

  it('fail with a clear error when the path products overflow float32', async () => {
    const weights = signedWeights(tinySpecs, 2).map((t) => ({ ...t, values: t.values.map((v) => v * 1e25) }));
    const input = { arch: tinyArch, specs: tinySpecs, weights, masks: kernelMasks(tinySpecs), imageShape: [1, 1, 4] as const };
    await expect(synflowScores(input)).rejects.toThrow(TrainingDivergedError);
    await expect(synflowScores(input)).rejects.toThrow(/overflows float32/);
  });
});

describe('SynFlow strategy', () => {
  it('keeps exactly the budget on LeNet-300-100 at 90 % and 99 %, never reviving an entry, leaking no tensor', async () => {
    const weights = initWeights(lenetSpecs, 5);
    const masks = kernelMasks(lenetSpecs);
    masks[2]!.bits.fill(0, 0, 100); // already pruned: must stay so
    for (const sparsity of [0.9, 0.99]) {
      const budget = sparsityBudget(masks, sparsity, 'global', lenetKernels);
      const before = tf.memory().numTensors;
      const next = await synflowStrategy.prune({ weights, masks, budget, params: { rounds: 20, schedule: 'exponential' }, seed: 0, context: lenetContext });
      expect(tf.memory().numTensors).toBe(before);
      expect(keptPerLayer(next).reduce((a, b) => a + b, 0)).toBe(Math.round((1 - sparsity) * 266_200));
      for (let i = 0; i < 100; i++) expect(next[2]!.bits[i]).toBe(0);
    }
  });

  it('keeps every layer connected at 99.9 % with 100 rounds (no layer collapse)', async () => {
    const weights = initWeights(lenetSpecs, 0);
    const masks = kernelMasks(lenetSpecs);
    const budget = sparsityBudget(masks, 0.999, 'global', lenetKernels);
    const synflow = await synflowStrategy.prune({ weights, masks, budget, params: defaults, seed: 0, context: lenetContext });
    const kept = keptPerLayer(synflow);
    expect(kept.reduce((a, b) => a + b, 0)).toBe(266);
    for (const k of kept) expect(k).toBeGreaterThan(0);
    // For contrast (not asserted): global magnitude at init on the same weights kept [0, 117, 149],
    // fc1 cut off entirely; SynFlow kept [115, 56, 95].
  });

  it('lands on the budget with the linear schedule too, and with an existing sparser start', async () => {
    const weights = signedWeights(tinySpecs, 4);
    const masks = kernelMasks(tinySpecs);
    masks[0]!.bits.fill(0, 0, 6); // 6 of 12 kept in fc1
    const context = { arch: tinyArch, specs: tinySpecs };
    const budget = { scope: 'global' as const, keep: 7, tensors: ['fc1.kernel', 'fc2.kernel'] };
    const next = await synflowStrategy.prune({ weights, masks, budget, params: { rounds: 5, schedule: 'linear' }, seed: 0, context });
    expect(keptPerLayer(next).reduce((a, b) => a + b, 0)).toBe(7);
    for (let i = 0; i < 6; i++) expect(next[0]!.bits[i]).toBe(0);
  });

  it('refuses a layer budget, a missing context, and a conv net without the image shape', async () => {
    const weights = initWeights(lenetSpecs, 0);
    const masks = kernelMasks(lenetSpecs);
    const global = sparsityBudget(masks, 0.5, 'global', lenetKernels);
    const layer = sparsityBudget(masks, 0.5, 'layer', lenetKernels);
    const input = { weights, masks, params: defaults, seed: 0 };
    await expect(synflowStrategy.prune({ ...input, budget: layer, context: lenetContext })).rejects.toThrow(InvalidRequestError);
    await expect(synflowStrategy.prune({ ...input, budget: global })).rejects.toThrow(/context/);
    const conv2 = architecture('conv-2');
    const convSpecs = paramSpecs(conv2, [32, 32, 3], 10);
    const convInput = { weights: initWeights(convSpecs, 0), masks: kernelMasks(convSpecs), params: defaults, seed: 0 };
    const convBudget = sparsityBudget(convInput.masks, 0.5, 'global', convInput.masks.map((m) => m.name));
    await expect(synflowStrategy.prune({ ...convInput, budget: convBudget, context: { arch: conv2, specs: convSpecs } })).rejects.toThrow(/image shape/);
    const mnist = { imageShape: [28, 28, 1] } as LoadedDataset; // specs built for 32×32×3
    await expect(synflowStrategy.prune({ ...convInput, budget: convBudget, context: { arch: conv2, specs: convSpecs, dataset: mnist } })).rejects.toThrow(/do not fit/);
  });

  it('scores a conv net through the dataset image shape', async () => {
    const conv2 = architecture('conv-2');
    // 8×8 images keep the cpu backend quick; the shape comes from the dataset, as for CIFAR.
    const specs = paramSpecs(conv2, [8, 8, 3], 10);
    const masks = kernelMasks(specs);
    const budget = sparsityBudget(masks, 0.9, 'global', masks.map((m) => m.name));
    const dataset = { imageShape: [8, 8, 3] } as LoadedDataset;
    const next = await synflowStrategy.prune({ weights: initWeights(specs, 0), masks, budget, params: { rounds: 2, schedule: 'exponential' }, seed: 0, context: { arch: conv2, specs, dataset } });
    expect(keptPerLayer(next).reduce((a, b) => a + b, 0)).toBe(budget.keep);
  });

  it('stops between rounds when aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const masks = kernelMasks(lenetSpecs);
    const budget = sparsityBudget(masks, 0.9, 'global', lenetKernels);
    const run = synflowStrategy.prune({ weights: initWeights(lenetSpecs, 0), masks, budget, params: defaults, seed: 0, context: lenetContext }, controller.signal);
    await expect(run).rejects.toThrow(CancelledError);
  });
});
