// The owner's key: made once, ECDSA P-256, its private half in a 0600 file and in no database row.
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { loadOrCreateOwnerKey, loadOwnerKey, ownershipSecret } from '../../../core/ownership/keys';
import { LabService } from '../../../core/service/lab-service';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-keys-');

describe('owner keys', () => {
  it('makes a P-256 key once, in a 0600 file, and stores only its public half', async () => {
    const ownerKeyPath = join(temp(), 'data', 'owner-key.pem');
    const dbPath = join(temp(), 'lab.db');
    const service = new LabService({ dbPath, ownerKeyPath });
    try {
      expect((await service.keys({})).owner).toBeNull();
      const made = await service.keys({ create: true });
      expect(made.owner).toMatchObject({ algorithm: 'ecdsa-p256', own: true, created: true, path: ownerKeyPath });
      expect(made.owner!.fingerprint).toMatch(/^[0-9a-f]{64}$/);
      expect(statSync(ownerKeyPath).mode & 0o777).toBe(0o600);
      const again = await service.keys({ create: true });
      expect(again.owner).toMatchObject({ fingerprint: made.owner!.fingerprint, created: false });
      expect(again.keys.map((k) => k.fingerprint)).toEqual([made.owner!.fingerprint]);
    } finally {
      service.close();
    }
    // No table holds the private key, in PEM or as its DER body.
    const pem = readFileSync(ownerKeyPath, 'utf8');
    const body = pem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
    const db = new Database(dbPath, { readonly: true });
    try {
      for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>) {
        for (const row of db.prepare(`SELECT * FROM "${name}"`).all() as Array<Record<string, unknown>>) {
          const text = JSON.stringify(row, (_, v: unknown) => (Buffer.isBuffer(v) ? v.toString('latin1') : v));
          expect(text.includes(body.slice(0, 40)), `table ${name}`).toBe(false);
          expect(text.includes('PRIVATE KEY'), `table ${name}`).toBe(false);
        }
      }
    } finally {
      db.close();
    }
  });

  it('refuses a key others can read, a file that is no key and a key of another kind, saying what to do', () => {
    const path = join(temp(), 'open.pem');
    const key = loadOrCreateOwnerKey(path);
    expect(ownershipSecret(key)).toEqual(ownershipSecret(loadOwnerKey(path)));
    chmodSync(path, 0o644);
    expect(() => loadOwnerKey(path)).toThrow(/can be read by other users \(mode 644\); run `chmod 600/);
    const garbage = join(temp(), 'garbage.pem');
    writeFileSync(garbage, 'not a key', { mode: 0o600 });
    expect(() => loadOwnerKey(garbage)).toThrow(/is not a PEM private key/);
    const rsa = join(temp(), 'rsa.pem');
    writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    expect(() => loadOwnerKey(rsa)).toThrow(/is a rsa key; Ticket Lab's owner keys are ECDSA P-256/);
    expect(() => loadOwnerKey(join(temp(), 'missing.pem'))).toThrow(/No owner key at .*keys --create/);
  });
});
