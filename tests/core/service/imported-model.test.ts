// An imported model (`ticket-lab import`) as the start of a search: pruned as the trained network it
// is (one-shot magnitude, the methods scored at its weights), fine-tuned from its own weights, its
// runs recorded against the imported model.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { TicketSummary } from '../../../core/api/schemas';
import { loadDataset } from '../../../core/data/datasets';
import { readModelFile } from '../../../core/formats/registry';
import { matchZooArchitecture } from '../../../core/formats/zoo-match';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { denseMasks } from '../../../core/pruning/imp';
import { LabService } from '../../../core/service/lab-service';
import { LabStore } from '../../../core/store/lab-store';
import { evaluateWeights } from '../../../core/train/train';
import { useTempFolder } from '../../support/temp-folder';

const FIXTURES = join(__dirname, '..', '..', 'fixtures', 'interop');
const temp = useTempFolder();

function unpack(name: string): string {
  const path = join(temp(), name);
  writeFileSync(path, gunzipSync(readFileSync(join(FIXTURES, `${name}.gz`))));
  return path;
}

const small = { dataset: 'mnist', iterations: 20, evalEvery: 10, validationSize: 500, backend: 'wasm' as const };

describe('searches from an imported model', () => {
  it('prunes its weights by magnitude, SNIP or the jackpot without training them, fine-tunes from them, and records the runs against it', async () => {
    const path = unpack('lenet.pt');
    const dbPath = join(temp(), 'lab.db');
    const service = new LabService({ dbPath });
    try {
      const model = await service.importModel({ path });
      const imported = matchZooArchitecture(readModelFile(path).tensors, 'pytorch')!.weights;

      const noRetrain = await service.searchOneShot({ ...small, model: model.id.slice(0, 8), sparsity: 0.98, retrain: false });
      // Level 0 is the network as imported, measured; the pruned ticket descends from it.
      expect(noRetrain.tickets.map((t) => [t.level, t.method])).toEqual([[0, 'imported'], [1, 'oneshot-magnitude']]);
      const [dense, pruned] = noRetrain.tickets as [TicketSummary, TicketSummary];
      expect(pruned.parentId).toBe(dense.id);
      const specs = paramSpecs(architecture('lenet-300-100'), [28, 28, 1], 10);
      const measured = await evaluateWeights(architecture('lenet-300-100'), specs, loadDataset('mnist', { validationSize: small.validationSize }), imported, denseMasks(specs));
      expect(dense.testAccuracy).toBe(measured.test.accuracy);
      expect(dense.sparsity).toBe(0);
      const fineTuned = await service.searchOneShot({ ...small, model: model.id, sparsity: 0.98 });
      const snip = await service.searchAtInit({ ...small, model: model.id, method: 'snip', sparsity: 0.98, train: false });
      const jackpot = await service.searchOneShot({ ...small, model: model.id, sparsity: 0.9, criterion: 'jackpot', retrain: false, searchIterations: 20, searchBatchSize: 64 });

      const store = LabStore.open(dbPath, { create: false })!;
      try {
        for (const summary of [noRetrain, fineTuned, snip, jackpot]) expect(store.getRun(summary.runId).modelId).toBe(model.id);
        // Magnitude on the imported weights: every kept fc1 weight is at least as large as every pruned one.
        const masks = store.getMasks(pruned.id);
        const fc1 = imported.find((w) => w.name === 'fc1.kernel')!.values;
        const bits = masks.find((m) => m.name === 'fc1.kernel')!.bits;
        let smallestKept = Infinity;
        let largestPruned = 0;
        for (let i = 0; i < bits.length; i++) {
          if (bits[i]) smallestKept = Math.min(smallestKept, Math.abs(fc1[i]!));
          else largestPruned = Math.max(largestPruned, Math.abs(fc1[i]!));
        }
        expect(smallestKept).toBeGreaterThanOrEqual(largestPruned);
        // Without retraining, the ticket's weights are the imported ones under its mask.
        const untrained = store.getWeights(store.getTicket(pruned.id).finalWeights!).find((w) => w.name === 'fc2.bias')!.values;
        expect(untrained).toEqual(imported.find((w) => w.name === 'fc2.bias')!.values);
        // Fine-tuning moves them.
        const tuned = store.getWeights(store.getTicket(fineTuned.tickets.at(-1)!.id).finalWeights!).find((w) => w.name === 'fc2.bias')!.values;
        expect(tuned).not.toEqual(untrained);
      } finally {
        store.close();
      }

      // Essential sparsity of the imported weights themselves (ALGORITHMS.md: the pretrained model's sweep).
      const sweep = await service.essentialSparsity({ ticket: model.id, dataset: 'mnist', examples: 500 });
      expect([sweep.model, sweep.ticket]).toEqual([model.id, null]);
      expect(sweep.curve.length).toBeGreaterThan(3);
      expect(sweep.curve[0]!.sparsity).toBeLessThan(sweep.curve.at(-1)!.sparsity);
      await expect(service.essentialSparsity({ ticket: model.id })).rejects.toThrow(/an imported model is measured on a dataset; give --dataset/);
      await expect(service.essentialSparsity({ ticket: pruned.id, dataset: 'mnist' })).rejects.toThrow(/leave --dataset out/);

      const conv = await service.importModel({ path: unpack('conv2.safetensors') });
      await expect(service.searchOneShot({ ...small, model: conv.id, sparsity: 0.9 })).rejects.toThrow(/takes 8×8×1 inputs and 10 classes; mnist has 28×28×1 images/);
      await expect(service.searchOneShot({ ...small, model: 'md_ffffffffffff', sparsity: 0.9 })).rejects.toThrow(/No model matches 'md_ffffffffffff'\. Import a model file/);
    } finally {
      service.close();
    }
  }, 120_000);
});
