// main's IPC handler table against a real LabService on a temporary database: one handler per
// channel; every malformed request (wrong type, extra field) gets INVALID_REQUEST and changes
// nothing; valid ones reach the service; paths the user did not choose, long calls asked for
// directly, and frames other than the app's own page are refused with their typed errors.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPC_CHANNELS, type IpcReply, LAB_IPC_METHODS, methodChannel } from '../../core/api/ipc';
import { LAB_API_METHODS, type LabApiMethod } from '../../core/api/lab-api';
import { JOB_METHOD_NAMES, type JobEvent, type JobReport } from '../../core/api/schemas';
import { LabService } from '../../core/service/lab-service';
import { untar } from '../support/tar';
import { useTempFolder } from '../support/temp-folder';
import { type IpcHandler, createIpcHandlers } from '../../main/ipc-handlers';
import { PathGrants, REQUEST_PATH_FIELDS } from '../../main/path-grants';
import { APP_ENTRY_URL } from '../../main/window-options';

const temp = useTempFolder('ticket-lab-ipc-');
const TORCH = resolve(__dirname, '../fixtures/interop-torch2');
const MODEL = join(TORCH, 'mlp.safetensors');
const APP = { url: `${APP_ENTRY_URL}#/tickets` };
const FILE_CHANNELS = [IPC_CHANNELS.grantPaths, IPC_CHANNELS.chooseExportPath, IPC_CHANNELS.revealPath];

let service: LabService;
let grants: PathGrants;
let table: Record<string, IpcHandler>;
let dense: string;
let ticket: string;
let run: string;
let saveChoice: string | null = null;
const revealed: string[] = [];

const out = (name: string) => join(temp(), 'exports', name);
const call = (channel: string, request: unknown, sender = APP) => table[channel]!(sender, request);
const ipc = (method: LabApiMethod, request: unknown, sender = APP) => call(methodChannel(method), request, sender);
const errorOf = (reply: IpcReply<unknown>) => (reply.ok ? { code: 'OK', message: JSON.stringify(reply.value).slice(0, 300) } : reply.error);
/** The database as bytes: the main file and its write-ahead log. */
const dbBytes = () => ['lab.db', 'lab.db-wal'].map((name) => (existsSync(join(temp(), name)) ? createHash('sha256').update(readFileSync(join(temp(), name))).digest('hex') : '-')).join(' ');

/** A request each method's validator accepts (most would fail later in the service: that is not the point). */
function validRequests(): Record<LabApiMethod, Record<string, unknown>> {
  const lenet = { model: 'lenet-300-100', dataset: 'mnist' };
  return {
    searchImp: { ...lenet, levels: 1, iterations: 10 },
    searchOneShot: { ...lenet, sparsity: 0.5 },
    searchAtInit: { ...lenet, method: 'random', sparsity: 0.5 },
    searchGradual: { ...lenet, sparsity: 0.5 },
    criteriaOverlap: { ticket }, essentialSparsity: { ticket }, instability: { ticket }, evaluate: { target: ticket },
    listTickets: { minSparsity: 0.5 }, browseTickets: { sort: 'sparsity', limit: 10 }, showTicket: { ticket }, ticketMasks: { ticket },
    compareTickets: { a: dense, b: ticket }, listRuns: {}, showRun: { run }, dbInfo: {}, catalog: {}, doctor: {},
    inspectModelFile: { path: MODEL }, predict: { path: MODEL, input: join(TORCH, 'input.npy'), backend: 'cpu' },
    exportMask: { ticket, format: 'safetensors', output: out('mask.safetensors') }, importModel: { path: MODEL }, importRuns: { path: join(temp(), 'open_lth') },
    keys: { create: true }, listClaims: {}, claim: { ticket }, verify: { suspect: ticket }, attack: { claim: 'cl_0', kind: 'prune' },
    exportTriggers: { claim: 'cl_0', output: out('triggers.npy') }, exportBundle: { ticket, output: out('ticket.tlb') }, resumeRun: { run },
    submitJob: { method: 'searchImp', request: { ...lenet, levels: 1, iterations: 20, evalEvery: 10, validationSize: 500, backend: 'wasm' } },
    listJobs: {}, cancelJob: { job: 'jb_0' }, resumeJob: { job: 'jb_0' }, verifyBundle: { path: out('ticket.tlb') }, importBundle: { path: out('ticket.tlb') },
    mergeDatabases: { files: [out('task-0.db')] },
    sweepStatus: { dir: out('sweep') },
  };
}

