// OpenSSF Model Signing (OMS) v1.0 with the `files` serialization and the `key` method: the model.sig
// of a Ticket Lab bundle, and of a model folder signed by the reference tool (`model_signing sign key`).
// A model.sig is a Sigstore bundle holding a DSSE envelope around an in-toto statement that lists every
// signed file with its SHA-256 (../shared/interop/oms/FORMAT.md). The zod schemas mirror the spec's JSON
// schemas (spec/schemas/v1.0), strict where those say additionalProperties: false.
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { closeSync, constants as fsConstants, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, join, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { BundleRejectedError, InvalidRequestError } from '../api/errors';
import { keyFingerprint } from '../ownership/keys';

export const OMS_PREDICATE_TYPE = 'https://model_signing/signature/v1.0';
export const OMS_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
const IN_TOTO_STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
/** A model.sig lists one line per file; anything near this size is not one. */
const MAX_SIGNATURE_BYTES = 64 * 1024 * 1024;

export type OmsCurve = 'P-256' | 'P-384' | 'P-521';
// ECDSA hashes by curve (FORMAT.md); keyDetails is how a Sigstore bundle names the pair.
const CURVES: Record<string, { curve: OmsCurve; hash: string; keyDetails: string }> = {
  prime256v1: { curve: 'P-256', hash: 'sha256', keyDetails: 'PKIX_ECDSA_P256_SHA_256' },
  secp384r1: { curve: 'P-384', hash: 'sha384', keyDetails: 'PKIX_ECDSA_P384_SHA_384' },
  secp521r1: { curve: 'P-521', hash: 'sha512', keyDetails: 'PKIX_ECDSA_P521_SHA_512' },
};

// --- bundle.schema.json and envelope.schema.json ---
const PublicKeyIdentifier = z
  .looseObject({ hint: z.string().optional(), rawBytes: z.string().optional() })
  .refine((key) => key.hint !== undefined || key.rawBytes !== undefined, { error: 'needs a hint or rawBytes' });
const X509Certificate = z.looseObject({ rawBytes: z.string().min(1) });
const TransparencyLogEntry = z.looseObject({
  logIndex: z.string().optional(),
  logId: z.looseObject({ keyId: z.string().optional() }).optional(),
  kindVersion: z.looseObject({ kind: z.string().optional(), version: z.string().optional() }).optional(),
  integratedTime: z.string().optional(),
  inclusionPromise: z.looseObject({ signedEntryTimestamp: z.string().optional() }).optional(),
  inclusionProof: z
    .looseObject({
      logIndex: z.string().optional(),
      rootHash: z.string().optional(),
      treeSize: z.string().optional(),
      hashes: z.array(z.string()).optional(),
      checkpoint: z.looseObject({ envelope: z.string().optional() }).optional(),
    })
    .optional(),
  canonicalizedBody: z.string().optional(),
});
const TlogEntries = z.array(TransparencyLogEntry);
const TimestampVerificationData = z.looseObject({ rfc3161Timestamps: z.array(z.looseObject({ signedTimestamp: z.string().optional() })).optional() });
const timestamps = { timestampVerificationData: TimestampVerificationData.optional() };
/** anyOf, in the schema's order; describeIssue names the branch by these keys. */
const MATERIAL_KEYS = { publicKey: 'key', x509CertificateChain: 'certificate', certificate: 'sigstore' } as const;
const VerificationMaterial = z.union([
  z.looseObject({ publicKey: PublicKeyIdentifier, tlogEntries: TlogEntries.optional(), ...timestamps }).transform(({ publicKey }) => ({ method: 'key' as const, publicKey })),
  z
    .looseObject({ x509CertificateChain: z.looseObject({ certificates: z.array(X509Certificate).min(1) }), tlogEntries: TlogEntries.optional(), ...timestamps })
    .transform(() => ({ method: 'certificate' as const })),
  z.looseObject({ certificate: X509Certificate, tlogEntries: TlogEntries, ...timestamps }).transform(() => ({ method: 'sigstore' as const })),
]);
const DsseEnvelope = z.strictObject({
  payload: z.string().min(1),
  payloadType: z.literal(IN_TOTO_PAYLOAD_TYPE),
  signatures: z.array(z.strictObject({ sig: z.string().min(1), keyid: z.string().nullable().optional() })).min(1),
});
const Bundle = z.strictObject({
  mediaType: z.string().regex(/^application\/vnd\.dev\.sigstore\.bundle/),
  verificationMaterial: VerificationMaterial,
  dsseEnvelope: DsseEnvelope,
});

// --- statement.schema.json and predicate.schema.json ---
const Hex = z.string().regex(/^[0-9a-f]+$/);
const HashAlgorithm = z.enum(['sha256', 'blake2b', 'blake3']);
const Serialization = z
  .strictObject({
    method: z.enum(['files', 'shards']),
    hash_type: HashAlgorithm,
    shard_size: z.number().int().positive().optional(),
    allow_symlinks: z.boolean(),
    ignore_paths: z.array(z.string().min(1)).optional(),
  })
  .refine((s) => s.method !== 'shards' || s.shard_size !== undefined, { error: 'the shards method needs shard_size', path: ['shard_size'] });
const Statement = z.strictObject({
  _type: z.literal(IN_TOTO_STATEMENT_TYPE),
  subject: z
    .array(z.looseObject({ name: z.string().min(1), digest: z.record(z.string(), Hex).refine((d) => Object.keys(d).length > 0, { error: 'needs a digest' }) }))
    .min(1)
    .max(1),
  predicateType: z.literal(OMS_PREDICATE_TYPE),
  predicate: z.strictObject({
    resources: z.array(z.looseObject({ name: z.string().min(1), digest: Hex, algorithm: HashAlgorithm })),
    serialization: Serialization,
  }),
});

export type OmsHashAlgorithm = z.infer<typeof HashAlgorithm>;
export type OmsStatement = z.infer<typeof Statement>;
export type OmsResource = {
  /** '/'-separated path relative to the signed folder. */
  name: string;
  algorithm: OmsHashAlgorithm;
  /** Hex digest of the file. */
  digest: string;
};

/** A model.sig, parsed and checked against the OMS v1.0 schemas; nothing in it is trusted before verifyOmsSignature. */
export interface OmsSignature {
  /** The file's name in messages. */
  source: string;
  mediaType: string;
  method: 'key' | 'certificate' | 'sigstore';
  /** The key method's key: its PEM where the bundle carries it (rawBytes, before reference v1.1), else a hint naming it. */
  publicKey?: { pem?: string; hint?: string; keyDetails?: string };
  envelope: { payload: Uint8Array; payloadType: string; signatures: Array<{ sig: Uint8Array; keyid?: string | null }> };
  statement: OmsStatement;
  subject: OmsStatement['subject'][number];
  resources: OmsResource[];
  serializationMethod: 'files' | 'shards';
  hashType: OmsHashAlgorithm;
  ignorePaths: string[];
}

export interface OmsVerifiedKey {
  /** keyFingerprint: hex SHA-256 of the key's SubjectPublicKeyInfo DER. */
  fingerprint: string;
  curve: OmsCurve;
  publicKeyPem: string;
}

/**
 * Signs files (name = '/'-separated relative path, in any order) into a model.sig: a Sigstore bundle v0.3
 * whose DSSE envelope holds an OMS statement listing each file's SHA-256, resources sorted by name in
 * code-point order. The bundle carries its public key (rawBytes, as reference v1.0.x writes it), so a
 * verifier needs no key store; verifying against a known key is the caller's choice.
 */
export function signFiles(files: ReadonlyArray<{ name: string; data: Uint8Array }>, privateKey: KeyObject, options: { subjectName: string; ignorePaths?: string[] }): string {
  if (privateKey.type !== 'private') throw new InvalidRequestError('Signing needs a private key; a public key was given.');
  const { hash, keyDetails } = curveOf(privateKey, (message) => new InvalidRequestError(`Cannot sign with this key: ${message}.`));
  if (files.length === 0) throw new InvalidRequestError('Nothing to sign: an OMS signature lists at least one file.');
  if (!options.subjectName) throw new InvalidRequestError('An OMS signature needs a subject name (the signed folder or bundle).');
  if (options.ignorePaths?.some((path) => !path)) throw new InvalidRequestError('An ignored path cannot be empty.');
  for (const { name } of files) {
    if (name.split('/').some((part) => part === '' || part === '.' || part === '..') || /[\\\0]/.test(name)) {
      throw new InvalidRequestError(`Cannot sign '${name}': a signed name is a relative path with '/' between non-empty parts, without '.', '..' or '\\'.`);
    }
  }
  const resources = files
    .map(({ name, data }): OmsResource => ({ name, algorithm: 'sha256', digest: createHash('sha256').update(data).digest('hex') }))
    .sort((a, b) => byCodePoint(a.name, b.name));
  const duplicate = resources.find((resource, i) => i > 0 && resources[i - 1]!.name === resource.name);
  if (duplicate) throw new InvalidRequestError(`Cannot sign '${duplicate.name}' twice.`);
  const rootDigest = createHash('sha256');
  for (const { digest } of resources) rootDigest.update(Buffer.from(digest, 'hex'));
  const statement = {
    _type: IN_TOTO_STATEMENT_TYPE,
    subject: [{ name: options.subjectName, digest: { sha256: rootDigest.digest('hex') } }],
    predicateType: OMS_PREDICATE_TYPE,
    predicate: { resources, serialization: { method: 'files', hash_type: 'sha256', allow_symlinks: false, ignore_paths: options.ignorePaths ?? [] } },
  } satisfies OmsStatement;
  const payload = Buffer.from(JSON.stringify(statement, null, 2));
  const sig = sign(hash, preAuthEncoding(IN_TOTO_PAYLOAD_TYPE, payload), { key: privateKey, dsaEncoding: 'der' });
  const publicKeyPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  const bundle: z.input<typeof Bundle> = {
    mediaType: OMS_MEDIA_TYPE,
    verificationMaterial: { publicKey: { rawBytes: Buffer.from(publicKeyPem).toString('base64'), keyDetails } },
    dsseEnvelope: { payload: payload.toString('base64'), payloadType: IN_TOTO_PAYLOAD_TYPE, signatures: [{ sig: sig.toString('base64'), keyid: '' }] },
  };
  return `${JSON.stringify(bundle, null, 2)}\n`;
}

/**
 * Parses a model.sig and checks it against the OMS v1.0 schemas: the bundle, its envelope, and the
 * statement inside. Anything else is BundleRejectedError('malformed') saying which part is wrong.
 * Bundles of the certificate and sigstore methods parse too (verifyOmsSignature refuses them).
 */
export function parseOmsSignature(text: string | Uint8Array, source = 'model.sig'): OmsSignature {
  const json = typeof text === 'string' ? text : decodeUtf8(text, source);
  if (json.trim() === '') throw malformed(`${source} is empty: an OMS signature is a Sigstore bundle in JSON.`);
  const raw = parseJson(json, source);
  const bundle = Bundle.safeParse(raw);
  if (!bundle.success) throw malformed(`${source} is not an OMS v1.0 signature: ${describeIssues(bundle.error, raw)}.`);
  const { verificationMaterial: material, dsseEnvelope: envelope } = bundle.data;
  const payload = decodeBase64(envelope.payload, `dsseEnvelope.payload of ${source}`);
  const statementJson = parseJson(decodeUtf8(payload, `The DSSE payload of ${source}`), `The DSSE payload of ${source}`);
  const statement = Statement.safeParse(statementJson);
  if (!statement.success) throw malformed(`The statement in ${source} (its DSSE payload) is not an OMS v1.0 statement: ${describeIssues(statement.error, statementJson)}.`);
  const { predicate } = statement.data;
  return {
    source,
    mediaType: bundle.data.mediaType,
    method: material.method,
    ...(material.method === 'key' && { publicKey: readPublicKey(material.publicKey, source) }),
    envelope: {
      payload,
      payloadType: envelope.payloadType,
      signatures: envelope.signatures.map(({ sig, keyid }, i) => ({ sig: decodeBase64(sig, `dsseEnvelope.signatures[${i}].sig of ${source}`), keyid })),
    },
    statement: statement.data,
    subject: statement.data.subject[0]!,
    resources: predicate.resources.map(({ name, algorithm, digest }) => ({ name, algorithm, digest })),
    serializationMethod: predicate.serialization.method,
    hashType: predicate.serialization.hash_type,
    ignorePaths: predicate.serialization.ignore_paths ?? [],
  };
}

/**
 * Verifies the DSSE signature over the PAE; any one of the envelope's signatures may verify. The key is
 * the one given, else the one the bundle carries; a given key other than the carried one is
 * 'unknown-key', as is a hint-only bundle without a key and a bundle of another method (only the key
 * method is verified here). A signature that does not verify is 'bad-signature' — or 'unknown-key'
 * when the bundle's hint names another key than the one given.
 */
export function verifyOmsSignature(signature: OmsSignature, key?: KeyObject): OmsVerifiedKey {
  const { source, envelope, publicKey: material } = signature;
  // parseOmsSignature's schemas hold these already; an OmsSignature built by hand gets the same answer.
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) throw malformed(`${source}: the DSSE payloadType is '${envelope.payloadType}', not '${IN_TOTO_PAYLOAD_TYPE}'.`);
  if (signature.statement.predicateType !== OMS_PREDICATE_TYPE) throw malformed(`${source}: the statement's predicateType is '${signature.statement.predicateType}', not OMS's '${OMS_PREDICATE_TYPE}'.`);
  if (signature.method !== 'key') {
    const what = signature.method === 'certificate' ? 'an X.509 certificate chain' : 'keyless: a Fulcio certificate and the Rekor log';
    throw new BundleRejectedError('unknown-key', `${source} is signed with the ${signature.method} method (${what}); Ticket Lab verifies only the key method. Check it with \`model_signing verify ${signature.method}\`.`);
  }
  const carried = material?.pem === undefined ? undefined : createPublicKey(material.pem);
  const given = key?.type === 'private' ? createPublicKey(key) : key; // a private key gives its public half
  const publicKey = given ?? carried;
  if (!publicKey) throw new BundleRejectedError('unknown-key', `${source} names its signing key only by a hint (${material?.hint ?? 'none'}): give the public key to verify it with (--key PUB.pem).`);
  const { curve, hash } = curveOf(publicKey, (message) => new BundleRejectedError('unknown-key', `${source} cannot be verified with this key: ${message}.`));
  const fingerprint = keyFingerprint(publicKey);
  if (given && carried && keyFingerprint(carried) !== fingerprint) {
    throw new BundleRejectedError('unknown-key', `${source} was signed by the key it carries (fingerprint ${keyFingerprint(carried)}), not by the key given (fingerprint ${fingerprint}).`);
  }
  const pae = preAuthEncoding(envelope.payloadType, envelope.payload);
  const verified = envelope.signatures.some(({ sig }) => {
    try {
      return verify(hash, pae, { key: publicKey, dsaEncoding: 'der' }, sig);
    } catch {
      return false; // not a DER signature at all
    }
  });
  if (!verified) {
    const hint = material?.hint?.toLowerCase();
    if (!carried && hint !== undefined && !keyHints(publicKey).includes(hint)) {
      throw new BundleRejectedError('unknown-key', `${source} names another signing key (hint ${hint}) than the key given (fingerprint ${fingerprint}), and that key does not verify it.`);
    }
    throw new BundleRejectedError('bad-signature', `${source}: the DSSE signature does not verify with the key ${fingerprint} (${curve}); the signature or the statement it signs was altered.`);
  }
  return { fingerprint, curve, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/**
 * Compares files (by '/'-separated name) with the signed resources. Call it after verifyOmsSignature:
 * before that the resources are only claims.
 */
export function verifyResources(signature: OmsSignature, files: ReadonlyMap<string, Uint8Array>): void {
  const digests = new Map<string, string>();
  for (const [name, data] of files) digests.set(name, createHash('sha256').update(data).digest('hex'));
  compareDigests(signature, digests);
}

/**
 * Verifies a plain folder signed with OMS, as the reference tool does: reads the signature file
 * (`signaturePath`, a path like any other, usually inside the folder), verifies it, then digests every
 * regular file in the folder except the signature itself and what lies under `ignorePaths` (relative to
 * the folder) or the signature's own ignore_paths. A symbolic link or any other special file is refused.
 */
export function verifyFolder(
  folder: string,
  options: { signaturePath: string; key?: KeyObject; ignorePaths?: string[] },
): OmsVerifiedKey & { files: string[]; digests: ReadonlyMap<string, string> } {
  const root = resolve(folder);
  const signaturePath = resolve(options.signaturePath);
  const source = basename(signaturePath);
  if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) throw new InvalidRequestError(`${folder} is not a folder.`);
  const signature = parseOmsSignature(readSignature(signaturePath, source), source);
  const verified = verifyOmsSignature(signature, options.key);
  const ignored = [...(options.ignorePaths ?? []), ...signature.ignorePaths, signaturePath].map((path) => relative(root, resolve(root, path)).split(sep).join('/'));
  const digests = new Map<string, string>();
  const walk = (dir: string, prefix: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const name = prefix + entry.name;
      if (ignored.some((path) => name === path || name.startsWith(`${path}/`))) continue;
      if (entry.isSymbolicLink()) throw new BundleRejectedError('unsafe-entry', `${name} is a symbolic link; a signed folder may hold only regular files and folders (allow_symlinks is false).`);
      if (entry.isDirectory()) walk(join(dir, entry.name), `${name}/`);
      else if (entry.isFile()) digests.set(name, hashFile(join(dir, entry.name), name));
      else throw new BundleRejectedError('unsafe-entry', `${name} is neither a regular file nor a folder.`);
    }
  };
  walk(root, '');
  compareDigests(signature, digests);
  // The digests as verified (hex SHA-256 by name), so callers that report them need not hash again.
  return { ...verified, files: [...digests.keys()].sort(byCodePoint), digests };
}

