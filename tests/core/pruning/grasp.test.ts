import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { CancelledError, InvalidRequestError } from '../../../core/api/errors';
import { loadDataset } from '../../../core/data/datasets';
import { type Architecture, type ParamSpec, architecture, paramSpecs } from '../../../core/models/architectures';
import { MaskedNetwork } from '../../../core/models/network';
import { type WeightSet, initWeights } from '../../../core/models/weights';
import { sparsityBudget } from '../../../core/pruning/budget';
import { type GraspParams, graspParams, graspScores, graspStrategy } from '../../../core/pruning/grasp';
import { denseMasks } from '../../../core/pruning/imp';
import { type MaskSet, countKept } from '../../../core/pruning/mask';
import { randomStrategy } from '../../../core/pruning/random';
import { scoringBatch } from '../../../core/pruning/score-network';
import type { PruneBudget } from '../../../core/pruning/strategy';
import { tinyConv } from '../../support/tiny-nets';
import { useBackend } from '../../support/backends';

const dataset = loadDataset('mnist', { validationSize: 500 });
const lenet = architecture('lenet-300-100');
/** LeNet without its ReLUs: smooth, so finite differences of its gradient converge at any small step. */
const linearLenet: Architecture = {
  ...lenet,
  id: 'lenet-linear',
  layers: lenet.layers.map((l) => (l.kind === 'dense' ? { ...l, activation: 'linear' as const } : l)),
};

interface Setup {
  arch: Architecture;
  specs: ParamSpec[];
  kernels: string[];
}
function setup(arch: Architecture): Setup {
  const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
  return { arch, specs, kernels: specs.filter((s) => s.prunable).map((s) => s.name) };
}
const lenetSetup = setup(lenet);

function input({ arch, specs }: Setup, weights: WeightSet, masks: MaskSet, budget: PruneBudget, params: Partial<GraspParams> = {}, seed = 5) {
  return { weights, masks, budget, params: graspParams.parse(params), seed, context: { arch, specs, dataset } };
}

/** Half of every kernel pruned at random, the weights zeroed there as stored weights are. */
async function halfPruned({ specs, kernels }: Setup, weights: WeightSet): Promise<{ masks: MaskSet; weights: WeightSet }> {
  const masks = await randomStrategy.prune({ weights: [], masks: denseMasks(specs), budget: sparsityBudget(denseMasks(specs), 0.5, 'layer', kernels), params: {}, seed: 8 });
  const zeroed = weights.map((w) => {
    const m = masks.find((h) => h.name === w.name);
    return m ? { ...w, values: w.values.map((v, i) => (m.bits[i] ? v : 0)) } : w;
  });
  return { masks, weights: zeroed };
}

/**
 * The reference Hg ⊙ θ, computed apart from the strategy: TF.js's own loss on the masked network
 * with all-ones masks (so the gradient is dense), and the fallback formula
 * Hg ≈ [∇L(θ+r·g) − ∇L(θ−r·g)]/(2r), r = step·max(1, ‖θ‖)/‖g‖, differenced in doubles.
 */
function referenceScores({ arch, specs, kernels }: Setup, weights: WeightSet, seed: number, step: number, temperature = 200): Map<string, Float64Array> {
  const batch = scoringBatch(dataset, 10, seed);
  const [h, w, c] = dataset.imageShape;
  const x = tf.tensor4d(batch.x, [batch.count, h, w, c]);
  const y = tf.oneHot(tf.tensor1d(batch.labels, 'int32'), dataset.numClasses);
  const gradient = (theta: Map<string, Float32Array>): Map<string, Float32Array> => {
    const net = new MaskedNetwork(arch, specs, weights.map((t) => ({ ...t, values: theta.get(t.name) ?? t.values })), denseMasks(specs));
    try {
      const values = tf.tidy(() => {
        const vars = kernels.map((name) => net.params.get(name)!);
        const { grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, tf.div(net.forward(x), temperature)) as tf.Scalar, vars);
        return vars.map((v) => grads[v.name]!.dataSync() as Float32Array);
      });
      return new Map(kernels.map((name, i) => [name, values[i]!]));
    } finally {
      net.dispose();
    }
  };
  const theta = new Map(kernels.map((name) => [name, weights.find((t) => t.name === name)!.values]));
  const g = gradient(theta);
  const norm = (m: Map<string, Float32Array>) => Math.sqrt([...m.values()].reduce((s, v) => s + v.reduce((a, b) => a + b * b, 0), 0));
  const r = (step * Math.max(1, norm(theta))) / norm(g);
  const shifted = (sign: number) => new Map(kernels.map((name) => [name, theta.get(name)!.map((v, i) => v + sign * r * g.get(name)![i]!)]));
  const plus = gradient(shifted(1));
  const minus = gradient(shifted(-1));
  tf.dispose([x, y]);
  return new Map(kernels.map((name) => {
    const t = theta.get(name)!;
    return [name, Float64Array.from(t, (v, i) => ((plus.get(name)![i]! - minus.get(name)![i]!) / (2 * r)) * v)];
  }));
}

