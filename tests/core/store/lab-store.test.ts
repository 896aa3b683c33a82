import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { AmbiguousIdError, DataFormatError, InvalidRequestError, NotFoundError } from '../../../core/api/errors';
import { Rng } from '../../../core/compute/rng';
import type { WeightSet } from '../../../core/models/weights';
import type { MaskSet } from '../../../core/pruning/mask';
import { LabStore, type NewTicket } from '../../../core/store/lab-store';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder();

function fixture(seed: number): { masks: MaskSet; weights: WeightSet } {
  const rng = Rng.stream(seed, 'fixture');
  const bits = Uint8Array.from({ length: 12 * 7 }, () => (rng.next() < 0.3 ? 1 : 0));
  const kernel = Float32Array.from(bits, (b) => (b ? rng.normal() : 0));
  return {
    masks: [{ name: 'fc.kernel', shape: [12, 7], bits }],
    weights: [
      { name: 'fc.kernel', shape: [12, 7], values: kernel },
      { name: 'fc.bias', shape: [7], values: Float32Array.from({ length: 7 }, () => rng.normal()) },
    ],
  };
}

function ticket(seed: number, parentId: string | null, level: number): NewTicket {
  const { masks, weights } = fixture(seed);
  return { parentId, level, method: 'imp', role: 'ticket', testAccuracy: 0.9, earlyStopIteration: 100, metrics: { seed }, curve: [], masks, startWeights: weights, finalWeights: weights };
}

function openStoreWithRun(name: string): { store: LabStore; runId: string } {
  const store = LabStore.open(join(temp(), name), { create: true })!;
  store.ensureModel({ id: 'zoo/m', architecture: 'm', source: 'zoo', sourceDigest: null, spec: {} });
  store.ensureDataset({ id: 'd@1', name: 'd', source: 'test', digest: '1', spec: {} });
  const runId = store.createRun({ method: 'imp', modelId: 'zoo/m', datasetId: 'd@1', runKey: 'k', seed: 0, hparams: {}, backend: {}, versions: {} });
  return { store, runId };
}

describe('LabStore', () => {
  it('stores tickets with their masks and weights and reads them back exactly, with lineage', () => {
    const { store, runId } = openStoreWithRun('roundtrip.db');
    const [root] = store.saveLevel(runId, [ticket(1, null, 0)]);
    const [child] = store.saveLevel(runId, [ticket(2, root!, 1)]);
    const expected = fixture(2);
    const masks = store.getMasks(child!);
    expect(Array.from(masks[0]!.bits)).toEqual(Array.from(expected.masks[0]!.bits));
    const record = store.getTicket(child!);
    expect(record.kept).toBe(expected.masks[0]!.bits.reduce((a, b) => a + b, 0));
    const weights = store.getWeights(record.finalWeights!);
    expect(Array.from(weights[0]!.values)).toEqual(Array.from(expected.weights[0]!.values));
    expect(store.ancestors(child!).map((t) => t.id)).toEqual([root]);
    expect(store.children(root!).map((t) => t.id)).toEqual([child]);
    // Start and final weights are the same content: stored once.
    expect(store.info().counts.weights).toBe(2);
    store.close();
  });

  it('resolves unique id prefixes and refuses ambiguous, unknown or malformed ones', () => {
    const { store, runId } = openStoreWithRun('ids.db');
    const ids = Array.from({ length: 40 }, (_, i) => store.saveLevel(runId, [ticket(i, null, 0)])[0]!);
    const id = ids[0]!;
    expect(store.resolveTicketId(id)).toBe(id);
    const unique = ids.map((x) => x.slice(0, 5)).find((p, _, all) => all.filter((q) => q === p).length === 1)!;
    expect(store.resolveTicketId(unique)).toMatch(new RegExp(`^${unique}`));
    expect(() => store.resolveTicketId('tk_')).toThrow(AmbiguousIdError);
    expect(() => store.resolveTicketId('tk_zzzzzzzzzz')).toThrow(NotFoundError);
    expect(() => store.resolveTicketId("tk_'; DROP TABLE tickets; --")).toThrow(InvalidRequestError);
    expect(store.resolveRunId(runId.slice(0, 6))).toBe(runId);
    store.close();
  });

  it('refuses a weights checkpoint in an encoding it does not know instead of misreading it', () => {
    const { store, runId } = openStoreWithRun('encoding.db');
    const [id] = store.saveLevel(runId, [ticket(3, null, 0)]);
    const digest = store.getTicket(id!).finalWeights!;
    store.close();
    const raw = new Sqlite(join(temp(), 'encoding.db'));
    raw.prepare("UPDATE weights SET encoding = 'f16+zstd' WHERE digest = ?").run(digest);
    raw.close();
    const reopened = LabStore.open(join(temp(), 'encoding.db'), { create: false })!;
    expect(() => reopened.getWeights(digest)).toThrow(DataFormatError);
    reopened.close();
  });
});