function compareDigests(signature: OmsSignature, digests: ReadonlyMap<string, string>): void {
  const { source } = signature;
  if (signature.serializationMethod !== 'files') throw malformed(`${source} uses the '${signature.serializationMethod}' serialization; Ticket Lab verifies only 'files'.`);
  if (signature.hashType !== 'sha256') throw malformed(`${source} hashes files with ${signature.hashType}; Ticket Lab verifies only sha256.`);
  const listed = new Map<string, string>();
  for (const { name, algorithm, digest } of signature.resources) {
    if (algorithm !== 'sha256') throw malformed(`${source} lists ${name} with a ${algorithm} digest; Ticket Lab verifies only sha256.`);
    if (listed.has(name)) throw malformed(`${source} lists ${name} twice.`);
    listed.set(name, digest);
  }
  for (const [name, digest] of listed) {
    const actual = digests.get(name);
    if (actual === undefined) throw new BundleRejectedError('missing-entry', `${name} is signed in ${source} but missing: a signed file was removed or renamed.`);
    if (actual !== digest) throw new BundleRejectedError('digest-mismatch', `${name} does not match its digest in ${source}: it was changed after signing.`);
  }
  for (const name of digests.keys()) {
    if (!listed.has(name)) throw new BundleRejectedError('unlisted-entry', `${name} is not listed in ${source}: it was added after signing.`);
  }
}

