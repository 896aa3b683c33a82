import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, InvalidRequestError } from '../../../core/api/errors';
import { loadDataset } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { MaskedNetwork } from '../../../core/models/network';
import { type WeightSet, initWeights } from '../../../core/models/weights';
import { sparsityBudget } from '../../../core/pruning/budget';
import { denseMasks } from '../../../core/pruning/imp';
import { type MaskSet, countKept } from '../../../core/pruning/mask';
import { randomStrategy } from '../../../core/pruning/random';
import { scoringBatch, scoringForward } from '../../../core/pruning/score-network';
import { snipParams, snipScores, snipStrategy } from '../../../core/pruning/snip';
import type { PruneBudget } from '../../../core/pruning/strategy';
import { tinyConv } from '../../support/tiny-nets';
import { useBackend } from '../../support/backends';

const dataset = loadDataset('mnist', { validationSize: 500 });
const arch = architecture('lenet-300-100');
const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
const kernels = specs.filter((s) => s.prunable).map((s) => s.name);
const context = { arch, specs, dataset };

function input(weights: WeightSet, masks: MaskSet, budget: PruneBudget, seed = 5) {
  return { weights, masks, budget, params: snipParams.parse({}), seed, context };
}

/** Per-example training losses of the masked network (TF.js's own ops) on the scoring batch. */
function maskedLosses(weights: WeightSet, masks: MaskSet, x: tf.Tensor4D, y: tf.Tensor2D): Float32Array {
  const net = new MaskedNetwork(arch, specs, weights, masks);
  try {
    return tf.tidy(() => tf.losses.softmaxCrossEntropy(y, net.forward(x), undefined, undefined, tf.Reduction.NONE).dataSync() as Float32Array);
  } finally {
    net.dispose();
  }
}

/** The mean loss of `plus` minus that of `minus`, differenced per example in doubles: a float32 mean would round away most of a small change. */
function lossChange(plus: Float32Array, minus: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < plus.length; i++) sum += plus[i]! - minus[i]!;
  return sum / plus.length;
}

