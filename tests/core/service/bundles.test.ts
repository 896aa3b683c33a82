// Signed ticket bundles through the service: one lab exports a claimed ticket with its lineage and
// weights; another lab verifies and imports it (once), keeps the owner's key and claims, and checks
// the claim on the imported ticket; tampered bundles are refused with their reason and change nothing.
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BundleRejectedError } from '../../../core/api/errors';
import { signFiles } from '../../../core/bundle/oms';
import { readZip, writeZip } from '../../../core/bundle/zip';
import { LabService } from '../../../core/service/lab-service';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-bundles-');
const small = { model: 'lenet-300-100', dataset: 'mnist', sparsity: 0.9, iterations: 60, evalEvery: 30, validationSize: 500, backend: 'wasm' as const };

/** The zip's entries, changed by `edit`, written back as a zip (model.sig as it was unless edited). */
function rewrite(path: string, out: string, edit: (entries: Map<string, Uint8Array>) => void): string {
  const entries = readZip(readFileSync(path));
  edit(entries);
  writeFileSync(out, writeZip([...entries].map(([name, data]) => ({ name, data }))));
  return out;
}

/** A zip of one deflated 1 KiB entry whose central header declares `declared` bytes (zip64 past 4 GiB): a zip bomb's headers. */
function bombZip(declared: number): Buffer {
  const name = Buffer.from('bomb.bin');
  const data = Buffer.alloc(1024);
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt16LE(8, 8); // deflate: 1 KiB that claims to inflate to `declared`
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(data.length, 22);
  local.writeUInt16LE(name.length, 26);
  const zip64 = declared >= 0xffffffff;
  const extra = Buffer.alloc(zip64 ? 12 : 0);
  if (zip64) {
    extra.writeUInt16LE(0x0001, 0);
    extra.writeUInt16LE(8, 2);
    extra.writeBigUInt64LE(BigInt(declared), 4);
  }
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt16LE(8, 10);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(zip64 ? 0xffffffff : declared, 24);
  central.writeUInt16LE(name.length, 28);
  central.writeUInt16LE(extra.length, 30);
  const directory = Buffer.concat([central, name, extra]);
  const offset = local.length + name.length + data.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([local, name, data, directory, end]);
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const bundleTemps = () => readdirSync(tmpdir()).filter((n) => n.startsWith('ticket-lab-bundle-')).length;

async function refusal(promise: Promise<unknown>): Promise<BundleRejectedError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BundleRejectedError);
  return error as BundleRejectedError;
}

