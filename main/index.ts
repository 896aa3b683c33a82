// The Electron main process: one window on the built renderer (served from app://, with the CSP),
// every IPC channel answered by the handler table, job events pushed to the window. A thin shell: the
// work is the LabService's, and long calls run in its job workers, never on this thread. Imports of
// core/ stay requires of dist/core in the build (electron.vite.config.ts): its workers need their files.
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BrowserWindow, Menu, type WebContents, app, ipcMain, protocol, session } from 'electron';
import { IPC_CHANNELS } from '../core/api/ipc';
import { LabService } from '../core/service/lab-service';
import { defaultDbPath, defaultOwnerKeyPath } from '../core/store/default-path';
import { BUNDLE_FILE_FILTERS, MODEL_FILE_FILTERS, fileDialogs, openDataFolder, openFileForWindow, openFolderForWindow, sendMenuCommand } from './dialogs';
import { createIpcHandlers } from './ipc-handlers';
import { menuTemplate } from './menu';
import { PathGrants } from './path-grants';
import { rendererFile, rendererHeaders } from './renderer-files';
import { APP_ENTRY_URL, APP_HOST, APP_SCHEME, isAppPage, windowOptions } from './window-options';

const PRELOAD = join(__dirname, '../preload/index.cjs');
const RENDERER = join(__dirname, '../../renderer');

// Before ready: every renderer sandboxed, whatever its options; app:// behaves like https (an origin
// of its own, 'self' in the CSP, fetch).
app.enableSandbox();
protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } }]);

/** Every web contents (the window's, and any other that might appear) stays on the app's page. */
function guardContents(contents: WebContents): void {
  contents.on('will-navigate', (event, url) => {
    if (!isAppPage(url)) event.preventDefault();
  });
  contents.on('will-redirect', (event, url) => {
    if (!isAppPage(url)) event.preventDefault();
  });
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  contents.on('will-attach-webview', (event) => event.preventDefault());
}

function serveRenderer(): void {
  protocol.handle(APP_SCHEME, async (request) => {
    const url = new URL(request.url);
    const file = url.host === APP_HOST && request.method === 'GET' ? await rendererFile(RENDERER, url.pathname) : null;
    if (!file) return new Response('Not found', { status: 404, headers: rendererHeaders(null) });
    return new Response(await readFile(file), { headers: rendererHeaders(file) });
  });
}

/** No camera, microphone, notifications, USB, ... and no downloads the user did not ask for in a dialog. */
function denyPermissions(): void {
  const { defaultSession } = session;
  defaultSession.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  defaultSession.setPermissionCheckHandler(() => false);
  defaultSession.setDevicePermissionHandler(() => false);
  defaultSession.on('will-download', (event) => event.preventDefault());
}

async function start(): Promise<void> {
  app.on('web-contents-created', (_event, contents) => guardContents(contents));
  await app.whenReady();
  serveRenderer();
  denyPermissions();

  // The CLI's database (TICKET_LAB_DB honoured), so the CLI and the app share tickets.
  const dbPath = defaultDbPath();
  const service = new LabService({ dbPath, ownerKeyPath: defaultOwnerKeyPath() });
  const grants = new PathGrants();
  let window: BrowserWindow | undefined;

  const table = createIpcHandlers({ service, grants, dialogs: fileDialogs(() => window) });
  for (const [channel, handle] of Object.entries(table)) {
    ipcMain.handle(channel, (event, request: unknown) => handle({ url: event.senderFrame?.url ?? '' }, request));
  }
  const stopEvents = service.onJobEvent((event) => {
    if (window && !window.isDestroyed()) window.webContents.send(IPC_CHANNELS.jobEvent, event);
  });

  const withWindow = (action: (w: BrowserWindow) => unknown) => () => {
    if (window && !window.isDestroyed()) void action(window);
  };
  Menu.setApplicationMenu(
    Menu.buildFromTemplate(
      menuTemplate(
        {
          openModel: withWindow((w) => openFileForWindow(w, grants, MODEL_FILE_FILTERS)),
          importBundle: withWindow((w) => openFileForWindow(w, grants, BUNDLE_FILE_FILTERS)),
          openExperimentFolder: withWindow((w) => openFolderForWindow(w, grants)),
          exportTicket: withWindow((w) => sendMenuCommand(w, { type: 'export-ticket' })),
          openDataFolder: () => void openDataFolder(dirname(dbPath)),
        },
        process.platform,
      ),
    ),
  );

  const openWindow = () => {
    window = new BrowserWindow(windowOptions(PRELOAD));
    window.once('ready-to-show', () => window?.show());
    window.on('closed', () => (window = undefined));
    void window.loadURL(APP_ENTRY_URL);
  };
  openWindow();

  app.on('second-instance', () => {
    if (!window) return openWindow();
    if (window.isMinimized()) window.restore();
    window.focus();
  });
  app.on('activate', () => window ?? openWindow());
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  app.on('will-quit', () => {
    stopEvents();
    // A running job stops at its next safe point; its finished levels stay, and `jobs resume` continues it.
    service.close();
  });
}

// One app per user: a second start focuses the first one's window instead.
if (app.requestSingleInstanceLock()) void start();
else app.quit();
