// A search takes its training defaults from the model: the ResNets' SGD with momentum, weight decay,
// learning-rate drops at the same fractions of a shorter run, augmentation and global IMP; the LTH
// nets' Adam with none of these. Checked on what the run records, on a tiny CIFAR-10 binary folder.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../core/compute/rng';
import { LabService } from '../../../core/service/lab-service';
import { LabStore } from '../../../core/store/lab-store';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder();
const RECORD = 1 + 32 * 32 * 3;
let dataDir = '';
let previousCache: string | undefined;

/** The official binary layout: five training batches and a test batch of random records. */
function writeTinyCifar(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const rng = Rng.stream(1, 'tiny-cifar');
  const batch = (count: number) => {
    const out = Buffer.alloc(count * RECORD);
    for (let r = 0; r < count; r++) {
      out[r * RECORD] = r % 10;
      for (let i = 1; i < RECORD; i++) out[r * RECORD + i] = rng.int(256);
    }
    return out;
  };
  for (let b = 1; b <= 5; b++) writeFileSync(join(dir, `data_batch_${b}.bin`), batch(8));
  writeFileSync(join(dir, 'test_batch.bin'), batch(10));
}

beforeAll(() => {
  dataDir = join(temp(), 'cifar-10-batches-bin');
  writeTinyCifar(dataDir);
  previousCache = process.env.TICKET_LAB_CACHE_DIR;
  process.env.TICKET_LAB_CACHE_DIR = join(temp(), 'cache');
});
afterAll(() => {
  if (previousCache === undefined) delete process.env.TICKET_LAB_CACHE_DIR;
  else process.env.TICKET_LAB_CACHE_DIR = previousCache;
});

const hparamsOf = (dbPath: string, runId: string) => {
  const store = LabStore.open(dbPath, { create: false })!;
  try {
    return store.getRun(runId).hparams;
  } finally {
    store.close();
  }
};

describe('training defaults from the model', () => {
  it('resnet-20: SGD momentum 0.9, weight decay 1e-4, drops at 1/2 and 3/4 of the run, augmentation; IMP ranks globally', async () => {
    const dbPath = join(temp(), 'resnet.db');
    const service = new LabService({ dbPath });
    const common = { model: 'resnet-20', dataset: 'cifar10', dataDir, iterations: 4, batchSize: 8, evalEvery: 4, validationSize: 8, backend: 'wasm' as const };
    const atInit = await service.searchAtInit({ ...common, method: 'random', sparsity: 0.5 });
    const imp = await service.searchImp({ ...common, levels: 1 });
    const noDrops = await service.searchAtInit({ ...common, method: 'random', sparsity: 0.5, lrDrops: [], optimizer: 'adam', learningRate: 1e-3, augment: false });
    service.close();

    const h = hparamsOf(dbPath, atInit.runId);
    expect(h.optimizer).toMatchObject({ name: 'sgd', learningRate: 0.1, momentum: 0.9, weightDecay: 1e-4 });
    expect(h.learningRateDrops).toEqual({ at: [2, 3], factor: 0.1 });
    expect(h.augment).toEqual({ padding: 4, flip: true });
    expect(hparamsOf(dbPath, imp.runId)).toMatchObject({ scope: 'global', rates: { global: 0.2 } });
    // Another optimiser than the model's takes none of the model's optimiser settings.
    const other = hparamsOf(dbPath, noDrops.runId);
    expect(other.optimizer).toMatchObject({ name: 'adam', learningRate: 1e-3, momentum: 0, weightDecay: 0 });
    expect(other.learningRateDrops).toBeUndefined();
    expect(other.augment).toBeUndefined();
  });

  it('lenet-300-100: Adam, no drops, no augmentation, layer-wise IMP, unless asked', async () => {
    const dbPath = join(temp(), 'lenet.db');
    const service = new LabService({ dbPath });
    const common = { model: 'lenet-300-100', dataset: 'mnist', iterations: 8, evalEvery: 8, validationSize: 100, backend: 'wasm' as const };
    const plain = await service.searchImp({ ...common, levels: 1 });
    const asked = await service.searchAtInit({ ...common, method: 'random', sparsity: 0.5, lrDrops: [0.5], lrDropFactor: 0.5, augment: true });
    service.close();
    const h = hparamsOf(dbPath, plain.runId);
    expect(h).toMatchObject({ scope: 'layer', optimizer: { name: 'adam', learningRate: 1.2e-3, momentum: 0, weightDecay: 0 } });
    expect(h.learningRateDrops).toBeUndefined();
    expect(h.augment).toBeUndefined();
    expect(hparamsOf(dbPath, asked.runId)).toMatchObject({ learningRateDrops: { at: [4], factor: 0.5 }, augment: { padding: 4, flip: true } });
  });
});
