// Claims and verdicts through the service: a ticket claimed with the owner's key (graph signature
// and trigger set, retrained), then suspects checked against the claims: the claimed ticket, its
// export as a file, the unclaimed original, a ticket of another seed, a network of another shape.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { modelInput } from '../../../core/formats/predict';
import { readModelFile } from '../../../core/formats/registry';
import { npyBytes } from '../../../core/formats/writers';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { MaskedNetwork } from '../../../core/models/network';
import { LabService } from '../../../core/service/lab-service';
import { lostByFreeFineTuning } from '../../../core/service/ownership';
import { LabStore } from '../../../core/store/lab-store';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-ownership-');
const small = { model: 'lenet-300-100', dataset: 'mnist', sparsity: 0.9, iterations: 300, evalEvery: 100, validationSize: 500, backend: 'wasm' as const };

describe('claim and verify', () => {
  it('claims a ticket, verifies it and its exported file, and neither the original, another seed nor another network', async () => {
    const dbPath = join(temp(), 'lab.db');
    const ownerKeyPath = join(temp(), 'owner-key.pem');
    const service = new LabService({ dbPath, ownerKeyPath });
    try {
      const owned = (await service.searchOneShot({ ...small, seed: 0 })).tickets.at(-1)!;
      const other = (await service.searchOneShot({ ...small, seed: 1 })).tickets.at(-1)!;

      const claim = await service.claim({ ticket: owned.id, trigger: true, iterations: 300, backend: 'wasm' });
      expect(claim.ticket.parentId).toBe(owned.id);
      expect(claim.ticket.method).toBe('claim');
      // The signature moves entries within one layer: every layer keeps its count.
      expect(claim.ticket.kept).toBe(owned.kept);
      expect(claim.edits!.changed).toBeGreaterThan(0);
      expect(claim.claims.map((c) => c.kind)).toEqual(['graph-signature', 'trigger-set']);
      expect(claim.verdicts.map((v) => [v.scheme, v.verdict])).toEqual([['graph-signature', 'verified'], ['trigger-set', 'verified']]);
      for (const v of claim.verdicts) expect(v.pValue!).toBeLessThan(1e-6);
      expect(Math.abs(claim.testAccuracy.after! - claim.testAccuracy.before!)).toBeLessThan(0.03);

      // The claimed ticket shipped as a file: its mask is where its weights are non-zero.
      const file = join(temp(), 'shipped.safetensors');
      await service.exportMask({ ticket: claim.ticket.id, format: 'safetensors', output: file });
      const shipped = await service.verify({ suspect: file, backend: 'wasm' });
      expect(shipped.suspect.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(shipped.verdicts.map((v) => v.verdict)).toEqual(['verified', 'verified']);

      for (const innocent of [owned.id, other.id]) {
        const report = await service.verify({ suspect: innocent, backend: 'wasm' });
        expect(report.verdicts.map((v) => v.verdict), innocent).toEqual(['not verified', 'not verified']);
        for (const v of report.verdicts) expect(v.pValue!).toBeGreaterThan(1e-3);
      }

      // Another network: no score, a reason.
      const conv = await service.verify({ suspect: join(__dirname, '..', '..', 'fixtures', 'interop-torch2', 'mlp.pt'), claim: claim.claims[0]!.id, backend: 'wasm' });
      expect(conv.verdicts[0]).toMatchObject({ verdict: 'not comparable', score: null, pValue: null });
      expect(String(conv.verdicts[0]!.evidence.reason)).toMatch(/lenet-16-8.*fc2\.kernel \(300×100\)/);

      // Every verdict is stored with its evidence.
      const store = LabStore.open(dbPath, { create: false })!;
      try {
        const stored = store.listVerifications(claim.claims[0]!.id);
        expect(stored.map((v) => v.verdict)).toEqual(['verified', 'verified', 'not verified', 'not verified', 'not comparable']);
        expect(stored[1]!.subject).toBe(shipped.suspect.digest);
        expect(stored[0]!.evidence).toMatchObject({ layer: 'fc2.kernel', size: 16 });
      } finally {
        store.close();
      }

      // The verify screen's list: both claims on the claimed ticket, the owner's own, newest verdict first.
      const listed = await service.listClaims({});
      expect(listed.map((c) => c.kind)).toEqual(['graph-signature', 'trigger-set']);
      expect(listed.every((c) => c.own && c.ticket.id === claim.ticket.id && c.keyFingerprint === claim.keyFingerprint)).toBe(true);
      expect(listed[0]!.verifications.map((v) => v.verdict)).toEqual(['not comparable', 'not verified', 'not verified', 'verified', 'verified']);
      expect(await service.listClaims({ ticket: owned.id })).toEqual([]);
    } finally {
      service.close();
    }
  }, 120_000);

  it('attacks its own claim: the permutation is undone by alignment, light pruning and a forgery leave the owner verified', async () => {
    const service = new LabService({ dbPath: join(temp(), 'lab3.db'), ownerKeyPath: join(temp(), 'owner3.pem') });
    try {
      const ticket = (await service.searchOneShot({ ...small, seed: 0 })).tickets.at(-1)!.id;
      const claim = (await service.claim({ ticket, iterations: 300, backend: 'wasm' })).claims[0]!.id;

      const permuted = await service.attack({ claim, kind: 'permute', backend: 'wasm' });
      const [row] = permuted.rows;
      expect(row!.testAccuracy).toBeCloseTo(permuted.baseline.testAccuracy, 6);
      expect(row!.verdicts[0]).toMatchObject({ verdict: 'verified', score: 256 });
      expect(row!.verdicts[0]!.evidence.scored).toBe('aligned to the claimed ticket');
      // As it is, the permuted mask is a stranger's: the alignment is what finds the owner.
      expect((row!.verdicts[0]!.evidence.asIs as { matches: number }).matches).toBeLessThan(167);
      expect(row!.succeeded).toBe(false);

      const pruned = await service.attack({ claim, kind: 'prune', fractions: [0.1, 0.5], backend: 'wasm' });
      // +10 % keeps the owner verified; +50 % wears the signature down (whether below the threshold depends on the ticket: docs/results/ownership.md).
      expect(pruned.rows[0]!.verdicts[0]!.verdict).toBe('verified');
      expect(pruned.rows[1]!.verdicts[0]!.score!).toBeLessThan(pruned.rows[0]!.verdicts[0]!.score!);

      const ambiguity = await service.attack({ claim, kind: 'ambiguity', backend: 'wasm' });
      const forged = ambiguity.rows.find((r) => r.attack.startsWith('a forged signature'))!;
      expect(forged.verdicts[0]!.verdict).toBe('verified');
      expect(forged.description.forgedSignature).toMatchObject({ verified: true });
      expect(ambiguity.rows.find((r) => r.attack.startsWith('a random-key claim'))!.succeeded).toBe(false);

      // Path removal: each count by |w| and uniformly, each removal alone and then fine-tuned with its mask.
      const paths = await service.attack({ claim, kind: 'paths', paths: [50], iterations: 20, backend: 'wasm' });
      expect(paths.rows.map((r) => r.attack)).toEqual([
        'remove 50 paths ∝ |w|', 'remove 50 paths ∝ |w|, then fine-tune 20 steps (mask fixed)',
        'remove 50 paths uniformly', 'remove 50 paths uniformly, then fine-tune 20 steps (mask fixed)',
      ]);
      // LeNet's one hidden layer: each path is one fc2 edge. 50 of its ~3,000 rarely touch the 256-cell window.
      for (const r of paths.rows) expect(Object.values(r.description.pairsRemoved as Record<string, number>)).toEqual([50]);
      expect(paths.rows[0]!.verdicts[0]!.verdict).toBe('verified');
    } finally {
      service.close();
    }
  }, 120_000);

  it('verifies from logits computed elsewhere for the exported trigger images, and not a stranger\'s', async () => {
    const dbPath = join(temp(), 'lab4.db');
    const service = new LabService({ dbPath, ownerKeyPath: join(temp(), 'owner4.pem') });
    try {
      const original = (await service.searchOneShot({ ...small, seed: 0 })).tickets.at(-1)!;
      const claim = await service.claim({ ticket: original.id, graph: false, trigger: true, iterations: 300, backend: 'wasm' });
      const triggersPath = join(temp(), 'triggers.npy');
      const exported = await service.exportTriggers({ claim: claim.claims[0]!.id, output: triggersPath });
      expect(exported.shape).toEqual([100, 1, 28, 28]);
      // "Elsewhere": the exported images through each network's forward pass, logits saved as .npy.
      const store = LabStore.open(dbPath, { create: false })!;
      const logitsOf = (ticketId: string, name: string) => {
        const ticket = store.getTicket(ticketId);
        const specs = paramSpecs(architecture('lenet-300-100'), [28, 28, 1], 10);
        const match = { arch: architecture('lenet-300-100'), specs, weights: store.getWeights(ticket.finalWeights!), inputShape: [28, 28, 1] as [number, number, number] };
        const net = new MaskedNetwork(match.arch, specs, match.weights, store.getMasks(ticketId));
        const input = modelInput(readModelFile(triggersPath).tensors[0]!, match.inputShape, 'pytorch', triggersPath);
        const logits = tf.tidy(() => net.forward(tf.tensor4d(input.values, [input.count, 28, 28, 1])).arraySync());
        net.dispose();
        const path = join(temp(), name);
        writeFileSync(path, npyBytes({ name: 'logits', shape: [100, 10], values: Float32Array.from(logits.flat()) }));
        return path;
      };
      const owned = await service.verify({ suspect: logitsOf(claim.ticket.id, 'owned.npy'), logits: true, claim: claim.claims[0]!.id });
      expect(owned.verdicts[0]).toMatchObject({ verdict: 'verified', score: claim.verdicts[0]!.score });
      const stranger = await service.verify({ suspect: logitsOf(original.id, 'stranger.npy'), logits: true, claim: claim.claims[0]!.id });
      expect(stranger.verdicts[0]!.verdict).toBe('not verified');
      store.close();
    } finally {
      service.close();
    }
  }, 60_000);

  it('refuses to draw a trigger set with another key, saying which key made the claim', async () => {
    const dbPath = join(temp(), 'lab2.db');
    const owner = new LabService({ dbPath, ownerKeyPath: join(temp(), 'a.pem') });
    let claimId: string;
    let ticket: string;
    try {
      ticket = (await owner.searchOneShot({ ...small, seed: 0 })).tickets.at(-1)!.id;
      claimId = (await owner.claim({ ticket, graph: false, trigger: true, iterations: 100, backend: 'wasm' })).claims[0]!.id;
    } finally {
      owner.close();
    }
    const stranger = new LabService({ dbPath, ownerKeyPath: join(temp(), 'b.pem') });
    try {
      await stranger.keys({ create: true });
      await expect(stranger.verify({ suspect: ticket, claim: claimId, backend: 'wasm' })).rejects.toThrow(/was made with the key [0-9a-f]{16}…; the owner key here .* is [0-9a-f]{16}…/);
    } finally {
      stranger.close();
    }
  }, 60_000);
});

describe('free fine-tuning\'s two readings', () => {
  const v = (scheme: 'graph-signature' | 'trigger-set', verified: boolean) =>
    ({ id: 'vf', claim: 'cl', scheme, verdict: verified ? 'verified' : 'not verified', score: 0, n: 0, threshold: 0, falsePositiveRate: 1e-6, pValue: 0, evidence: {} }) as const;
  it('loses a signature only when both readings fail it, a trigger set when the deployed network fails it', () => {
    // Signature lost as w ≠ 0 but found at the claimed counts, triggers kept: nothing lost.
    expect(lostByFreeFineTuning([v('graph-signature', false), v('trigger-set', true)], [v('graph-signature', true), v('trigger-set', false)])).toBe(false);
    expect(lostByFreeFineTuning([v('graph-signature', false), v('trigger-set', true)], [v('graph-signature', false), v('trigger-set', true)])).toBe(true);
    expect(lostByFreeFineTuning([v('graph-signature', true), v('trigger-set', false)], [v('graph-signature', true), v('trigger-set', true)])).toBe(true);
    expect(lostByFreeFineTuning([v('graph-signature', true), v('trigger-set', true)], [v('graph-signature', false), v('trigger-set', false)])).toBe(false);
  });
});