describe('SNIP', () => {
  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('scores |g·w| = |∂L/∂m| at m = 1, as central differences of the masked loss in the mask entry say', async () => {
    const weights = initWeights(specs, 1);
    const masks = denseMasks(specs);
    const budget = sparsityBudget(masks, 0.9, 'global', kernels);
    const before = tf.memory().numTensors;
    const scores = await snipScores(input(weights, masks, budget));
    expect(tf.memory().numTensors).toBe(before);

    // The largest scores of each layer: float32 losses resolve their differences well.
    const chosen: Array<{ tensor: number; index: number; score: number }> = [];
    for (const name of kernels) {
      const s = scores.get(name)!;
      const top = Array.from(s.keys()).sort((a, b) => s[b]! - s[a]!).slice(0, 3);
      const tensor = weights.findIndex((w) => w.name === name);
      for (const index of top) chosen.push({ tensor, index, score: s[index]! });
    }
    const batch = scoringBatch(dataset, 10, 5);
    const x = tf.tensor4d(batch.x, [batch.count, 28, 28, 1]);
    const y = tf.oneHot(tf.tensor1d(batch.labels, 'int32'), 10) as tf.Tensor2D;
    // Small, so that no example's ReLU switches (h = 1e-2 put one fc1 entry 1.7 % off); the error measured here is ≤ 1.2e-3.
    const h = 1e-3;
    for (const { tensor, index, score } of chosen) {
      // m = 1 ± h on one entry scales its weight by 1 ± h.
      const scaled = (factor: number) => weights.map((w, t) => (t === tensor ? { ...w, values: w.values.map((v, i) => (i === index ? v * factor : v)) } : w));
      const dLdm = lossChange(maskedLosses(scaled(1 + h), masks, x, y), maskedLosses(scaled(1 - h), masks, x, y)) / (2 * h);
      expect(Math.abs(Math.abs(dLdm) - score) / score).toBeLessThan(2e-2);
    }
    tf.dispose([x, y]);
  });

  it('keeps exactly the budget at 90 % global sparsity, never revives pruned entries, and scores the masked network', async () => {
    const weights = initWeights(specs, 2);
    // An incoming mask with half of every layer pruned, its weights zeroed as stored weights are.
    const half = await randomStrategy.prune({ weights: [], masks: denseMasks(specs), budget: sparsityBudget(denseMasks(specs), 0.5, 'layer', kernels), params: {}, seed: 8 });
    const zeroed = weights.map((w) => {
      const m = half.find((h) => h.name === w.name);
      return m ? { ...w, values: w.values.map((v, i) => (m.bits[i] ? v : 0)) } : w;
    });
    const budget = sparsityBudget(denseMasks(specs), 0.9, 'global', kernels);
    const before = tf.memory().numTensors;
    const next = await snipStrategy.prune(input(zeroed, half, budget));
    expect(tf.memory().numTensors).toBe(before);
    expect(budget.scope === 'global' && budget.keep).toBe(26_620); // round(0.1 · 266,200)
    expect(next.reduce((n, m) => n + countKept(m.bits), 0)).toBe(26_620);
    for (const m of next) {
      const incoming = half.find((h) => h.name === m.name)!;
      for (let i = 0; i < m.bits.length; i++) if (!incoming.bits[i]) expect(m.bits[i]).toBe(0);
    }
    // The incoming masks are left as they were.
    expect(half.reduce((n, m) => n + countKept(m.bits), 0)).toBe(133_100);

    // The forward is the masked network's: weights left non-zero at pruned entries change nothing.
    const unzeroed = await snipScores(input(weights, half, budget));
    const stored = await snipScores(input(zeroed, half, budget));
    for (const name of kernels) expect(unzeroed.get(name)).toEqual(stored.get(name));
  });

  it('prunes layer-wise to exact per-tensor counts, and only the budget\'s tensors', async () => {
    const weights = initWeights(specs, 3);
    const budget: PruneBudget = { scope: 'layer', keep: { 'fc1.kernel': 1000, 'fc2.kernel': 300 } };
    const next = await snipStrategy.prune(input(weights, denseMasks(specs), budget));
    expect(next.map((m) => countKept(m.bits))).toEqual([1000, 300, 1000]);
  });

  it('gives the same mask for the same seed, and draws its scoring examples from the seed', async () => {
    const weights = initWeights(specs, 4);
    const budget = sparsityBudget(denseMasks(specs), 0.9, 'global', kernels);
    const a = await snipStrategy.prune(input(weights, denseMasks(specs), budget, 11));
    const b = await snipStrategy.prune(input(weights, denseMasks(specs), budget, 11));
    const c = await snipStrategy.prune(input(weights, denseMasks(specs), budget, 12));
    expect(a.map((m) => Buffer.from(m.bits).toString('base64'))).toEqual(b.map((m) => Buffer.from(m.bits).toString('base64')));
    expect(Buffer.from(a[0]!.bits).equals(Buffer.from(c[0]!.bits))).toBe(false);
    const batch = scoringBatch(dataset, 10, 11);
    expect(batch.count).toBe(100);
    expect(batch.x.length).toBe(100 * 784);
    expect(scoringBatch(dataset, 10, 11).x).toEqual(batch.x);
  });

  it('refuses a missing context, unknown params and non-prunable budget tensors with InvalidRequestError; stops when aborted', async () => {
    const weights = initWeights(specs, 1);
    const masks = denseMasks(specs);
    const budget = sparsityBudget(masks, 0.9, 'global', kernels);
    await expect(snipStrategy.prune({ weights, masks, budget, params: { examplesPerClass: 10 }, seed: 1 })).rejects.toThrow(InvalidRequestError);
    await expect(snipStrategy.prune({ weights, masks, budget, params: { examplesPerClass: 10 }, seed: 1, context: { arch, specs } })).rejects.toThrow(/needs the training dataset/);
    await expect(snipStrategy.prune({ ...input(weights, masks, { scope: 'layer', keep: { 'fc1.bias': 10 } }) })).rejects.toThrow(/not prunable/);
    expect(() => snipParams.parse({ examplesPerClass: 0 })).toThrow();
    expect(() => snipParams.parse({ batch: 3 })).toThrow();
    expect(snipParams.parse({})).toEqual({ examplesPerClass: 10 });
    const before = tf.memory().numTensors;
    await expect(snipStrategy.prune(input(weights, masks, budget), AbortSignal.abort())).rejects.toThrow(CancelledError);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('forwards as the masked network does, on LeNet and on a conv net', () => {
    for (const a of [arch, tinyConv]) {
      const s = paramSpecs(a, dataset.imageShape, 10);
      const weights = initWeights(s, 6);
      const net = new MaskedNetwork(a, s, weights, denseMasks(s));
      const batch = scoringBatch(dataset, 1, 6);
      const diff = tf.tidy(() => {
        const x = tf.tensor4d(batch.x, [batch.count, 28, 28, 1]);
        const params = new Map(weights.map((w) => [w.name, tf.tensor(w.values, w.shape)]));
        const ours = scoringForward(a, (name) => params.get(name)!, x);
        return tf.max(tf.abs(tf.sub(ours, net.forward(x)))).dataSync()[0]!;
      });
      net.dispose();
      expect(diff).toBeLessThan(1e-5);
    }
  });
});
