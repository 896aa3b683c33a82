import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../core/compute/rng';
import type { ImageSplit, LoadedDataset } from '../../../core/data/datasets';
import { type Architecture, type LayerSpec, type ParamSpec, architecture, hasConv, paramSpecs } from '../../../core/models/architectures';
import { BATCHNORM_EPSILON, MaskedNetwork, subsamplePad, zooForward } from '../../../core/models/network';
import { type WeightSet, initWeights, sizeOf } from '../../../core/models/weights';
import { globalRateBudget } from '../../../core/pruning/budget';
import { denseMasks } from '../../../core/pruning/imp';
import { magnitudeStrategy } from '../../../core/pruning/magnitude';
import { mlpLayers } from '../../../core/train/engine/mlp-engine';
import { DEFAULT_OPTIMIZER, createOptimizer } from '../../../core/train/optimizers';
import { trainMasked } from '../../../core/train/train';
import { autodiffStep } from '../../../core/train/train-autodiff';
import { useBackend } from '../../support/backends';

const resnetA = architecture('resnet-20');
const resnetB = architecture('resnet-20-openlth');
const count = (specs: readonly ParamSpec[], keep: (s: ParamSpec) => boolean) => specs.filter(keep).reduce((n, s) => n + sizeOf(s.shape), 0);
const byName = (weights: WeightSet, name: string) => weights.find((t) => t.name === name)!.values;

/** Seeded random 8×8×3 images: resnet-20's every kernel and gradient at a fraction of CIFAR's cost. */
function randomImages(count: number, stream: string): ImageSplit {
  const rng = Rng.stream(2, stream);
  return { images: Uint8Array.from({ length: count * 192 }, () => rng.int(256)), labels: Uint8Array.from({ length: count }, () => rng.int(10)), count };
}
const dataset: LoadedDataset = {
  id: 'random-8x8x3', source: 'test', digest: 'none', imageShape: [8, 8, 3], numClasses: 10,
  normalization: { mean: 0.5, std: 0.25 }, split: { seed: 0, validationSize: 8 },
  train: randomImages(32, 'train'), validation: randomImages(8, 'validation'), test: randomImages(8, 'test'),
};

function randomValues(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  const rng = Rng.stream(seed, 'resnet-test');
  return Float32Array.from({ length: n }, () => offset + scale * rng.normal());
}

/** An architecture of the given layers, resnet-20's other fields. */
function tinyArch(layers: LayerSpec[]): Architecture {
  return { ...resnetA, id: 'tiny', title: 'tiny', layers };
}

