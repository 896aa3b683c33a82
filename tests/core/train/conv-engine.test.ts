// The WebGPU conv step engine against TF.js autodiff (the reference every conv net trained on before
// it): the same weights, masks and batches, a few steps of each, and the weights, running statistics
// and losses must agree. On a machine without a GPU WebGPU runs on SwiftShader, so this runs in CI.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../core/compute/rng';
import { type ImageSplit, type LoadedDataset, fillBatch } from '../../../core/data/datasets';
import { type Architecture, type LayerSpec, architecture, paramSpecs } from '../../../core/models/architectures';
import { MaskedNetwork } from '../../../core/models/network';
import { type WeightSet, initWeights } from '../../../core/models/weights';
import type { MaskSet } from '../../../core/pruning/mask';
import { ConvStepEngine, convEngineUnsupported } from '../../../core/train/engine/conv-engine';
import { DEFAULT_OPTIMIZER, type OptimizerConfig, createOptimizer } from '../../../core/train/optimizers';
import { trainMasked } from '../../../core/train/train';
import { autodiffStep } from '../../../core/train/train-autodiff';
import { useBackend } from '../../support/backends';

function randomImages(count: number, pixels: number, stream: string): ImageSplit {
  const rng = Rng.stream(3, stream);
  return { images: Uint8Array.from({ length: count * pixels }, () => rng.int(256)), labels: Uint8Array.from({ length: count }, () => rng.int(10)), count };
}

function dataset(shape: [number, number, number], count: number): LoadedDataset {
  const pixels = shape[0] * shape[1] * shape[2];
  const empty = randomImages(0, pixels, 'none');
  return {
    id: 'random', source: 'test', digest: 'none', imageShape: shape, numClasses: 10, normalization: { mean: 0.5, std: 0.25 },
    split: { seed: 0, validationSize: 0 }, train: randomImages(count, pixels, 'train'), validation: empty, test: empty,
  };
}

/** Seeded random masks keeping about half of every prunable kernel. */
function halfMasks(arch: Architecture, shape: [number, number, number]): MaskSet {
  const rng = Rng.stream(4, 'masks');
  return paramSpecs(arch, shape, 10)
    .filter((s) => s.prunable)
    .map((s) => ({ name: s.name, shape: s.shape, bits: Uint8Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => (rng.next() < 0.5 ? 0 : 1)) }));
}

const conv = (name: string, filters: number, kernelSize: number, stride: number): LayerSpec => ({ kind: 'conv2d', name, filters, kernelSize, stride, bias: false, activation: 'linear', role: 'conv' });
const bn = (name: string, activation: 'relu' | 'linear'): LayerSpec => ({ kind: 'batchnorm', name, activation });
const body = (filters: number, stride: number): LayerSpec[] => [conv('conv1', filters, 3, stride), bn('bn1', 'relu'), conv('conv2', filters, 3, 1), bn('bn2', 'linear')];

/**
 * A two-block ResNet of resnet-20's kinds: an identity block, then a strided block with the given
 * shortcut. Widths that are multiples of 16 take the kernels' aligned paths (resnet-20's), others the general ones.
 */
function tinyResnet(shortcut: 'A' | 'B', widths: [number, number]): Architecture {
  return {
    ...architecture(shortcut === 'A' ? 'resnet-20' : 'resnet-20-openlth'),
    id: `tiny-resnet-${shortcut}`,
    layers: [
      conv('conv', widths[0], 3, 1),
      bn('bn', 'relu'),
      { kind: 'residual', name: 'blocks.0', body: body(widths[0], 1), shortcut: { kind: 'identity' } },
      {
        kind: 'residual',
        name: 'blocks.1',
        body: body(widths[1], 2),
        shortcut: shortcut === 'A' ? { kind: 'subsample-pad', stride: 2 } : { kind: 'projection', layers: [conv('shortcut.0', widths[1], 1, 2), bn('shortcut.1', 'linear')] },
      },
      { kind: 'globalavgpool' },
      { kind: 'dense', name: 'fc', units: 10, activation: 'linear', role: 'output' },
    ],
  };
}

/**
 * Conv-2's kinds at a small size: biased ReLU convs, a max-pool, flatten and three dense layers. On
 * 12×12 images fc1 has 576 inputs and 6 rows, so its forward product splits its reduction (forwardSplits).
 */