/** DSSE's pre-authentication encoding, what the signature covers (never the bare payload). */
function preAuthEncoding(payloadType: string, payload: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(payloadType)} ${payloadType} ${payload.length} `), payload]);
}

function curveOf(key: KeyObject, refuse: (message: string) => Error): { curve: OmsCurve; hash: string; keyDetails: string } {
  const named = key.asymmetricKeyType === 'ec' ? CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''] : undefined;
  if (!named) throw refuse(`it is ${key.asymmetricKeyType === 'ec' ? `an EC key on ${key.asymmetricKeyDetails?.namedCurve}` : `a ${key.asymmetricKeyType ?? key.type} key`}, not ECDSA P-256, P-384 or P-521`);
  return named;
}

/** What a bundle's publicKey.hint may say of a key: its fingerprint, or (reference v1.1) the SHA-256 of its PEM text. */
function keyHints(publicKey: KeyObject): string[] {
  return [keyFingerprint(publicKey), createHash('sha256').update(publicKey.export({ type: 'spki', format: 'pem' })).digest('hex')];
}

function readPublicKey(identifier: z.infer<typeof PublicKeyIdentifier>, source: string): NonNullable<OmsSignature['publicKey']> {
  const { hint, rawBytes, keyDetails } = identifier;
  const out: NonNullable<OmsSignature['publicKey']> = { ...(hint !== undefined && { hint }), ...(typeof keyDetails === 'string' && { keyDetails }) };
  if (rawBytes === undefined) return out;
  const bytes = decodeBase64(rawBytes, `verificationMaterial.publicKey.rawBytes of ${source}`);
  try {
    // Reference v1.0.x stores the PEM text; Sigstore's own producers store the DER.
    const pem = bytes.subarray(0, 11).toString('latin1') === '-----BEGIN ';
    const key = pem ? createPublicKey(bytes.toString('latin1')) : createPublicKey({ key: bytes, format: 'der', type: 'spki' });
    return { ...out, pem: key.export({ type: 'spki', format: 'pem' }).toString() };
  } catch (error) {
    throw malformed(`verificationMaterial.publicKey.rawBytes of ${source} is not a public key (PEM or DER).`, error);
  }
}

function describeIssues(error: z.ZodError, input: unknown): string {
  return error.issues.slice(0, 3).map((issue) => describeIssue(issue, input, [])).join('; ');
}

/** One schema problem in words, naming the field by its JSON path. */
function describeIssue(issue: z.core.$ZodIssue, input: unknown, base: PropertyKey[]): string {
  const path = [...base, ...issue.path];
  const value = valueAt(input, issue.path);
  const field = path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '') || 'the top level';
  if (value === undefined) return `${field} is missing`;
  switch (issue.code) {
    case 'unrecognized_keys':
      return `${field} has unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
    case 'invalid_type':
      return `${field} must be ${withArticle(issue.expected)}, not ${value === null ? 'null' : withArticle(Array.isArray(value) ? 'array' : typeof value)}`;
    case 'invalid_value':
      return `${field} must be ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}, not ${JSON.stringify(value)}`;
    case 'invalid_union': {
      // Only verificationMaterial is a union (the schema's anyOf of the signing methods): explain the branch its keys pick.
      const branch = Object.keys(MATERIAL_KEYS).findIndex((key) => isRecord(value) && key in value);
      const inner = issue.errors[branch]?.[0];
      if (inner) return `${describeIssue(inner, value, path)} (for the ${Object.values(MATERIAL_KEYS)[branch]} method)`;
      return `${field} has none of publicKey (key method), x509CertificateChain (certificate method), certificate with tlogEntries (sigstore method)`;
    }
    default:
      return `${field}: ${issue.message}`;
  }
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) value = isRecord(value) && Object.hasOwn(value, key) ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  return value;
}

