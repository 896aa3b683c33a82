// OMS v1.0 signatures (core/bundle/oms.ts) against what others wrote: a folder signed by the reference
// implementation (model_signing v1.0.1, P-384), the specification's test vectors, and an independent
// verifier in Python (tests/support/oms_verify.py). Real keys, real files, copies in a temp folder.
//
// A key given to verify with that is not the key a bundle carries is 'unknown-key' (the bundle was
// signed by someone else), checked before the signature; 'bad-signature' means the key is the right one
// and the signature or the statement it signs was altered.
import { spawnSync } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BundleRejectedError, type BundleRejection } from '../../../core/api/errors';
import { OMS_PREDICATE_TYPE, parseOmsSignature, signFiles, verifyFolder, verifyOmsSignature, verifyResources } from '../../../core/bundle/oms';
import { keyFingerprint } from '../../../core/ownership/keys';
import { useTempFolder } from '../../support/temp-folder';

const FIXTURES = join(__dirname, '..', '..', 'fixtures', 'oms');
const REFERENCE = join(FIXTURES, 'reference-folder');
const VECTORS = join(FIXTURES, 'test-vectors');
const VERIFIER = join(__dirname, '..', '..', 'support', 'oms_verify.py');
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const REFERENCE_KEY_PEM = join(REFERENCE, 'signing-key-pub.pem');
const referenceKey = createPublicKey(readFileSync(REFERENCE_KEY_PEM));
const temp = useTempFolder('ticket-lab-oms-');

const CURVES = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' } as const;
const keys = Object.fromEntries(Object.entries(CURVES).map(([curve, namedCurve]) => [curve, generateKeyPairSync('ec', { namedCurve })])) as Record<
  keyof typeof CURVES,
  { privateKey: KeyObject; publicKey: KeyObject }
>;

function rejection(run: () => unknown): BundleRejectedError {
  try {
    run();
  } catch (error) {
    if (error instanceof BundleRejectedError) return error;
    throw error;
  }
  throw new Error('expected a BundleRejectedError, but it was accepted');
}

function expectRejected(run: () => unknown, reason: BundleRejection, message?: RegExp): void {
  const error = rejection(run);
  expect(error.reason, error.message).toBe(reason);
  if (message) expect(error.message).toMatch(message);
}

let folders = 0;
function newFolder(name: string): string {
  const folder = join(temp(), `${folders++}-${name}`);
  mkdirSync(folder);
  return folder;
}

/** The reference folder as it was signed (model.sig inside, ignore-me left out), in a fresh copy. */
function referenceCopy(): string {
  const folder = newFolder('reference');
  for (const name of ['model.sig', 'signme-1', 'signme-2', 'ignore-me']) copyFileSync(join(REFERENCE, name), join(folder, name));
  return folder;
}

/** Verifies a copy with the reference key, or with none (null): the bundle carries its own. */
const verifyReference = (folder: string, key: KeyObject | null = referenceKey) =>
  verifyFolder(folder, { signaturePath: join(folder, 'model.sig'), key: key ?? undefined, ignorePaths: ['ignore-me'] });

function flipBit(path: string, at: number): void {
  const bytes = readFileSync(path);
  bytes[at]! ^= 0x01;
  writeFileSync(path, bytes);
}

type BundleJson = Record<string, unknown> & {
  verificationMaterial: Record<string, unknown>;
  dsseEnvelope: { payload: string; payloadType: string; signatures: Array<Record<string, unknown> & { sig: string }> };
};

/** model.sig as JSON, edited, written back. */
function editBundle(path: string, edit: (bundle: BundleJson) => void): void {
  const bundle = JSON.parse(readFileSync(path, 'utf8'));
  edit(bundle);
  writeFileSync(path, JSON.stringify(bundle));
}