describe('ResNet-20 in the zoo', () => {
  it('has the CIFAR ResNet-20 parameter counts: 269,722 (option A) and 272,474 (option B) trainable on 32×32×3, 10 classes', () => {
    const a = paramSpecs(resnetA, [32, 32, 3], 10);
    const b = paramSpecs(resnetB, [32, 32, 3], 10);
    // Option A by layer: first conv 432, stage 1 6·2,304, stage 2 4,608 + 5·9,216, stage 3 18,432 + 5·36,864,
    // fc 650, and γ, β of 19 BatchNorms over 688 channels in all.
    const convA = 432 + 6 * 2304 + 4608 + 5 * 9216 + 18_432 + 5 * 36_864;
    expect(count(a, (s) => s.kind === 'kernel' && s.role === 'conv')).toBe(convA);
    expect(count(a, (s) => s.trainable)).toBe(convA + 650 + 2 * 688);
    expect(count(a, (s) => s.trainable)).toBe(269_722);
    // Option B adds the 1×1 shortcut convs 16→32 and 32→64 with their BatchNorms: 512 + 64 + 2,048 + 128.
    expect(count(b, (s) => s.trainable)).toBe(269_722 + 512 + 64 + 2048 + 128);
    expect(count(b, (s) => s.trainable)).toBe(272_474);
    // Running mean and variance per BatchNorm channel: state, stored with the weights.
    expect(count(a, (s) => !s.trainable)).toBe(2 * 688);
    expect(count(b, (s) => !s.trainable)).toBe(2 * (688 + 32 + 64));
    // Prunable: every conv kernel (first conv and shortcut convs included) and the fc kernel.
    expect(count(a, (s) => s.prunable)).toBe(convA + 640);
    expect(count(b, (s) => s.prunable)).toBe(convA + 640 + 512 + 2048);
  });

  it('names tensors as open_lth does, with no conv biases, and marks BatchNorm never prunable and its statistics not trainable', () => {
    const a = paramSpecs(resnetA, [32, 32, 3], 10);
    const b = paramSpecs(resnetB, [32, 32, 3], 10);
    const shape = (specs: ParamSpec[], name: string) => specs.find((s) => s.name === name)?.shape;
    expect(shape(a, 'conv.kernel')).toEqual([3, 3, 3, 16]);
    expect(shape(a, 'bn.gamma')).toEqual([16]);
    expect(shape(a, 'blocks.0.conv1.kernel')).toEqual([3, 3, 16, 16]);
    expect(shape(a, 'blocks.3.conv1.kernel')).toEqual([3, 3, 16, 32]);
    expect(shape(a, 'blocks.3.conv2.kernel')).toEqual([3, 3, 32, 32]);
    expect(shape(a, 'blocks.6.conv1.kernel')).toEqual([3, 3, 32, 64]);
    expect(shape(a, 'blocks.8.bn2.runningVar')).toEqual([64]);
    expect(shape(a, 'fc.kernel')).toEqual([64, 10]);
    expect(shape(a, 'fc.bias')).toEqual([10]);
    expect(a.some((s) => s.name.includes('shortcut'))).toBe(false);
    expect(shape(b, 'blocks.3.shortcut.0.kernel')).toEqual([1, 1, 16, 32]);
    expect(shape(b, 'blocks.6.shortcut.0.kernel')).toEqual([1, 1, 32, 64]);
    expect(shape(b, 'blocks.6.shortcut.1.runningMean')).toEqual([64]);
    expect(b.filter((s) => s.name.includes('shortcut.0')).map((s) => s.name)).toEqual(['blocks.3.shortcut.0.kernel', 'blocks.6.shortcut.0.kernel']);
    for (const specs of [a, b]) {
      expect(specs.filter((s) => s.kind === 'bias').map((s) => s.name)).toEqual(['fc.bias']);
      for (const s of specs) {
        expect(s.prunable).toBe(s.kind === 'kernel');
        expect(s.trainable).toBe(s.kind !== 'runningMean' && s.kind !== 'runningVar');
      }
      expect(specs.filter((s) => s.prunable && s.role === 'output').map((s) => s.name)).toEqual(['fc.kernel']);
    }
    // 19 convs + fc = 20 weight layers (option A), each BatchNorm four tensors.
    expect(a.filter((s) => s.kind === 'kernel')).toHaveLength(20);
    expect(a.filter((s) => s.kind === 'gamma')).toHaveLength(19);
  });

  it("carries open_lth's training defaults, global 0.2 pruning, and stays off the step engine", () => {
    for (const arch of [resnetA, resnetB]) {
      expect(arch.lthScope).toBe('global');
      expect(arch.lthRates).toEqual({ conv: 0.2, fc: 0.2, output: 0.2 });
      expect(arch.lthTraining).toEqual({
        optimizer: 'sgd', learningRate: 0.1, momentum: 0.9, weightDecay: 1e-4, batchSize: 128,
        // 160 epochs of floor(45,000 / 128) = 351 steps: CIFAR-10's 50,000 less the 5,000 held out.
        iterations: 160 * 351,
        learningRateDrops: { epochs: [80, 120], ofEpochs: 160, factor: 0.1 },
        augment: { padding: 4, flip: true },
      });
      expect(hasConv(arch)).toBe(true);
      expect(mlpLayers(arch, paramSpecs(arch, [32, 32, 3], 10))).toBeNull();
    }
    expect(architecture('lenet-300-100').lthScope).toBe('layer');
    expect(architecture('conv-6').lthTraining).toMatchObject({ optimizer: 'adam', momentum: 0, weightDecay: 0 });
  });

  it('initialises kernels Kaiming-normal, BatchNorm γ ~ U(0, 1), β and running means 0, running variances 1, the fc bias 0', () => {
    const specs = paramSpecs(resnetA, [32, 32, 3], 10);
    const weights = initWeights(specs, 4);
    expect(initWeights(specs, 4)).toEqual(weights);
    for (const spec of specs) {
      const v = byName(weights, spec.name);
      if (spec.kind === 'kernel') {
        expect(spec.init).toBe('kaiming-normal');
        if (v.length < 9000) continue;
        let sq = 0;
        for (const x of v) sq += x * x;
        // PyTorch kaiming_normal_: std = √(2 / fan_in), fan_in = kh·kw·in (dense: in).
        expect(Math.sqrt(sq / v.length) / Math.sqrt(2 / spec.fanIn)).toBeCloseTo(1, 1);
      } else if (spec.kind === 'gamma') {
        expect(Math.min(...v)).toBeGreaterThanOrEqual(0);
        expect(Math.max(...v)).toBeLessThan(1);
        expect(new Set(v).size).toBe(v.length);
      } else {
        expect([...v].every((x) => x === (spec.kind === 'runningVar' ? 1 : 0)), spec.name).toBe(true);
      }
    }
    const fcStd = Math.sqrt(byName(weights, 'fc.kernel').reduce((s, x) => s + x * x, 0) / 640);
    expect(fcStd).toBeGreaterThan(0.1);
    expect(fcStd).toBeLessThan(0.25); // √(2/64) = 0.177
  });

  it('refuses an input its strides and pooling cannot take, and runs odd sizes as PyTorch does (ceil at each stride)', () => {
    expect(paramSpecs(resnetA, [7, 7, 3], 10)).toHaveLength(paramSpecs(resnetA, [32, 32, 3], 10).length);
    expect(paramSpecs(resnetB, [1, 1, 3], 10).length).toBeGreaterThan(0); // 1 → 1 → 1: PyTorch runs it too
  });
});

