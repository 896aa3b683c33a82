// A Ticket Lab bundle (DESIGN.md "Bundles"): one zip holding manifest.json, the ticket's masks (and
// its lineage's, its weights when asked), and model.sig, an OMS v1.0 signature over every other
// entry. Because the signature is OMS over a folder's files, an unpacked bundle is a folder that the
// OpenSSF reference tool verifies, and opening one here is: unpack into a fresh private folder,
// verify that folder as OMS, then read the manifest. Nothing reaches the database before all of that.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KeyObject, createPublicKey } from 'node:crypto';
import { BundleRejectedError } from '../api/errors';
import { readModelFile } from '../formats/registry';
import { safetensorsBytes } from '../formats/writers';
import type { ParamSpec } from '../models/architectures';
import type { WeightSet } from '../models/weights';
import type { MaskSet } from '../pruning/mask';
import type { ClaimRecord, KeyRecord, LabStore, NewTicket, TicketRecord } from '../store/lab-store';
import { keyFingerprint } from '../ownership/keys';
import { BUNDLE_FORMAT, type BundleManifest, type BundleTicket, canonicalJson, parseManifest } from './manifest';
import { signFiles, verifyFolder } from './oms';
import { type ZipEntryInput, type ZipLimits, extractZip, writeZip } from './zip';

export const MANIFEST_NAME = 'manifest.json';
export const SIGNATURE_NAME = 'model.sig';

export interface BundleOptions {
  /** The ticket's start (rewind point) and final weights, F32 safetensors. */
  withWeights: boolean;
  /** Its ancestors, root first, each with its masks (and weights with withWeights). */
  withLineage: boolean;
}

const masksFile = (id: string) => `masks/${id}.safetensors`;
const weightsFile = (id: string, which: 'start' | 'final') => `weights/${id}.${which}.safetensors`;

/** The signed files of a ticket's bundle (everything but model.sig), sorted by name, and its manifest. */
export function bundleFiles(store: LabStore, ticketId: string, options: BundleOptions): { manifest: BundleManifest; files: ZipEntryInput[] } {
  const ticket = store.getTicket(ticketId);
  const run = store.getRun(ticket.runId);
  const model = store.getModel(run.modelId);
  const dataset = store.getDataset(run.datasetId);
  const lineage = options.withLineage ? store.ancestors(ticket.id).filter((t) => t.id !== ticket.id) : [];
  const files: ZipEntryInput[] = [];
  const describe = (t: TicketRecord): BundleTicket => {
    files.push({ name: masksFile(t.id), data: safetensorsBytes(store.getMasks(t.id).map((m) => ({ name: m.name, shape: [...m.shape], values: m.bits }))) });
    const weights = (digest: string | null, which: 'start' | 'final'): string | null => {
      if (!options.withWeights || digest === null) return null;
      files.push({ name: weightsFile(t.id, which), data: safetensorsBytes(store.getWeights(digest).map((w) => ({ name: w.name, shape: [...w.shape], values: w.values }))) });
      return weightsFile(t.id, which);
    };
    return {
      id: t.id, runId: t.runId, parentId: t.parentId, level: t.level, method: t.method, role: t.role, kept: t.kept, total: t.total, sparsity: t.sparsity,
      testAccuracy: t.testAccuracy, earlyStopIteration: t.earlyStopIteration, metrics: t.metrics, curve: t.curve, createdAt: t.createdAt,
      masks: masksFile(t.id), startWeights: weights(t.startWeights, 'start'), finalWeights: weights(t.finalWeights, 'final'),
    };
  };
  const ancestors = lineage.map(describe);
  const exported = describe(ticket);
  const tickets = new Set([ticket.id, ...lineage.map((t) => t.id)]);
  const claims = store.listClaims().filter((c) => tickets.has(c.ticketId));
  const fingerprints = new Set(claims.map((c) => c.keyFingerprint).filter((f): f is string => f !== null));
  const keys = store
    .listKeys()
    .filter((k) => fingerprints.has(k.fingerprint))
    .map((k) => ({ fingerprint: k.fingerprint, algorithm: k.algorithm, publicKeyPem: k.publicKeyPem }));
  // The model's own weights (an imported model's) stay home: the ticket's are what the bundle is about.
  const { weights: _modelWeights, ...modelSpec } = model.spec as Record<string, unknown>;
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    ticket: exported,
    lineage: ancestors,
    run: {
      id: run.id, method: run.method, runKey: run.runKey, seed: run.seed, hparams: run.hparams, backend: run.backend, versions: run.versions,
      status: run.status, createdAt: run.createdAt, finishedAt: run.finishedAt,
    },
    model: { id: model.id, architecture: model.architecture, source: model.source, sourceDigest: model.sourceDigest, spec: modelSpec },
    dataset: { id: dataset.id, name: dataset.name, source: dataset.source, digest: dataset.digest, spec: dataset.spec as Record<string, unknown> },
    claims: claims.map(({ id, ticketId: claimed, kind, keyFingerprint, commitment, params, createdAt }) => ({ id, ticketId: claimed, kind, keyFingerprint, commitment, params, createdAt })),
    keys,
  };
  files.push({ name: MANIFEST_NAME, data: Buffer.from(canonicalJson(manifest), 'utf8') });
  files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { manifest, files };
}

