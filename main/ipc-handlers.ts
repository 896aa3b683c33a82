// The app's IPC handlers: one per channel of core/api/ipc.ts, each a function of the sender's URL and
// the request, answering an IpcReply and never throwing. No Electron here (index.ts registers the
// table with ipcMain), so tests call every handler in plain Node against a real LabService.
import { z } from 'zod';
import { ForbiddenSenderError, InvalidRequestError, RunsAsJobError, toErrorPayload } from '../core/api/errors';
import { IPC_CHANNELS, type IpcReply, LAB_IPC_METHODS, methodChannel } from '../core/api/ipc';
import { LAB_API_METHODS, type LabApi, type LabApiMethod } from '../core/api/lab-api';
import { parseRequest } from '../core/api/parse-request';
import { JOB_METHOD_NAMES } from '../core/api/schemas';
import { type PathGrants, requestPaths } from './path-grants';
import { APP_ORIGIN, isAppPage } from './window-options';

/** What main knows of who sent a message: the URL of the sending frame. */
export interface IpcSender {
  url: string;
}

export type IpcHandler = (sender: IpcSender, request: unknown) => Promise<IpcReply<unknown>>;

/** The dialogs and shell calls behind the file channels: Electron's in the app (dialogs.ts). */
export interface FileDialogs {
  /** A save dialog suggesting `name`: the chosen path, or null when the user cancelled. */
  chooseExportPath(name: string): Promise<string | null>;
  /** Shows a file in the system's file manager. */
  revealPath(path: string): void;
}

export interface IpcHandlerOptions {
  service: Omit<LabApi, 'onJobEvent'>;
  grants: PathGrants;
  dialogs: FileDialogs;
}

/** Paths preload read from dropped or picked File objects (webUtils.getPathForFile): files, or a dropped folder. */
export const GrantPathsRequest = z.object({ paths: z.array(z.string().min(1).max(4096)).min(1).max(10_000) }).strict();
/** The file name a save dialog suggests ("tk_abc.tlb"): a name, not a path. */
export const ChooseExportPathRequest = z.object({ name: z.string().min(1).max(255).regex(/^[^\\/\0]+$/, 'a file name, without a folder') }).strict();
export const RevealPathRequest = z.object({ path: z.string().min(1).max(4096) }).strict();

const JOB_METHODS = new Set<string>(JOB_METHOD_NAMES);

/** A handler that checks the sender first and turns every outcome into an IpcReply. */
function handler(body: (request: unknown) => Promise<unknown>): IpcHandler {
  return async (sender, request) => {
    try {
      if (!isAppPage(sender.url)) throw new ForbiddenSenderError(`Only Ticket Lab's own page (${APP_ORIGIN}) may call the lab; a frame at '${sender.url}' asked.`);
      return { ok: true, value: await body(request ?? {}) };
    } catch (error) {
      return { ok: false, error: toErrorPayload(error) };
    }
  };
}

export function createIpcHandlers({ service, grants, dialogs }: IpcHandlerOptions): Record<string, IpcHandler> {
  const method = (name: LabApiMethod) =>
    handler(async (request) => {
      const params = parseRequest(LAB_API_METHODS[name], request) as Record<string, unknown>;
      // Long calls run in the job runner's worker threads, never on this thread, and main never holds
      // a reply open for a whole job: the window follows it on lab:event:job.
      if (JOB_METHODS.has(name)) throw new RunsAsJobError(`${name} runs as a job: call submitJob with { method: '${name}', request: {...} } and follow it on its job events.`);
      if (params.wait === true) throw new RunsAsJobError(`wait: the app does not wait on a job; ${name} without wait, then follow the job on its job events.`);
      if (name === 'submitJob') parseRequest(LAB_API_METHODS[params.method as LabApiMethod], params.request);
      for (const { field, path, access } of requestPaths(name, params)) grants.check(path, access, field);
      const call = service[name] as (request: unknown) => Promise<unknown>;
      return call.call(service, request);
    });

  return {
    ...Object.fromEntries(LAB_IPC_METHODS.map((name) => [methodChannel(name), method(name)])),
    // All or nothing: one path that is not there and none is granted.
    [IPC_CHANNELS.grantPaths]: handler(async (request) => {
      const { paths } = parseRequest(GrantPathsRequest, request);
      for (const path of paths) if (!grants.canGrant(path, 'read')) throw new InvalidRequestError(`paths: ${path} is not an absolute path to a file or folder that exists.`);
      for (const path of paths) grants.grant(path, 'read');
      return paths;
    }),
    [IPC_CHANNELS.chooseExportPath]: handler(async (request) => {
      const { name } = parseRequest(ChooseExportPathRequest, request);
      const chosen = await dialogs.chooseExportPath(name);
      if (chosen === null) return null;
      grants.grant(chosen, 'write');
      return chosen;
    }),
    [IPC_CHANNELS.revealPath]: handler(async (request) => {
      const { path } = parseRequest(RevealPathRequest, request);
      grants.check(path, 'read', 'path');
      dialogs.revealPath(path);
      return null;
    }),
  };
}
