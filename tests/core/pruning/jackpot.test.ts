import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, InvalidRequestError } from '../../../core/api/errors';
import { Rng } from '../../../core/compute/rng';
import { type LoadedDataset, loadDataset } from '../../../core/data/datasets';
import { type Architecture, architecture, paramSpecs } from '../../../core/models/architectures';
import { maskedCopy } from '../../../core/models/network';
import { type WeightSet, initWeights } from '../../../core/models/weights';
import { sparsityBudget } from '../../../core/pruning/budget';
import { denseMasks } from '../../../core/pruning/imp';
import { jackpotBudget, jackpotParams, jackpotStrategy, searchJackpot, shortRestriction, straightThrough } from '../../../core/pruning/jackpot';
import { type MaskSet, countKept } from '../../../core/pruning/mask';
import { DEFAULT_OPTIMIZER } from '../../../core/train/optimizers';
import { evaluateWeights, trainMasked } from '../../../core/train/train';
import { useBackend } from '../../support/backends';

const full = loadDataset('mnist', { validationSize: 2000 });
const arch = architecture('lenet-300-100');
const specs = paramSpecs(arch, full.imageShape, full.numClasses);
const kernels = specs.filter((s) => s.prunable).map((s) => s.name);
const dense = denseMasks(specs);

/** The first `count` training examples: short searches need no more, and an epoch stays a few steps. */
function subset(count: number): LoadedDataset {
  const size = full.train.images.length / full.train.count;
  return { ...full, train: { images: full.train.images.subarray(0, count * size), labels: full.train.labels.subarray(0, count), count } };
}
const small = subset(2048);

function searchInput<P>(weights: WeightSet, masks: MaskSet, params: P, seed = 7, dataset = small) {
  return { weights, masks, budget: sparsityBudget(masks, 0.9, 'global', kernels), params, seed, context: { arch, specs, dataset } };
}

/** Element-wise equality of mask sets; vitest's deep equality takes seconds on LeNet's 266k entries. */
function sameMasks(a: MaskSet, b: MaskSet): boolean {
  return a.length === b.length && a.every((m, i) => m.name === b[i]!.name && Buffer.from(m.bits).equals(Buffer.from(b[i]!.bits)));
}

function pruned(masks: MaskSet, name: string): number {
  const m = masks.find((x) => x.name === name)!;
  return m.bits.length - countKept(m.bits);
}

/** The short restriction by a full sort, to check the quickselect one against. */
function referenceRestriction(bits: Uint8Array, scores: Float32Array, p: number, rate: number): number {
  const theta = Float32Array.from(scores).sort()[p - 1]!;
  const a = [...bits.keys()].filter((i) => bits[i] === 0 && scores[i]! > theta).sort((i, j) => scores[j]! - scores[i]! || i - j);
  const b = [...bits.keys()].filter((i) => bits[i] === 1 && scores[i]! <= theta).sort((i, j) => scores[i]! - scores[j]! || i - j);
  if (a.length === 0 || a.length !== b.length) return 0;
  const r = Math.ceil(rate * a.length - 1e-9);
  for (let k = 0; k < r; k++) {
    bits[a[k]!] = 1;
    bits[b[k]!] = 0;
  }
  return r;
}