describe("the reference implementation's signed folder", () => {
  it('verifies with its public key, leaving ignore-me out', () => {
    const result = verifyReference(referenceCopy());
    expect(result).toMatchObject({ curve: 'P-384', fingerprint: keyFingerprint(referenceKey), files: ['signme-1', 'signme-2'] });
    expect(result.fingerprint).toBe('c1e49d63327f85c7e2971aefd30b5a0d1c6b9b5e1a892e7f5fba995adace816d'); // GnuTLS's sha256 key ID in the .pem
    // The bundle carries its key (rawBytes), so it also verifies without one; the caller compares fingerprints.
    expect(verifyReference(referenceCopy(), null).fingerprint).toBe(result.fingerprint);
  });

  it('verifies the fixture folder in place, with the files added beside it ignored', () => {
    const result = verifyFolder(REFERENCE, { signaturePath: join(REFERENCE, 'model.sig'), key: referenceKey, ignorePaths: ['ignore-me', 'LICENSE', 'signing-key-pub.pem'] });
    expect(result.files).toEqual(['signme-1', 'signme-2']);
  });

  it('fails after any byte of signme-1 or signme-2 changes, naming the file', () => {
    for (const name of ['signme-1', 'signme-2']) {
      for (let at = 0; at < readFileSync(join(REFERENCE, name)).length; at++) {
        const folder = referenceCopy();
        flipBit(join(folder, name), at);
        expectRejected(() => verifyReference(folder), 'digest-mismatch', new RegExp(`^${name} does not match its digest in model.sig`));
      }
      const folder = referenceCopy();
      writeFileSync(join(folder, name), Buffer.concat([readFileSync(join(folder, name)), Buffer.from('x')]));
      expectRejected(() => verifyReference(folder), 'digest-mismatch', new RegExp(name));
    }
  });

  it('fails after a signed file is removed, or a file is added', () => {
    const removed = referenceCopy();
    rmSync(join(removed, 'signme-2'));
    expectRejected(() => verifyReference(removed), 'missing-entry', /^signme-2 is signed in model.sig but missing/);
    const added = referenceCopy();
    writeFileSync(join(added, 'signme-3'), 'added');
    expectRejected(() => verifyReference(added), 'unlisted-entry', /^signme-3 is not listed in model.sig/);
    const nested = referenceCopy();
    mkdirSync(join(nested, 'sub'));
    writeFileSync(join(nested, 'sub', 'extra'), '');
    expectRejected(() => verifyReference(nested), 'unlisted-entry', /^sub\/extra /);
    // ignore-me is out of scope only because the verifier is told so, as with the reference tool.
    const folder = referenceCopy();
    expectRejected(() => verifyFolder(folder, { signaturePath: join(folder, 'model.sig'), key: referenceKey }), 'unlisted-entry', /^ignore-me /);
  });

  it('refuses a symbolic link, even to a signed file', () => {
    const folder = referenceCopy();
    rmSync(join(folder, 'signme-2'));
    symlinkSync(join(REFERENCE, 'signme-2'), join(folder, 'signme-2'));
    expectRejected(() => verifyReference(folder), 'unsafe-entry', /^signme-2 is a symbolic link/);
  });

  it('is unknown-key with another key, naming both fingerprints', () => {
    for (const { publicKey } of [keys['P-384'], keys['P-256']]) {
      const error = rejection(() => verifyReference(referenceCopy(), publicKey));
      expect(error.reason).toBe('unknown-key');
      expect(error.message).toContain(keyFingerprint(referenceKey));
      expect(error.message).toContain(keyFingerprint(publicKey));
    }
  });

  it("is bad-signature when model.sig's signature is altered, at any byte", () => {
    const text = readFileSync(join(REFERENCE, 'model.sig'), 'utf8');
    const sig = Buffer.from(JSON.parse(text).dsseEnvelope.signatures[0].sig, 'base64');
    for (let at = 0; at < sig.length; at++) {
      const altered = Buffer.from(sig);
      altered[at]! ^= 0x01;
      const signature = parseOmsSignature(text.replace(sig.toString('base64'), altered.toString('base64')));
      expectRejected(() => verifyOmsSignature(signature, referenceKey), 'bad-signature', /^model.sig: the DSSE signature does not verify with the key c1e49d63/);
    }
  });

  it("never verifies after model.sig's payload is altered", () => {
    const text = readFileSync(join(REFERENCE, 'model.sig'), 'utf8');
    const encoded = JSON.parse(text).dsseEnvelope.payload as string;
    const payload = Buffer.from(encoded, 'base64');
    const reasons = new Set<string>();
    for (let at = 0; at < payload.length; at++) {
      const altered = Buffer.from(payload);
      altered[at]! ^= 0x04;
      // A byte of JSON syntax breaks the parse (malformed); one inside a string keeps it parsing (bad-signature).
      const error = rejection(() => verifyOmsSignature(parseOmsSignature(text.replace(encoded, altered.toString('base64'))), referenceKey));
      expect(['malformed', 'bad-signature']).toContain(error.reason);
      reasons.add(error.reason);
    }
    expect([...reasons].sort()).toEqual(['bad-signature', 'malformed']);
  });

  it('refuses a tampered folder re-signed by someone else, when asked for the right key', () => {
    // The bundle carries whatever key signed it: only a verifier that names the key it trusts notices.
    const folder = referenceCopy();
    writeFileSync(join(folder, 'signme-1'), 'tampered\n');
    const files = ['signme-1', 'signme-2'].map((name) => ({ name, data: readFileSync(join(folder, name)) }));
    writeFileSync(join(folder, 'model.sig'), signFiles(files, keys['P-384'].privateKey, { subjectName: 'v1.0.1-elliptic-key' }));
    expect(verifyReference(folder, null).fingerprint).toBe(keyFingerprint(keys['P-384'].publicKey));
    expectRejected(() => verifyReference(folder), 'unknown-key', /not by the key given/);
  });

  it('is malformed when model.sig is not JSON, and missing-entry when there is none', () => {
    const broken = referenceCopy();
    writeFileSync(join(broken, 'model.sig'), readFileSync(join(broken, 'model.sig'), 'utf8').slice(0, 100));
    expectRejected(() => verifyReference(broken), 'malformed', /^model.sig is not JSON/);
    const unsigned = referenceCopy();
    rmSync(join(unsigned, 'model.sig'));
    expectRejected(() => verifyReference(unsigned), 'missing-entry', /No signature file at .*model.sig/);
  });
});

