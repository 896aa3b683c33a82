// The owner's key pair: ECDSA P-256 through node:crypto (the key type signed bundles use too),
// created on first use. The private key lives in one PEM file readable by the user only (0600), as
// ssh keeps its keys; it is never written to the database, which bundles and backups copy. The
// public key and its fingerprint (SHA-256 of the SubjectPublicKeyInfo DER) go into the store.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { InvalidRequestError } from '../api/errors';

export interface OwnerKey {
  /** Hex SHA-256 of the public key's DER (SubjectPublicKeyInfo). */
  fingerprint: string;
  algorithm: 'ecdsa-p256';
  publicKeyPem: string;
  privateKey: KeyObject;
  /** The private key's file. */
  path: string;
}

/** The public key's fingerprint: hex SHA-256 of its SubjectPublicKeyInfo DER. */
export function keyFingerprint(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

/**
 * The secret the keyed PRNGs of the ownership schemes (signature bits, trigger sets) draw from:
 * derived from the private key, so only its holder can produce them, and never the key itself.
 */
export function ownershipSecret(key: OwnerKey): Uint8Array {
  return createHash('sha256').update('ticket-lab/ownership-secret/v1\0').update(key.privateKey.export({ type: 'pkcs8', format: 'der' })).digest();
}

/** The key at `path`; a clear error when it is missing, unreadable, open to others or not a P-256 key. */
export function loadOwnerKey(path: string): OwnerKey {
  if (!existsSync(path)) throw new InvalidRequestError(`No owner key at ${path}. \`ticket-lab keys --create\` makes one (claims make one on first use).`);
  // Like ssh: a key others can read is no longer only the owner's.
  if (process.platform !== 'win32' && (statSync(path).mode & 0o077) !== 0) {
    throw new InvalidRequestError(`The owner key ${path} can be read by other users (mode ${(statSync(path).mode & 0o777).toString(8)}); run \`chmod 600 ${path}\`.`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(readFileSync(path));
  } catch (error) {
    throw new InvalidRequestError(`The owner key ${path} is not a PEM private key (${(error as Error).message}).`, { cause: error });
  }
  if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new InvalidRequestError(`The owner key ${path} is a ${privateKey.asymmetricKeyType} key${privateKey.asymmetricKeyDetails?.namedCurve ? ` on ${privateKey.asymmetricKeyDetails.namedCurve}` : ''}; Ticket Lab's owner keys are ECDSA P-256.`);
  }
  const publicKey = createPublicKey(privateKey);
  return { fingerprint: keyFingerprint(publicKey), algorithm: 'ecdsa-p256', publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), privateKey, path };
}

/** The key at `path`, made first if there is none: written whole (0600 from the start, then linked into place). */
export function loadOrCreateOwnerKey(path: string): OwnerKey & { created: boolean } {
  if (existsSync(path)) return { ...loadOwnerKey(path), created: false };
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const temp = `${path}.${process.pid}.tmp`;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, pem);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  let created = true;
  try {
    chmodSync(temp, 0o600); // the umask may have cleared bits, never added them; set it exactly anyway
    // A link, not a rename: a key another process made meanwhile is kept, never replaced.
    linkSync(temp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    created = false;
  } finally {
    rmSync(temp, { force: true });
  }
  return { ...loadOwnerKey(path), created };
}
