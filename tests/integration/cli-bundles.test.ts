// Signed bundles from the command line, checked by code that is not ours: Python's zipfile unpacks
// the bundle and tests/support/oms_verify.py (Python's `cryptography`) verifies its model.sig, and
// the OpenSSF reference implementation's signed folder verifies here.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readZip, writeZip } from '../../core/bundle/zip';
import { runCliProcess } from '../support/cli-process';
import { useTempFolder } from '../support/temp-folder';

const temp = useTempFolder('ticket-lab-cli-bundles-');
const ROOT = join(__dirname, '..', '..');
const REFERENCE = join(ROOT, 'tests', 'fixtures', 'oms', 'reference-folder');
const PYTHON_VERIFIER = join(ROOT, 'tests', 'support', 'oms_verify.py');

function python(args: string[]): { status: number | null; out: string } {
  const result = spawnSync('python3', args, { encoding: 'utf8' });
  return { status: result.status, out: `${result.stdout}${result.stderr}` };
}

describe('ticket-lab export, verify-bundle and import-bundle', () => {
  it('exports a bundle that Python verifies on its own, verifies it and the reference folder, imports it once, refuses a tampered one', async () => {
    const folder = temp();
    const alice = { TICKET_LAB_DB: join(folder, 'alice.db'), TICKET_LAB_KEY: join(folder, 'alice-key.pem') };
    const bob = { TICKET_LAB_DB: join(folder, 'bob.db'), TICKET_LAB_KEY: join(folder, 'bob-key.pem') };
    const search = await runCliProcess(['search', 'oneshot', '--model', 'lenet-300-100', '--dataset', 'mnist', '--sparsity', '0.8', '--iterations', '20', '--eval-every', '10', '--validation-size', '500', '--backend', 'wasm', '--json'], alice);
    expect(search.code).toBe(0);
    const ticket = (JSON.parse(search.stdout) as { tickets: Array<{ id: string }> }).tickets.at(-1)!.id;
    const bundle = join(folder, 'ticket.tlb');
    const exported = await runCliProcess(['export', ticket, '-o', bundle, '--with-weights', '--json'], alice);
    expect(exported.code, exported.stderr).toBe(0);
    const keys = JSON.parse((await runCliProcess(['keys', '--json'], alice)).stdout) as { owner: { fingerprint: string; publicKeyPem: string } };
    const alicePem = join(folder, 'alice.pub.pem');
    writeFileSync(alicePem, keys.owner.publicKeyPem);

    // Python unpacks the zip and checks model.sig: the DSSE envelope, the PAE, the ECDSA signature, every digest.
    const unpacked = join(folder, 'unpacked');
    mkdirSync(unpacked);
    execFileSync('python3', ['-c', 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])', bundle, unpacked]);
    const independent = python([PYTHON_VERIFIER, unpacked, '--signature', join(unpacked, 'model.sig'), '--key', alicePem]);
    expect(independent.out).toMatch(/OK/);
    expect(independent.status).toBe(0);
    writeFileSync(join(unpacked, 'manifest.json'), `${readFileSync(join(unpacked, 'manifest.json'), 'utf8')} `);
    expect(python([PYTHON_VERIFIER, unpacked, '--signature', join(unpacked, 'model.sig'), '--key', alicePem]).status).toBe(1);

    const verified = await runCliProcess(['verify-bundle', bundle, '--json'], alice);
    expect(verified.code, verified.stderr).toBe(0);
    expect(JSON.parse(verified.stdout)).toMatchObject({ kind: 'bundle', verified: true, signer: { fingerprint: keys.owner.fingerprint, own: true }, ticket: { id: ticket } });
    const text = await runCliProcess(['verify-bundle', bundle], bob);
    expect(text.stdout).toMatch(/a key this lab does not know/);

    // The reference implementation's folder (P-384), its ignored file left out.
    const reference = join(folder, 'reference');
    cpSync(REFERENCE, reference, { recursive: true });
    const refArgs = ['verify-bundle', reference, '--key', join(reference, 'signing-key-pub.pem'), '--ignore-paths', 'ignore-me,signing-key-pub.pem,LICENSE', '--json'];
    const ref = await runCliProcess(refArgs, bob);
    expect(ref.code, ref.stderr).toBe(0);
    expect(JSON.parse(ref.stdout)).toMatchObject({ kind: 'folder', signer: { curve: 'P-384' } });
    writeFileSync(join(reference, 'signme-2'), Buffer.concat([readFileSync(join(reference, 'signme-2')), Buffer.from('x')]));
    const refTampered = await runCliProcess(refArgs, bob);
    expect(refTampered.code).toBe(1);
    expect(refTampered.stderr).toMatch(/signme-2/);

    const refused = await runCliProcess(['import-bundle', bundle], bob);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/does not know.*--key/);
    const imported = await runCliProcess(['import-bundle', bundle, '--key', alicePem, '--json'], bob);
    expect(imported.code, imported.stderr).toBe(0);
    expect((JSON.parse(imported.stdout) as { created: string[] }).created).toContain(ticket);
    const twice = await runCliProcess(['import-bundle', bundle, '--json'], bob);
    expect(JSON.parse(twice.stdout)).toMatchObject({ created: [] });

    const entries = readZip(readFileSync(bundle));
    entries.set('manifest.json', Buffer.from(`${Buffer.from(entries.get('manifest.json')!).toString('utf8')} `));
    const tampered = join(folder, 'tampered.tlb');
    writeFileSync(tampered, writeZip([...entries].map(([name, data]) => ({ name, data }))));
    const bad = await runCliProcess(['import-bundle', tampered], bob);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/manifest\.json/);
  }, 120_000);
});
