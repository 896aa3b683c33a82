// The step-4 and step-5 commands as a user runs them: import-runs and evaluate on an open_lth
// folder, keys, claim, verify and attack on a ticket, each a real ticket-lab process.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCliProcess } from '../support/cli-process';
import { untar } from '../support/tar';
import { useTempFolder } from '../support/temp-folder';

const temp = useTempFolder('ticket-lab-cli-ownership-');
const json = <T>(stdout: string): T => JSON.parse(stdout) as T;

describe('ticket-lab, bringing runs in and claiming tickets', () => {
  it('imports an open_lth folder and evaluates a ticket of it', async () => {
    const env = { TICKET_LAB_DB: join(temp(), 'runs.db') };
    untar(readFileSync(join(__dirname, '..', 'fixtures', 'open-lth', 'open_lth_root.tar.gz')), join(temp(), 'open_lth'));
    const imported = await runCliProcess(['import-runs', join(temp(), 'open_lth'), '--json'], env);
    expect(imported.code).toBe(0);
    const tickets = json<{ runs: Array<{ run: { tickets: Array<{ id: string; level: number }> } }> }>(imported.stdout).runs[0]!.run.tickets;
    expect(tickets.map((t) => t.level)).toEqual([0, 1, 2]);
    const text = await runCliProcess(['evaluate', tickets[2]!.id, '--backend', 'wasm'], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/test +\d+\.\d+% +\d\.\d{4} +10,000/);
    expect(text.stdout).toMatch(/recorded with the ticket: test 97\.39%/);
  }, 60_000);

  it('claims a ticket with a key made on first use, verifies it, attacks it, and lists the key', async () => {
    const env = { TICKET_LAB_DB: join(temp(), 'own.db'), TICKET_LAB_KEY: join(temp(), 'key', 'owner-key.pem') };
    const search = await runCliProcess(['search', 'oneshot', '--model', 'lenet-300-100', '--dataset', 'mnist', '--sparsity', '0.9', '--iterations', '200', '--eval-every', '100', '--validation-size', '500', '--backend', 'wasm', '--json'], env);
    expect(search.code).toBe(0);
    const ticket = json<{ tickets: Array<{ id: string }> }>(search.stdout).tickets.at(-1)!.id;
    const claim = await runCliProcess(['claim', ticket, '--no-retrain', '--backend', 'wasm', '--json'], env);
    expect(claim.code).toBe(0);
    const claimed = json<{ ticket: { id: string }; claims: Array<{ id: string }>; keyFingerprint: string }>(claim.stdout);
    const verify = await runCliProcess(['verify', claimed.ticket.id, '--backend', 'wasm'], env);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(new RegExp(`${claimed.claims[0]!.id} +graph-signature +verified +256/256 +168`));
    const attack = await runCliProcess(['attack', claimed.claims[0]!.id, '--kind', 'permute', '--backend', 'wasm'], env);
    expect(attack.code).toBe(0);
    expect(attack.stdout).toMatch(/a random permutation of every hidden layer's units .* yes 256\/256/);
    // The claim with its verdicts: the verify's and the attack's, the latest first.
    const claims = await runCliProcess(['claims'], env);
    expect(claims.code).toBe(0);
    expect(claims.stdout).toMatch(new RegExp(`${claimed.claims[0]!.id} +graph-signature +${claimed.ticket.id} +you +[2-9] +verified \\(256`));
    const keys = await runCliProcess(['keys', '--json'], env);
    expect(json<{ owner: { fingerprint: string } }>(keys.stdout).owner.fingerprint).toBe(claimed.keyFingerprint);
    const bad = await runCliProcess(['attack', claimed.claims[0]!.id, '--kind', 'melt'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/kind/);
  }, 120_000);
});