describe.each(['cpu', 'wasm'] as const)('ResNet-20 forward on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  it('maps [n, h, w, 3] to [n, 10] for both shortcut options, even and odd sizes, leaking no tensor', () => {
    for (const arch of [resnetA, resnetB]) {
      for (const size of [8, 7]) {
        const specs = paramSpecs(arch, [size, size, 3], 10);
        const net = new MaskedNetwork(arch, specs, initWeights(specs, 1), denseMasks(specs));
        const before = tf.memory().numTensors;
        const shapes = tf.tidy(() => [net.forward(tf.ones([2, size, size, 3])).shape, net.forward(tf.ones([3, size, size, 3]), { training: true }).shape]);
        net.discardRunningStats();
        expect(tf.memory().numTensors).toBe(before);
        expect(shapes).toEqual([[2, 10], [3, 10]]);
        net.dispose();
      }
    }
  });

  it('option A shortcut: x[:, ::2, ::2] with the zero channels half before, half after; its gradient routes back to the sampled pixels', () => {
    const [n, h, w, c, out] = [2, 5, 5, 4, 8];
    const x = randomValues(n * h * w * c, 1);
    const r = randomValues(n * 3 * 3 * out, 2);
    const { y, dx } = tf.tidy(() => {
      const xt = tf.tensor4d(x, [n, h, w, c]);
      const y = subsamplePad(xt, 2, out);
      const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(subsamplePad(t as tf.Tensor4D, 2, out), tf.tensor4d(r, [n, 3, 3, out]))))(xt);
      return { y: { shape: y.shape, values: y.dataSync() }, dx: dx.dataSync() };
    });
    expect(y.shape).toEqual([n, 3, 3, out]);
    const expectedDx = new Float32Array(x.length);
    for (let b = 0; b < n; b++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          for (let k = 0; k < out; k++) {
            const at = ((b * 3 + i) * 3 + j) * out + k;
            // PyTorch F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)): channels 2..5 are x's 0..3.
            const inside = k >= 2 && k < 6;
            const src = ((b * h + 2 * i) * w + 2 * j) * c + (k - 2);
            expect(y.values[at]).toBe(inside ? x[src] : 0);
            if (inside) expectedDx[src] = r[at]!;
          }
        }
      }
    }
    expect([...dx]).toEqual([...expectedDx]);
  });

  it("a stride-2 3×3 conv pads one pixel on every side, as PyTorch's padding=1: the centre tap samples x[2i, 2j], the corner tap x[2i−1, 2j−1]", () => {
    const arch = tinyArch([{ kind: 'conv2d', name: 'c', filters: 1, kernelSize: 3, stride: 2, bias: false, activation: 'linear', role: 'conv' }, { kind: 'flatten' }]);
    const x = randomValues(6 * 6, 3);
    for (const [tap, di] of [[4, 0], [0, -1]] as const) {
      const kernel = new Float32Array(9);
      kernel[tap] = 1;
      const y = tf.tidy(() => zooForward(arch, () => tf.tensor4d(kernel, [3, 3, 1, 1]), tf.tensor4d(x, [1, 6, 6, 1])).dataSync());
      expect(y).toHaveLength(9);
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          const [r, s] = [2 * i + di, 2 * j + di];
          expect(y[i * 3 + j]).toBe(r < 0 || s < 0 ? 0 : x[r * 6 + s]);
        }
      }
    }
  });

  it('a block adds its shortcut then applies ReLU: with a zero body, option A gives relu(shortcut(x)) and option B relu(BN(1×1 conv stride 2 of x))', () => {
    const block = (shortcut: 'A' | 'B'): Architecture => {
      const c2 = (name: string, k: number, stride = 2): LayerSpec => ({ kind: 'conv2d', name, filters: 8, kernelSize: k, stride, bias: false, activation: 'linear', role: 'conv' });
      return tinyArch([
        {
          kind: 'residual', name: 'blocks.0',
          body: [c2('conv1', 3), { kind: 'batchnorm', name: 'bn1', activation: 'relu' }, c2('conv2', 3, 1), { kind: 'batchnorm', name: 'bn2', activation: 'linear' }],
          shortcut: shortcut === 'A' ? { kind: 'subsample-pad', stride: 2 } : { kind: 'projection', layers: [c2('shortcut.0', 1), { kind: 'batchnorm', name: 'shortcut.1', activation: 'linear' }] },
        },
        { kind: 'flatten' },
      ]);
    };
    const x = randomValues(2 * 5 * 5 * 4, 4);
    for (const option of ['A', 'B'] as const) {
      const arch = block(option);
      const specs = paramSpecs(arch, [5, 5, 4], 10);
      const weights = initWeights(specs, 5).map((t) => (t.name.startsWith('blocks.0.conv') ? { ...t, values: new Float32Array(t.values.length) } : t));
      const net = new MaskedNetwork(arch, specs, weights, denseMasks(specs));
      const y = tf.tidy(() => net.forward(tf.tensor4d(x, [2, 5, 5, 4])).dataSync());
      net.dispose();
      const projection = option === 'B' ? byName(weights, 'blocks.0.shortcut.0.kernel') : undefined;
      const gamma = option === 'B' ? byName(weights, 'blocks.0.shortcut.1.gamma') : undefined;
      expect(y).toHaveLength(2 * 3 * 3 * 8);
      for (let b = 0; b < 2; b++) {
        for (let i = 0; i < 3; i++) {
          for (let j = 0; j < 3; j++) {
            for (let k = 0; k < 8; k++) {
              const pixel = (ch: number) => x[((b * 5 + 2 * i) * 5 + 2 * j) * 4 + ch]!;
              let expected: number;
              if (!projection || !gamma) {
                expected = k >= 2 && k < 6 ? pixel(k - 2) : 0;
              } else {
                let z = 0;
                for (let ch = 0; ch < 4; ch++) z += pixel(ch) * projection[ch * 8 + k]!;
                expected = (z / Math.sqrt(1 + BATCHNORM_EPSILON)) * gamma[k]!; // eval: running mean 0, variance 1, β 0
              }
              expect(y[((b * 3 + i) * 3 + j) * 8 + k]).toBeCloseTo(Math.max(0, expected), 5);
            }
          }
        }
      }
    }
  });
});

