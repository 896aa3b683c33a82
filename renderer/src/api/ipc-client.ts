// The LabClient over the desktop app's preload bridge (window.lab): the same methods as the HTTP
// transport, each reply envelope unwrapped (an error travels as data: its code and message become a
// LabCallError again), job events from main, and files by path rather than by upload: what the user
// dropped or picked is granted to main (the preload reads the paths), an export goes where the save
// dialog says and is then shown in the file manager.
import type { IpcReply } from '../../../core/api/ipc';
import type { LabBridge, LabBridgeExtra } from '../../../preload/lab-bridge';
import { type FileAccess, LabCallError, type LabClient, type LabMethods } from './lab-client';

/** The bridge's members that are not LabApi methods: every other member is one. */
const BRIDGE_EXTRAS = { onJobEvent: true, onMenuCommand: true, files: true } satisfies Record<LabBridgeExtra, true>;

async function unwrap<T>(pending: Promise<IpcReply<T>>): Promise<T> {
  let reply: IpcReply<T>;
  try {
    reply = await pending;
  } catch (error) {
    // The preload answers every call with a reply; a rejection means the bridge itself broke.
    throw new LabCallError('INTERNAL', `The app's bridge failed: ${(error as Error).message}. Restart Ticket Lab.`);
  }
  if (reply.ok) return reply.value;
  throw new LabCallError(reply.error.code, reply.error.message);
}

/** The folder a path lies in (either separator: the path is the OS's). */
const parentOf = (path: string) => path.slice(0, Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'))) || path;

export function createIpcClient(bridge: LabBridge): LabClient {
  const call = bridge as unknown as Record<string, (request: unknown) => Promise<IpcReply<unknown>>>;
  const methods = Object.fromEntries(
    Object.keys(bridge)
      .filter((name) => !(name in BRIDGE_EXTRAS))
      .map((name) => [name, (request: unknown) => unwrap(call[name]!(request))]),
  ) as unknown as LabMethods;

  const files: FileAccess = {
    uploads: false,
    async receive(items, onProgress) {
      const first = items[0];
      if (!first) throw new LabCallError('INVALID_REQUEST', 'Nothing was dropped.');
      // What is granted is what the user dropped: the file itself, or the whole folder (one path,
      // the one requests name) rather than each file walked out of it.
      const folder = items.length > 1 || first.relativePath.includes('/');
      const chosen = first.dropped ?? (folder ? undefined : first.file);
      if (!chosen) {
        const name = first.relativePath.split('/')[0];
        throw new LabCallError('INVALID_REQUEST', `The app reads a folder dropped on its window or opened with File › Open experiment folder…: drop ${name} anywhere on the window, or use that menu (a folder chosen in the page gives its files, not the folder).`);
      }
      const [path] = await unwrap(bridge.files.grant([chosen]));
      // Nothing travels: the service reads the file where it is.
      const totalBytes = items.reduce((sum, item) => sum + item.file.size, 0);
      onProgress?.({ sentBytes: totalBytes, totalBytes });
      return { path: path!, root: parentOf(path!) };
    },
    async exportPath(name) {
      const path = await unwrap(bridge.files.chooseExportPath(name.replace(/[\\/\0]/g, '_')));
      if (path === null) throw new LabCallError('CANCELLED', 'Export cancelled: no file was chosen.');
      return path;
    },
    deliver(path) {
      unwrap(bridge.files.reveal(path)).catch((error: unknown) => console.warn(`Could not show ${path} in the file manager: ${(error as Error).message}`));
    },
  };

  return {
    ...methods,
    files,
    onJobEvent: (listener) => bridge.onJobEvent(listener),
    // IPC has no connection to lose: job events arrive for as long as the window lives.
    onConnection(listener) {
      listener(true);
      return () => undefined;
    },
  };
}
