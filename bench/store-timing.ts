// Section 5: writing and reading one LeNet ticket (its masks and final weights) with LabStore.
//
// Every repetition writes different final weights: LabStore stores a weight set once per content
// digest, so saving the same weights again would time a lookup, not a write.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { LoadedDataset } from '../core/data/datasets';
import { decodeWeights, digestWeights, encodeWeights, initWeights } from '../core/models/weights';
import { summarizeMasks } from '../core/pruning/mask';
import { decodeMask, encodeMask } from '../core/pruning/mask-encoding';
import { LabStore, WEIGHTS_DEFLATE_LEVEL } from '../core/store/lab-store';
import { type LenetTicket, MODEL_ID } from './lenet-ticket';
import { median, medianSeconds, seconds } from './stopwatch';
import { type Table, fixed, percent } from './text-table';

export interface Spread {
  median: number;
  min: number;
  max: number;
}

function spread(all: readonly number[]): Spread {
  return { median: median(all), min: Math.min(...all), max: Math.max(...all) };
}

export interface StoreTimingResult {
  repetitions: number;
  sparsity: number;
  weightCount: number;
  maskBytes: number;
  weightBytesRaw: number;
  weightBytesStored: number;
  saveSeconds: Spread;
  getMasksSeconds: Spread;
  getWeightsSeconds: Spread;
  readSeconds: Spread;
  /** The steps inside saveLevel and the reads, each timed on its own on the same data: where the time goes. */
  parts: { write: StorePart[]; read: StorePart[] };
  roundTrip: boolean;
}

export interface StorePart {
  name: string;
  seconds: Spread;
}