/** The bundle's bytes: the files, then model.sig over them, signed with `privateKey`. */
export function bundleBytes(files: readonly ZipEntryInput[], privateKey: KeyObject, subjectName: string): Uint8Array {
  const signature = signFiles(files, privateKey, { subjectName });
  return writeZip([...files, { name: SIGNATURE_NAME, data: Buffer.from(signature, 'utf8') }]);
}

/** A verified bundle, unpacked in its own temporary folder until `close`. */
export interface OpenedBundle {
  manifest: BundleManifest;
  signer: { fingerprint: string; curve: string; publicKeyPem: string };
  /** The signed files (model.sig excluded), sorted. */
  files: string[];
  /** Their verified SHA-256, hex, by name. */
  digests: ReadonlyMap<string, string>;
  folder: string;
  close(): void;
}

/**
 * Unpacks and verifies a bundle: the zip's safety checks (core/bundle/zip.ts), the OMS signature
 * over every entry (with `key` when given, else the key the signature carries), every digest, no
 * unlisted entry; then the manifest, and that every file it names is a signed entry.
 */
export function openBundle(path: string, options: { key?: KeyObject | undefined; limits?: Partial<ZipLimits> } = {}): OpenedBundle {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new BundleRejectedError('malformed', `Cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, { cause: error });
  }
  const folder = mkdtempSync(join(tmpdir(), 'ticket-lab-bundle-'));
  const close = () => rmSync(folder, { recursive: true, force: true });
  try {
    extractZip(bytes, folder, options.limits);
    const verified = verifyFolder(folder, { signaturePath: join(folder, SIGNATURE_NAME), ...(options.key ? { key: options.key } : {}) });
    if (!verified.files.includes(MANIFEST_NAME)) throw new BundleRejectedError('malformed', `${path} is signed but holds no ${MANIFEST_NAME}: it is not a Ticket Lab bundle.`);
    const manifest = parseManifest(readFileSync(join(folder, MANIFEST_NAME)));
    for (const t of [...manifest.lineage, manifest.ticket]) {
      for (const name of [t.masks, t.startWeights, t.finalWeights]) {
        if (name !== null && !verified.files.includes(name)) throw new BundleRejectedError('missing-entry', `The manifest names ${name}, which the bundle does not hold.`);
      }
    }
    return { manifest, signer: { fingerprint: verified.fingerprint, curve: verified.curve, publicKeyPem: verified.publicKeyPem }, files: verified.files, digests: verified.digests, folder, close };
  } catch (error) {
    close();
    throw error;
  }
}

function prunableSpecs(manifest: BundleManifest): ParamSpec[] {
  const params = (manifest.model.spec as { params?: unknown }).params;
  if (!Array.isArray(params)) throw new BundleRejectedError('malformed', `manifest.json: model.spec has no parameter list, so the masks cannot be checked against it.`);
  return (params as ParamSpec[]).filter((p) => p.prunable);
}

/** A ticket's masks from its bundle file: one U8 tensor of 0/1 per prunable kernel, names and shapes as the model's. */
function readMasks(bundle: OpenedBundle, t: BundleTicket): MaskSet {
  const contents = readModelFile(join(bundle.folder, t.masks));
  const specs = prunableSpecs(bundle.manifest);
  const bad = (why: string) => new BundleRejectedError('malformed', `${t.masks}: ${why}.`);
  if (contents.format !== 'safetensors' || contents.tensors.length !== specs.length) throw bad(`expected ${specs.length} mask tensors in safetensors, one per prunable kernel of ${bundle.manifest.model.architecture}`);
  const masks = specs.map((spec) => {
    const tensor = contents.tensors.find((x) => x.name === spec.name);
    if (!tensor) throw bad(`no mask for ${spec.name}`);
    if (tensor.dtype !== 'uint8' || tensor.shape.join(',') !== spec.shape.join(',')) throw bad(`${spec.name} is ${tensor.dtype} [${tensor.shape.join(', ')}]; the model's is uint8 [${spec.shape.join(', ')}]`);
    const bits = new Uint8Array(tensor.values.length);
    for (let i = 0; i < bits.length; i++) {
      const v = tensor.values[i]!;
      if (v !== 0 && v !== 1) throw bad(`${spec.name} holds ${v} at ${i}; a mask holds 0 and 1 only`);
      bits[i] = v;
    }
    return { name: spec.name, shape: [...spec.shape], bits };
  });
  const kept = masks.reduce((n, m) => n + m.bits.reduce((a, b) => a + b, 0), 0);
  const total = masks.reduce((n, m) => n + m.bits.length, 0);
  if (kept !== t.kept || total !== t.total) throw bad(`the masks keep ${kept} of ${total} weights, the manifest says ${t.kept} of ${t.total}`);
  return masks;
}