function relativeError(actual: Float32Array, expected: Float64Array): number {
  let diff = 0;
  let size = 0;
  for (let i = 0; i < expected.length; i++) {
    diff += (actual[i]! - expected[i]!) ** 2;
    size += expected[i]! ** 2;
  }
  return Math.sqrt(diff / size);
}

/** Fraction of the top `fraction` entries of `a` that are also in the top of `b`. */
function topOverlap(a: ArrayLike<number>, b: ArrayLike<number>, fraction: number): number {
  const k = Math.round(a.length * fraction);
  const top = (s: ArrayLike<number>) => Array.from({ length: s.length }, (_, i) => i).sort((i, j) => s[j]! - s[i]!).slice(0, k);
  const inA = new Set(top(a));
  return top(b).filter((i) => inA.has(i)).length / k;
}

describe('GraSP on cpu', () => {
  it('computes Hg exactly: on a smooth net it matches the finite difference of the gradient, with dense g through pruned entries', async () => {
    await useBackend('cpu');
    const linear = setup(linearLenet);
    const { masks, weights } = await halfPruned(linear, initWeights(linear.specs, 1));
    const budget = sparsityBudget(masks, 0.9, 'global', linear.kernels);
    const before = tf.memory().numTensors;
    const exact = await graspScores(input(linear, weights, masks, budget, { hessian: 'exact' }));
    const fd = await graspScores(input(linear, weights, masks, budget, { hessian: 'finite-difference' }));
    expect(tf.memory().numTensors).toBe(before);
    expect(exact.hessianPath).toBe('exact');
    expect(fd.hessianPath).toBe('finite-difference');
    const reference = referenceScores(linear, weights, 5, 1e-3);
    for (const name of linear.kernels) {
      expect(relativeError(exact.scores.get(name)!, reference.get(name)!)).toBeLessThan(1e-2);
      // The fallback is the same formula as the reference, computed by other code.
      expect(relativeError(fd.scores.get(name)!, reference.get(name)!)).toBeLessThan(1e-2);
      expect(topOverlap(exact.scores.get(name)!, fd.scores.get(name)!, 0.1)).toBeGreaterThan(0.9);
    }
  });

  it('computes Hg exactly on LeNet (ReLU): it matches finite differences taken with a step too small to switch any ReLU', async () => {
    const weights = initWeights(lenetSetup.specs, 1);
    const masks = denseMasks(lenetSetup.specs);
    const budget = sparsityBudget(masks, 0.9, 'global', lenetSetup.kernels);
    const exact = await graspScores(input(lenetSetup, weights, masks, budget, { hessian: 'exact' }));
    // At the fallback's own step (1e-3) a few ReLUs switch between θ−r·g and θ+r·g, and each
    // switch adds its jump / 2r; autodiff, like PyTorch's, takes the ReLU's second derivative as 0.
    const reference = referenceScores(lenetSetup, weights, 5, 1e-6);
    for (const name of lenetSetup.kernels) expect(relativeError(exact.scores.get(name)!, reference.get(name)!)).toBeLessThan(2e-2);
  });

  it('runs the fallback formula on LeNet as written, and its ranking of the output layer agrees with the exact one', async () => {
    const weights = initWeights(lenetSetup.specs, 2);
    const masks = denseMasks(lenetSetup.specs);
    const budget = sparsityBudget(masks, 0.9, 'global', lenetSetup.kernels);
    const exact = await graspScores(input(lenetSetup, weights, masks, budget, { hessian: 'exact' }));
    const fd = await graspScores(input(lenetSetup, weights, masks, budget, { hessian: 'finite-difference' }));
    const reference = referenceScores(lenetSetup, weights, 5, 1e-3);
    for (const name of lenetSetup.kernels) expect(relativeError(fd.scores.get(name)!, reference.get(name)!)).toBeLessThan(1e-2);
    // Only the output layer, whose inputs' ReLUs switch rarely enough: on fc1 (784×300) the
    // finite difference is dominated by switching ReLUs (measured Spearman 0.13–0.17 against exact).
    expect(topOverlap(exact.scores.get('fc3.kernel')!, fd.scores.get('fc3.kernel')!, 0.1)).toBeGreaterThan(0.9);
  });

  it('keeps the largest signed s = Hg ⊙ θ, exactly the budget at 90 % global, pruned entries staying pruned', async () => {
    const { masks, weights } = await halfPruned(lenetSetup, initWeights(lenetSetup.specs, 3));
    const budget = sparsityBudget(denseMasks(lenetSetup.specs), 0.9, 'global', lenetSetup.kernels);
    const before = tf.memory().numTensors;
    const next = await graspStrategy.prune(input(lenetSetup, weights, masks, budget));
    expect(tf.memory().numTensors).toBe(before);
    expect(next.reduce((n, m) => n + countKept(m.bits), 0)).toBe(26_620);
    const { scores } = await graspScores(input(lenetSetup, weights, masks, budget));
    let minKept = Infinity;
    let maxPruned = -Infinity;
    let mostNegative = { score: Infinity, kept: 1 };
    for (const m of next) {
      const incoming = masks.find((h) => h.name === m.name)!;
      const s = scores.get(m.name)!;
      for (let i = 0; i < m.bits.length; i++) {
        if (!incoming.bits[i]) {
          expect(m.bits[i]).toBe(0);
          continue;
        }
        if (m.bits[i]) minKept = Math.min(minKept, s[i]!);
        else maxPruned = Math.max(maxPruned, s[i]!);
        if (s[i]! < mostNegative.score) mostNegative = { score: s[i]!, kept: m.bits[i]! };
      }
    }
    expect(minKept).toBeGreaterThanOrEqual(maxPruned);
    // Signed, no abs: the candidate of most negative s, the largest |s| of its sign, goes.
    expect(mostNegative.score).toBeLessThan(0);
    expect(-mostNegative.score).toBeGreaterThan(minKept);
    expect(mostNegative.kept).toBe(0);
  });

  it('gives the same mask for the same seed, prunes layer-wise to exact counts', async () => {
    const weights = initWeights(lenetSetup.specs, 4);
    const budget: PruneBudget = { scope: 'layer', keep: { 'fc1.kernel': 2000, 'fc3.kernel': 100 } };
    const a = await graspStrategy.prune(input(lenetSetup, weights, denseMasks(lenetSetup.specs), budget, {}, 11));
    const b = await graspStrategy.prune(input(lenetSetup, weights, denseMasks(lenetSetup.specs), budget, {}, 11));
    expect(a.map((m) => countKept(m.bits))).toEqual([2000, 30_000, 100]);
    expect(a.map((m) => Buffer.from(m.bits).toString('base64'))).toEqual(b.map((m) => Buffer.from(m.bits).toString('base64')));
  });

  it('refuses a missing context and bad params with InvalidRequestError; stops when aborted', async () => {
    const weights = initWeights(lenetSetup.specs, 1);
    const masks = denseMasks(lenetSetup.specs);
    const budget = sparsityBudget(masks, 0.9, 'global', lenetSetup.kernels);
    const params = graspParams.parse({});
    expect(params).toEqual({ examplesPerClass: 10, temperature: 200, hessian: 'auto' });
    await expect(graspStrategy.prune({ weights, masks, budget, params, seed: 1 })).rejects.toThrow(InvalidRequestError);
    await expect(graspStrategy.prune({ weights, masks, budget, params, seed: 1, context: { arch: lenet, specs: lenetSetup.specs } })).rejects.toThrow(/grasp.*needs the training dataset/);
    expect(() => graspParams.parse({ hessian: 'newton' })).toThrow();
    expect(() => graspParams.parse({ temperature: 0 })).toThrow();
    expect(() => graspParams.parse({ temp: 200 })).toThrow();
    const before = tf.memory().numTensors;
    await expect(graspStrategy.prune(input(lenetSetup, weights, masks, budget), AbortSignal.abort())).rejects.toThrow(CancelledError);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe.each(['cpu', 'wasm'] as const)('GraSP Hessian path on %s', (backend) => {
  it('auto takes the exact path on LeNet', async () => {
    await useBackend(backend);
    const weights = initWeights(lenetSetup.specs, 1);
    const masks = denseMasks(lenetSetup.specs);
    const before = tf.memory().numTensors;
    const { hessianPath } = await graspScores(input(lenetSetup, weights, masks, sparsityBudget(masks, 0.9, 'global', lenetSetup.kernels)));
    expect(hessianPath).toBe('exact');
    expect(tf.memory().numTensors).toBe(before);
  });

  it('auto falls back to finite differences through conv and max-pool, leaking nothing; exact refuses', async () => {
    await useBackend(backend);
    const conv = setup(tinyConv);
    const weights = initWeights(conv.specs, 1);
    const masks = denseMasks(conv.specs);
    const budget = sparsityBudget(masks, 0.9, 'global', conv.kernels);
    const few = { examplesPerClass: 2 };
    const before = tf.memory().numTensors;
    const auto = await graspScores(input(conv, weights, masks, budget, few));
    expect(auto.hessianPath).toBe('finite-difference');
    expect(tf.memory().numTensors).toBe(before);
    const refused = await graspScores(input(conv, weights, masks, budget, { ...few, hessian: 'exact' })).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(InvalidRequestError);
    expect((refused as Error).message).toMatch(/exact Hessian-vector product failed.*Use hessian 'auto' or 'finite-difference'/);
    expect(tf.memory().numTensors).toBe(before);
    const next = await graspStrategy.prune(input(conv, weights, masks, budget, few));
    expect(next.reduce((n, m) => n + countKept(m.bits), 0)).toBe(budget.scope === 'global' ? budget.keep : -1);
  });
});
