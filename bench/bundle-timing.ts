// Section 8: bundles. How long exporting and verifying a signed ticket bundle take when it carries
// a ticket's weights: LeNet-3000-1250 on MNIST's shape, about 6.1 M float32 parameters (≈ 25 MB),
// 90 %-sparse random masks, its final weights seeded at init. Beside them, the SHA-256 throughput the
// signature rests on: node:crypto over the weights entry, and coreutils' sha256sum on the same file.
//
// The ticket is stored the way a search stores one (LabStore in a temp folder: model, dataset, run,
// one level), so export reads it back from SQLite as `ticket-lab export --with-weights` would.
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleBytes, bundleFiles, openBundle } from '../core/bundle/ticket-bundle';
import { writeFileAtomically } from '../core/formats/writers';
import { architecture, paramSpecs } from '../core/models/architectures';
import { initWeights } from '../core/models/weights';
import { keyFingerprint } from '../core/ownership/keys';
import { denseMasks } from '../core/pruning/imp';
import { randomStrategy } from '../core/pruning/random';
import { LabStore } from '../core/store/lab-store';
import { median, seconds } from './stopwatch';
import { type Table, fixed } from './text-table';

export interface BundlePlan {
  /** Timed exports and verifications (median), after one untimed of each. */
  repetitions: number;
  /** Timed hashes of the weights file, node:crypto and sha256sum each (median). */
  hashRepetitions: number;
}

const ARCH_ID = 'lenet-3000-1250';
const INPUT_SHAPE = [28, 28, 1] as const;
const NUM_CLASSES = 10;
const SPARSITY = 0.9;
/** Decimal megabytes, as `ls --si` and the issue count them. */
const MB = 1e6;

export interface Sha256sumTiming {
  /** Median wall time of `sha256sum FILE`, process start included. */
  seconds: number;
  /** Median wall time of `sha256sum EMPTY`: start-up, reading nothing. */
  startupSeconds: number;
  endToEndMBps: number;
  /** Bytes over (seconds − startupSeconds); NaN when the difference is not positive. */
  hashingMBps: number;
  version: string;
}

export interface BundleRow {
  bundle: string;
  /** The weights entry (`weights/<id>.final.safetensors`), bytes. */
  weightBytes: number;
  /** The .tlb file, bytes. */
  fileBytes: number;
  /** Signed entries, model.sig excluded. */
  entries: number;
  exportSeconds: number;
  verifySeconds: number;
  /** node:crypto SHA-256: reading the weights file and hashing it, as verification does; MB/s. */
  nodeMBps: number;
  /** node:crypto SHA-256 over bytes already in memory; MB/s. */
  nodeInMemoryMBps: number;
  /** null where sha256sum is not installed or failed. */
  sha256sum: Sha256sumTiming | null;
}

export interface BundleTimingResult {
  repetitions: number;
  hashRepetitions: number;
  rows: BundleRow[];
}

function medianOf(repetitions: number, fn: () => void): number {
  fn();
  const all: number[] = [];
  for (let r = 0; r < repetitions; r++) {
    const began = performance.now();
    fn();
    all.push(seconds(began));
  }
  return median(all);
}

