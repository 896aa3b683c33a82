// The built preload (dist/electron/preload/index.cjs), run as Electron's sandbox would run it: a
// bare context whose `require` knows only 'electron', answered by a recorder of contextBridge,
// ipcRenderer and webUtils (Electron cannot start here; the recorder is the one stand-in). It must
// expose `window.lab` and nothing else, and each call must be one checked message on its channel.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import vm from 'node:vm';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { IPC_CHANNELS, LAB_IPC_METHODS, methodChannel } from '../../core/api/ipc';
import { LAB_API_METHODS, type LabApiMethod } from '../../core/api/lab-api';

const BUNDLE = join(__dirname, '..', '..', 'dist', 'electron', 'preload', 'index.cjs');

/** A cheap valid request per method (checked against its schema below): the test fails when a method is added without one. */
const VALID: Record<LabApiMethod, Record<string, unknown>> = {
  searchImp: { model: 'lenet-300-100', dataset: 'mnist' },
  searchOneShot: { sparsity: 0.5, fromTicket: 'tk_x' },
  searchAtInit: { method: 'snip', model: 'lenet-300-100', dataset: 'mnist', sparsity: 0.5 },
  searchGradual: { model: 'lenet-300-100', dataset: 'mnist', sparsity: 0.5 },
  criteriaOverlap: { ticket: 'tk_x' },
  essentialSparsity: { ticket: 'tk_x' },
  instability: { ticket: 'tk_x' },
  evaluate: { target: 'tk_x' },
  listTickets: {},
  browseTickets: {},
  showTicket: { ticket: 'tk_x' },
  ticketMasks: { ticket: 'tk_x' },
  compareTickets: { a: 'tk_x', b: 'tk_y' },
  listRuns: {},
  showRun: { run: 'rn_x' },
  dbInfo: {},
  catalog: {},
  doctor: {},
  inspectModelFile: { path: '/picked/model.safetensors' },
  predict: { path: '/picked/model.safetensors', input: '/picked/input.npy' },
  exportMask: { ticket: 'tk_x', format: 'safetensors', output: '/chosen/mask.safetensors' },
  importModel: { path: '/picked/model.safetensors' },
  importRuns: { path: '/picked/experiment' },
  keys: {},
  listClaims: {},
  claim: { ticket: 'tk_x' },
  verify: { suspect: 'tk_x' },
  attack: { claim: 'cl_x', kind: 'finetune' },
  exportTriggers: { claim: 'cl_x', output: '/chosen/triggers.npy' },
  exportBundle: { ticket: 'tk_x', output: '/chosen/ticket.tlb' },
  resumeRun: { run: 'rn_x' },
  submitJob: { method: 'searchOneShot', request: { sparsity: 0.5, fromTicket: 'tk_x' } },
  listJobs: {},
  cancelJob: { job: 'jb_x' },
  resumeJob: { job: 'jb_x' },
  verifyBundle: { path: '/picked/ticket.tlb' },
  importBundle: { path: '/picked/ticket.tlb' },
  mergeDatabases: { files: ['/picked/task-0.db', '/picked/task-1.db'] },
  sweepStatus: { dir: '/picked/sweep' },
};

type Listener = (event: unknown, payload: unknown) => void;