describe.each(['cpu', 'wasm'] as const)('BatchNorm on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
  });

  const arch = tinyArch([{ kind: 'batchnorm', name: 'bn', activation: 'linear' }, { kind: 'flatten' }]);
  const [n, h, w, c] = [3, 2, 3, 4];
  const specs = paramSpecs(arch, [h, w, c], 10);
  const weights: WeightSet = [
    { name: 'bn.gamma', shape: [c], values: randomValues(c, 5) },
    { name: 'bn.beta', shape: [c], values: randomValues(c, 6) },
    { name: 'bn.runningMean', shape: [c], values: randomValues(c, 7) },
    { name: 'bn.runningVar', shape: [c], values: randomValues(c, 8).map((v) => 0.5 + v * v) },
  ];
  // Channels with different means and scales, so that normalising each on its own matters.
  const x = randomValues(n * h * w * c, 9).map((v, i) => 3 * (i % c) + (1 + (i % c)) * v);
  const at = (i: number, ch: number) => x[i * c + ch]!;
  const positions = n * h * w;
  const stats = Array.from({ length: c }, (_, ch) => {
    let mean = 0;
    for (let i = 0; i < positions; i++) mean += at(i, ch) / positions;
    let variance = 0;
    for (let i = 0; i < positions; i++) variance += (at(i, ch) - mean) ** 2 / positions;
    return { mean, variance };
  });
  const gamma = byName(weights, 'bn.gamma');
  const beta = byName(weights, 'bn.beta');
  const runningMean = byName(weights, 'bn.runningMean');
  const runningVar = byName(weights, 'bn.runningVar');

  it("training mode normalises by the batch's mean and biased variance; the running statistics update as PyTorch's (momentum 0.1, unbiased variance) only when committed", async () => {
    const net = new MaskedNetwork(arch, specs, weights, []);
    expect(net.variables).toHaveLength(2);
    expect([...net.state.keys()]).toEqual(['bn.runningMean', 'bn.runningVar']);
    const input = tf.tensor4d(x, [n, h, w, c]);
    const y = tf.tidy(() => net.forward(input, { training: true }).dataSync());
    for (let i = 0; i < positions; i++) {
      for (let ch = 0; ch < c; ch++) {
        const { mean, variance } = stats[ch]!;
        expect(y[i * c + ch]).toBeCloseTo(((at(i, ch) - mean) / Math.sqrt(variance + 1e-5)) * gamma[ch]! + beta[ch]!, 4);
      }
    }
    // Not committed yet: the state is as it was. A second training forward replaces the pending update.
    expect(byName(await net.readWeights(), 'bn.runningMean')).toEqual(runningMean);
    tf.tidy(() => net.forward(input, { training: true }));
    net.commitRunningStats();
    const after = await net.readWeights();
    for (let ch = 0; ch < c; ch++) {
      const { mean, variance } = stats[ch]!;
      expect(byName(after, 'bn.runningMean')[ch]).toBeCloseTo(0.9 * runningMean[ch]! + 0.1 * mean, 5);
      expect(byName(after, 'bn.runningVar')[ch]).toBeCloseTo(0.9 * runningVar[ch]! + (0.1 * variance * positions) / (positions - 1), 5);
    }
    expect(byName(after, 'bn.gamma')).toEqual(gamma);
    input.dispose();
    net.dispose();
  });

  it("training mode's written-out gradient (x, γ, β) equals autodiff of the plain form, and so do a whole ResNet-20's", () => {
    // The plain form (plainOps) is autodiff of mean, subtract, square, mean, rsqrt: an independent computation.
    const gradientsOf = (net: MaskedNetwork, input: tf.Tensor4D, weightsOfLoss: tf.Tensor, plainOps: boolean, withInput: boolean) =>
      tf.tidy(() => {
        const param = (name: string) => net.state.get(name) ?? net.params.get(name)!;
        const loss = (xIn: tf.Tensor4D) => tf.sum(tf.mul(zooForward(net.arch, param, xIn, { training: true, plainOps }), weightsOfLoss)) as tf.Scalar;
        const { grads } = tf.variableGrads(() => loss(input), net.variables);
        const out = Object.fromEntries([...net.params].map(([name, v]) => [name, grads[v.name]!.dataSync()]));
        if (withInput) out.x = tf.grad((xIn: tf.Tensor) => loss(xIn as tf.Tensor4D))(input).dataSync();
        return out;
      });
    const expectClose = (a: Record<string, Float32Array | Int32Array | Uint8Array>, b: Record<string, Float32Array | Int32Array | Uint8Array>) => {
      expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
      for (const key of Object.keys(a)) {
        const scale = Math.max(1e-3, ...Array.from(b[key]!, Math.abs));
        for (let i = 0; i < a[key]!.length; i++) expect(Math.abs(a[key]![i]! - b[key]![i]!) / scale, `${key}[${i}]`).toBeLessThan(2e-4);
      }
    };

    const bnNet = new MaskedNetwork(arch, specs, weights, []);
    const input = tf.tensor4d(x, [n, h, w, c]);
    const r = tf.tensor2d(randomValues(n * h * w * c, 10), [n, h * w * c]);
    expectClose(gradientsOf(bnNet, input, r, false, true), gradientsOf(bnNet, input, r, true, true));
    bnNet.dispose();

    const resnetSpecs = paramSpecs(resnetA, [8, 8, 3], 10);
    const resnet = new MaskedNetwork(resnetA, resnetSpecs, initWeights(resnetSpecs, 3), []);
    const images = tf.tensor4d(randomValues(4 * 8 * 8 * 3, 11), [4, 8, 8, 3]);
    const logitWeights = tf.tensor2d(randomValues(4 * 10, 12), [4, 10]);
    expectClose(gradientsOf(resnet, images, logitWeights, false, false), gradientsOf(resnet, images, logitWeights, true, false));
    resnet.dispose();
    tf.dispose([input, r, images, logitWeights]);
  });

  it('eval mode normalises by the running statistics, each example independent of the rest of its batch', () => {
    const net = new MaskedNetwork(arch, specs, weights, []);
    const all = tf.tidy(() => net.forward(tf.tensor4d(x, [n, h, w, c])).dataSync());
    const last = tf.tidy(() => net.forward(tf.tensor4d(x.subarray(2 * h * w * c), [1, h, w, c])).dataSync());
    net.dispose();
    for (let i = 0; i < positions; i++) {
      for (let ch = 0; ch < c; ch++) {
        expect(all[i * c + ch]).toBeCloseTo(((at(i, ch) - runningMean[ch]!) / Math.sqrt(runningVar[ch]! + 1e-5)) * gamma[ch]! + beta[ch]!, 4);
      }
    }
    expect([...last]).toEqual([...all.subarray(2 * h * w * c)]);
  });
});