describe("the specification's test vectors", () => {
  const read = (kind: string, name: string) => readFileSync(join(VECTORS, kind, name));

  it('parses every valid vector', () => {
    const methods: Record<string, string> = { 'certificate.bundle.json': 'certificate', 'key.bundle.json': 'key', 'sigstore.bundle.json': 'sigstore' };
    expect(readdirSync(join(VECTORS, 'valid')).sort()).toEqual(Object.keys(methods));
    for (const [name, method] of Object.entries(methods)) {
      const signature = parseOmsSignature(read('valid', name), name);
      expect(signature.method, name).toBe(method);
      expect(signature.mediaType).toBe('application/vnd.dev.sigstore.bundle.v0.3+json');
      expect(signature.statement.predicateType).toBe(OMS_PREDICATE_TYPE);
      expect(signature.resources.map((r) => r.name)).toEqual(['signme-1', 'signme-2']);
      expect(signature.hashType).toBe('sha256');
      expect(signature.ignorePaths).toContain('ignore-me');
    }
  });

  it('rejects every invalid vector as malformed, naming what is wrong', () => {
    const expected: Record<string, RegExp> = {
      'invalid/empty.bundle.json': /^empty.bundle.json is empty/,
      'invalid/missing-envelope.bundle.json': /: dsseEnvelope is missing\.$/,
      'invalid/missing-tlog-entries.bundle.json': /: verificationMaterial.tlogEntries is missing \(for the sigstore method\)\.$/,
      'invalid/missing-verification-material.bundle.json': /: verificationMaterial is missing\.$/,
      'invalid-payload/wrong-predicate.bundle.json': /not an OMS v1.0 statement: predicateType must be "https:\/\/model_signing\/signature\/v1.0", not "https:\/\/example.com\/wrong-predicate\/v1.0"/,
    };
    const present = ['invalid', 'invalid-payload'].flatMap((kind) => readdirSync(join(VECTORS, kind)).map((name) => `${kind}/${name}`));
    expect(present.sort()).toEqual(Object.keys(expected).sort());
    for (const [path, message] of Object.entries(expected)) {
      expectRejected(() => parseOmsSignature(readFileSync(join(VECTORS, path)), path.split('/')[1]), 'malformed', message);
    }
  });

  it('verifies the key vector (a hint only) with the key its hint names, the reference P-384 key', () => {
    const signature = parseOmsSignature(read('valid', 'key.bundle.json'));
    expect(signature.publicKey).toEqual({ hint: 'e8450dec4eb99dae995da9af1bc2cc9f76ed669ee2e744f57abba763df3e3f8e' });
    // The hint is the SHA-256 of the key's PEM text (reference v1.1), not of its DER.
    expect(createHash('sha256').update(referenceKey.export({ type: 'spki', format: 'pem' })).digest('hex')).toBe(signature.publicKey!.hint);
    expectRejected(() => verifyOmsSignature(signature), 'unknown-key', /only by a hint \(e8450dec.*\): give the public key .*--key/);
    expect(verifyOmsSignature(signature, referenceKey)).toMatchObject({ curve: 'P-384', fingerprint: keyFingerprint(referenceKey) });
    expectRejected(() => verifyOmsSignature(signature, keys['P-384'].publicKey), 'unknown-key', /names another signing key \(hint e8450dec/);
    const altered = { ...signature, envelope: { ...signature.envelope, payload: Buffer.from(Buffer.from(signature.envelope.payload).toString().replace('signme-2', 'signme-3')) } };
    expectRejected(() => verifyOmsSignature(altered, referenceKey), 'bad-signature');
  });

  it('refuses the certificate and sigstore methods as unknown-key: only the key method is verified here', () => {
    for (const name of ['certificate.bundle.json', 'sigstore.bundle.json']) {
      expectRejected(() => verifyOmsSignature(parseOmsSignature(read('valid', name), name), referenceKey), 'unknown-key', /Ticket Lab verifies only the key method/);
    }
  });

  it('follows the schemas where the vectors do not: keyid, strict objects, media type, base64', () => {
    const path = join(newFolder('schema'), 'model.sig');
    const check = (edit: (bundle: BundleJson) => void, reason: 'ok' | RegExp) => {
      copyFileSync(join(REFERENCE, 'model.sig'), path);
      editBundle(path, edit);
      if (reason === 'ok') expect(verifyOmsSignature(parseOmsSignature(readFileSync(path)), referenceKey).curve).toBe('P-384');
      else expectRejected(() => parseOmsSignature(readFileSync(path)), 'malformed', reason);
    };
    const firstSig = (b: BundleJson) => b.dsseEnvelope.signatures[0]!;
    check((b) => delete firstSig(b).keyid, 'ok');
    check((b) => (firstSig(b).keyid = ''), 'ok');
    check((b) => (firstSig(b).keyid = 7), /dsseEnvelope.signatures\[0\].keyid must be a string, not a number/);
    check((b) => (firstSig(b).extra = 1), /dsseEnvelope.signatures\[0\] has unknown field extra/);
    check((b) => (b.extra = 1), /the top level has unknown field extra/);
    check((b) => (b.mediaType = 'application/json'), /mediaType: Invalid string/);
    check((b) => (b.dsseEnvelope.payloadType = 'text/plain'), /dsseEnvelope.payloadType must be "application\/vnd.in-toto\+json", not "text\/plain"/);
    check((b) => (b.dsseEnvelope.signatures = []), /dsseEnvelope.signatures/);
    check((b) => (b.verificationMaterial = { publicKey: {} }), /verificationMaterial.publicKey: needs a hint or rawBytes/);
    check((b) => (b.verificationMaterial = {}), /verificationMaterial has none of publicKey/);
    check((b) => (b.dsseEnvelope.payload = `${b.dsseEnvelope.payload.slice(0, 20)}!${b.dsseEnvelope.payload.slice(21)}`), /dsseEnvelope.payload of model.sig is not base64/);
    const statement = JSON.parse(Buffer.from(JSON.parse(readFileSync(join(REFERENCE, 'model.sig'), 'utf8')).dsseEnvelope.payload, 'base64').toString());
    const withStatement = (edit: (s: typeof statement) => void) => (b: BundleJson) => {
      const s = structuredClone(statement);
      edit(s);
      b.dsseEnvelope.payload = Buffer.from(JSON.stringify(s)).toString('base64');
    };
    check(withStatement((s) => (s.predicate.serialization.method = 'shards')), /predicate.serialization.shard_size is missing\.$/);
    check(withStatement((s) => (s.predicate.resources[0].digest = 'ABC')), /predicate.resources\[0\].digest: Invalid string/);
    check(withStatement((s) => s.subject.push(s.subject[0])), /subject: /);
    check(withStatement((s) => (s.predicate.extra = true)), /predicate has unknown field extra/);
  });
});

describe('signFiles', () => {
  // Code-point order, not JavaScript's UTF-16 order: U+FF21 comes before U+1F600.
  const NAMES = ['😀.bin', 'b', 'a/b', 'Ａ', 'a.b', 'Z', 'é/weights.bin'];
  const SORTED = ['Z', 'a.b', 'a/b', 'b', 'é/weights.bin', 'Ａ', '😀.bin'];
  const files = NAMES.map((name, i) => ({ name, data: Buffer.from(`${name} holds ${'x'.repeat(i * 100)}`) }));

  for (const curve of Object.keys(CURVES) as Array<keyof typeof CURVES>) {
    it(`signs with a ${curve} key into a bundle that verifies, and fails after a flipped bit`, () => {
      const { privateKey, publicKey } = keys[curve];
      const text = signFiles(files, privateKey, { subjectName: 'lenet-ticket', ignorePaths: ['notes'] });
      const signature = parseOmsSignature(text);
      expect(signature.method).toBe('key');
      expect(signature.publicKey?.keyDetails).toBe(`PKIX_ECDSA_${curve.replace('-', '')}_SHA_${{ 'P-256': 256, 'P-384': 384, 'P-521': 512 }[curve]}`);
      expect(verifyOmsSignature(signature)).toEqual({ curve, fingerprint: keyFingerprint(publicKey), publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) });
      expect(verifyOmsSignature(signature, publicKey).curve).toBe(curve);
      verifyResources(signature, new Map(files.map((f) => [f.name, f.data])));

      for (const [i, file] of files.entries()) {
        const changed = Buffer.from(file.data);
        changed[i % changed.length]! ^= 0x80;
        const tampered = new Map(files.map((f) => [f.name, f === file ? changed : f.data]));
        expectRejected(() => verifyResources(signature, tampered), 'digest-mismatch', new RegExp(`^${file.name.replace('.', '\\.')} does not match`));
      }
      const sig = Buffer.from(signature.envelope.signatures[0]!.sig);
      sig[sig.length - 1]! ^= 0x01;
      expectRejected(() => verifyOmsSignature({ ...signature, envelope: { ...signature.envelope, signatures: [{ sig }] } }), 'bad-signature');
      // Any one of several signatures may verify.
      expect(verifyOmsSignature({ ...signature, envelope: { ...signature.envelope, signatures: [{ sig }, ...signature.envelope.signatures] } }).curve).toBe(curve);
    });
  }

  it('writes the statement FORMAT.md describes: sorted resources, root digest, files serialization', () => {
    const signature = parseOmsSignature(signFiles(files, keys['P-256'].privateKey, { subjectName: 'lenet-ticket' }));
    expect(signature.resources.map((r) => r.name)).toEqual(SORTED);
    for (const resource of signature.resources) {
      const data = files.find((f) => f.name === resource.name)!.data;
      expect(resource).toEqual({ name: resource.name, algorithm: 'sha256', digest: createHash('sha256').update(data).digest('hex') });
    }
    const root = createHash('sha256').update(Buffer.concat(signature.resources.map((r) => Buffer.from(r.digest, 'hex')))).digest('hex');
    expect(signature.statement.subject).toEqual([{ name: 'lenet-ticket', digest: { sha256: root } }]);
    expect(signature.statement._type).toBe('https://in-toto.io/Statement/v1');
    expect(signature.statement.predicate.serialization).toEqual({ method: 'files', hash_type: 'sha256', allow_symlinks: false, ignore_paths: [] });
    expect(signature.envelope.payloadType).toBe('application/vnd.in-toto+json');
  });

  it('refuses what cannot be signed', () => {
    const { privateKey, publicKey } = keys['P-256'];
    const sign = (names: string[], key: KeyObject = privateKey) => () => signFiles(names.map((name) => ({ name, data: new Uint8Array(1) })), key, { subjectName: 'x' });
    for (const name of ['../escape', '/absolute', 'a//b', 'a/./b', 'back\\slash', '']) expect(sign([name]), name).toThrow(/relative path/);
    expect(sign(['twice', 'twice'])).toThrow(/'twice' twice/);
    expect(sign([])).toThrow(/at least one file/);
    expect(sign(['a'], publicKey)).toThrow(/private key/);
    expect(sign(['a'], generateKeyPairSync('ed25519').privateKey)).toThrow(/ed25519 key, not ECDSA/);
  });

  it('compares files with the resources: missing, unlisted, changed', () => {
    const signature = parseOmsSignature(signFiles(files, keys['P-256'].privateKey, { subjectName: 'x' }));
    const all = new Map(files.map((f) => [f.name, f.data]));
    const without = new Map(all);
    without.delete('a/b');
    expectRejected(() => verifyResources(signature, without), 'missing-entry', /^a\/b is signed/);
    expectRejected(() => verifyResources(signature, new Map([...all, ['extra.json', new Uint8Array(0)]])), 'unlisted-entry', /^extra.json is not listed/);
  });
});