export function measureStore(dataset: LoadedDataset, ticket: LenetTicket, repetitions: number, seed: number, log: (line: string) => void): StoreTimingResult {
  const dir = mkdtempSync(join(tmpdir(), 'ticket-lab-bench-'));
  const store = LabStore.open(join(dir, 'lab.db'), { create: true })!;
  try {
    const modelId = `zoo/${MODEL_ID}/bench`;
    const datasetId = `${dataset.id}@bench`;
    store.ensureModel({ id: modelId, architecture: MODEL_ID, source: 'zoo', sourceDigest: null, spec: {} });
    store.ensureDataset({ id: datasetId, name: dataset.id, source: dataset.source, digest: dataset.digest, spec: {} });
    const runId = store.createRun({ method: 'bench', modelId, datasetId, runKey: 'bench', seed, hparams: {}, backend: {}, versions: {} });

    log(`LabStore: ${repetitions} ticket writes and reads`);
    // Made before the clock starts: one distinct final weight set per repetition.
    const finals = Array.from({ length: repetitions }, (_, r) => initWeights(ticket.specs, seed, `bench-final-${r}`));
    const saves: number[] = [];
    const ids: string[] = [];
    for (const finalWeights of finals) {
      const began = performance.now();
      const [id] = store.saveLevel(runId, [
        {
          parentId: null,
          level: 1,
          method: 'bench',
          role: 'ticket',
          testAccuracy: null,
          earlyStopIteration: null,
          metrics: {},
          curve: [],
          masks: ticket.masks,
          startWeights: null,
          finalWeights,
        },
      ]);
      saves.push(seconds(began));
      ids.push(id!);
    }

    const digests = ids.map((id) => store.getTicket(id).finalWeights!);
    const masks = medianSeconds(repetitions, (r) => store.getMasks(ids[r]!));
    const weights = medianSeconds(repetitions, (r) => store.getWeights(digests[r]!));
    const reads = medianSeconds(repetitions, (r) => [store.getMasks(ids[r]!), store.getWeights(digests[r]!)] as const);

    const first = finals[0]!;
    const raw = finals.map(encodeWeights);
    const deflated = raw.map((b) => deflateRawSync(b, { level: WEIGHTS_DEFLATE_LEVEL }));
    const maskBlobs = ticket.masks.map(encodeMask);
    const part = (name: string, fn: (r: number) => unknown): StorePart => ({ name, seconds: spread(medianSeconds(repetitions, fn).all) });
    const tensors = `${ticket.masks.length} tensors`;
    const parts = {
      write: [
        part(`encodeMask (${tensors})`, () => ticket.masks.map(encodeMask)),
        part('digestWeights (SHA-256)', (r) => digestWeights(finals[r]!)),
        part('encodeWeights (f32 LE)', (r) => encodeWeights(finals[r]!)),
        part(`deflateRawSync level ${WEIGHTS_DEFLATE_LEVEL}`, (r) => deflateRawSync(raw[r]!, { level: WEIGHTS_DEFLATE_LEVEL })),
      ],
      read: [
        part(`decodeMask (${tensors})`, () => ticket.masks.map((m, i) => decodeMask(m.name, maskBlobs[i]!))),
        part('inflateRawSync', (r) => inflateRawSync(deflated[r]!)),
        part('decodeWeights (f32 LE)', (r) => decodeWeights(raw[r]!)),
      ],
    };
    const roundTrip =
      masks.value.every((m, i) => m.bits.every((b, j) => b === ticket.masks[i]!.bits[j])) &&
      weights.value.every((t, i) => t.values.every((v, j) => Object.is(v, first[i]!.values[j])));
    return {
      repetitions,
      sparsity: summarizeMasks(ticket.masks).sparsity,
      weightCount: first.reduce((n, t) => n + t.values.length, 0),
      maskBytes: maskBlobs.reduce((n, b) => n + b.length, 0),
      weightBytesRaw: raw[0]!.length,
      weightBytesStored: deflated[0]!.length,
      saveSeconds: spread(saves),
      getMasksSeconds: spread(masks.all),
      getWeightsSeconds: spread(weights.all),
      readSeconds: spread(reads.all),
      parts,
      roundTrip,
    };
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function partsSum(parts: readonly StorePart[]): number {
  return parts.reduce((n, p) => n + p.seconds.median, 0);
}

export function storeTable(r: StoreTimingResult): Table {
  const row = (s: Spread): string[] => [s.median, s.min, s.max].map((v) => fixed(v * 1000, 1));
  return {
    title: `5. Store: one LeNet-300-100 ticket (masks at ${percent(r.sparsity, 0)} sparsity + final weights) in a temp SQLite file`,
    measures: [
      `Median of ${r.repetitions} repetitions, each with different final weights (stored weights are deduplicated by digest).`,
      'write = LabStore.saveLevel of one ticket: mask encoding, weight digest + f32 encoding + deflate, one transaction,',
      'WAL commit with synchronous=FULL (an fsync). read = getMasks (decode + CRC) and getWeights (inflate + decode).',
      'part rows: the same steps timed on their own on the same data, to show where the time goes.',
    ],
    columns: [
      { header: 'operation' },
      { header: 'median ms', align: 'right' },
      { header: 'min ms', align: 'right' },
      { header: 'max ms', align: 'right' },
    ],
    rows: [
      ['write: saveLevel (1 ticket)', ...row(r.saveSeconds)],
      ...r.parts.write.map((p) => [`  part: ${p.name}`, ...row(p.seconds)]),
      ['  rest: SQL + commit (median − parts)', fixed((r.saveSeconds.median - partsSum(r.parts.write)) * 1000, 1), '', ''],
      ['read: getMasks', ...row(r.getMasksSeconds)],
      ['read: getWeights (final)', ...row(r.getWeightsSeconds)],
      ...r.parts.read.map((p) => [`  part: ${p.name}`, ...row(p.seconds)]),
      ['read: getMasks + getWeights', ...row(r.readSeconds)],
    ],
    notes: [
      `Sizes: masks ${fixed(r.maskBytes, 0)} B encoded; final weights ${fixed(r.weightCount, 0)} floats = ${fixed(r.weightBytesRaw, 0)} B raw, ${fixed(r.weightBytesStored, 0)} B deflated as stored.`,
      `Round trip: ${r.roundTrip ? 'masks and weights read back bit-exact' : 'MISMATCH between what was written and what was read'}.`,
    ],
  };
}