describe('signed ticket bundles', () => {
  it('exports a claimed ticket with lineage and weights; another lab verifies, imports it once and checks the claim; tampering is refused', async () => {
    const alice = new LabService({ dbPath: join(temp(), 'alice.db'), ownerKeyPath: join(temp(), 'alice-key.pem') });
    const bob = new LabService({ dbPath: join(temp(), 'bob.db'), ownerKeyPath: join(temp(), 'bob-key.pem') });
    try {
      const found = (await alice.searchOneShot({ ...small, seed: 0 })).tickets.at(-1)!;
      const claim = await alice.claim({ ticket: found.id, retrain: false, backend: 'wasm' });
      const ticket = claim.ticket.id;
      const bundle = join(temp(), 'ticket.tlb');
      const exported = await alice.exportBundle({ ticket, output: bundle, withLineage: true, withWeights: true });
      expect(exported.lineage).toBe(2); // the dense level and the one-shot ticket the claim descends from
      expect(exported.claims).toBe(1);
      const names = exported.files.map((f) => f.name);
      expect(names).toEqual([...names].sort());
      expect(names).toContain('manifest.json');
      expect(names).toContain(`masks/${ticket}.safetensors`);
      expect(names).toContain(`weights/${ticket}.final.safetensors`);

      // Deterministic: a second export differs only in the signature (ECDSA signs with a fresh nonce).
      const again = join(temp(), 'again.tlb');
      await alice.exportBundle({ ticket, output: again, withLineage: true, withWeights: true });
      const [first, second] = [readZip(readFileSync(bundle)), readZip(readFileSync(again))];
      expect([...first.keys()]).toEqual([...second.keys()]);
      for (const [name, data] of first) if (name !== 'model.sig') expect(Buffer.from(data).equals(Buffer.from(second.get(name)!))).toBe(true);

      const own = await alice.verifyBundle({ path: bundle });
      expect(own).toMatchObject({ kind: 'bundle', verified: true, signer: { known: true, own: true }, ticket: { id: ticket, lineage: 2, claims: 1 } });
      const aliceKey = (await alice.keys({})).owner!;
      const alicePem = join(temp(), 'alice.pub.pem');
      writeFileSync(alicePem, aliceKey.publicKeyPem);

      // Bob does not know Alice's key: refused, nothing stored, until he names it.
      expect((await refusal(bob.importBundle({ path: bundle }))).reason).toBe('unknown-key');
      expect(await bob.listTickets({})).toEqual([]);
      const imported = await bob.importBundle({ path: bundle, key: alicePem });
      expect(imported.created).toEqual([...(await alice.showTicket({ ticket })).lineage.ancestors.map((t) => t.id), ticket]);
      expect(imported.claims).toEqual([claim.claims[0]!.id]);
      expect(imported.signer).toMatchObject({ fingerprint: aliceKey.fingerprint, known: true, own: false });
      const again2 = await bob.importBundle({ path: bundle });
      expect(again2).toMatchObject({ created: [], claims: [] });
      expect(again2.present).toEqual(imported.created);
      expect((await bob.listTickets({})).length).toBe(3);
      expect((await bob.keys({})).keys.find((k) => k.fingerprint === aliceKey.fingerprint)).toMatchObject({ own: false });

      // The claim travelled with its plan: Bob verifies Alice's signature in the imported ticket's mask.
      const verdict = await bob.verify({ suspect: ticket, claim: claim.claims[0]!.id });
      expect(verdict.verdicts[0]).toMatchObject({ scheme: 'graph-signature', verdict: 'verified', score: 256 });
      const shown = await bob.showTicket({ ticket });
      expect(shown.sparsity).toBeCloseTo(claim.ticket.sparsity, 12);

      // Tampered bundles: each refused with its reason, Bob's database unchanged.
      const before = JSON.stringify(await bob.listTickets({}));
      const masks = `masks/${ticket}.safetensors`;
      const flipped = rewrite(bundle, join(temp(), 'flipped.tlb'), (e) => {
        const data = Uint8Array.from(e.get(masks)!);
        data[data.length - 1] = data[data.length - 1]! ^ 1;
        e.set(masks, data);
      });
      const mismatch = await refusal(bob.importBundle({ path: flipped }));
      expect(mismatch.reason).toBe('digest-mismatch');
      expect(mismatch.message).toContain(masks);
      const extra = rewrite(bundle, join(temp(), 'extra.tlb'), (e) => e.set('notes.txt', Buffer.from('unsigned')));
      expect(await refusal(bob.importBundle({ path: extra }))).toMatchObject({ reason: 'unlisted-entry', message: expect.stringContaining('notes.txt') });
      const missing = rewrite(bundle, join(temp(), 'missing.tlb'), (e) => e.delete(masks));
      expect((await refusal(bob.importBundle({ path: missing }))).reason).toBe('missing-entry');
      // Re-signed by someone else after editing the manifest: Alice's key no longer verifies it.
      const mallory = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
      const forged = rewrite(bundle, join(temp(), 'forged.tlb'), (e) => {
        const manifest = JSON.parse(Buffer.from(e.get('manifest.json')!).toString('utf8')) as { ticket: { testAccuracy: number } };
        manifest.ticket.testAccuracy = 0.999;
        e.set('manifest.json', Buffer.from(JSON.stringify(manifest)));
        e.delete('model.sig');
        e.set('model.sig', Buffer.from(signFiles([...e].map(([name, data]) => ({ name, data })), mallory, { subjectName: 'forged' })));
      });
      expect(['unknown-key', 'bad-signature']).toContain((await refusal(bob.importBundle({ path: forged, key: alicePem }))).reason);
      // Without --key the forger's own key verifies it, but Bob does not know that key.
      expect((await refusal(bob.importBundle({ path: forged }))).reason).toBe('unknown-key');
      expect(createPublicKey(mallory).asymmetricKeyType).toBe('ec');
      expect(JSON.stringify(await bob.listTickets({}))).toBe(before);
    } finally {
      alice.close();
      bob.close();
    }
  }, 120_000);

  it('refuses every tampering of a real bundle with its reason and leaves the database byte for byte as it was', async () => {
    const alice = new LabService({ dbPath: join(temp(), 'alice.db'), ownerKeyPath: join(temp(), 'alice-key.pem') });
    const bundle = join(temp(), 'ticket.tlb');
    const alicePem = join(temp(), 'alice.pub.pem');
    try {
      const ticket = (await alice.searchOneShot({ ...small, iterations: 20, seed: 3 })).tickets.at(-1)!.id;
      await alice.exportBundle({ ticket, output: bundle, withWeights: true });
      writeFileSync(alicePem, (await alice.keys({})).owner!.publicKeyPem);
    } finally {
      alice.close();
    }
    const bobDb = join(temp(), 'bob.db');
    const bobKey = join(temp(), 'bob-key.pem');
    const setup = new LabService({ dbPath: bobDb, ownerKeyPath: bobKey });
    await setup.keys({ create: true });
    setup.close();
    const before = sha256(bobDb);
    const tempsBefore = bundleTemps();

    const bob = new LabService({ dbPath: bobDb, ownerKeyPath: bobKey });
    const expectRefused = async (label: string, path: string, allowed: readonly string[]) => {
      const error = await refusal(bob.importBundle({ path, key: alicePem }));
      expect(allowed, `${label}: ${error.message}`).toContain(error.reason);
    };
    try {
      const entries = readZip(readFileSync(bundle));
      let k = 0;
      for (const [name, data] of entries) {
        // First, last and a spread of positions inside: every signed entry, the manifest and model.sig itself.
        const positions = new Set([0, data.length - 1, ...Array.from({ length: 6 }, (_, i) => Math.floor(((i + 1) * data.length) / 7))]);
        for (const at of positions) {
          const out = rewrite(bundle, join(temp(), `flip-${k++}.tlb`), (e) => {
            const copy = Uint8Array.from(data);
            copy[at] = copy[at]! ^ 0x20;
            e.set(name, copy);
          });
          await expectRefused(name, out, name === 'model.sig' ? ['malformed', 'bad-signature', 'unknown-key'] : ['digest-mismatch']);
        }
      }
      await expectRefused('added', rewrite(bundle, join(temp(), 'added.tlb'), (e) => e.set('extra.bin', Buffer.from('x'))), ['unlisted-entry']);
      const victim = [...entries.keys()].find((n) => n.startsWith('masks/'))!;
      await expectRefused('removed', rewrite(bundle, join(temp(), 'removed.tlb'), (e) => e.delete(victim)), ['missing-entry']);
      await expectRefused('renamed', rewrite(bundle, join(temp(), 'renamed.tlb'), (e) => {
        e.set(victim.replace('masks/', 'masks/x'), e.get(victim)!);
        e.delete(victim);
      }), ['missing-entry', 'unlisted-entry']);
      // Names that leave the folder, patched into the real bundle's headers (same length, so offsets hold).
      const raw = readFileSync(bundle);
      for (const [label, evil] of [['../', '../evil.jsonx'], ['absolute', '/etc/passwd.x']] as const) {
        const patched = Buffer.from(raw.toString('latin1').replaceAll('manifest.json', evil), 'latin1');
        const out = join(temp(), `${label === '../' ? 'dotdot' : 'absolute'}.tlb`);
        writeFileSync(out, patched);
        await expectRefused(label, out, ['path-traversal']);
      }
      for (const declared of [10 * 2 ** 30, 2 ** 32 - 2]) {
        const out = join(temp(), `bomb-${declared}.tlb`);
        writeFileSync(out, bombZip(declared));
        await expectRefused(`bomb ${declared}`, out, ['too-large']);
      }
    } finally {
      bob.close();
    }
    expect(sha256(bobDb)).toBe(before);
    expect(existsSync(`${bobDb}-wal`) ? readFileSync(`${bobDb}-wal`).length : 0).toBe(0);
    expect(bundleTemps()).toBe(tempsBefore);
  }, 120_000);

  it('keeps a key that came named in a claim for checking it, but does not trust it to sign bundles', async () => {
    const lab = (name: string) => new LabService({ dbPath: join(temp(), `${name}.db`), ownerKeyPath: join(temp(), `${name}-key.pem`) });
    const [carol, alice, bob] = [lab('carol'), lab('alice'), lab('bob')];
    try {
      const found = (await carol.searchOneShot({ ...small, iterations: 20, seed: 5 })).tickets.at(-1)!;
      const claimed = (await carol.claim({ ticket: found.id, retrain: false, backend: 'wasm' })).ticket.id;
      const fromCarol = join(temp(), 'carol.tlb');
      await carol.exportBundle({ ticket: claimed, output: fromCarol });
      const carolPem = join(temp(), 'carol.pub.pem');
      writeFileSync(carolPem, (await carol.keys({})).owner!.publicKeyPem);
      const alicePem = join(temp(), 'alice.pub.pem');
      writeFileSync(alicePem, (await alice.keys({ create: true })).owner!.publicKeyPem);

      // Alice trusts Carol, imports her ticket and passes it on, signed by Alice, Carol's claim and key inside.
      await alice.importBundle({ path: fromCarol, key: carolPem });
      const fromAlice = join(temp(), 'alice.tlb');
      expect((await alice.exportBundle({ ticket: claimed, output: fromAlice })).claims).toBe(1);
      await bob.importBundle({ path: fromAlice, key: alicePem });
      const carolFingerprint = (await carol.keys({})).owner!.fingerprint;
      expect((await bob.keys({})).keys.find((k) => k.fingerprint === carolFingerprint)).toMatchObject({ trusted: false, own: false });
      // Carol's own bundle to Bob: her key is known from the claim, not trusted to sign.
      const error = await refusal(bob.importBundle({ path: fromCarol }));
      expect(error.reason).toBe('unknown-key');
      expect(error.message).toMatch(/only from a claim/);
      expect((await bob.verifyBundle({ path: fromCarol })).signer).toMatchObject({ known: true, trusted: false });
      // Once Bob names her key, it is trusted.
      await bob.importBundle({ path: fromCarol, key: carolPem });
      expect((await bob.keys({})).keys.find((k) => k.fingerprint === carolFingerprint)).toMatchObject({ trusted: true, label: 'bundle signer' });
    } finally {
      for (const l of [carol, alice, bob]) l.close();
    }
  }, 120_000);
});