/** Files on disk, signed with signFiles into FOLDER/model.sig; the public key's PEM beside the folder. */
function signedFolder(curve: keyof typeof CURVES, options: { ignorePaths?: string[] } = {}): { folder: string; keyPath: string } {
  const folder = newFolder(`signed-${curve}`);
  const files = [
    { name: 'manifest.json', data: Buffer.from('{"format":1}') },
    { name: 'masks/conv1.bin', data: Buffer.alloc(4096, 0xa5) },
    { name: 'masks/fc/ü.bin', data: Buffer.from([0, 1, 2, 3]) },
    { name: 'empty', data: Buffer.alloc(0) },
  ];
  for (const { name, data } of files) {
    mkdirSync(dirname(join(folder, name)), { recursive: true });
    writeFileSync(join(folder, name), data);
  }
  writeFileSync(join(folder, 'model.sig'), signFiles(files, keys[curve].privateKey, { subjectName: 'ticket', ...options }));
  const keyPath = join(folder, '..', `${folders}-${curve}.pub.pem`);
  writeFileSync(keyPath, keys[curve].publicKey.export({ type: 'spki', format: 'pem' }));
  return { folder, keyPath };
}

describe('a folder signed here', () => {
  it("verifies as a folder, leaving out the signature's own ignore_paths", () => {
    const { folder } = signedFolder('P-256', { ignorePaths: ['notes'] });
    mkdirSync(join(folder, 'notes'));
    writeFileSync(join(folder, 'notes', 'todo.txt'), 'not signed');
    const result = verifyFolder(folder, { signaturePath: join(folder, 'model.sig'), key: keys['P-256'].publicKey });
    expect(result.files).toEqual(['empty', 'manifest.json', 'masks/conv1.bin', 'masks/fc/ü.bin']);
  });
});

