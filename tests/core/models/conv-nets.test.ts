import { describe, expect, it } from 'vitest';
import { selectBackend } from '../../../core/compute/backend';
import { Rng } from '../../../core/compute/rng';
import type { ImageSplit, LoadedDataset } from '../../../core/data/datasets';
import { MODEL_IDS, architecture, paramSpecs } from '../../../core/models/architectures';
import { initWeights } from '../../../core/models/weights';
import { layerRateBudget } from '../../../core/pruning/budget';
import { denseMasks } from '../../../core/pruning/imp';
import { magnitudeStrategy } from '../../../core/pruning/magnitude';
import { DEFAULT_OPTIMIZER } from '../../../core/train/optimizers';
import { trainMasked } from '../../../core/train/train';

/**
 * One 28×28 Conv-2 step takes seconds on the CPU backends: this test uses seeded random 8×8 images,
 * which exercise the same kernels and gradients.
 */
function randomImages(count: number, stream: string): ImageSplit {
  const rng = Rng.stream(1, stream);
  return { images: Uint8Array.from({ length: count * 64 }, () => rng.int(256)), labels: Uint8Array.from({ length: count }, () => rng.int(10)), count };
}
const dataset: LoadedDataset = {
  id: 'random-8x8', source: 'test', digest: 'none', imageShape: [8, 8, 1], numClasses: 10,
  normalization: { mean: 0.5, std: 0.29 }, split: { seed: 0, validationSize: 16 },
  train: randomImages(64, 'train'), validation: randomImages(16, 'validation'), test: randomImages(16, 'test'),
};

describe('Conv-2/4/6', () => {
  it("have the LTH paper's layers and parameter counts on CIFAR-10-shaped input", () => {
    const count = (id: string) => paramSpecs(architecture(id), [32, 32, 3], 10).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
    // LTH paper, Figure 2: Conv-2 4.3M and Conv-4 2.4M weights. For Conv-6 the figure says 1.7M, but
    // the layers it lists (64,64 | 128,128 | 256,256, 3×3, pool after each pair, FC 256-256-10 on
    // 32×32×3) hold 2.26M: we build the layers as listed.
    expect(count('conv-2') / 1e6).toBeCloseTo(4.3, 1);
    expect(count('conv-4') / 1e6).toBeCloseTo(2.4, 1);
    const conv6Convs = 3 * 64 * 9 + 64 * 64 * 9 + 64 * 128 * 9 + 128 * 128 * 9 + 128 * 256 * 9 + 256 * 256 * 9 + 64 + 64 + 128 + 128 + 256 + 256;
    expect(count('conv-6')).toBe(conv6Convs + 4 * 4 * 256 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10);
    expect(count('lenet-300-100')).toBe(3072 * 300 + 300 + 300 * 100 + 100 + 1010);
    expect(MODEL_IDS).toEqual(['lenet-300-100', 'conv-2', 'conv-4', 'conv-6', 'resnet-20', 'resnet-20-openlth']);
  });

  it('train on WASM, which has Ticket Lab\'s Conv2DBackpropFilter, when no GPU backend is usable', async () => {
    const info = await selectBackend('auto', { trainsConv: true });
    if (info.tfBackend === 'webgpu' || info.tfBackend === 'tensorflow') return; // a machine with a GPU or tfjs-node prefers those
    expect(info.tfBackend).toBe('wasm');
    expect(info.notes.join(' ')).not.toMatch(/cannot train conv/);
  });

  it.each(['cpu', 'wasm'] as const)('train with masks on the %s backend, pruned conv weights staying exactly zero', async (backend) => {
    await selectBackend(backend, { trainsConv: true });
    const arch = architecture('conv-2');
    const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
    const weights = initWeights(specs, 1);
    const masks = await magnitudeStrategy.prune({
      weights,
      masks: denseMasks(specs),
      budget: layerRateBudget(denseMasks(specs), { 'conv1.kernel': 0.5, 'conv2.kernel': 0.5, 'fc1.kernel': 0.5 }),
      params: {},
      seed: 0,
    });
    const result = await trainMasked({
      arch, specs, dataset, weights, masks, dataSeed: 1,
      schedule: { iterations: 3, batchSize: 8, evalEvery: 3, optimizer: { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 2e-4 } },
    });
    for (const name of ['conv1.kernel', 'conv2.kernel', 'fc1.kernel']) {
      const mask = masks.find((m) => m.name === name)!;
      const before = weights.find((w) => w.name === name)!.values;
      const values = result.finalWeights.find((w) => w.name === name)!.values;
      let changedKept = 0;
      let nonZeroPruned = 0;
      for (let i = 0; i < values.length; i++) {
        if (!mask.bits[i]) nonZeroPruned += values[i] === 0 ? 0 : 1;
        else if (values[i] !== before[i]) changedKept++;
      }
      expect(nonZeroPruned).toBe(0);
      expect(changedKept).toBeGreaterThan(0);
    }
    expect(Number.isFinite(result.final.validation.loss)).toBe(true);
  });
});