function readWeights(bundle: OpenedBundle, name: string | null): WeightSet | null {
  if (name === null) return null;
  const contents = readModelFile(join(bundle.folder, name));
  const params = (bundle.manifest.model.spec as { params: ParamSpec[] }).params;
  return params.map((spec) => {
    const tensor = contents.tensors.find((x) => x.name === spec.name);
    if (!tensor || tensor.shape.join(',') !== spec.shape.join(',')) throw new BundleRejectedError('malformed', `${name}: no tensor ${spec.name} of shape [${spec.shape.join(', ')}].`);
    return { name: spec.name, shape: [...spec.shape], values: tensor.values };
  });
}

/** What the store's saveImportedBundle takes, read from a verified bundle: masks and weights checked against the model. */
export function bundleRecords(bundle: OpenedBundle): Parameters<LabStore['saveImportedBundle']>[0] {
  const { manifest } = bundle;
  const tickets = [...manifest.lineage, manifest.ticket].map((t): NewTicket & { id: string; createdAt: string } => ({
    id: t.id, createdAt: t.createdAt, parentId: t.parentId, level: t.level, method: t.method, role: t.role, testAccuracy: t.testAccuracy,
    earlyStopIteration: t.earlyStopIteration, metrics: t.metrics, curve: t.curve, masks: readMasks(bundle, t),
    startWeights: readWeights(bundle, t.startWeights), finalWeights: readWeights(bundle, t.finalWeights),
  }));
  const ticketIds = new Set(tickets.map((t) => t.id));
  for (const key of manifest.keys) {
    // A fingerprint is what claims name: it must be the key's, or a claim could borrow another's name.
    let actual: string;
    try {
      actual = keyFingerprint(createPublicKey(key.publicKeyPem));
    } catch (error) {
      throw new BundleRejectedError('malformed', `manifest.json: key ${key.fingerprint.slice(0, 16)}… is not a readable public key.`, { cause: error });
    }
    if (actual !== key.fingerprint) throw new BundleRejectedError('malformed', `manifest.json: key ${key.fingerprint.slice(0, 16)}… has the fingerprint ${actual.slice(0, 16)}….`);
  }
  const keyFingerprints = new Set(manifest.keys.map((k) => k.fingerprint));
  for (const claim of manifest.claims) {
    if (!ticketIds.has(claim.ticketId)) throw new BundleRejectedError('malformed', `manifest.json: claim ${claim.id} is on ${claim.ticketId}, which the bundle does not hold.`);
    if (claim.keyFingerprint !== null && !keyFingerprints.has(claim.keyFingerprint)) throw new BundleRejectedError('malformed', `manifest.json: claim ${claim.id} names key ${claim.keyFingerprint.slice(0, 16)}…, which the bundle does not carry.`);
  }
  // Keys named in claims are kept to check those claims, not trusted to sign bundles.
  const keys: KeyRecord[] = manifest.keys.map((k) => ({ ...k, label: 'named in a bundle\'s claims', own: false, trusted: false }));
  const claims: ClaimRecord[] = manifest.claims.map((c) => ({ ...c }));
  return {
    keys,
    model: { ...manifest.model },
    dataset: { ...manifest.dataset },
    run: { ...manifest.run },
    tickets,
    claims,
  };
}
