// The renderer's IPC transport over a recorded bridge (the shape the preload exposes): replies
// unwrapped into values or LabCallErrors, files granted by what the user dropped, a cancelled save
// dialog a CANCELLED error, and no connection to lose.
import { describe, expect, it } from 'vitest';
import type { IpcReply } from '../../core/api/ipc';
import { LAB_IPC_METHODS } from '../../core/api/ipc';
import type { JobEvent } from '../../core/api/schemas';
import type { LabBridge } from '../../preload/lab-bridge';
import { createIpcClient } from '../../renderer/src/api/ipc-client';
import { LabCallError, type PickedFile } from '../../renderer/src/api/lab-client';

function recordedBridge() {
  const calls: { name: string; args: unknown[] }[] = [];
  const replies = new Map<string, IpcReply<unknown>>();
  const answer = (name: string, ...args: unknown[]) => {
    calls.push({ name, args });
    return Promise.resolve(replies.get(name) ?? { ok: true, value: { answered: name } });
  };
  const jobListeners: ((event: JobEvent) => void)[] = [];
  const bridge = {
    ...Object.fromEntries(LAB_IPC_METHODS.map((m) => [m, (request: unknown) => answer(m, request)])),
    onJobEvent: (listener: (event: JobEvent) => void) => {
      jobListeners.push(listener);
      return () => calls.push({ name: 'unsubscribe', args: [] });
    },
    onMenuCommand: () => () => undefined,
    files: {
      grant: (files: File[]) => answer('grant', files),
      chooseExportPath: (name: string) => answer('chooseExportPath', name),
      reveal: (path: string) => answer('reveal', path),
    },
  } as unknown as LabBridge;
  return { bridge, calls, replies, jobListeners };
}

const file = (name: string, bytes = 3) => new File([new Uint8Array(bytes)], name);

describe('the IPC client', () => {
  it('offers every LabApi method, and of the bridge only what LabClient has', () => {
    const client = createIpcClient(recordedBridge().bridge) as unknown as Record<string, unknown>;
    for (const method of LAB_IPC_METHODS) expect(typeof client[method], method).toBe('function');
    expect(Object.keys(client).sort()).toEqual([...LAB_IPC_METHODS, 'files', 'onConnection', 'onJobEvent'].sort());
  });

  it('answers a value, or throws the reply error as a LabCallError with its code', async () => {
    const { bridge, calls, replies } = recordedBridge();
    const client = createIpcClient(bridge);
    expect(await client.listTickets({ minSparsity: 0.5 })).toEqual({ answered: 'listTickets' });
    expect(calls).toEqual([{ name: 'listTickets', args: [{ minSparsity: 0.5 }] }]);
    replies.set('showTicket', { ok: false, error: { code: 'NOT_FOUND', message: "No ticket matches 'tk_gone'." } });
    const error = await client.showTicket({ ticket: 'tk_gone' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LabCallError);
    expect(error).toMatchObject({ code: 'NOT_FOUND', message: "No ticket matches 'tk_gone'." });
  });

  it('is always connected, and job events come from the bridge', () => {
    const { bridge, jobListeners, calls } = recordedBridge();
    const client = createIpcClient(bridge);
    const states: boolean[] = [];
    client.onConnection((up) => states.push(up));
    expect(states).toEqual([true]);
    const events: JobEvent[] = [];
    const unsubscribe = client.onJobEvent((event) => events.push(event));
    const event = { type: 'warning', job: 'jb_x', message: 'software GPU' } as JobEvent;
    jobListeners[0]!(event);
    expect(events).toEqual([event]);
    unsubscribe();
    expect(calls).toEqual([{ name: 'unsubscribe', args: [] }]);
  });

  it('grants a picked file and names its path, reporting it all received', async () => {
    const { bridge, calls, replies } = recordedBridge();
    replies.set('grant', { ok: true, value: ['/home/me/model.safetensors'] });
    const picked = file('model.safetensors', 7);
    const progress: unknown[] = [];
    const sent = await createIpcClient(bridge).files.receive([{ file: picked, relativePath: picked.name }], (p) => progress.push(p));
    expect(sent).toEqual({ path: '/home/me/model.safetensors', root: '/home/me' });
    expect(calls).toEqual([{ name: 'grant', args: [[picked]] }]);
    expect(progress).toEqual([{ sentBytes: 7, totalBytes: 7 }]);
  });

  it('grants a dropped folder as one path, not each file walked out of it', async () => {
    const { bridge, calls, replies } = recordedBridge();
    replies.set('grant', { ok: true, value: ['/home/me/experiment'] });
    const folder = file('experiment', 0);
    const items: PickedFile[] = ['experiment/replicate_1/main/hparams.log', 'experiment/replicate_1/level_0/main/mask.pth'].map((relativePath) => ({ file: file(relativePath.split('/').pop()!), relativePath, dropped: folder }));
    expect(await createIpcClient(bridge).files.receive(items)).toEqual({ path: '/home/me/experiment', root: '/home/me' });
    expect(calls).toEqual([{ name: 'grant', args: [[folder]] }]);
  });

  it('refuses a folder it cannot name (chosen in the page, not dropped) and hands back a refused grant', async () => {
    const { bridge, calls, replies } = recordedBridge();
    const client = createIpcClient(bridge);
    const picked = [{ file: file('hparams.log'), relativePath: 'experiment/replicate_1/main/hparams.log' }];
    await expect(client.files.receive(picked)).rejects.toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringContaining('experiment') });
    await expect(client.files.receive([])).rejects.toBeInstanceOf(LabCallError);
    expect(calls).toEqual([]);
    replies.set('grant', { ok: false, error: { code: 'PATH_NOT_GRANTED', message: '/ is a whole drive: choose a file or a folder on it.' } });
    await expect(client.files.receive([{ file: file('x.pt'), relativePath: 'x.pt' }])).rejects.toMatchObject({ code: 'PATH_NOT_GRANTED' });
  });

  it('asks the save dialog where an export goes; a cancel is a CANCELLED error', async () => {
    const { bridge, calls, replies } = recordedBridge();
    const client = createIpcClient(bridge);
    replies.set('chooseExportPath', { ok: true, value: '/home/me/Documents/tk_x.tlb' });
    expect(await client.files.exportPath('tk_x.tlb')).toBe('/home/me/Documents/tk_x.tlb');
    replies.set('chooseExportPath', { ok: true, value: null });
    await expect(client.files.exportPath('a/b.tlb')).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(calls.map((c) => c.args[0])).toEqual(['tk_x.tlb', 'a_b.tlb']);
  });

  it('delivers an export by showing it in the file manager', () => {
    const { bridge, calls } = recordedBridge();
    createIpcClient(bridge).files.deliver('/home/me/Documents/tk_x.tlb');
    expect(calls).toEqual([{ name: 'reveal', args: ['/home/me/Documents/tk_x.tlb'] }]);
  });
});