/** What the preload did with Electron: every call recorded, replies canned. */
function electronRecorder() {
  const record = {
    required: [] as string[],
    exposed: [] as { name: string; api: Record<string, unknown> }[],
    invokes: [] as { channel: string; args: unknown[] }[],
    listeners: new Map<string, Listener[]>(),
    removed: [] as { channel: string; listener: Listener }[],
    /** Any other use of ipcRenderer (send, sendSync, postMessage, ...): there must be none. */
    forbidden: [] as string[],
    reply: (channel: string, _args: unknown[]): unknown => ({ ok: true, value: { answered: channel } }),
  };
  const ipcRenderer = new Proxy(
    {
      invoke: async (channel: string, ...args: unknown[]) => {
        record.invokes.push({ channel, args });
        return record.reply(channel, args);
      },
      on: (channel: string, listener: Listener) => {
        record.listeners.set(channel, [...(record.listeners.get(channel) ?? []), listener]);
        return ipcRenderer;
      },
      removeListener: (channel: string, listener: Listener) => {
        record.removed.push({ channel, listener });
        record.listeners.set(channel, (record.listeners.get(channel) ?? []).filter((l) => l !== listener));
        return ipcRenderer;
      },
    } as Record<string, unknown>,
    {
      get: (target, name) => {
        if (typeof name === 'string' && !(name in target)) record.forbidden.push(name);
        return Reflect.get(target, name);
      },
    },
  );
  const electron = {
    contextBridge: {
      exposeInMainWorld: (name: string, api: Record<string, unknown>) => record.exposed.push({ name, api }),
      exposeInIsolatedWorld: () => record.forbidden.push('exposeInIsolatedWorld'),
    },
    ipcRenderer,
    // A File the page made itself (name 'made-by-page') has no path, as in Electron.
    webUtils: { getPathForFile: (file: { name: string }) => (file.name === 'made-by-page' ? '' : `/picked/${file.name}`) },
  };
  return { record, electron };
}

let compiled: vm.Script | undefined;

/** Runs the bundle in a fresh context with nothing but CommonJS's module variables. */
function loadPreload() {
  const { record, electron } = electronRecorder();
  compiled ??= new vm.Script(`(function (exports, require, module, __filename, __dirname) {\n${readFileSync(BUNDLE, 'utf8')}\n})`, { filename: BUNDLE });
  const wrapper = compiled.runInContext(vm.createContext({})) as (...args: unknown[]) => void;
  const module = { exports: {} };
  const sandboxRequire = (name: string) => {
    record.required.push(name);
    if (name === 'electron') return electron;
    throw new Error(`module not found: ${name} (a sandboxed preload may require only 'electron')`);
  };
  wrapper(module.exports, sandboxRequire, module, BUNDLE, join(BUNDLE, '..'));
  return { record, electron, lab: record.exposed[0]?.api as Record<string, (...args: unknown[]) => unknown> & { files: Record<string, (...args: unknown[]) => Promise<unknown>> } };
}

/** Every function reachable from `value`, with its path. */
function functionsIn(value: unknown, path: string, out: [string, unknown][] = []): [string, unknown][] {
  if (typeof value === 'function') out.push([path, value]);
  if (value && typeof value === 'object') for (const [key, inner] of Object.entries(value)) functionsIn(inner, `${path}.${key}`, out);
  return out;
}