const tinyConvNet: Architecture = {
  ...architecture('conv-2'),
  id: 'tiny-conv-net',
  layers: [
    { kind: 'conv2d', name: 'conv1', filters: 16, kernelSize: 3, activation: 'relu', role: 'conv' },
    { kind: 'conv2d', name: 'conv2', filters: 16, kernelSize: 3, activation: 'relu', role: 'conv' },
    { kind: 'maxpool', size: 2 },
    { kind: 'flatten' },
    { kind: 'dense', name: 'fc1', units: 32, activation: 'relu', role: 'fc' },
    { kind: 'dense', name: 'fc2', units: 20, activation: 'relu', role: 'fc' },
    { kind: 'dense', name: 'fc3', units: 10, activation: 'linear', role: 'output' },
  ],
};

interface Trained {
  weights: WeightSet;
  losses: number[];
}

async function trainBoth(arch: Architecture, shape: [number, number, number], batch: number, steps: number, optimizer: OptimizerConfig): Promise<{ engine: Trained; autodiff: Trained }> {
  const data = dataset(shape, batch * steps);
  const specs = paramSpecs(arch, shape, 10);
  const weights = initWeights(specs, 5);
  const masks = halfMasks(arch, shape);
  const batches = Array.from({ length: steps }, (_, s) => {
    const x = new Float32Array(batch * shape[0] * shape[1] * shape[2]);
    const y = new Int32Array(batch);
    fillBatch(data.train, Array.from({ length: batch }, (_, i) => s * batch + i), data.normalization, x, y);
    return { x, y };
  });
  const learningRate = optimizer.learningRate;

  const autodiffNet = new MaskedNetwork(arch, specs, weights, masks);
  const autodiffOptimizer = createOptimizer(optimizer, autodiffNet);
  const autodiffLosses: number[] = [];
  for (const { x, y } of batches) {
    const loss = autodiffStep(autodiffNet, autodiffOptimizer, x, y, data, true)!;
    autodiffLosses.push((await loss.data())[0]!);
    loss.dispose();
  }
  const autodiff = { weights: await autodiffNet.readWeights(), losses: autodiffLosses };
  autodiffOptimizer.dispose();
  autodiffNet.dispose();

  const engineNet = new MaskedNetwork(arch, specs, weights, masks);
  const engine = new ConvStepEngine(engineNet, shape, 10, batch, optimizer);
  const engineLosses: number[] = [];
  try {
    for (const { x, y } of batches) {
      engine.step(x, y, learningRate);
      engineLosses.push((await engine.takeMeanLoss())!);
    }
    return { engine: { weights: await engineNet.readWeights(), losses: engineLosses }, autodiff };
  } finally {
    engine.dispose();
    engineNet.dispose();
  }
}

/** Largest |a − b| over a tensor, relative to its largest |b| (at least 1e-3, so near-zero tensors compare absolutely). */
function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 1e-3;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

function expectSameTraining(result: { engine: Trained; autodiff: Trained }, masks: MaskSet): void {
  for (let s = 0; s < result.autodiff.losses.length; s++) expect(result.engine.losses[s]).toBeCloseTo(result.autodiff.losses[s]!, 4);
  const worst: Array<[string, number]> = [];
  for (const t of result.autodiff.weights) {
    const e = result.engine.weights.find((w) => w.name === t.name)!;
    worst.push([t.name, relativeError(e.values, t.values)]);
    const mask = masks.find((m) => m.name === t.name);
    if (mask) for (let i = 0; i < mask.bits.length; i++) if (!mask.bits[i]) expect(e.values[i]).toBe(0);
  }
  // float32 sums in another order, over a few steps: agreement to about 1e-5 of each tensor's scale.
  expect(worst.filter(([, err]) => err > 2e-4)).toEqual([]);
}

