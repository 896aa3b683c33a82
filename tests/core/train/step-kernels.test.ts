// Each step kernel on each backend against TF.js's reference cpu kernels (matMul, softmax, ...),
// on random shapes with odd sizes, every memory layout the engine uses, and broadcast members.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../core/compute/rng';
import { fillBatch } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { initWeights } from '../../../core/models/weights';
import type { MaskSet } from '../../../core/pruning/mask';
import { DEFAULT_OPTIMIZER } from '../../../core/train/optimizers';
import { stepKernelsForBackend } from '../../../core/train/train-stack';
import { wasmStepKernels } from '../../../core/train/engine/kernels-wasm';
import { MlpStepEngine, mlpLayers } from '../../../core/train/engine/mlp-engine';
import type { GemmSpec, StepKernels } from '../../../core/train/engine/step-kernels';
import { KERNEL_BACKENDS, type KernelBackend, useBackend } from '../../support/backends';

function randoms(seed: number, n: number, scale = 1): Float32Array {
  const rng = Rng.stream(seed, 'step-kernel-test');
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/** ‖a − b‖ / ‖b‖, and the largest elementwise error relative to max |b|. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-5) {
  expect(actual.length).toBe(expected.length);
  let diff = 0;
  let norm = 0;
  let worst = 0;
  let peak = 0;
  for (let i = 0; i < expected.length; i++) {
    expect(Number.isNaN(actual[i]!), `NaN at ${i}`).toBe(false);
    diff += (actual[i]! - expected[i]!) ** 2;
    norm += expected[i]! ** 2;
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
    peak = Math.max(peak, Math.abs(expected[i]!));
  }
  expect(Math.sqrt(diff / Math.max(norm, 1e-30))).toBeLessThan(tolerance);
  expect(worst / Math.max(peak, 1e-30)).toBeLessThan(tolerance);
}

async function onBackend(backend: KernelBackend): Promise<StepKernels> {
  await useBackend(backend);
  return stepKernelsForBackend(backend)!();
}

async function reference<T>(fn: () => T): Promise<T> {
  await tf.setBackend('cpu');
  tf.engine().startScope();
  try {
    return fn();
  } finally {
    tf.engine().endScope();
  }
}

type Layout = 'nn' | 'tn' | 'nt';
interface GemmCase {
  layout: Layout;
  batch: number;
  m: number;
  n: number;
  k: number;
  bias: boolean;
  relu: boolean;
  broadcastA: boolean;
}

const GEMM_CASES: GemmCase[] = [
  { layout: 'nn', batch: 1, m: 60, n: 300, k: 784, bias: true, relu: true, broadcastA: false },
  { layout: 'nn', batch: 3, m: 5, n: 17, k: 33, bias: true, relu: false, broadcastA: false },
  { layout: 'nn', batch: 2, m: 70, n: 9, k: 130, bias: true, relu: true, broadcastA: true },
  { layout: 'nn', batch: 1, m: 1, n: 1, k: 1, bias: false, relu: false, broadcastA: false },
  { layout: 'tn', batch: 1, m: 784, n: 300, k: 60, bias: false, relu: false, broadcastA: false },
  { layout: 'tn', batch: 3, m: 13, n: 7, k: 65, bias: false, relu: false, broadcastA: false },
  { layout: 'nt', batch: 1, m: 60, n: 300, k: 100, bias: false, relu: false, broadcastA: false },
  { layout: 'nt', batch: 2, m: 3, n: 19, k: 37, bias: false, relu: false, broadcastA: false },
];

/**
 * Builds the operands of a case in the layout the engine uses: nn = x·W; tn = xᵀ·dz with x
 * [k, m] row-major; nt = dz·Wᵀ with W [n, k] row-major. Returns the spec and the reference product.
 */
function gemmCase(c: GemmCase, seed: number, bMask?: Float32Array) {
  const { batch, m, n, k } = c;
  const aBatchSize = c.broadcastA ? 1 : batch;
  const aStored = c.layout === 'tn' ? [aBatchSize, k, m] : [aBatchSize, m, k];
  const bStored = c.layout === 'nt' ? [batch, n, k] : [batch, k, n];
  const aValues = randoms(seed, aStored.reduce((x, y) => x * y));
  const bValues = randoms(seed + 1, bStored.reduce((x, y) => x * y), 0.1);
  if (bMask) bValues.forEach((v, i) => (bValues[i] = v * bMask[i]!));
  const biasValues = randoms(seed + 2, batch * n);
  const expected = tf.tidy(() => {
    let a = tf.tensor3d(aValues, aStored as [number, number, number]);
    if (c.layout === 'tn') a = tf.transpose(a, [0, 2, 1]);
    if (c.broadcastA) a = tf.tile(a, [batch, 1, 1]);
    let b = tf.tensor3d(bValues, bStored as [number, number, number]);
    if (c.layout === 'nt') b = tf.transpose(b, [0, 2, 1]);
    let y = tf.matMul(a, b);
    if (c.bias) y = tf.add(y, tf.reshape(tf.tensor1d(biasValues), [batch, 1, n]));
    if (c.relu) y = tf.relu(y);
    return y.dataSync() as Float32Array;
  });
  const spec = (a: tf.Tensor, b: tf.Tensor, out: tf.Tensor, bias: tf.Tensor): GemmSpec => ({
    batch, m, n, k,
    a: c.layout === 'tn' ? { tensor: a, offset: 0, batch: c.broadcastA ? 0 : k * m, row: 1, col: m } : { tensor: a, offset: 0, batch: c.broadcastA ? 0 : m * k, row: k, col: 1 },
    b: c.layout === 'nt' ? { tensor: b, offset: 0, batch: n * k, row: 1, col: k } : { tensor: b, offset: 0, batch: k * n, row: n, col: 1 },
    c: { tensor: out, offset: 0, batch: m * n, row: n },
    bias: c.bias ? { tensor: bias, batch: n } : undefined,
    relu: c.relu,
  });
  return { aValues, bValues, biasValues, aStored, bStored, expected, spec };
}

describe.each(KERNEL_BACKENDS)('step kernels on %s', (backend) => {
  it.each(GEMM_CASES)('gemm $layout batch $batch, $m×$k·$k×$n, bias $bias, relu $relu, broadcast A $broadcastA', async (c) => {
    await tf.setBackend('cpu');
    const { aValues, bValues, biasValues, aStored, bStored, expected, spec } = gemmCase(c, c.m * 7 + c.n);
    const kernels = await onBackend(backend);
    const a = tf.tensor(aValues, aStored);
    const b = tf.tensor(bValues, bStored);
    const bias = tf.tensor(biasValues, [c.batch, c.n]);
    const out = tf.fill([c.batch, c.m, c.n], Number.NaN);
    kernels.gemm(spec(a, b, out, bias))();
    kernels.flush();
    expectClose((await out.data()) as Float32Array, expected);
    tf.dispose([a, b, bias, out]);
    kernels.dispose();
  });

  it('ReLU gradient and bias gradient', async () => {
    const [batch, rows, cols] = [3, 7, 13];
    const g = randoms(1, batch * rows * cols);
    const y = Float32Array.from(randoms(2, batch * rows * cols), (v) => Math.max(0, v));
    const expected = await reference(() => {
      const dz = tf.mul(tf.tensor3d(g, [batch, rows, cols]), tf.step(tf.tensor3d(y, [batch, rows, cols])));
      return { dz: dz.dataSync() as Float32Array, db: tf.sum(dz, 1).dataSync() as Float32Array };
    });
    const kernels = await onBackend(backend);
    const grad = tf.tensor3d(g, [batch, rows, cols]);
    const output = tf.tensor3d(y, [batch, rows, cols]);
    const biasGrad = tf.fill([batch, cols], Number.NaN);
    kernels.reluGradBias({ batch, rows, cols, grad, output, relu: true, biasGrad })();
    kernels.flush();
    expectClose((await grad.data()) as Float32Array, expected.dz);
    expectClose((await biasGrad.data()) as Float32Array, expected.db);
    tf.dispose([grad, output, biasGrad]);
    kernels.dispose();
  });

  it('softmax cross-entropy: gradient of the mean loss, and the loss summed across calls', async () => {
    const [batch, rows, classes] = [2, 65, 10];
    const z = randoms(3, batch * rows * classes, 3);
    const rng = Rng.stream(4, 'labels');
    const y = Int32Array.from({ length: batch * rows }, () => rng.nextU32() % classes);
    const expected = await reference(() => {
      const logits = tf.tensor3d(z, [batch, rows, classes]);
      const onehot = tf.oneHot(tf.tensor2d(y, [batch, rows], 'int32'), classes);
      const loss = tf.mean(tf.neg(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), 2)), 1);
      return { grad: tf.div(tf.sub(tf.softmax(logits), onehot), rows).dataSync() as Float32Array, loss: tf.mul(loss, 2).dataSync() as Float32Array };
    });
    const kernels = await onBackend(backend);
    const logits = tf.tensor3d(z, [batch, rows, classes]);
    const labels = tf.tensor2d(y, [batch, rows], 'int32');
    const dlogits = tf.fill([batch, rows, classes], Number.NaN);
    const lossSum = tf.zeros([batch]);
    const run = kernels.softmaxXent({ batch, rows, classes, logits, labels, dlogits, lossSum });
    run();
    run();
    kernels.flush();
    expectClose((await dlogits.data()) as Float32Array, expected.grad);
    expectClose((await lossSum.data()) as Float32Array, expected.loss);
    tf.dispose([logits, labels, dlogits, lossSum]);
    kernels.dispose();
  });

  it('evaluation statistics per member over a shared label set', async () => {
    const [batch, rows, classes, chunk] = [3, 33, 10, 40];
    const z = randoms(5, batch * chunk * classes, 2);
    const rng = Rng.stream(6, 'labels');
    const y = Int32Array.from({ length: chunk }, () => rng.nextU32() % classes);
    const expected = await reference(() => {
      const logits = tf.slice(tf.tensor3d(z, [batch, chunk, classes]), [0, 0, 0], [batch, rows, classes]);
      const labels = tf.tensor1d(y.subarray(0, rows), 'int32');
      const loss = tf.sum(tf.neg(tf.sum(tf.mul(tf.oneHot(labels, classes), tf.logSoftmax(logits)), 2)), 1);
      const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 2), labels), 'float32'), 1);
      return tf.stack([loss, hits], 1).dataSync() as Float32Array;
    });
    const kernels = await onBackend(backend);
    const logits = tf.tensor3d(z, [batch, chunk, classes]);
    const labels = tf.tensor1d(y, 'int32');
    const stats = tf.zeros([batch, 2]);
    kernels.evalStats({ batch, rows, classes, logits, logitsBatch: chunk * classes, labels, stats })();
    kernels.flush();
    expectClose((await stats.data()) as Float32Array, expected);
    tf.dispose([logits, labels, stats]);
    kernels.dispose();
  });

  it('gathers normalised rows and labels of a split', async () => {
    const rng = Rng.stream(7, 'images');
    const count = 9;
    const features = 12;
    const split = { images: Uint8Array.from({ length: count * features }, () => rng.nextU32() % 256), labels: Uint8Array.from({ length: count }, (_, i) => i % 10), count };
    const norm = { mean: 0.13, std: 0.31 };
    const rows = Int32Array.from([8, 0, 3, 3, 5]);
    const xExpected = new Float32Array(rows.length * features);
    const yExpected = new Int32Array(rows.length);
    fillBatch(split, rows, norm, xExpected, yExpected);
    const kernels = await onBackend(backend);
    const images = kernels.images(split, norm);
    const x = tf.fill([rows.length, features], Number.NaN);
    const labels = tf.fill([rows.length], -1, 'int32');
    kernels.gather({ source: images, rows: rows.length, x, labels })(rows);
    kernels.flush();
    expectClose((await x.data()) as Float32Array, xExpected);
    expect(Array.from(await labels.data())).toEqual(Array.from(yExpected));
    tf.dispose([x, labels]);
    kernels.dispose();
  });

  it('copies chosen members and zeroes tensors', async () => {
    const kernels = await onBackend(backend);
    const src = tf.tensor(randoms(8, 4 * 5), [4, 5]);
    const dst = tf.zeros([4, 5]);
    kernels.copyMembers(src, dst, 5)([1, 3]);
    kernels.flush();
    const s = (await src.data()) as Float32Array;
    const d = (await dst.data()) as Float32Array;
    for (let p = 0; p < 4; p++) {
      for (let i = 0; i < 5; i++) expect(d[p * 5 + i]).toBe(p === 1 || p === 3 ? s[p * 5 + i] : 0);
    }
    kernels.zero(src)();
    kernels.flush();
    expect(Array.from(await src.data()).every((v) => v === 0)).toBe(true);
    tf.dispose([src, dst]);
    kernels.dispose();
  });
});

