// The system dialogs behind the File menu and the file channels (Electron only). Whatever the user
// picks in one is granted (path-grants.ts): these dialogs, and drops, are the only way in.
import { mkdirSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { type BrowserWindow, type FileFilter, app, dialog, shell } from 'electron';
import { IPC_CHANNELS, type MenuCommand } from '../core/api/ipc';
import type { FileDialogs } from './ipc-handlers';
import type { PathGrants } from './path-grants';

/** Formats are found by content (core/formats/registry.ts), so "All files" stays: a renamed file still reads. */
export const MODEL_FILE_FILTERS: FileFilter[] = [
  { name: 'Model files', extensions: ['safetensors', 'onnx', 'npz', 'npy', 'pt', 'pth', 'bin', 'ckpt', 'json'] },
  { name: 'All files', extensions: ['*'] },
];
export const BUNDLE_FILE_FILTERS: FileFilter[] = [{ name: 'Ticket bundles', extensions: ['tlb', 'zip'] }];

/** An open dialog; the file chosen is granted for reading and handed to the window to import. */
export async function openFileForWindow(window: BrowserWindow, grants: PathGrants, filters: FileFilter[]): Promise<void> {
  const { canceled, filePaths } = await dialog.showOpenDialog(window, { properties: ['openFile'], filters });
  const path = filePaths[0];
  if (canceled || !path) return;
  grants.grant(path, 'read');
  const command: MenuCommand = { type: 'open-file', path, name: basename(path) };
  window.webContents.send(IPC_CHANNELS.menuCommand, command);
}

/** An open_lth experiment folder: granted with everything in it, then imported as runs by the window. */
export async function openFolderForWindow(window: BrowserWindow, grants: PathGrants): Promise<void> {
  const { canceled, filePaths } = await dialog.showOpenDialog(window, { properties: ['openDirectory'] });
  const path = filePaths[0];
  if (canceled || !path) return;
  grants.grant(path, 'read');
  const command: MenuCommand = { type: 'open-file', path, name: basename(path), folder: true };
  window.webContents.send(IPC_CHANNELS.menuCommand, command);
}

export function sendMenuCommand(window: BrowserWindow, command: MenuCommand): void {
  window.webContents.send(IPC_CHANNELS.menuCommand, command);
}

/** The database's folder in the file manager (made first: before the first ticket there may be none). */
export async function openDataFolder(folder: string): Promise<void> {
  mkdirSync(folder, { recursive: true });
  const problem = await shell.openPath(folder);
  if (problem) dialog.showErrorBox('Cannot open the data folder', `${folder}: ${problem}`);
}

/** The save dialog and the file manager, for the file channels; dialogs belong to the app's window. */
export function fileDialogs(window: () => BrowserWindow | undefined): FileDialogs {
  return {
    async chooseExportPath(name) {
      const extension = extname(name).slice(1);
      const options: Electron.SaveDialogOptions = {
        defaultPath: join(app.getPath('documents'), name),
        filters: extension ? [{ name: `.${extension} file`, extensions: [extension] }] : [],
        properties: ['createDirectory', 'showOverwriteConfirmation'],
      };
      const owner = window();
      const { canceled, filePath } = owner ? await dialog.showSaveDialog(owner, options) : await dialog.showSaveDialog(options);
      return canceled || !filePath ? null : filePath;
    },
    revealPath(path) {
      shell.showItemInFolder(path);
    },
  };
}