describe('the independent Python verifier (tests/support/oms_verify.py)', () => {
  // Not a skip: without `cryptography` the format would go unchecked by outside code, so the tests fail.
  let checked = false;
  const python = (folder: string, keyPath: string, ...ignorePaths: string[]) => {
    if (!checked) {
      const probe = spawnSync(PYTHON, ['-c', 'import cryptography'], { encoding: 'utf8' });
      const why = (probe.stderr || probe.error?.message || '').trim().split('\n').at(-1);
      if (probe.status !== 0) throw new Error(`${PYTHON} cannot import cryptography (${why}): run \`bash scripts/system-deps.sh\`, which installs Debian's python3-cryptography.`);
      checked = true;
    }
    const args = [VERIFIER, folder, '--signature', join(folder, 'model.sig'), '--key', keyPath, ...(ignorePaths.length ? ['--ignore-paths', ...ignorePaths] : [])];
    const run = spawnSync(PYTHON, args, { encoding: 'utf8' });
    return `${run.status}: ${(run.stdout + run.stderr).trim()}`;
  };

  it('accepts folders we signed, with each curve, and rejects them tampered', () => {
    for (const curve of Object.keys(CURVES) as Array<keyof typeof CURVES>) {
      const { folder, keyPath } = signedFolder(curve);
      expect(python(folder, keyPath)).toBe('0: OK');
      flipBit(join(folder, 'masks', 'fc', 'ü.bin'), 2);
      expect(python(folder, keyPath)).toBe('1: REJECTED: Rejected: masks/fc/ü.bin does not match its digest');
    }
    const { folder, keyPath } = signedFolder('P-256');
    writeFileSync(join(folder, 'masks', 'conv2.bin'), 'added');
    expect(python(folder, keyPath)).toBe('1: REJECTED: Rejected: masks/conv2.bin is not signed');
    const resigned = signedFolder('P-384');
    editBundle(join(resigned.folder, 'model.sig'), (bundle) => {
      const sig = Buffer.from(bundle.dsseEnvelope.signatures[0]!.sig, 'base64');
      sig[sig.length - 2]! ^= 0x01;
      bundle.dsseEnvelope.signatures[0]!.sig = sig.toString('base64');
    });
    expect(python(resigned.folder, resigned.keyPath)).toBe('1: REJECTED: Rejected: the DSSE signature does not verify with the key');
  });

  it('accepts the reference folder as it is, and rejects it tampered', () => {
    expect(python(REFERENCE, REFERENCE_KEY_PEM, 'ignore-me', 'LICENSE', 'signing-key-pub.pem')).toBe('0: OK');
    const folder = referenceCopy();
    expect(python(folder, REFERENCE_KEY_PEM, 'ignore-me')).toBe('0: OK');
    flipBit(join(folder, 'signme-1'), 0);
    expect(python(folder, REFERENCE_KEY_PEM, 'ignore-me')).toBe('1: REJECTED: Rejected: signme-1 does not match its digest');
  });
});
