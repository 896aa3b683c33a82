// The service side of signed ticket bundles (step 6): export with the owner's key, verify a bundle
// or an OMS-signed folder, import a verified bundle. The formats are core/bundle's; this file turns
// requests into calls and results into reports, and decides which signer to trust.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BundleRejectedError, InvalidRequestError } from '../api/errors';
import type { BundleFileReport, BundleSignerReport, ExportBundleReport, ImportBundleReport, VerifyBundleReport } from '../api/schemas';
import { verifyFolder } from '../bundle/oms';
import { SIGNATURE_NAME, bundleBytes, bundleFiles, bundleRecords, openBundle } from '../bundle/ticket-bundle';
import { writeFileAtomically } from '../formats/writers';
import type { OwnerKey } from '../ownership/keys';
import type { LabStore } from '../store/lab-store';
import { toSummary } from './summaries';

const MAX_KEY_FILE_BYTES = 64 * 1024;

/** A PEM public key from a file the user named; a clear error when it is none. */
export function readPublicKey(path: string): KeyObject {
  try {
    if (statSync(path).size > MAX_KEY_FILE_BYTES) throw new InvalidRequestError(`${path} is too large to be a PEM public key.`);
    return createPublicKey(readFileSync(path));
  } catch (error) {
    if (error instanceof InvalidRequestError) throw error;
    throw new InvalidRequestError(`Cannot read a public key from ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}. Give a PEM file (-----BEGIN PUBLIC KEY-----).`, { cause: error });
  }
}

/** The signed files with their sizes and the digests verification computed (nothing is read twice). */
function fileReports(folder: string, names: readonly string[], digests: ReadonlyMap<string, string>): BundleFileReport[] {
  return names.map((name) => ({ name, bytes: statSync(join(folder, name)).size, sha256: digests.get(name)! }));
}

/** Who signed: the owner (`ownFingerprint`, from the key file), a key the store knows (trusted to sign or only named in a claim), or a stranger. */
function signerReport(store: LabStore | undefined, signer: { fingerprint: string; curve: string }, ownFingerprint: string | null): BundleSignerReport {
  const stored = store?.listKeys().find((k) => k.fingerprint === signer.fingerprint);
  const own = signer.fingerprint === ownFingerprint || (stored?.own ?? false);
  return {
    fingerprint: signer.fingerprint, curve: signer.curve, known: own || stored !== undefined, trusted: own || (stored?.trusted ?? false), own,
    label: stored?.label ?? (own ? 'owner' : null),
  };
}

export function exportBundle(store: LabStore, key: OwnerKey, params: { ticket: string; output: string; withWeights: boolean; withLineage: boolean }): ExportBundleReport {
  const ticket = store.getTicket(store.resolveTicketId(params.ticket));
  const { manifest, files } = bundleFiles(store, ticket.id, { withWeights: params.withWeights, withLineage: params.withLineage });
  const bytes = bundleBytes(files, key.privateKey, `ticket-lab-${ticket.id}`);
  try {
    writeFileAtomically(params.output, bytes);
  } catch (error) {
    throw new InvalidRequestError(`Cannot write ${params.output}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, { cause: error });
  }
  return {
    ticket: toSummary(ticket), path: params.output, bytes: bytes.length,
    files: files.map((f) => ({ name: f.name, bytes: f.data.length, sha256: createHash('sha256').update(f.data).digest('hex') })),
    signer: { fingerprint: key.fingerprint, curve: 'P-256' }, lineage: manifest.lineage.length, claims: manifest.claims.length,
  };
}

export function verifyBundle(
  store: LabStore | undefined,
  params: { path: string; key?: string | undefined; signature?: string | undefined; ignorePaths?: string[] | undefined },
  ownFingerprint: string | null,
): VerifyBundleReport {
  const key = params.key === undefined ? undefined : readPublicKey(params.key);
  let isFolder: boolean;
  try {
    isFolder = statSync(params.path).isDirectory();
  } catch (error) {
    throw new InvalidRequestError(`Cannot read ${params.path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, { cause: error });
  }
  if (isFolder) {
    const signaturePath = params.signature ?? join(params.path, SIGNATURE_NAME);
    const verified = verifyFolder(params.path, { signaturePath, ...(key ? { key } : {}), ...(params.ignorePaths ? { ignorePaths: params.ignorePaths } : {}) });
    return { path: params.path, kind: 'folder', verified: true, signer: signerReport(store, verified, ownFingerprint), files: fileReports(params.path, verified.files, verified.digests), ticket: null };
  }
  if (params.signature !== undefined || params.ignorePaths !== undefined) {
    throw new InvalidRequestError('--signature and --ignore-paths are for a signed folder; a bundle carries its model.sig and ignores nothing.');
  }
  const bundle = openBundle(params.path, { key });
  try {
    const { manifest } = bundle;
    return {
      path: params.path, kind: 'bundle', verified: true, signer: signerReport(store, bundle.signer, ownFingerprint), files: fileReports(bundle.folder, bundle.files, bundle.digests),
      ticket: {
        id: manifest.ticket.id, model: manifest.model.architecture, dataset: manifest.dataset.name, method: manifest.ticket.method, sparsity: manifest.ticket.sparsity,
        testAccuracy: manifest.ticket.testAccuracy, lineage: manifest.lineage.length, claims: manifest.claims.length,
      },
    };
  } finally {
    bundle.close();
  }
}

/**
 * Imports a bundle whose signer is trusted: the owner's key, a signer trusted before, the key given
 * with --key, or with --trust whatever key the signature carries. The signer's key is remembered as
 * trusted, so the next bundle from the same person imports without asking; keys that only come
 * named in claims are stored to check those claims, never trusted to sign.
 */
export function importBundle(store: LabStore, params: { path: string; key?: string | undefined; trust: boolean }, ownFingerprint: string | null): ImportBundleReport {
  const key = params.key === undefined ? undefined : readPublicKey(params.key);
  const bundle = openBundle(params.path, { key });
  try {
    const signer = signerReport(store, bundle.signer, ownFingerprint);
    if (!signer.trusted && !key && !params.trust) {
      const known = signer.known ? ', which this lab knows only from a claim,' : ', which this lab does not know';
      throw new BundleRejectedError(
        'unknown-key',
        `${basename(params.path)} is signed by key ${signer.fingerprint}${known} and is not trusted to sign bundles. Check that fingerprint with the sender, then pass --key THEIR_KEY.pem (or --trust to accept the key the bundle carries).`,
      );
    }
    const records = bundleRecords(bundle);
    // verifyFolder derives the signer's fingerprint and PEM from the key that verified, never from the file.
    const signerKey = { fingerprint: bundle.signer.fingerprint, algorithm: `ecdsa-${bundle.signer.curve.toLowerCase()}`, publicKeyPem: bundle.signer.publicKeyPem, label: signer.own ? 'owner' : 'bundle signer', own: signer.own, trusted: true };
    const saved = store.saveImportedBundle({ ...records, keys: [signerKey, ...records.keys] });
    return {
      path: params.path, ticket: toSummary(store.getTicket(bundle.manifest.ticket.id)), signer: signerReport(store, bundle.signer, ownFingerprint),
      created: saved.ticketsCreated, present: saved.ticketsPresent, claims: saved.claimsCreated,
    };
  } finally {
    bundle.close();
  }
}
