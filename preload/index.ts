// The window's preload (sandboxed: it may require only 'electron', so zod and core/api are bundled
// in). It exposes `window.lab` (LabBridge) and nothing else: one function per LabApi method, built
// from LAB_API_METHODS, the two event subscriptions, and file access. The page never holds
// ipcRenderer, an IpcRendererEvent, or a way to send on a channel of its choosing.
//
// Requests are checked here for fast feedback (a bad one is answered without a round trip); main
// checks them again, and main's check is the security boundary. What is sent is the request as the
// page gave it, not zod's parsed copy: main applies the defaults itself, so they live in one place,
// and a schema's output need not be a valid input. contextBridge has already copied the request into
// this world, so the object checked is the object sent.
import { contextBridge, ipcRenderer, webUtils, type IpcRendererEvent } from 'electron';
import type { ErrorPayload } from '../core/api/errors';
import { IPC_CHANNELS, LAB_IPC_METHODS, methodChannel, type IpcReply } from '../core/api/ipc';
import { LAB_API_METHODS, type LabApiMethod } from '../core/api/lab-api';
import { parseRequest } from '../core/api/parse-request';
import type { LabBridge, LabBridgeFiles, LabBridgeMethods } from './lab-bridge';

const MAX_GRANTED_FILES = 10_000;
const MAX_PATH_CHARS = 4096;

const refused = (code: ErrorPayload['code'], message: string): IpcReply<never> => ({ ok: false, error: { code, message } });

const isReply = (value: unknown): value is IpcReply<unknown> => typeof value === 'object' && value !== null && typeof (value as { ok?: unknown }).ok === 'boolean';

/**
 * Sends one request on `channel`; main answers every channel with an IpcReply. A rejection (no
 * handler, the window closing) comes back as a reply too: the page gets data, never an Error that
 * Electron has stripped to its message.
 */
async function call<T>(channel: string, request: unknown): Promise<IpcReply<T>> {
  let reply: unknown;
  try {
    reply = await ipcRenderer.invoke(channel, request);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    return refused('INTERNAL', `The app did not answer ${channel} (${detail}). Restart Ticket Lab; if it happens again, please report it.`);
  }
  return isReply(reply) ? (reply as IpcReply<T>) : refused('INTERNAL', `The app answered ${channel} with something that is not a reply.`);
}

function method(name: LabApiMethod): (request: unknown) => Promise<IpcReply<unknown>> {
  const schema = LAB_API_METHODS[name];
  const channel = methodChannel(name);
  return async (request) => {
    const sent = request ?? {};
    try {
      parseRequest(schema, sent);
    } catch (error) {
      // parseRequest names each bad field, in the same words main would use.
      return refused('INVALID_REQUEST', (error as Error).message);
    }
    return call(channel, sent);
  };
}

/** Subscribes the page's listener to what main sends on `channel`; only the payload reaches it. */
function subscription<T>(channel: string): (listener: (payload: T) => void) => () => void {
  return (listener) => {
    if (typeof listener !== 'function') throw new TypeError(`A listener for ${channel} must be a function.`);
    const forward = (_event: IpcRendererEvent, payload: T) => listener(payload);
    ipcRenderer.on(channel, forward);
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      ipcRenderer.removeListener(channel, forward);
    };
  };
}

/** A File's path on disk; '' for one the page made itself (or anything that is not a File). */
function pathOf(file: unknown): string {
  try {
    return webUtils.getPathForFile(file as File);
  } catch {
    return '';
  }
}

const files: LabBridgeFiles = {
  async grant(picked) {
    if (!Array.isArray(picked) || picked.length === 0) return refused('INVALID_REQUEST', 'files: give the dropped or picked files (at least one).');
    if (picked.length > MAX_GRANTED_FILES) return refused('INVALID_REQUEST', `files: at most ${MAX_GRANTED_FILES} at a time.`);
    const paths = picked.map(pathOf);
    const missing = paths.findIndex((path) => path === '');
    if (missing >= 0) {
      const name = (picked[missing] as { name?: unknown } | null)?.name;
      return refused('INVALID_REQUEST', `files.${missing}: ${typeof name === 'string' ? name : 'this item'} is not a file on this computer, so the app cannot read it. Drop or pick it from disk.`);
    }
    const reply = await call<unknown>(IPC_CHANNELS.grantPaths, { paths });
    return reply.ok ? { ok: true, value: paths } : reply;
  },
  async chooseExportPath(name) {
    if (typeof name !== 'string' || name.length === 0 || name.length > 255 || /[\\/\0]/.test(name)) return refused('INVALID_REQUEST', 'name: a file name of 1 to 255 characters, without a folder, is required.');
    const reply = await call<string | null>(IPC_CHANNELS.chooseExportPath, { name });
    if (reply.ok && reply.value !== null && typeof reply.value !== 'string') return refused('INTERNAL', 'The save dialog answered something that is not a path.');
    return reply;
  },
  async reveal(path) {
    if (typeof path !== 'string' || path.length === 0 || path.length > MAX_PATH_CHARS) return refused('INVALID_REQUEST', `path: a path of 1 to ${MAX_PATH_CHARS} characters is required.`);
    const reply = await call<unknown>(IPC_CHANNELS.revealPath, { path });
    return reply.ok ? { ok: true, value: null } : reply;
  },
};

const methods = Object.fromEntries(LAB_IPC_METHODS.map((name) => [name, method(name)])) as unknown as LabBridgeMethods;

const bridge: LabBridge = {
  ...methods,
  onJobEvent: subscription(IPC_CHANNELS.jobEvent),
  onMenuCommand: subscription(IPC_CHANNELS.menuCommand),
  files,
};

contextBridge.exposeInMainWorld('lab', bridge);