/** 0/1 floats, each member its own: `density` of them set at random, or exactly one set ('single'). */
function randomMask(seed: number, members: number, perMember: number, density: number | 'single'): Float32Array {
  const rng = Rng.stream(seed, 'step-kernel-test-mask');
  const bits = new Float32Array(members * perMember);
  for (let p = 0; p < members; p++) {
    if (density === 'single') bits[p * perMember + (rng.nextU32() % perMember)] = 1;
    else for (let i = 0; i < perMember; i++) bits[p * perMember + i] = rng.nextU32() / 2 ** 32 < density ? 1 : 0;
  }
  return bits;
}

interface SparseCase extends GemmCase {
  density: number | 'single';
}

const SPARSE_CASES: SparseCase[] = [
  { layout: 'nn', batch: 1, m: 60, n: 300, k: 784, bias: true, relu: true, broadcastA: false, density: 0.05 },
  { layout: 'nn', batch: 3, m: 70, n: 17, k: 33, bias: true, relu: true, broadcastA: true, density: 0.3 },
  { layout: 'nn', batch: 2, m: 40, n: 12, k: 20, bias: true, relu: false, broadcastA: false, density: 1 },
  { layout: 'nn', batch: 2, m: 5, n: 9, k: 13, bias: true, relu: false, broadcastA: false, density: 0 },
  { layout: 'nn', batch: 3, m: 11, n: 6, k: 7, bias: false, relu: false, broadcastA: false, density: 'single' },
  { layout: 'nn', batch: 1, m: 1, n: 1, k: 1, bias: false, relu: false, broadcastA: false, density: 1 },
  { layout: 'nt', batch: 2, m: 60, n: 300, k: 100, bias: false, relu: false, broadcastA: false, density: 0.1 },
  { layout: 'nt', batch: 3, m: 7, n: 19, k: 37, bias: false, relu: false, broadcastA: false, density: 'single' },
  { layout: 'nt', batch: 2, m: 33, n: 10, k: 3, bias: false, relu: false, broadcastA: false, density: 0 },
  { layout: 'tn', batch: 1, m: 784, n: 300, k: 60, bias: false, relu: false, broadcastA: false, density: 0.05 },
  { layout: 'tn', batch: 3, m: 13, n: 7, k: 65, bias: false, relu: false, broadcastA: false, density: 0.5 },
  { layout: 'tn', batch: 2, m: 9, n: 5, k: 3, bias: false, relu: false, broadcastA: false, density: 'single' },
  { layout: 'tn', batch: 2, m: 33, n: 5, k: 6, bias: false, relu: false, broadcastA: false, density: 0 },
];

