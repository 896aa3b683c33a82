// The application menu as a template: what each item does is an action index.ts passes in, so the
// template itself is plain data (Electron's types only).
import type { MenuItemConstructorOptions } from 'electron';

export interface MenuActions {
  /** Open dialog for a model file; the window is told to import it. */
  openModel(): void;
  /** Open dialog for a signed bundle; the window is told to import it. */
  importBundle(): void;
  /** Folder dialog for an open_lth experiment; the window is told to import its runs. */
  openExperimentFolder(): void;
  /** The window exports the ticket it shows (it asks for a save path over IPC). */
  exportTicket(): void;
  /** The folder of the database, in the system's file manager. */
  openDataFolder(): void;
}

export function menuTemplate(actions: MenuActions, platform: NodeJS.Platform): MenuItemConstructorOptions[] {
  const mac = platform === 'darwin';
  const file: MenuItemConstructorOptions = {
    label: '&File',
    submenu: [
      { label: 'Open model…', accelerator: 'CmdOrCtrl+O', click: () => actions.openModel() },
      { label: 'Import bundle…', accelerator: 'CmdOrCtrl+Shift+O', click: () => actions.importBundle() },
      { label: 'Open experiment folder…', click: () => actions.openExperimentFolder() },
      { label: 'Export ticket…', accelerator: 'CmdOrCtrl+E', click: () => actions.exportTicket() },
      { type: 'separator' },
      { label: 'Open data folder', click: () => actions.openDataFolder() },
      { type: 'separator' },
      mac ? { role: 'close' } : { role: 'quit' },
    ],
  };
  return [...(mac ? [{ role: 'appMenu' as const }] : []), file, { role: 'editMenu' }, { role: 'viewMenu' }, { role: 'windowMenu' }];
}