describe('the built preload', () => {
  beforeAll(() => {
    if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: build it with \`npm run build\` (electron-vite build).`);
  });

  let loaded: ReturnType<typeof loadPreload>;
  beforeEach(() => {
    loaded = loadPreload();
  });

  it("requires only 'electron' and exposes one world, 'lab', sending nothing while it loads", () => {
    const { record } = loaded;
    expect(new Set(record.required)).toEqual(new Set(['electron']));
    expect(record.exposed.map((e) => e.name)).toEqual(['lab']);
    expect(record.invokes).toEqual([]);
    expect(record.listeners.size).toBe(0);
    expect(record.forbidden).toEqual([]);
  });

  it('exposes exactly the LabApi methods, the two subscriptions and files: no ipcRenderer, no generic send', () => {
    const { lab, electron } = loaded;
    expect(Object.keys(lab).sort()).toEqual([...LAB_IPC_METHODS, 'onJobEvent', 'onMenuCommand', 'files'].sort());
    expect(Object.keys(lab.files).sort()).toEqual(['chooseExportPath', 'grant', 'reveal']);
    const functions = functionsIn(lab, 'lab');
    expect(functions.map(([path]) => path).sort()).toEqual(
      [...LAB_IPC_METHODS.map((m) => `lab.${m}`), 'lab.onJobEvent', 'lab.onMenuCommand', 'lab.files.grant', 'lab.files.chooseExportPath', 'lab.files.reveal'].sort(),
    );
    // None of them is Electron's own object or function handed through.
    const electronParts = new Set<unknown>([electron.ipcRenderer, electron.contextBridge, electron.webUtils, ...Object.values(electron.contextBridge), electron.webUtils.getPathForFile]);
    for (const name of ['invoke', 'on', 'removeListener']) electronParts.add(electron.ipcRenderer[name]);
    for (const [path, fn] of functions) expect(electronParts.has(fn), path).toBe(false);
    expect(electronParts.has(lab.files)).toBe(false);
  });

  it('has a valid request per method in this test', () => {
    expect(Object.keys(VALID).sort()).toEqual([...LAB_IPC_METHODS].sort());
    for (const method of LAB_IPC_METHODS) expect(LAB_API_METHODS[method].safeParse(VALID[method]).success, method).toBe(true);
  });

  it.each(LAB_IPC_METHODS)('%s: a valid request is one invoke on its channel, the request as given, the reply handed back', async (method) => {
    const { lab, record } = loaded;
    const reply = await lab[method]!(VALID[method]);
    expect(record.invokes).toEqual([{ channel: methodChannel(method), args: [VALID[method]] }]);
    expect(reply).toEqual({ ok: true, value: { answered: methodChannel(method) } });
  });

  it.each(LAB_IPC_METHODS)('%s: an unknown field is refused in the preload, naming it, and nothing is sent', async (method) => {
    const { lab, record } = loaded;
    const reply = (await lab[method]!({ ...VALID[method], sneaky: true })) as { ok: boolean; error: { code: string; message: string } };
    expect(record.invokes).toEqual([]);
    expect(reply.ok).toBe(false);
    expect(reply.error.code).toBe('INVALID_REQUEST');
    expect(reply.error.message).toContain('sneaky');
  });

  it('refuses a field of the wrong type, naming the field, and a request that is not an object', async () => {
    const { lab, record } = loaded;
    const wrongType = (await lab.showTicket!({ ticket: 42 })) as { ok: boolean; error: { code: string; message: string } };
    expect(wrongType).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    expect(wrongType.error.message).toMatch(/ticket: /);
    expect(await lab.searchOneShot!({ sparsity: 1.5 })).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST', message: expect.stringContaining('sparsity') } });
    expect(await lab.dbInfo!('select * from tickets')).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    expect(record.invokes).toEqual([]);
  });

  it('sends an absent request as {} (main applies the defaults), not a parsed copy', async () => {
    const { lab, record } = loaded;
    await lab.listTickets!(undefined);
    await lab.doctor!({});
    expect(record.invokes).toEqual([
      { channel: methodChannel('listTickets'), args: [{}] },
      // Not { backend: 'auto' }: the default is main's to apply.
      { channel: methodChannel('doctor'), args: [{}] },
    ]);
  });

  it('answers a failed invoke or a malformed reply with an INTERNAL reply, never a rejection', async () => {
    const { lab, record } = loaded;
    record.reply = () => {
      throw new Error("No handler registered for 'lab:dbInfo'");
    };
    expect(await lab.dbInfo!({})).toMatchObject({ ok: false, error: { code: 'INTERNAL', message: expect.stringContaining('No handler registered') } });
    record.reply = () => 'not an envelope';
    expect(await lab.dbInfo!({})).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
    record.reply = () => ({ ok: false, error: { code: 'NOT_FOUND', message: 'No ticket matches' } });
    expect(await lab.showTicket!({ ticket: 'tk_gone' })).toEqual({ ok: false, error: { code: 'NOT_FOUND', message: 'No ticket matches' } });
  });

  it.each([
    ['onJobEvent', IPC_CHANNELS.jobEvent, { type: 'warning', job: 'jb_x', message: 'software GPU' }],
    ['onMenuCommand', IPC_CHANNELS.menuCommand, { type: 'navigate', route: '/jobs' }],
  ] as const)('%s: the listener gets only the payload, and its unsubscribe removes exactly that listener', (name, channel, payload) => {
    const { lab, record } = loaded;
    const seen: unknown[][] = [];
    const other: unknown[] = [];
    const unsubscribe = lab[name]!((...args: unknown[]) => seen.push(args)) as () => void;
    lab[name]!((value: unknown) => other.push(value));
    const [forward, otherForward] = record.listeners.get(channel)!;
    expect(record.listeners.get(channel)).toHaveLength(2);

    const ipcEvent = { sender: { send: () => undefined }, senderId: 0, ports: [] };
    forward!(ipcEvent, payload);
    expect(seen).toEqual([[payload]]);

    unsubscribe();
    unsubscribe();
    expect(record.removed).toEqual([{ channel, listener: forward }]);
    expect(record.listeners.get(channel)).toEqual([otherForward]);
    otherForward!(ipcEvent, payload);
    expect(other).toEqual([payload]);
    expect(seen).toHaveLength(1);
    expect(record.invokes).toEqual([]);
  });

  it('refuses a listener that is not a function', () => {
    expect(() => loaded.lab.onJobEvent!('console.log')).toThrow(/must be a function/);
    expect(loaded.record.listeners.size).toBe(0);
  });

  it("files.grant reads each File's path and sends them on the grant channel, answering them", async () => {
    const { lab, record } = loaded;
    const reply = await lab.files.grant!([{ name: 'model.safetensors' }, { name: 'experiment' }]);
    expect(record.invokes).toEqual([{ channel: IPC_CHANNELS.grantPaths, args: [{ paths: ['/picked/model.safetensors', '/picked/experiment'] }] }]);
    expect(reply).toEqual({ ok: true, value: ['/picked/model.safetensors', '/picked/experiment'] });
  });

  it('files.grant sends nothing for a File the page made, or for no files', async () => {
    const { lab, record } = loaded;
    expect(await lab.files.grant!([{ name: 'model.pt' }, { name: 'made-by-page' }])).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST', message: expect.stringContaining('made-by-page') } });
    expect(await lab.files.grant!([])).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    expect(await lab.files.grant!('/etc/passwd')).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    expect(record.invokes).toEqual([]);
  });

  it('files.grant hands back main\'s refusal', async () => {
    const { lab, record } = loaded;
    record.reply = () => ({ ok: false, error: { code: 'INVALID_REQUEST', message: 'paths: /picked/gone is not ...' } });
    expect(await lab.files.grant!([{ name: 'gone' }])).toEqual({ ok: false, error: { code: 'INVALID_REQUEST', message: 'paths: /picked/gone is not ...' } });
  });

  it('files.chooseExportPath asks for a save dialog by name; a cancel is a null path', async () => {
    const { lab, record } = loaded;
    record.reply = () => ({ ok: true, value: '/chosen/tk_x.tlb' });
    expect(await lab.files.chooseExportPath!('tk_x.tlb')).toEqual({ ok: true, value: '/chosen/tk_x.tlb' });
    record.reply = () => ({ ok: true, value: null });
    expect(await lab.files.chooseExportPath!('tk_x.tlb')).toEqual({ ok: true, value: null });
    expect(record.invokes).toEqual([
      { channel: IPC_CHANNELS.chooseExportPath, args: [{ name: 'tk_x.tlb' }] },
      { channel: IPC_CHANNELS.chooseExportPath, args: [{ name: 'tk_x.tlb' }] },
    ]);
    expect(await lab.files.chooseExportPath!('../../.bashrc')).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    expect(record.invokes).toHaveLength(2);
  });

  it('files.reveal sends the path on the reveal channel', async () => {
    const { lab, record } = loaded;
    expect(await lab.files.reveal!('/chosen/tk_x.tlb')).toEqual({ ok: true, value: null });
    expect(await lab.files.reveal!(42)).toMatchObject({ ok: false, error: { code: 'INVALID_REQUEST' } });
    expect(record.invokes).toEqual([{ channel: IPC_CHANNELS.revealPath, args: [{ path: '/chosen/tk_x.tlb' }] }]);
  });
});