describe('sparse products on wasm (mask hints)', () => {
  // nn and nt: B is zero off its mask; tn: only C's entries on its mask are wanted (the weight gradient).
  it.each(SPARSE_CASES)('$layout batch $batch, $m×$k·$k×$n, density $density, bias $bias, relu $relu, broadcast A $broadcastA', async (c) => {
    await tf.setBackend('cpu');
    const seed = c.m * 11 + c.k;
    const onB = c.layout !== 'tn';
    const mask = onB ? randomMask(seed, c.batch, c.n * c.k, c.density) : randomMask(seed, c.batch, c.m * c.n, c.density);
    const { aValues, bValues, biasValues, aStored, bStored, expected, spec } = gemmCase(c, seed, onB ? mask : undefined);
    await useBackend('wasm');
    const kernels = wasmStepKernels({ sparseBelow: Number.POSITIVE_INFINITY });
    // Off its mask, B holds noise the sparse kernel must not read: a dense product would show it.
    const noise = randoms(seed + 3, bValues.length);
    const a = tf.tensor(aValues, aStored);
    const b = tf.tensor(onB ? bValues.map((v, i) => (mask[i] ? v : noise[i]!)) : bValues, bStored);
    const maskTensor = tf.tensor(mask, onB ? bStored : [c.batch, c.m, c.n]);
    const bias = tf.tensor(biasValues, [c.batch, c.n]);
    const out = tf.fill([c.batch, c.m, c.n], Number.NaN);
    kernels.gemm({ ...spec(a, b, out, bias), mask: { tensor: maskTensor, operand: onB ? 'b' : 'c' } })();
    const actual = (await out.data()) as Float32Array;
    if (onB) {
      expectClose(actual, expected);
    } else {
      // The masked entries are the product's; the others are left as they were (NaN here).
      const on = (values: Float32Array) => values.filter((_, i) => mask[i]);
      expectClose(on(actual), on(expected));
      expect(actual.every((v, i) => mask[i] || Number.isNaN(v))).toBe(true);
    }
    tf.dispose([a, b, maskTensor, bias, out]);
    kernels.dispose();
  });

  it('keeps a product above the crossover density on the dense kernels', async () => {
    const c: GemmCase = { layout: 'nn', batch: 2, m: 60, n: 30, k: 50, bias: true, relu: true, broadcastA: false };
    await tf.setBackend('cpu');
    const { aValues, bValues, biasValues, aStored, bStored, expected, spec } = gemmCase(c, 5);
    await useBackend('wasm');
    const kernels = wasmStepKernels();
    const a = tf.tensor(aValues, aStored);
    const b = tf.tensor(bValues, bStored);
    // Mostly ones, and B dense where the mask says 0: the dense path reads those entries.
    const maskTensor = tf.tensor(Float32Array.from(randomMask(5, c.batch, c.k * c.n, 0.95)), bStored);
    const bias = tf.tensor(biasValues, [c.batch, c.n]);
    const out = tf.fill([c.batch, c.m, c.n], Number.NaN);
    kernels.gemm({ ...spec(a, b, out, bias), mask: { tensor: maskTensor, operand: 'b' } })();
    expectClose((await out.data()) as Float32Array, expected);
    tf.dispose([a, b, maskTensor, bias, out]);
    kernels.dispose();
  });

  it('trains a stack of LeNet-300-100 tickets to the same weights on the sparse and dense kernels', async () => {
    await useBackend('wasm');
    const arch = architecture('lenet-300-100');
    const specs = paramSpecs(arch, [28, 28, 1], 10);
    const layers = mlpLayers(arch, specs)!;
    // Three members, each with its own masks: very sparse, sparse, and dense but for one layer.
    const densities = [0.03, 0.2, 1];
    const members = densities.map((density, p) => {
      const masks: MaskSet = specs
        .filter((s) => s.prunable)
        .map((s, l) => {
          const n = s.shape.reduce((x, y) => x * y, 1);
          const bits = Uint8Array.from(randomMask(p * 10 + l, 1, n, l === 1 && density === 1 ? 0.1 : density));
          return { name: s.name, shape: [...s.shape], bits };
        });
      return { weights: initWeights(specs, p), masks };
    });
    const rng = Rng.stream(9, 'sparse-engine-images');
    const count = 240;
    const images = { images: Uint8Array.from({ length: count * 784 }, () => rng.nextU32() % 256), labels: Uint8Array.from({ length: count }, () => rng.nextU32() % 10), count };
    // SGD, so that the two paths' rounding differences pass through linearly (Adam's first steps
    // divide by √v, which turns a rounding difference in a gradient near ε into one of lr).
    const optimizer = { ...DEFAULT_OPTIMIZER, name: 'sgd' as const, learningRate: 0.05, momentum: 0.9 };
    const train = async (sparseBelow: number) => {
      const kernels = wasmStepKernels({ sparseBelow });
      const engine = new MlpStepEngine(kernels, layers, members, 60, optimizer);
      const split = kernels.images(images, { mean: 0.13, std: 0.31 });
      engine.useTrainingImages(split);
      for (let step = 0; step < 4; step++) engine.step(Int32Array.from({ length: members.length * 60 }, (_, i) => (i * 7 + step * 13) % count));
      const evals = await engine.evaluate(split, 'current');
      const weights = await engine.readWeights('current');
      split.dispose();
      engine.dispose();
      return { evals, weights };
    };
    const dense = await train(0);
    const sparse = await train(Number.POSITIVE_INFINITY);
    members.forEach((member, p) => {
      member.weights.forEach((initial, t) => {
        const [d, s] = [dense.weights[p]![t]!.values, sparse.weights[p]![t]!.values];
        // Per tensor: the same worst error relative to the tensor's peak as expectClose, without an expect per entry.
        let [worst, peak, moved, zerosAgree] = [0, 0, false, true];
        for (let i = 0; i < d.length; i++) {
          worst = Math.max(worst, Number.isNaN(s[i]!) ? Infinity : Math.abs(s[i]! - d[i]!));
          peak = Math.max(peak, Math.abs(d[i]!));
          moved ||= s[i] !== initial.values[i];
          zerosAgree &&= (s[i] === 0) === (d[i] === 0);
        }
        expect(worst / peak, `${initial.name} of member ${p}`).toBeLessThan(1e-5);
        expect(moved, `${initial.name} of member ${p} trained`).toBe(true);
        expect(zerosAgree, `${initial.name} of member ${p}: pruned entries are 0 on both paths`).toBe(true);
      });
    });
    sparse.evals.forEach((e, p) => {
      expect(e.loss).toBeCloseTo(dense.evals[p]!.loss, 5);
      expect(e.accuracy).toBe(dense.evals[p]!.accuracy);
    });
  });
});