describe('ResNet-20 training (autodiff path, wasm)', () => {
  beforeAll(async () => {
    await useBackend('wasm');
  });
  const specs = paramSpecs(resnetB, dataset.imageShape, dataset.numClasses);
  const sgd = { ...DEFAULT_OPTIMIZER, name: 'sgd' as const, learningRate: 0.05, momentum: 0.9, weightDecay: 1e-4 };

  it('lowers the loss on a repeated batch and moves the running statistics, which readWeights and assignWeights carry in full', async () => {
    const net = new MaskedNetwork(resnetB, specs, initWeights(specs, 6), denseMasks(specs));
    const optimizer = createOptimizer(sgd, net);
    const x = new Float32Array(8 * 192);
    const y = new Int32Array(8);
    for (let i = 0; i < x.length; i++) x[i] = (dataset.train.images[i]! / 255 - 0.5) / 0.25;
    y.set(dataset.train.labels.subarray(0, 8));
    const losses: number[] = [];
    for (let step = 0; step < 12; step++) {
      const loss = autodiffStep(net, optimizer, x, y, dataset, true)!;
      losses.push(loss.dataSync()[0]!);
      loss.dispose();
    }
    optimizer.dispose();
    expect(losses[losses.length - 1]).toBeLessThan(0.5 * losses[0]!);

    const trained = await net.readWeights();
    expect(trained.map((t) => t.name)).toEqual(specs.map((s) => s.name));
    const initial = initWeights(specs, 6);
    for (const spec of specs.filter((s) => !s.trainable)) {
      expect(byName(trained, spec.name), spec.name).not.toEqual(byName(initial, spec.name));
    }
    // Into another network, state included: the same tensors, bit for bit, and the same eval logits.
    const other = new MaskedNetwork(resnetB, specs, initWeights(specs, 7), denseMasks(specs));
    other.assignWeights(trained);
    expect(await other.readWeights()).toEqual(trained);
    const [a, b] = tf.tidy(() => {
      const input = tf.tensor4d(x, [8, 8, 8, 3]);
      return [net.forward(input).dataSync(), other.forward(input).dataSync()];
    });
    expect([...b!]).toEqual([...a!]);
    net.dispose();
    other.dispose();
  });

  it('keeps pruned weights exactly zero under SGD with momentum and weight decay, with learning-rate drops and augmentation', async () => {
    const weights = initWeights(specs, 8);
    const dense = denseMasks(specs);
    const masks = await magnitudeStrategy.prune({ weights, masks: dense, budget: globalRateBudget(dense, 0.5, dense.map((m) => m.name)), params: {}, seed: 0 });
    const result = await trainMasked({
      arch: resnetB, specs, dataset, weights, masks, dataSeed: 2,
      schedule: { iterations: 4, batchSize: 8, evalEvery: 4, optimizer: sgd, learningRateDrops: { at: [2], factor: 0.1 }, augment: { padding: 1, flip: true } },
    });
    let pruned = 0;
    for (const mask of masks) {
      const before = byName(weights, mask.name);
      const after = byName(result.finalWeights, mask.name);
      let moved = 0;
      for (let i = 0; i < mask.bits.length; i++) {
        if (!mask.bits[i]) {
          pruned++;
          if (!Object.is(after[i], 0)) throw new Error(`${mask.name}[${i}] is ${after[i]} but pruned`);
        } else if (after[i] !== before[i]) moved++;
      }
      expect(moved, mask.name).toBeGreaterThan(0);
    }
    expect(pruned).toBe(Math.ceil(0.5 * count(specs, (s) => s.prunable)));
    expect(result.finalWeights.map((t) => t.name)).toEqual(specs.map((s) => s.name));
    expect(byName(result.finalWeights, 'blocks.3.shortcut.1.runningVar')).not.toEqual(byName(weights, 'blocks.3.shortcut.1.runningVar'));
    expect(Number.isFinite(result.final.validation.loss)).toBe(true);
  });
});
