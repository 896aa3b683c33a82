// Signed ticket bundles through the service: one lab exports a claimed ticket with its lineage and
// weights; another lab verifies and imports it (once), keeps the owner's key and claims, and checks
// the claim on the imported ticket; tampered bundles are refused with their reason and change nothing.
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
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
});