describe('lottery jackpots', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });

  it('prunes floor(r_l·n_l) per layer from one magnitude threshold over all but the classifier, which stays dense', () => {
    const weights = initWeights(specs, 3);
    const budget = sparsityBudget(dense, 0.9, 'global', kernels);
    const result = jackpotBudget(weights, dense, budget, specs);
    expect(result.sparsity).toBeCloseTo(0.9, 12);
    expect(result.classifier).toEqual(['fc3.kernel']);
    expect(result.layers.map((l) => l.name)).toEqual(['fc1.kernel', 'fc2.kernel']);

    // The paper's generate_pr_cfg: keep int(N·(1 − s)) over fc1 and fc2; the threshold is the smallest kept |w|.
    // Without the rounding noise of doubles: N·(1 − 0.9) is 26519.999999999996 for N = 265,200.
    const searched = weights.filter((w) => w.name === 'fc1.kernel' || w.name === 'fc2.kernel');
    const all = Float64Array.from(searched.flatMap((w) => Array.from(w.values, Math.abs))).sort().reverse();
    const preserve = Math.floor(Number((all.length * (1 - 0.9)).toPrecision(12)));
    expect(preserve).toBe(26520);
    const threshold = all[preserve - 1]!;
    for (const w of searched) {
      const below = w.values.reduce((n, v) => n + (Math.abs(v) < threshold ? 1 : 0), 0);
      const rate = below / w.values.length;
      const layer = result.layers.find((l) => l.name === w.name)!;
      expect(layer.pruned).toBe(Math.floor(rate * w.values.length + 1e-9));
      // b = 0 exactly on the P_l smallest |w| (§7.2).
      const bits = result.masks.find((m) => m.name === w.name)!.bits;
      expect(pruned(result.masks, w.name)).toBe(layer.pruned);
      const misplaced = w.values.reduce((n, v, i) => n + (bits[i] !== (Math.abs(v) < threshold ? 0 : 1) ? 1 : 0), 0);
      expect(misplaced).toBe(0);
    }
    expect(result.layers.reduce((n, l) => n + l.pruned, 0)).toBe(all.length - preserve);
    expect(countKept(result.masks.find((m) => m.name === 'fc3.kernel')!.bits)).toBe(10 * 100);

    // A driver that leaves the classifier out of the budget gets the same counts.
    const without = jackpotBudget(weights, dense, sparsityBudget(dense, 0.9, 'global', ['fc1.kernel', 'fc2.kernel']), specs);
    expect(without.layers).toEqual(result.layers);
    expect(() => jackpotBudget(weights, dense, sparsityBudget(dense, 0.9, 'layer', kernels), specs)).toThrow(InvalidRequestError);
  });

  it('short restriction: no change unless |A| = |B| > 0, then ceil(rate·|A|) swaps of the highest pruned with the lowest kept', () => {
    // Ties at θ: A = {3}, B = {0, 1}; no change.
    const tied = Uint8Array.from([1, 1, 0, 0]);
    expect(shortRestriction(tied, Float32Array.from([0.3, 0.3, 0.3, 0.9]), 2, 1)).toBe(0);
    expect([...tied]).toEqual([1, 1, 0, 0]);
    // The magnitude initialisation (kept 1, pruned 0.99): A and B empty.
    const initial = Uint8Array.from([1, 0, 1, 0]);
    expect(shortRestriction(initial, Float32Array.from([1, 0.99, 1, 0.99]), 2, 1)).toBe(0);
    expect([...initial]).toEqual([1, 0, 1, 0]);

    // P = 4, θ = 0.3: A = {1: 0.8, 2: 0.9, 3: 0.7}, B = {4: 0.2, 5: 0.3, 6: 0.25}.
    const scores = Float32Array.from([0.1, 0.8, 0.9, 0.7, 0.2, 0.3, 0.25, 1.0, 1.1, 1.2]);
    const bits = () => Uint8Array.from([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
    const all = bits();
    expect(shortRestriction(all, scores, 4, 1)).toBe(3);
    expect([...all]).toEqual([0, 1, 1, 1, 0, 0, 0, 1, 1, 1]);
    const half = bits();
    expect(shortRestriction(half, scores, 4, 0.5)).toBe(2); // ceil(1.5)
    expect([...half]).toEqual([0, 1, 1, 0, 0, 1, 0, 1, 1, 1]);
    const one = bits();
    expect(shortRestriction(one, scores, 4, 0.01)).toBe(1);
    expect([...one]).toEqual([0, 0, 1, 0, 0, 1, 1, 1, 1, 1]);
    // An entry the input mask pruned (score −∞) is never revived.
    const locked = Uint8Array.from([0, 1, 1]);
    expect(shortRestriction(locked, Float32Array.from([Number.NEGATIVE_INFINITY, 0.5, 0.7]), 1, 1)).toBe(0);
    expect([...locked]).toEqual([0, 1, 1]);

    // Random scores with many ties: the same as a full sort, and the pruned count never moves.
    const rng = Rng.stream(11, 'jackpot-test');
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + rng.int(60);
      const p = rng.int(n + 1);
      const s = Float32Array.from({ length: n }, () => rng.int(8) / 4);
      const b = new Uint8Array(n).fill(1);
      for (const i of rng.permutation(n).subarray(0, p)) b[i] = 0;
      const rate = [1, 0.5, 0.3][trial % 3]!;
      const expected = b.slice();
      const swaps = p === 0 ? 0 : referenceRestriction(expected, s, p, rate);
      expect(shortRestriction(b, s, p, rate)).toBe(swaps);
      expect([...b]).toEqual([...expected]);
      expect(n - countKept(b)).toBe(p);
    }
  });

  it('straight-through: the forward is exactly w ⊙ b, the score gradient dy ⊙ w', () => {
    const w = tf.tensor1d([0.3, -1.7, 2.5, 1e-8]);
    const b = tf.tensor1d([1, 0, 1, 0]);
    const s = tf.tensor1d([1, 0.99, 1, 0.99]);
    const dy = tf.tensor1d([2, 3, -1, 5]);
    const kernel = straightThrough(w, b);
    expect([...kernel(s).dataSync()]).toEqual([...tf.mul(w, b).dataSync()]);
    expect(Math.abs(kernel(s).dataSync()[1]!)).toBe(0);
    const grad = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(kernel(x), dy)))(s);
    expect([...grad.dataSync()]).toEqual([...tf.mul(dy, w).dataSync()]);
    tf.dispose([w, b, s, dy, grad]);
  });

  it('keeps every layer at exactly P_l pruned over a search, never touches the weights, repeats from its seed, leaks no tensor', async () => {
    const weights = initWeights(specs, 4);
    const copy = weights.map((w) => w.values.slice());
    const { layers } = jackpotBudget(weights, dense, sparsityBudget(dense, 0.9, 'global', kernels), specs);
    const before = tf.memory().numTensors;
    const reports: number[] = [];
    const run = (seed: number, iterations: number) =>
      searchJackpot(searchInput(weights, dense, { iterations, batchSize: 32 }, seed), { onProgress: (p) => reports.push(p.iteration) });
    const runs = [await run(7, 3), await run(7, 12), await run(7, 12), await run(8, 12)];
    expect(tf.memory().numTensors).toBe(before);
    expect(reports).toEqual([3, 10, 12, 10, 12, 10, 12]);
    for (const result of runs) {
      for (const layer of layers) expect(pruned(result.masks, layer.name)).toBe(layer.pruned);
      expect(countKept(result.masks.find((m) => m.name === 'fc3.kernel')!.bits)).toBe(1000);
    }
    // The search moved the mask, so the counts above are not trivially kept.
    expect(runs[1]!.swaps['fc1.kernel']! + runs[1]!.swaps['fc2.kernel']!).toBeGreaterThan(0);
    expect(sameMasks(runs[2]!.masks, runs[1]!.masks)).toBe(true);
    expect(sameMasks(runs[3]!.masks, runs[1]!.masks)).toBe(false);
    weights.forEach((w, i) => expect(Buffer.from(w.values.buffer).equals(Buffer.from(copy[i]!.buffer))).toBe(true));

    // The strategy is the search without progress.
    const viaStrategy = await jackpotStrategy.prune(searchInput(weights, dense, jackpotParams.parse({ iterations: 12, batchSize: 32 })));
    expect(sameMasks(viaStrategy, runs[1]!.masks)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('never revives what the input mask pruned, and counts it in P_l', async () => {
    const weights = initWeights(specs, 5);
    const masks = denseMasks(specs);
    const fc1 = masks.find((m) => m.name === 'fc1.kernel')!;
    // Prune some of fc1's largest weights: the magnitude threshold alone would keep them.
    const w1 = weights.find((w) => w.name === 'fc1.kernel')!;
    const order = [...w1.values.keys()].sort((a, b) => Math.abs(w1.values[b]!) - Math.abs(w1.values[a]!));
    for (const i of order.slice(0, 500)) fc1.bits[i] = 0;
    const stored = weights.map((w) => (w.name === 'fc1.kernel' ? { ...w, values: maskedCopy(w.values, fc1.bits) } : w));
    const result = await searchJackpot(searchInput(stored, masks, { iterations: 10, batchSize: 32 }));
    const bits = result.masks.find((m) => m.name === 'fc1.kernel')!.bits;
    for (const i of order.slice(0, 500)) expect(bits[i]).toBe(0);
    const { layers } = jackpotBudget(stored, masks, sparsityBudget(masks, 0.9, 'global', kernels), specs);
    expect(pruned(result.masks, 'fc1.kernel')).toBe(layers[0]!.pruned);
  });

  it('searches a conv net too: the first conv is pruned, the classifier stays dense', async () => {
    // Zoo-style and small, so a few steps cost little: conv 3×3×4, two pools, 196 → 16 → 10.
    const conv: Architecture = {
      id: 'tiny-conv',
      title: 'tiny conv',
      layers: [
        { kind: 'conv2d', name: 'conv1', filters: 4, kernelSize: 3, activation: 'relu', role: 'conv' },
        { kind: 'maxpool', size: 2 },
        { kind: 'maxpool', size: 2 },
        { kind: 'flatten' },
        { kind: 'dense', name: 'fc1', units: 16, activation: 'relu', role: 'fc' },
        { kind: 'dense', name: 'fc2', units: 10, activation: 'linear', role: 'output' },
      ],
      lthRates: { conv: 0.1, fc: 0.2, output: 0.1 },
      lthScope: 'layer',
      lthTraining: { optimizer: 'adam', learningRate: 1e-3, momentum: 0, weightDecay: 0, batchSize: 1, iterations: 1 },
    };
    const convSpecs = paramSpecs(conv, full.imageShape, full.numClasses);
    const convKernels = convSpecs.filter((s) => s.prunable).map((s) => s.name);
    const masks = denseMasks(convSpecs);
    const weights = initWeights(convSpecs, 9);
    const budget = sparsityBudget(masks, 0.5, 'global', convKernels);
    const before = tf.memory().numTensors;
    const result = await searchJackpot({ weights, masks, budget, params: { iterations: 20, batchSize: 32, learningRate: 1 }, seed: 1, context: { arch: conv, specs: convSpecs, dataset: small } });
    expect(tf.memory().numTensors).toBe(before);
    expect(result.budget.classifier).toEqual(['fc2.kernel']);
    for (const layer of result.budget.layers) expect(pruned(result.masks, layer.name)).toBe(layer.pruned);
    expect(result.budget.layers.find((l) => l.name === 'conv1.kernel')!.pruned).toBeGreaterThan(0);
    expect(pruned(result.masks, 'fc2.kernel')).toBe(0);
    expect(result.swaps['conv1.kernel']).toBeGreaterThan(0);
  });

  it('takes its length in iterations or epochs, refuses bad params, and stops when aborted without leaking', async () => {
    const weights = initWeights(specs, 6);
    expect(() => jackpotParams.parse({ iterations: 10, epochs: 1 })).toThrow();
    expect(() => jackpotParams.parse({ iterations: 0 })).toThrow();
    expect(() => jackpotParams.parse({ rate: 0 })).toThrow();
    expect(() => jackpotParams.parse({ lr: 0.1 })).toThrow();
    expect(jackpotParams.parse({})).toEqual({ batchSize: 256, learningRate: 0.1, momentum: 0.9, weightDecay: 5e-4, rate: 1 });
    await expect(searchJackpot(searchInput(weights, dense, { iterations: 10, epochs: 1 }))).rejects.toThrow(InvalidRequestError);
    await expect(searchJackpot({ ...searchInput(weights, dense, {}), context: { arch, specs } })).rejects.toThrow(InvalidRequestError);

    const tiny = subset(512);
    const byEpochs = await searchJackpot(searchInput(weights, dense, { epochs: 3, batchSize: 256 }, 7, tiny));
    expect(byEpochs.iterations).toBe(6);

    const before = tf.memory().numTensors;
    const aborted = new AbortController();
    aborted.abort();
    await expect(jackpotStrategy.prune(searchInput(weights, dense, jackpotParams.parse({ iterations: 5 })), aborted.signal)).rejects.toThrow(CancelledError);
    const midway = new AbortController();
    const search = searchJackpot(searchInput(weights, dense, { iterations: 1000, batchSize: 64 }), { signal: midway.signal, onProgress: () => midway.abort() });
    await expect(search).rejects.toThrow(CancelledError);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('finds a mask of a briefly trained LeNet-300-100 at 90 % sparsity that beats magnitude pruning with the same layer counts, without retraining', async () => {
    const trained = await trainMasked({
      arch, specs, dataset: full, weights: initWeights(specs, 1), masks: dense, dataSeed: 1,
      schedule: { iterations: 400, batchSize: 60, evalEvery: 1000, optimizer: { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 1.2e-3 } },
    });
    const weights = trained.finalWeights;
    const budget = sparsityBudget(dense, 0.9, 'global', kernels);
    const magnitude = jackpotBudget(weights, dense, budget, specs).masks;
    const jackpot = await searchJackpot({ weights, masks: dense, budget, params: { iterations: 100 }, seed: 3, context: { arch, specs, dataset: full } });
    const accuracy = async (masks: MaskSet) => {
      const prunedWeights = weights.map((w) => {
        const m = masks.find((x) => x.name === w.name);
        return m ? { ...w, values: maskedCopy(w.values, m.bits) } : w;
      });
      return (await evaluateWeights(arch, specs, full, prunedWeights, masks)).validation.accuracy;
    };
    const denseAccuracy = trained.final.validation.accuracy;
    const [byMagnitude, byJackpot] = [await accuracy(magnitude), await accuracy(jackpot.masks)];
    console.log(`LeNet-300-100, 400 Adam steps, 2000 validation images: dense ${denseAccuracy}, 90 % magnitude ${byMagnitude}, 90 % jackpot (100 steps) ${byJackpot}`);
    for (const name of ['fc1.kernel', 'fc2.kernel']) expect(pruned(jackpot.masks, name)).toBe(pruned(magnitude, name));
    expect(byJackpot).toBeGreaterThan(byMagnitude + 0.01);
  });
});
