// What the preload puts on `window.lab`: the typed description the renderer builds its IPC transport
// from (renderer/src/api/ipc-client.ts imports it as a type only; nothing here runs). One function
// per LabApi method answering an IpcReply envelope (never a rejection), the two event subscriptions,
// and file access limited to File objects the user gave the page and save dialogs main shows.
import type { IpcReply, MenuCommand } from '../core/api/ipc';
import type { LabApi, LabApiMethod } from '../core/api/lab-api';
import type { JobEvent } from '../core/api/schemas';

type BridgeRequest<M extends LabApiMethod> = Parameters<LabApi[M]>[0];
type BridgeResponse<M extends LabApiMethod> = Awaited<ReturnType<LabApi[M]>>;

/** Every LabApi method: its request, checked in the preload and again in main, then sent on `methodChannel(m)`. */
export type LabBridgeMethods = { readonly [M in LabApiMethod]: (request: BridgeRequest<M>) => Promise<IpcReply<BridgeResponse<M>>> };

export interface LabBridgeFiles {
  /** Grants main access to files (or a dropped folder) the user dropped or picked; answers their paths, in order. */
  grant(files: File[]): Promise<IpcReply<string[]>>;
  /** A save dialog for an export named `name`: the chosen path (granted), or null when the user cancelled. */
  chooseExportPath(name: string): Promise<IpcReply<string | null>>;
  /** Shows an exported file in the system's file manager. */
  reveal(path: string): Promise<IpcReply<null>>;
}

export interface LabBridge extends LabBridgeMethods {
  /** Every job's progress, warnings and state changes; returns the unsubscribe. */
  onJobEvent(listener: (event: JobEvent) => void): () => void;
  /** The File menu's commands (a path in one is already granted); returns the unsubscribe. */
  onMenuCommand(listener: (command: MenuCommand) => void): () => void;
  readonly files: LabBridgeFiles;
}

/** The bridge's members besides the LabApi methods. */
export type LabBridgeExtra = Exclude<keyof LabBridge, LabApiMethod>;
