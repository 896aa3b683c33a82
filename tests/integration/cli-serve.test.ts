// `ticket-lab serve` as a user runs it: it prints its URL, answers with the token, and Ctrl-C stops it.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startCli } from '../support/cli-process';
import { useTempFolder } from '../support/temp-folder';

const temp = useTempFolder('ticket-lab-cli-serve-');

describe('ticket-lab serve', () => {
  it('prints a loopback URL with its token, serves the API with it, and stops on Ctrl-C', async () => {
    const { child, done } = startCli(['serve', '--json', '--db', join(temp(), 'lab.db')]);
    const line = await new Promise<string>((resolve) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
    });
    const { url, host, port } = JSON.parse(line) as { url: string; host: string; port: number };
    expect(host).toBe('127.0.0.1');
    const token = new URL(url).searchParams.get('token')!;
    const call = (headers: Record<string, string>) => fetch(`http://127.0.0.1:${port}/api/dbInfo`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{}' });
    expect((await call({})).status).toBe(401);
    const info = await call({ authorization: `Bearer ${token}` });
    expect(info.status).toBe(200);
    expect(await info.json()).toMatchObject({ exists: expect.any(Boolean) });
    child.kill('SIGINT');
    expect((await done).code).toBe(0);
  });
});