export async function measureBundle(plan: BundlePlan, seed: number, log: (line: string) => void): Promise<BundleTimingResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ticket-lab-bench-bundle-'));
  const store = LabStore.open(join(dir, 'lab.db'), { create: true })!;
  try {
    log(`bundle: storing a ${ARCH_ID} ticket with its final weights`);
    const arch = architecture(ARCH_ID);
    const specs = paramSpecs(arch, INPUT_SHAPE, NUM_CLASSES);
    const weights = initWeights(specs, seed);
    const keep = Object.fromEntries(specs.filter((s) => s.prunable).map((s) => [s.name, Math.round((1 - SPARSITY) * s.shape.reduce((a, b) => a * b, 1))]));
    const masks = await randomStrategy.prune({ weights, masks: denseMasks(specs), budget: { scope: 'layer', keep }, params: {}, seed });
    // The model and dataset records as LabService.registerRun writes them: the bundle carries model.spec.params.
    const modelId = `zoo/${ARCH_ID}/${INPUT_SHAPE.join('x')}-${NUM_CLASSES}`;
    store.ensureModel({ id: modelId, architecture: ARCH_ID, source: 'zoo', sourceDigest: null, spec: { title: arch.title, inputShape: [...INPUT_SHAPE], numClasses: NUM_CLASSES, params: specs } });
    store.ensureDataset({ id: 'mnist@bench', name: 'mnist', source: 'bench', digest: 'bench', spec: { imageShape: [...INPUT_SHAPE], numClasses: NUM_CLASSES } });
    const runId = store.createRun({ method: 'bench', modelId, datasetId: 'mnist@bench', runKey: 'bench-bundle', seed, hparams: {}, backend: {}, versions: {} });
    const [ticketId] = store.saveLevel(runId, [
      { parentId: null, level: 1, method: 'bench', role: 'ticket', testAccuracy: null, earlyStopIteration: null, metrics: {}, curve: [], masks, startWeights: null, finalWeights: weights },
    ]) as [string];
    store.finishRun(runId, 'completed');

    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const fingerprint = keyFingerprint(publicKey);
    const bundlePath = join(dir, 'ticket.tlb');
    const options = { withWeights: true, withLineage: false };

    log(`bundle: export and verify, ${plan.repetitions} times each after one untimed`);
    // What exportBundle does, without the report: read the ticket, sign, zip, write (fsync + rename).
    const exportSeconds = medianOf(plan.repetitions, () => {
      const { files } = bundleFiles(store, ticketId, options);
      writeFileAtomically(bundlePath, bundleBytes(files, privateKey, `ticket-lab-${ticketId}`));
    });
    const verifySeconds = medianOf(plan.repetitions, () => {
      const opened = openBundle(bundlePath);
      try {
        if (opened.signer.fingerprint !== fingerprint || opened.manifest.ticket.id !== ticketId) throw new Error('bench: the bundle verified under another key or ticket');
      } finally {
        opened.close();
      }
    });

    const weightsName = `weights/${ticketId}.final.safetensors`;
    const { files } = bundleFiles(store, ticketId, options);
    const entry = files.find((f) => f.name === weightsName);
    if (!entry) throw new Error(`bench: the bundle holds no ${weightsName}`);
    const weightsPath = join(dir, 'final.safetensors');
    writeFileSync(weightsPath, entry.data);
    const bytes = entry.data.length;
    const expected = createHash('sha256').update(entry.data).digest('hex');

    log(`bundle: SHA-256 of ${fixed(bytes / MB, 1)} MB, ${plan.hashRepetitions} times each by node:crypto and sha256sum`);
    const nodeSeconds = medianOf(plan.hashRepetitions, () => {
      createHash('sha256').update(readFileSync(weightsPath)).digest('hex');
    });
    const inMemory = Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength);
    const nodeInMemorySeconds = medianOf(plan.hashRepetitions, () => {
      createHash('sha256').update(inMemory).digest('hex');
    });

    return {
      repetitions: plan.repetitions,
      hashRepetitions: plan.hashRepetitions,
      rows: [
        {
          bundle: `${ARCH_ID}, ${fixed(SPARSITY * 100, 0)} % sparse, with weights`,
          weightBytes: bytes,
          fileBytes: statSync(bundlePath).size,
          entries: files.length,
          exportSeconds,
          verifySeconds,
          nodeMBps: bytes / MB / nodeSeconds,
          nodeInMemoryMBps: bytes / MB / nodeInMemorySeconds,
          sha256sum: timeSha256sum(weightsPath, join(dir, 'empty'), bytes, expected, plan.hashRepetitions),
        },
      ],
    };
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** coreutils' sha256sum on the same file, one child process per hash; null where it is missing or disagrees. */
function timeSha256sum(path: string, emptyPath: string, bytes: number, expected: string, repetitions: number): Sha256sumTiming | null {
  const version = spawnSync('sha256sum', ['--version'], { encoding: 'utf8' });
  if (version.error || version.status !== 0) return null;
  writeFileSync(emptyPath, '');
  let agrees = true;
  const run = (file: string, digest: string) => () => {
    const child = spawnSync('sha256sum', [file], { encoding: 'utf8' });
    if (child.status !== 0 || !child.stdout.startsWith(digest)) agrees = false;
  };
  const startupSeconds = medianOf(repetitions, run(emptyPath, createHash('sha256').digest('hex')));
  const total = medianOf(repetitions, run(path, expected));
  if (!agrees) return null;
  const hashing = total - startupSeconds;
  return {
    seconds: total,
    startupSeconds,
    endToEndMBps: bytes / MB / total,
    hashingMBps: hashing > 0 ? bytes / MB / hashing : Number.NaN,
    version: version.stdout.split('\n')[0]!.trim(),
  };
}

export function bundleTable(result: BundleTimingResult): Table {
  const sum = result.rows.find((r) => r.sha256sum)?.sha256sum;
  return {
    title: `8. Bundles: exporting and verifying a signed ticket bundle with its weights (${ARCH_ID}, random masks, seeded weights)`,
    measures: [
      `export = bundleFiles (masks and final weights read from a temp SQLite store, as safetensors) + bundleBytes (OMS sign, deflate zip) + write the .tlb (fsync, rename);`,
      `verify = openBundle (read, unpack into a temp folder, OMS: signature and every file's SHA-256) + close. Median of ${result.repetitions}, after one untimed. MB = 10^6 bytes.`,
      `SHA-256 of the weights entry written to a file: node = readFileSync + createHash('sha256') in this process (as verification reads and hashes); sha256sum = \`sha256sum FILE\``,
      `as a child process, start-up (sha256sum on an empty file) subtracted; end to end, start-up included: ${result.rows.map((r) => (r.sha256sum ? `${fixed(r.sha256sum.endToEndMBps, 0)} MB/s` : '—')).join(', ')}.`,
      `Median of ${result.hashRepetitions} each, after one untimed. ratio = node / sha256sum (above 1, Ticket Lab hashes faster).`,
    ],
    columns: [
      { header: 'bundle' },
      { header: 'weights MB', align: 'right' },
      { header: 'file MB', align: 'right' },
      { header: 'export s', align: 'right' },
      { header: 'verify s', align: 'right' },
      { header: 'SHA-256 MB/s (node)', align: 'right' },
      { header: 'sha256sum MB/s', align: 'right' },
      { header: 'ratio', align: 'right' },
    ],
    rows: result.rows.map((r) => [
      r.bundle, fixed(r.weightBytes / MB, 1), fixed(r.fileBytes / MB, 1), fixed(r.exportSeconds, 2), fixed(r.verifySeconds, 2), fixed(r.nodeMBps, 0),
      r.sha256sum ? fixed(r.sha256sum.hashingMBps, 0) : '—', r.sha256sum ? fixed(r.nodeMBps / r.sha256sum.hashingMBps, 2) : '—',
    ]),
    notes: [
      sum ? `${sum.version}; its start-up here: ${fixed(1000 * sum.startupSeconds, 1)} ms.` : 'sha256sum not found (or it disagreed with node:crypto): no ratio.',
      ...result.rows.map((r) => `node:crypto over bytes already in memory: ${fixed(r.nodeInMemoryMBps, 0)} MB/s.`),
    ],
  };
}
