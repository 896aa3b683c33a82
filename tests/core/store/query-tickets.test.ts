// The UI's ticket table: filters (sparsity and accuracy ranges, claimed, owner) and sorted pages with
// the total, on a real store; pages never overlap and cover the selection exactly.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { denseMasks } from '../../../core/pruning/imp';
import { LabService } from '../../../core/service/lab-service';
import { LabStore } from '../../../core/store/lab-store';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-query-');

describe('browsing tickets', () => {
  it('filters by ranges, claims and owner, and pages a sorted selection with its total', async () => {
    const dbPath = join(temp(), 'lab.db');
    const store = LabStore.open(dbPath, { create: true })!;
    const arch = architecture('lenet-8-4');
    const specs = paramSpecs(arch, [28, 28, 1], 10);
    store.ensureModel({ id: 'zoo/lenet-8-4', architecture: arch.id, source: 'zoo', sourceDigest: null, spec: { params: specs } });
    store.ensureDataset({ id: 'mnist@0', name: 'mnist', source: 'test', digest: '0', spec: {} });
    const runId = store.createRun({ method: 'imp', modelId: 'zoo/lenet-8-4', datasetId: 'mnist@0', runKey: 'k', seed: 0, hparams: {}, backend: {}, versions: {} });
    // 30 tickets: sparsity 1/30 … 30/30 of the first layer pruned, accuracy 0.5 + level/100 (level 7 unmeasured).
    const ids: string[] = [];
    for (let level = 0; level < 30; level++) {
      const masks = denseMasks(specs);
      masks[0]!.bits.fill(0, 0, Math.floor(((level + 1) / 30) * masks[0]!.bits.length));
      const [id] = store.saveLevel(runId, [{ parentId: null, level, method: level % 2 ? 'imp' : 'oneshot-magnitude', role: 'ticket', testAccuracy: level === 7 ? null : 0.5 + level / 100, earlyStopIteration: null, metrics: {}, curve: [], masks, startWeights: null, finalWeights: null }]);
      ids.push(id!);
    }
    // One claimed ticket (a child of level 3), by a key whose fingerprint starts 'abc1'.
    const fingerprint = `abc1${'0'.repeat(60)}`;
    store.putKey({ fingerprint, algorithm: 'ecdsa-p256', publicKeyPem: 'test', label: null, own: false, trusted: false });
    const claimedMasks = denseMasks(specs);
    const { ticketId: claimedId } = store.saveClaim(runId, { parentId: ids[3]!, level: 4, method: 'claim', role: 'ticket', testAccuracy: 0.51, earlyStopIteration: null, metrics: {}, curve: [], masks: claimedMasks, startWeights: null, finalWeights: null }, [
      { kind: 'graph-signature', keyFingerprint: fingerprint, commitment: 'ab', params: {} },
    ]);
    store.close();

    const service = new LabService({ dbPath });
    try {
      const all = await service.browseTickets({ limit: 1000, claimed: false });
      expect(all.total).toBe(30);
      const mid = await service.browseTickets({ minSparsity: 0.3, maxSparsity: 0.6, sort: 'sparsity', claimed: false });
      expect(mid.tickets.every((t) => t.sparsity >= 0.3 && t.sparsity <= 0.6)).toBe(true);
      expect(mid.total).toBe(mid.tickets.length);
      expect(mid.tickets.map((t) => t.sparsity)).toEqual([...mid.tickets.map((t) => t.sparsity)].sort((a, b) => a - b));
      const accurate = await service.listTickets({ minAccuracy: 0.7, claimed: false });
      expect(accurate.map((t) => t.level).sort((a, b) => a - b)).toEqual([20, 21, 22, 23, 24, 25, 26, 27, 28, 29]);

      // Pages of 7, by accuracy descending: disjoint, complete, the unmeasured ticket last.
      const seen: string[] = [];
      for (let offset = 0; offset < 30; offset += 7) {
        const page = await service.browseTickets({ sort: 'accuracy', order: 'desc', limit: 7, offset, claimed: false });
        expect(page.total).toBe(30);
        seen.push(...page.tickets.map((t) => t.id));
      }
      expect(new Set(seen).size).toBe(30);
      expect(seen.at(-1)).toBe(ids[7]);
      expect(seen[0]).toBe(ids[29]);

      // Claims: the one claimed ticket, found by having a claim and by its owner's fingerprint.
      expect((await service.browseTickets({ claimed: true })).tickets.map((t) => t.id)).toEqual([claimedId]);
      expect((await service.browseTickets({ claimed: false })).total).toBe(30);
      expect((await service.browseTickets({ owner: 'abc1' })).tickets.map((t) => t.id)).toEqual([claimedId]);
      expect((await service.browseTickets({ owner: 'ffff' })).total).toBe(0);
      await expect(service.browseTickets({ limit: 0 })).rejects.toThrow(/limit/);
    } finally {
      service.close();
    }
  });
});
