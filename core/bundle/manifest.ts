// The manifest of a Ticket Lab bundle (`manifest.json`): what the ticket is, where it came from and
// who claims it. It is one of the signed files, so every field here is covered by model.sig. It
// holds no time of export and is written with sorted keys, so exporting a ticket twice gives the
// same bytes. Reading validates it strictly: a bundle is untrusted input until its fields are
// known to be what import expects.
import { z } from 'zod';
import { BundleRejectedError } from '../api/errors';

export const BUNDLE_FORMAT = 'ticket-lab/bundle/v1';

const Hex = z.string().regex(/^[0-9a-f]+$/);
const Json = z.record(z.string(), z.unknown());
/** A bundle file name: a relative '/'-separated path of plain segments (the zip reader checks again). */
const FileName = z.string().regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/).refine((n) => !n.split('/').some((s) => s === '.' || s === '..'), 'a plain relative path');

export const BundleTicket = z
  .object({
    id: z.string().regex(/^tk_[0-9a-z]+$/),
    runId: z.string().min(1),
    parentId: z.string().nullable(),
    level: z.number().int().min(0),
    method: z.string().min(1),
    role: z.enum(['ticket', 'control']),
    kept: z.number().int().min(0),
    total: z.number().int().min(1),
    sparsity: z.number().min(0).max(1),
    testAccuracy: z.number().min(0).max(1).nullable(),
    earlyStopIteration: z.number().int().min(0).nullable(),
    metrics: Json,
    curve: z.array(z.unknown()),
    createdAt: z.string().min(1),
    /** The masks: a safetensors file of U8 tensors, one per masked kernel, in TF.js layout. */
    masks: FileName,
    /** With --with-weights: the weights the ticket starts from (its rewind point) and ends with, F32 safetensors. */
    startWeights: FileName.nullable(),
    finalWeights: FileName.nullable(),
  })
  .strict();
export type BundleTicket = z.infer<typeof BundleTicket>;

export const BundleManifest = z
  .object({
    format: z.literal(BUNDLE_FORMAT),
    /** The exported ticket; `lineage` holds its ancestors root first when exported --with-lineage. */
    ticket: BundleTicket,
    lineage: z.array(BundleTicket),
    run: z
      .object({
        id: z.string().min(1),
        method: z.string().min(1),
        runKey: z.string().min(1),
        seed: z.number().int(),
        hparams: Json,
        backend: Json,
        versions: z.record(z.string(), z.string()),
        status: z.enum(['running', 'completed', 'cancelled', 'failed', 'interrupted']),
        createdAt: z.string().min(1),
        finishedAt: z.string().nullable(),
      })
      .strict(),
    model: z
      .object({ id: z.string().min(1), architecture: z.string().min(1), source: z.enum(['zoo', 'file']), sourceDigest: z.string().nullable(), spec: Json })
      .strict(),
    dataset: z.object({ id: z.string().min(1), name: z.string().min(1), source: z.string(), digest: z.string(), spec: Json }).strict(),
    /** The ownership claims on the ticket (and, with lineage, on its ancestors), each with its commitment. */
    claims: z.array(
      z
        .object({
          id: z.string().regex(/^cl_[0-9a-z]+$/),
          ticketId: z.string().min(1),
          kind: z.enum(['graph-signature', 'trigger-set']),
          keyFingerprint: Hex.nullable(),
          commitment: Hex,
          params: Json,
          createdAt: z.string().min(1),
        })
        .strict(),
    ),
    /** The public keys the claims name. */
    keys: z.array(z.object({ fingerprint: Hex, algorithm: z.string().min(1), publicKeyPem: z.string().min(1) }).strict()),
  })
  .strict();
export type BundleManifest = z.infer<typeof BundleManifest>;

/** JSON with object keys sorted at every depth: the same manifest gives the same bytes. */
export function canonicalJson(value: unknown): string {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(
        Object.keys(v as Record<string, unknown>)
          .sort()
          .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return `${JSON.stringify(sorted(value), null, 2)}\n`;
}

/** The manifest of a verified bundle; 'malformed' with the first problem when it is not one this Ticket Lab reads. */
export function parseManifest(bytes: Uint8Array): BundleManifest {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw new BundleRejectedError('malformed', `manifest.json is not JSON: ${(error as Error).message}.`, { cause: error });
  }
  const format = (json as { format?: unknown } | null)?.format;
  if (format !== BUNDLE_FORMAT) {
    throw new BundleRejectedError('malformed', `manifest.json has format ${JSON.stringify(format ?? null)}; this Ticket Lab reads '${BUNDLE_FORMAT}' (a newer bundle needs a newer Ticket Lab).`);
  }
  const parsed = BundleManifest.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new BundleRejectedError('malformed', `manifest.json: ${issue.path.join('.') || '(root)'}: ${issue.message}.`);
  }
  return parsed.data;
}