/** Request fields that hold text but never a path (ids, names, filters); verifyBundle's ignorePaths are names inside the chosen folder, never read. */
const NOT_PATHS = ['a', 'b', 'claim', 'dataset', 'fromTicket', 'ignorePaths', 'job', 'layers', 'method', 'model', 'name', 'owner', 'run', 'target', 'ticket'];

/** A field's type without optional() and default(). */
function innerType(field: z.ZodType): z.ZodType {
  let inner = field;
  while (inner instanceof z.ZodOptional || inner instanceof z.ZodDefault) inner = inner.unwrap() as z.ZodType;
  return inner;
}

/** A value of the wrong type for a field: a number where a string goes, a string anywhere else. */
const wrongValue = (field: z.ZodType): unknown => (innerType(field) instanceof z.ZodString ? 12345 : 'wrong type');

beforeAll(async () => {
  service = new LabService({ dbPath: join(temp(), 'lab.db'), ownerKeyPath: join(temp(), 'key.pem') });
  const search = await service.searchOneShot({ model: 'lenet-300-100', dataset: 'mnist', sparsity: 0.8, iterations: 10, evalEvery: 10, validationSize: 500, backend: 'wasm' });
  [dense, ticket] = search.tickets.map((t) => t.id) as [string, string];
  run = search.runId;
  mkdirSync(join(temp(), 'exports'));
  untar(readFileSync(resolve(__dirname, '../fixtures/open-lth/open_lth_root.tar.gz')), join(temp(), 'open_lth'));
  grants = new PathGrants();
  table = createIpcHandlers({ service, grants, dialogs: { chooseExportPath: async () => saveChoice, revealPath: (path) => void revealed.push(path) } });
});

afterAll(() => service?.close());

