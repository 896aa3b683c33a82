// The window's security settings as plain data: index.ts builds the window from them, and the
// security test reads them (and the built bundle) without Electron. Electron's types only.
import type { BrowserWindowConstructorOptions, WebPreferences } from 'electron';

/** The renderer is served from its own scheme, not file://: a file page could reach every local file. */
export const APP_SCHEME = 'app';
export const APP_HOST = 'ticket-lab';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
export const APP_ENTRY_URL = `${APP_ORIGIN}/index.html`;

/**
 * The renderer's CSP, sent with every app:// response: core/server/lab-server.ts RENDERER_CSP without
 * the event socket (the app's events come over IPC). No remote source at all, no eval: the renderer
 * runs no TF.js, so it needs neither 'unsafe-eval' nor 'wasm-unsafe-eval'.
 */
export const APP_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Electron's security checklist, item by item; every value is the safe one even where it is the default. */
export const WINDOW_WEB_PREFERENCES = {
  contextIsolation: true,
  sandbox: true,
  nodeIntegration: false,
  nodeIntegrationInWorker: false,
  nodeIntegrationInSubFrames: false,
  webSecurity: true,
  allowRunningInsecureContent: false,
  webviewTag: false,
  experimentalFeatures: false,
  // A file dropped outside the page's drop zone must not replace the page.
  navigateOnDragDrop: false,
  safeDialogs: true,
  spellcheck: true,
} as const satisfies WebPreferences;

export function windowOptions(preloadPath: string): BrowserWindowConstructorOptions {
  return {
    width: 1280,
    height: 860,
    minWidth: 800,
    minHeight: 560,
    title: 'Ticket Lab',
    // Shown once the first paint is ready, so the window never flashes empty.
    show: false,
    webPreferences: { ...WINDOW_WEB_PREFERENCES, preload: preloadPath },
  };
}

/** Whether `url` is a page of the app itself: exactly app://ticket-lab, no user, password or port. */
export function isAppPage(url: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  return parsed.protocol === `${APP_SCHEME}:` && parsed.host === APP_HOST && parsed.username === '' && parsed.password === '';
}
