// The desktop app's bridge, as plain data: the IPC channel of every LabApi method and of the events,
// and the envelope a reply travels in. main/ registers exactly these channels, preload/ sends on
// exactly these, and neither imports the other. Nothing here knows Electron.
import type { ErrorPayload } from './errors';
import { LAB_API_METHODS, type LabApiMethod } from './lab-api';

/** `lab:<method>`: one invoke channel per LabApi method. */
export const methodChannel = (method: LabApiMethod): string => `lab:${method}`;

export const LAB_IPC_METHODS = Object.keys(LAB_API_METHODS) as LabApiMethod[];

/** Channels that are not LabApi methods: file access the user grants, and what main pushes. */
export const IPC_CHANNELS = {
  /** preload → main: paths of files the user dropped or picked (read in preload from the File objects). */
  grantPaths: 'lab:files:grant',
  /** preload → main: a save dialog for an export; answers the chosen path (granted) or null. */
  chooseExportPath: 'lab:files:export-path',
  /** preload → main: show an exported file in the system's file manager. */
  revealPath: 'lab:files:reveal',
  /** main → preload: a job's progress, warning or state (JobEvent). */
  jobEvent: 'lab:event:job',
  /** main → preload: a menu command (open a model or a bundle, export the ticket shown, ...). */
  menuCommand: 'lab:event:menu',
} as const;

/** A reply over IPC: Electron keeps only an Error's message, so errors travel as data with their code. */
export type IpcReply<T> = { ok: true; value: T } | { ok: false; error: ErrorPayload };

/** What the File menu asks the window to do (a path is already granted when it arrives). */
export type MenuCommand = { type: 'open-file'; path: string; name: string; folder?: boolean } | { type: 'export-ticket' } | { type: 'navigate'; route: string };