describe("main's IPC handlers", () => {
  it('has exactly one handler per LabApi method and per file channel, and none for what main only sends', () => {
    expect(Object.keys(table).sort()).toEqual([...LAB_IPC_METHODS.map(methodChannel), ...FILE_CHANNELS].sort());
    expect(table[IPC_CHANNELS.jobEvent]).toBeUndefined();
    expect(table[IPC_CHANNELS.menuCommand]).toBeUndefined();
    for (const [method, request] of Object.entries(validRequests())) expect(LAB_API_METHODS[method as LabApiMethod].safeParse(request).success, method).toBe(true);
  });

  it('checks every request field that can hold a path: each text field is a path field or known not to be one', () => {
    for (const method of LAB_IPC_METHODS) {
      const pathFields = (REQUEST_PATH_FIELDS[method] ?? []).map((p) => p.field);
      for (const [field, schema] of Object.entries((LAB_API_METHODS[method] as unknown as z.ZodObject).shape)) {
        const inner = innerType(schema as z.ZodType);
        const text = inner instanceof z.ZodString || (inner instanceof z.ZodArray && innerType(inner.element as z.ZodType) instanceof z.ZodString);
        if (text) expect(pathFields.includes(field) !== NOT_PATHS.includes(field), `${method}.${field}`).toBe(true);
        else expect(pathFields, `${method}.${field}`).not.toContain(field);
      }
    }
  });

  it('answers every malformed request with INVALID_REQUEST naming the field, and writes nothing', async () => {
    const before = dbBytes();
    const valid = validRequests();
    for (const method of LAB_IPC_METHODS) {
      const cases: Array<[unknown, string]> = [[42, ''], [[], ''], ['listTickets', ''], [{ ...valid[method], surprise: 1 }, 'surprise']];
      for (const [field, schema] of Object.entries((LAB_API_METHODS[method] as unknown as z.ZodObject).shape)) cases.push([{ ...valid[method], [field]: wrongValue(schema as z.ZodType) }, field]);
      for (const [request, field] of cases) {
        const error = errorOf(await ipc(method, request));
        expect(error.code, `${method} ${JSON.stringify(request)}`).toBe('INVALID_REQUEST');
        expect(error.message, method).toContain(field);
      }
    }
    // A submitted job's own request is validated as its method validates it.
    for (const request of [{ model: 5, dataset: 'mnist' }, { model: 'lenet-300-100', dataset: 'mnist', surprise: true }]) {
      expect(errorOf(await ipc('submitJob', { method: 'searchImp', request })).code).toBe('INVALID_REQUEST');
    }
    for (const [channel, request] of [[IPC_CHANNELS.grantPaths, { paths: 'x' }], [IPC_CHANNELS.grantPaths, { paths: [MODEL], also: 1 }], [IPC_CHANNELS.chooseExportPath, { name: 7 }], [IPC_CHANNELS.chooseExportPath, { name: '../../etc/passwd' }], [IPC_CHANNELS.revealPath, {}]] as const) {
      expect(errorOf(await call(channel, request)).code, channel).toBe('INVALID_REQUEST');
    }
    expect(dbBytes()).toBe(before);
    expect(grants.allows(MODEL, 'read')).toBe(false);
  });

  it('refuses every channel to a frame that is not the app page, before looking at the request', async () => {
    const before = dbBytes();
    const valid = validRequests();
    saveChoice = out('never.tlb');
    const strangers = ['https://evil.example/', 'file:///tmp/x.html', 'app://evil/index.html', 'app://ticket-lab.evil.example/', 'app://x@ticket-lab/', 'http://ticket-lab/', 'about:blank', ''];
    for (const url of strangers) {
      for (const method of LAB_IPC_METHODS) expect(errorOf(await ipc(method, valid[method], { url })).code, `${method} from ${url}`).toBe('FORBIDDEN_SENDER');
      for (const channel of FILE_CHANNELS) expect(errorOf(await call(channel, { paths: [MODEL], name: 'x.tlb', path: MODEL }, { url })).code, channel).toBe('FORBIDDEN_SENDER');
    }
    expect(dbBytes()).toBe(before);
    expect(grants.allows(MODEL, 'read') || grants.allows(out('never.tlb'), 'write')).toBe(false);
    expect(revealed).toEqual([]);
  });

  it('passes valid requests to the service: the answers are the service’s own', async () => {
    for (const [method, request] of [['listTickets', {}], ['browseTickets', { sort: 'sparsity', order: 'desc' }], ['showTicket', { ticket }], ['ticketMasks', { ticket }], ['compareTickets', { a: dense, b: ticket }], ['listRuns', {}], ['showRun', { run }], ['dbInfo', {}], ['catalog', {}], ['listClaims', {}], ['listJobs', {}], ['keys', {}]] as const) {
      const reply = await ipc(method, request);
      expect(reply, method).toEqual({ ok: true, value: await (service[method] as (r: unknown) => Promise<unknown>).call(service, request) });
    }
    expect(errorOf(await ipc('showTicket', { ticket: 'tk_00000000' })).code).toBe('NOT_FOUND');
    expect(errorOf(await ipc('cancelJob', { job: 'jb_0' })).code).toBe('NOT_FOUND');
    // A suspect that is a ticket id is no path: it reaches the service (which has no claim to check).
    expect(errorOf(await ipc('verify', { suspect: ticket }))).toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringMatching(/no claims/) });
  });

  it('reads only files the user chose: a granted file, or one inside a granted folder, and no way out of it', async () => {
    const models = async () => (await service.dbInfo({})).counts.models;
    const stored = await models();
    for (const [method, request] of [['inspectModelFile', { path: MODEL }], ['importModel', { path: MODEL }], ['predict', { path: MODEL, input: join(TORCH, 'input.npy') }], ['importRuns', { path: join(temp(), 'open_lth') }], ['verify', { suspect: MODEL }], ['verify', { suspect: 'tk_abc', logits: true }], ['verifyBundle', { path: MODEL }], ['evaluate', { target: ticket, dataDir: TORCH }]] as const) {
      expect(errorOf(await ipc(method, request)).code, method).toBe('PATH_NOT_GRANTED');
    }
    const job = await ipc('submitJob', { method: 'searchImp', request: { model: 'lenet-300-100', dataset: 'mnist', dataDir: TORCH } });
    expect(errorOf(job)).toMatchObject({ code: 'PATH_NOT_GRANTED', message: expect.stringContaining('request.dataDir') });
    expect(await models()).toBe(stored);
    expect(await service.listJobs({})).toEqual([]);

    // A drop: the preload hands main the dropped paths, all or nothing.
    expect(errorOf(await call(IPC_CHANNELS.grantPaths, { paths: [MODEL, join(TORCH, 'missing.pt')] })).code).toBe('INVALID_REQUEST');
    expect(errorOf(await call(IPC_CHANNELS.grantPaths, { paths: ['mlp.safetensors'] })).code).toBe('INVALID_REQUEST');
    expect(errorOf(await call(IPC_CHANNELS.grantPaths, { paths: ['/'] })).code).toBe('INVALID_REQUEST');
    expect(grants.allows(MODEL, 'read')).toBe(false);
    expect(await call(IPC_CHANNELS.grantPaths, { paths: [MODEL] })).toEqual({ ok: true, value: [MODEL] });
    expect(errorOf(await ipc('inspectModelFile', { path: MODEL })).code).toBe('OK');
    const imported = await ipc('importModel', { path: MODEL });
    expect(imported).toMatchObject({ ok: true, value: { created: true } });
    expect(await models()).toBe(stored + 1);
    // The file is granted, not its folder.
    expect(errorOf(await ipc('predict', { path: MODEL, input: join(TORCH, 'input.npy'), backend: 'cpu' })).code).toBe('PATH_NOT_GRANTED');

    // A dropped folder: everything inside it, nothing beside it, no `..`, no link leading out.
    const drop = join(temp(), 'drop');
    mkdirSync(drop);
    symlinkSync(join(TORCH, '..', 'interop', 'lenet.pt.gz'), join(drop, 'link.pt'));
    symlinkSync(join(temp(), 'made-later.pem'), join(drop, 'dangling.pem'));
    expect((await call(IPC_CHANNELS.grantPaths, { paths: [TORCH, drop] })).ok).toBe(true);
    expect(errorOf(await ipc('predict', { path: join(TORCH, 'mlp.onnx'), input: join(TORCH, 'input.npy'), backend: 'cpu' })).code).toBe('OK');
    for (const path of [join(TORCH, '..', 'interop', 'expected.json'), `${TORCH}/../interop-torch2/mlp.safetensors`, join(TORCH, '..', 'interop', 'lenet.pt.gz'), join(drop, 'link.pt'), join(drop, 'dangling.pem'), resolve(TORCH, '..')]) {
      expect(errorOf(await ipc('inspectModelFile', { path })).code, path).toBe('PATH_NOT_GRANTED');
    }
    // An open_lth experiment folder, dropped, is imported as runs.
    expect((await call(IPC_CHANNELS.grantPaths, { paths: [join(temp(), 'open_lth')] })).ok).toBe(true);
    expect(await ipc('importRuns', { path: join(temp(), 'open_lth') })).toMatchObject({ ok: true, value: { runs: [{ created: true }] } });
  });

  it('writes exports only where a save dialog said, and shows only chosen files', async () => {
    // Granted for reading is not granted for writing: a dropped model is never overwritten.
    for (const output of [MODEL, out('mask.safetensors'), join(TORCH, 'new.safetensors')]) {
      expect(errorOf(await ipc('exportMask', { ticket, format: 'safetensors', output })).code, output).toBe('PATH_NOT_GRANTED');
    }
    expect(existsSync(out('mask.safetensors')) || existsSync(join(TORCH, 'new.safetensors'))).toBe(false);
    saveChoice = null;
    expect(await call(IPC_CHANNELS.chooseExportPath, { name: 'ticket.tlb' })).toEqual({ ok: true, value: null });
    saveChoice = out('ticket.tlb');
    expect(await call(IPC_CHANNELS.chooseExportPath, { name: 'ticket.tlb' })).toEqual({ ok: true, value: out('ticket.tlb') });
    expect(await ipc('exportBundle', { ticket, output: out('ticket.tlb') })).toMatchObject({ ok: true, value: { path: out('ticket.tlb') } });
    expect(await ipc('verifyBundle', { path: out('ticket.tlb') })).toMatchObject({ ok: true, value: { verified: true } });
    expect(await ipc('importBundle', { path: out('ticket.tlb') })).toMatchObject({ ok: true, value: { created: [] } });
    expect(await call(IPC_CHANNELS.revealPath, { path: out('ticket.tlb') })).toEqual({ ok: true, value: null });
    expect(errorOf(await call(IPC_CHANNELS.revealPath, { path: join(temp(), 'key.pem') })).code).toBe('PATH_NOT_GRANTED');
    expect(revealed).toEqual([out('ticket.tlb')]);
  });

  it('refuses long calls asked for directly, and waiting on a job; a submitted job runs in the job worker', async () => {
    const valid = validRequests();
    const before = dbBytes();
    for (const method of JOB_METHOD_NAMES) expect(errorOf(await ipc(method, valid[method])), method).toMatchObject({ code: 'RUNS_AS_JOB', message: expect.stringContaining('submitJob') });
    expect(errorOf(await ipc('submitJob', { ...valid.submitJob, wait: true })).code).toBe('RUNS_AS_JOB');
    expect(errorOf(await ipc('resumeJob', { job: 'jb_0', wait: true })).code).toBe('RUNS_AS_JOB');
    expect(dbBytes()).toBe(before);

    const finished = new Promise<JobReport>((resolve) => service.onJobEvent((event: JobEvent) => event.type === 'state' && ['completed', 'failed'].includes(event.job.state) && resolve(event.job)));
    const submitted = await ipc('submitJob', valid.submitJob);
    expect(submitted).toMatchObject({ ok: true, value: { state: 'queued', method: 'searchImp' } });
    expect(await finished).toMatchObject({ state: 'completed' });
    expect((await ipc('listJobs', {})) as IpcReply<JobReport[]>).toMatchObject({ ok: true, value: [{ state: 'completed' }] });
  });
});
