// The local server on a real database: the token (bearer or cookie) guards every request, loopback is
// the default, bad requests get 4xx and the server keeps serving, long calls go through jobs, and
// the jobs' events reach a WebSocket client.
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { JobEvent, JobReport, TicketSummary } from '../../../core/api/schemas';
import { RENDERER_CSP, type RunningLabServer, type ServerSession, type UploadReport, startLabServer } from '../../../core/server/lab-server';
import { LabService } from '../../../core/service/lab-service';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-server-');
let service: LabService;
let server: RunningLabServer;
let base: string;

const post = (method: string, body: unknown, headers: Record<string, string> = { authorization: `Bearer ${server.token}` }) =>
  fetch(`${base}/api/${method}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

beforeAll(async () => {
  service = new LabService({ dbPath: join(temp(), 'lab.db'), ownerKeyPath: join(temp(), 'key.pem') });
  await service.searchOneShot({ model: 'lenet-300-100', dataset: 'mnist', sparsity: 0.8, iterations: 10, evalEvery: 10, validationSize: 500, backend: 'wasm' });
  server = await startLabServer({ service, maxBodyBytes: 4096 });
  base = `http://127.0.0.1:${server.port}`;
});

afterAll(async () => {
  await server?.close();
  service?.close();
});

describe('the local server', () => {
  it('listens on loopback, answers only with the session token, and moves the token into a cookie', async () => {
    expect(server.host).toBe('127.0.0.1');
    expect(server.url).toBe(`${base}/?token=${server.token}`);
    expect((await post('listTickets', {}, {})).status).toBe(401);
    expect((await post('listTickets', {}, { authorization: 'Bearer nope' })).status).toBe(401);
    const opened = await fetch(server.url, { redirect: 'manual' });
    expect(opened.status).toBe(303);
    const cookie = opened.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const withCookie = await post('listTickets', {}, { cookie: cookie.split(';')[0]! });
    expect(withCookie.status).toBe(200);
    expect(((await withCookie.json()) as TicketSummary[]).length).toBe(2);
  });

  it('serves the LabApi with validated requests, and answers bad ones with 4xx while it keeps serving', async () => {
    const filtered = await post('listTickets', { minSparsity: 0.5 });
    expect(((await filtered.json()) as TicketSummary[]).map((t) => t.level)).toEqual([1]);
    const cases: Array<[string, Promise<Response>, number, RegExp]> = [
      ['not JSON', post('listTickets', '{"oops'), 400, /not JSON/],
      ['an unknown field', post('listTickets', { surprise: 1 }), 400, /surprise/],
      ['a wrong type', post('listTickets', { minSparsity: 'high' }), 400, /minSparsity/],
      ['too large', post('listTickets', { model: 'x'.repeat(5000) }), 413, /limit/],
      ['no such method', post('dropTables', {}), 404, /no LabApi method/],
      ['a missing ticket', post('showTicket', { ticket: 'tk_00000000' }), 404, /ticket/],
      ['a search called directly', post('searchImp', { model: 'lenet-300-100', dataset: 'mnist' }), 409, /submitJob/],
      ['text, not JSON', fetch(`${base}/api/listTickets`, { method: 'POST', headers: { authorization: `Bearer ${server.token}`, 'content-type': 'text/plain' }, body: '{}' }), 415, /application\/json/],
      ['GET on a method', fetch(`${base}/api/listTickets`, { headers: { authorization: `Bearer ${server.token}` } }), 405, /POST/],
    ];
    for (const [what, response, status, message] of cases) {
      const r = await response;
      expect(r.status, what).toBe(status);
      expect(((await r.json()) as { message: string }).message, what).toMatch(message);
    }
    expect((await post('listTickets', {})).status).toBe(200);
  });

  it('runs a submitted search as a job and streams its events to a WebSocket client that has the token', async () => {
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api/events`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
    });
    expect(refused).toBe(401);

    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api/events`, { headers: { authorization: `Bearer ${server.token}` } });
    await new Promise((resolve, reject) => ws.on('open', resolve).on('error', reject));
    const events: JobEvent[] = [];
    const finished = new Promise<void>((resolve) =>
      ws.on('message', (data) => {
        const event = JSON.parse(String(data)) as JobEvent;
        events.push(event);
        if (event.type === 'state' && event.job.state === 'completed') resolve();
      }),
    );
    const submitted = await post('submitJob', { method: 'searchImp', request: { model: 'lenet-300-100', dataset: 'mnist', levels: 1, iterations: 20, evalEvery: 10, validationSize: 500, backend: 'wasm' } });
    expect(submitted.status).toBe(200);
    const job = (await submitted.json()) as JobReport;
    expect(job.state).toBe('queued');
    await finished;
    ws.close();
    expect(events.some((e) => e.type === 'progress' && e.job === job.id)).toBe(true);
    const listed = (await (await post('listJobs', {})).json()) as JobReport[];
    expect(listed.find((j) => j.id === job.id)).toMatchObject({ state: 'completed', method: 'searchImp' });
    expect((await post('submitJob', { method: 'searchImp', request: {}, wait: true })).status).toBe(400);
  });

  it('serves the built renderer with its CSP, routes to index.html, and nothing outside its folder', async () => {
    const root = join(temp(), 'renderer');
    mkdirSync(join(root, 'assets'), { recursive: true });
    writeFileSync(join(root, 'index.html'), '<!doctype html><title>Ticket Lab</title>');
    writeFileSync(join(root, 'assets', 'app.js'), 'console.log(1)');
    writeFileSync(join(temp(), 'secret.txt'), 'TOP-SECRET-CONTENT');
    symlinkSync(join(temp(), 'secret.txt'), join(root, 'assets', 'link.js'));
    const web = await startLabServer({ service, staticDir: root });
    try {
      const get = (path: string, auth = true) => fetch(`http://127.0.0.1:${web.port}${path}`, { headers: auth ? { authorization: `Bearer ${web.token}` } : {} });
      expect((await get('/', false)).status).toBe(401);
      const index = await get('/');
      expect(index.status).toBe(200);
      expect(index.headers.get('content-security-policy')).toBe(RENDERER_CSP);
      expect(await index.text()).toContain('Ticket Lab');
      expect((await get('/assets/app.js')).headers.get('content-type')).toMatch(/javascript/);
      expect(await (await get('/tickets/tk_abc')).text()).toContain('Ticket Lab'); // a client-side route
      for (const path of ['/assets/missing.js', '/assets/link.js', '/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt']) {
        const r = await get(path);
        expect(r.status, path).toBe(404);
        expect(await r.text(), path).not.toContain('TOP-SECRET-CONTENT');
      }
      expect(RENDERER_CSP).not.toMatch(/unsafe|https?:/);
    } finally {
      await web.close();
    }
  });

  it('takes uploads into its own folder (a dropped folder as one group), refuses unsafe names and oversized files, and serves back only its exports', async () => {
    const web = await startLabServer({ service, maxUploadBytes: 1000 });
    const at = `http://127.0.0.1:${web.port}`;
    const auth = { authorization: `Bearer ${web.token}` };
    const upload = (path: string, body: Uint8Array, extra: Record<string, string> = {}) =>
      fetch(`${at}/api/upload`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream', 'x-file-path': encodeURIComponent(path), ...extra }, body });
    let exportDir = '';
    try {
      const session = (await (await fetch(`${at}/api/session`, { headers: auth })).json()) as ServerSession;
      expect(session.maxUploadBytes).toBe(1000);
      exportDir = session.exportDir;
      const first = (await (await upload('run/replicate_1/hparams.log', new Uint8Array([1, 2, 3]))).json()) as UploadReport;
      expect(readFileSync(first.path)).toEqual(Buffer.from([1, 2, 3]));
      expect(first.path.startsWith(first.root)).toBe(true);
      const second = (await (await upload('run/replicate_1/level_0/mask.pth', new Uint8Array([4]), { 'x-upload-group': first.group })).json()) as UploadReport;
      expect(second.root).toBe(first.root);
      expect(readFileSync(join(first.root, 'run', 'replicate_1', 'level_0', 'mask.pth'))).toEqual(Buffer.from([4]));
      // The same name twice in a group is refused, and the first file stays.
      expect((await upload('run/replicate_1/hparams.log', new Uint8Array([9]), { 'x-upload-group': first.group })).status).toBe(409);
      expect(readFileSync(first.path)).toEqual(Buffer.from([1, 2, 3]));
      for (const bad of ['../escape.bin', '/etc/passwd', 'a/../../b', 'a\\b', 'C:evil', '']) expect((await upload(bad, new Uint8Array([1]))).status, bad).toBe(400);
      expect((await upload('x.bin', new Uint8Array([1]), { 'x-upload-group': '../../tmp' })).status).toBe(400);
      expect((await upload('big.bin', new Uint8Array(1001))).status).toBe(413);
      expect((await fetch(`${at}/api/upload`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'x-file-path': 'a' }, body: new Uint8Array(1) })).status).toBe(401);

      // Downloads: a file written into the export folder, nothing else (an upload included).
      writeFileSync(join(session.exportDir, 'ticket.tlb'), 'BUNDLE');
      const download = (path: string) => fetch(`${at}/api/download?path=${encodeURIComponent(path)}`, { headers: auth });
      const got = await download(join(session.exportDir, 'ticket.tlb'));
      expect(got.status).toBe(200);
      expect(got.headers.get('content-disposition')).toContain('ticket.tlb');
      expect(await got.text()).toBe('BUNDLE');
      for (const path of [first.path, join(session.exportDir, '..', 'uploads'), join(temp(), 'key.pem'), join(session.exportDir, 'missing')]) expect((await download(path)).status, path).toBe(404);
      expect((await post('listTickets', {})).status).toBe(200);
    } finally {
      await web.close();
    }
    // Closing removes the session's uploads and exports.
    expect(exportDir).not.toBe('');
    expect(existsSync(join(exportDir, '..'))).toBe(false);
  });
});