function withArticle(noun: string): string {
  return `${/^[aeiou]/.test(noun) ? 'an' : 'a'} ${noun}`;
}

function isRecord(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw malformed(`${what} is not JSON (${(error as Error).message}).`, error);
  }
}

function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw malformed(`${what} is not UTF-8 text.`, error);
  }
}

/** Standard or URL-safe base64 (DSSE allows both), canonical only: Buffer.from alone skips stray characters. */
function decodeBase64(text: string, what: string): Buffer {
  const bytes = Buffer.from(text, 'base64');
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text) || bytes.toString('base64').replace(/=+$/, '') !== text.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '')) {
    throw malformed(`${what} is not base64.`);
  }
  return bytes;
}

function readSignature(path: string, name: string): Buffer {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (error) {
    throw new BundleRejectedError('missing-entry', `No signature file at ${path}: the folder is not signed, or its signature lies elsewhere.`, { cause: error });
  }
  if (size > MAX_SIGNATURE_BYTES) throw new BundleRejectedError('too-large', `${name} is ${size} bytes, over the ${MAX_SIGNATURE_BYTES} a signature may have.`);
  return readFileSync(path);
}

/** SHA-256 of a file in 1 MiB steps (model files may be larger than memory), never through a link. */
function hashFile(path: string, name: string): string {
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw new BundleRejectedError('unsafe-entry', `${name} became a symbolic link while it was read.`, { cause: error });
    throw error;
  }
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.alloc(1 << 20);
    for (let read; (read = readSync(fd, buffer, 0, buffer.length, null)) > 0; ) hash.update(buffer.subarray(0, read));
    return hash.digest('hex');
  } finally {
    closeSync(fd);
  }
}

/** Code-point order, as OMS sorts resources (UTF-16 order, JS's default, differs above U+FFFF). */
function byCodePoint(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function malformed(message: string, cause?: unknown): BundleRejectedError {
  return new BundleRejectedError('malformed', message, cause === undefined ? undefined : { cause });
}