describe('the WebGPU conv step engine', () => {
  beforeAll(async () => {
    await useBackend('webgpu');
  }, 60_000);

  it('runs the zoo conv nets and ResNets', () => {
    for (const id of ['conv-2', 'conv-4', 'conv-6', 'resnet-20', 'resnet-20-openlth']) expect(convEngineUnsupported(architecture(id))).toBeNull();
  });

  it.each([
    ['A', [16, 32]],
    ['B', [4, 8]],
  ] as const)('trains a ResNet with option-%s shortcuts and %j channels as autodiff does: SGD with momentum and weight decay, BatchNorm in training mode', async (shortcut, widths) => {
    const arch = tinyResnet(shortcut, [...widths]);
    const shape: [number, number, number] = [8, 8, 3];
    // 12 images of 8×8: 768 rows per stem BatchNorm channel, two chunks of the per-channel reductions.
    const result = await trainBoth(arch, shape, 12, 3, { ...DEFAULT_OPTIMIZER, name: 'sgd', learningRate: 0.1, momentum: 0.9, weightDecay: 1e-4 });
    expectSameTraining(result, halfMasks(arch, shape));
    // The running statistics moved from their initial 0 and 1.
    const runningMean = result.engine.weights.find((t) => t.name === 'blocks.1.bn2.runningMean')!.values;
    expect(Math.max(...Array.from(runningMean, Math.abs))).toBeGreaterThan(1e-3);
  }, 120_000);

  it('trains a biased ReLU conv net with max pooling and dense layers as autodiff does, with Adam', async () => {
    const shape: [number, number, number] = [12, 12, 1];
    const result = await trainBoth(tinyConvNet, shape, 6, 3, { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 1e-3 });
    expectSameTraining(result, halfMasks(tinyConvNet, shape));
  }, 120_000);

  it('is what trainMasked trains conv nets with on WebGPU: the same result as autodiff (TICKET_LAB_CONV_ENGINE=off), evaluation and early stop included', async () => {
    const shape: [number, number, number] = [12, 12, 1];
    const data = { ...dataset(shape, 72), validation: randomImages(20, 144, 'validation'), test: randomImages(20, 144, 'test') };
    const specs = paramSpecs(tinyConvNet, shape, 10);
    const masks = halfMasks(tinyConvNet, shape);
    const train = () =>
      trainMasked({
        arch: tinyConvNet, specs, dataset: data, weights: initWeights(specs, 6), masks, dataSeed: 1,
        schedule: { iterations: 12, batchSize: 6, evalEvery: 6, optimizer: { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 1e-3 } },
      });
    const engine = await train();
    process.env.TICKET_LAB_CONV_ENGINE = 'off';
    const autodiff = await train().finally(() => delete process.env.TICKET_LAB_CONV_ENGINE);
    expectSameTraining({ engine: { weights: engine.finalWeights, losses: [] }, autodiff: { weights: autodiff.finalWeights, losses: [] } }, masks);
    expect(engine.curve.map((p) => p.iteration)).toEqual([0, 6, 12]);
    expect(engine.curve.map((p) => p.valAccuracy)).toEqual(autodiff.curve.map((p) => p.valAccuracy));
    expect(engine.earlyStop.iteration).toBe(autodiff.earlyStop.iteration);
    expect(engine.final.test.accuracy).toBe(autodiff.final.test.accuracy);
    // The engine reports the mean loss of the steps since the last point; autodiff samples one step.
    expect(engine.curve[2]!.trainLoss).toBeGreaterThan(0);
  }, 120_000);

  it('refuses a batch whose tensors the GPU cannot bind, saying what to change, and leaks nothing', () => {
    const shape: [number, number, number] = [12, 12, 1];
    const specs = paramSpecs(tinyConvNet, shape, 10);
    const net = new MaskedNetwork(tinyConvNet, specs, initWeights(specs, 7), halfMasks(tinyConvNet, shape));
    const tensors = tf.memory().numTensors;
    const limit = (tf.backend() as unknown as { device: { limits: { maxStorageBufferBindingSize: number } } }).device.limits.maxStorageBufferBindingSize;
    // conv1's output holds batch × 12 × 12 × 16 floats: one image past the limit.
    const batch = Math.floor(limit / (12 * 12 * 16 * 4)) + 1;
    try {
      expect(() => new ConvStepEngine(net, shape, 10, batch, { ...DEFAULT_OPTIMIZER, name: 'sgd', learningRate: 0.1 })).toThrow(/binds at most .* Use a smaller --batch/);
      expect(tf.memory().numTensors).toBe(tensors);
    } finally {
      net.dispose();
    }
  });

  it('refuses an architecture it cannot run, saying why', () => {
    const even: Architecture = { ...tinyConvNet, layers: [{ kind: 'conv2d', name: 'c', filters: 4, kernelSize: 2, activation: 'relu', role: 'conv' }] };
    expect(convEngineUnsupported(even)).toMatch(/even kernel size/);
    expect(tf.getBackend()).toBe('webgpu');
  });
});
