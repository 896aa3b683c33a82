// Electron's security checklist, every item that can be checked without running Electron: the
// window options and the CSP as main/ declares them AND as the built main bundle carries them, the
// guards the bundle installs, what app:// serves, and the built renderer page.
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rendererFile, rendererHeaders } from '../../main/renderer-files';
import { APP_CSP, APP_ENTRY_URL, WINDOW_WEB_PREFERENCES, isAppPage, windowOptions } from '../../main/window-options';
import { useTempFolder } from '../support/temp-folder';

const ROOT = resolve(__dirname, '../..');
const MAIN_BUNDLE = join(ROOT, 'dist/electron/main/index.js');
const RENDERER = join(ROOT, 'dist/renderer');
const temp = useTempFolder('ticket-lab-security-');

/** The checklist's settings: each must have exactly this value. */
const REQUIRED_PREFERENCES = {
  contextIsolation: true,
  sandbox: true,
  nodeIntegration: false,
  nodeIntegrationInWorker: false,
  nodeIntegrationInSubFrames: false,
  webSecurity: true,
  allowRunningInsecureContent: false,
  webviewTag: false,
  experimentalFeatures: false,
};

function builtMain(): string {
  if (!existsSync(MAIN_BUNDLE)) throw new Error(`${MAIN_BUNDLE} is missing: build the app first (\`npx electron-vite build\`, part of \`npm run build\`).`);
  return readFileSync(MAIN_BUNDLE, 'utf8');
}

/** The CSP's directives, each with its sources. */
function directives(csp: string): Map<string, string[]> {
  return new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).filter((d) => d[0]).map(([name, ...sources]) => [name!, sources]));
}

/** The `{ ... }` literal that sets contextIsolation in the bundle, as key → boolean (minified `!0`/`!1` too). */
function builtPreferences(source: string): Record<string, boolean> {
  const at = source.indexOf('contextIsolation');
  const literal = source.slice(source.lastIndexOf('{', at), source.indexOf('}', at) + 1);
  return Object.fromEntries([...literal.matchAll(/(\w+)\s*:\s*(true|false|!0|!1)/g)].map(([, key, value]) => [key, value === 'true' || value === '!0']));
}

function expectStrictCsp(csp: string): void {
  const policy = directives(csp);
  expect(policy.get('default-src')).toEqual(["'none'"]);
  expect(policy.get('script-src')).toEqual(["'self'"]);
  for (const directive of ['object-src', 'frame-src', 'worker-src', 'script-src-elem', 'script-src-attr']) expect(policy.has(directive), directive).toBe(false);
  expect(policy.get('base-uri')).toEqual(["'none'"]);
  expect(policy.get('form-action')).toEqual(["'none'"]);
  expect(policy.get('frame-ancestors')).toEqual(["'none'"]);
  // No remote source anywhere, and no eval or inline code.
  for (const [name, sources] of policy) {
    for (const source of sources) expect(["'self'", "'none'", 'data:', 'blob:'], `${name} ${source}`).toContain(source);
    if (name !== 'img-src') expect(sources, name).not.toContain('data:');
  }
  expect(csp).not.toMatch(/unsafe|https?:|wss?:|\*/);
}

describe('the window as main/ declares it', () => {
  it('turns on isolation, the sandbox and web security, and off Node, webviews, insecure content and experiments', () => {
    expect(WINDOW_WEB_PREFERENCES).toMatchObject(REQUIRED_PREFERENCES);
    const { webPreferences } = windowOptions('/app/preload/index.cjs');
    expect(webPreferences).toMatchObject({ ...REQUIRED_PREFERENCES, preload: '/app/preload/index.cjs' });
    expect(webPreferences).not.toHaveProperty('enableBlinkFeatures');
    expect(webPreferences).not.toHaveProperty('partition');
  });

  it('sends a CSP without remote, inline or eval script sources', () => {
    expectStrictCsp(APP_CSP);
  });

  it('counts only its own app:// page as a sender or a place to navigate', () => {
    expect(isAppPage(APP_ENTRY_URL)).toBe(true);
    expect(isAppPage(`${APP_ENTRY_URL}#/tickets/tk_1`)).toBe(true);
    for (const url of ['https://ticket-lab/', 'file:///index.html', 'app://evil/', 'app://user@ticket-lab/', 'app://ticket-lab:8080/', 'app://ticket-lab.evil.example/', 'devtools://devtools/', '', 'not a url']) {
      expect(isAppPage(url), url).toBe(false);
    }
  });
});

describe('the built main process (dist/electron/main/index.js)', () => {
  it('builds its one window from those preferences, with the preload and renderer it finds beside it', () => {
    const source = builtMain();
    expect(source.split('contextIsolation').length - 1, 'one place sets web preferences').toBe(1);
    expect(builtPreferences(source)).toMatchObject(REQUIRED_PREFERENCES);
    expect(source).toMatch(/webPreferences:\s*\{\s*\.\.\.WINDOW_WEB_PREFERENCES,\s*preload/);
    expect(source.match(/new [\w.]*BrowserWindow\(/g)).toHaveLength(1);
    expect(source).toMatch(/new [\w.]*BrowserWindow\(windowOptions\(PRELOAD\)\)/);
    for (const unsafe of [/nodeIntegration\w*\s*:\s*(true|!0)/, /(contextIsolation|sandbox|webSecurity)\s*:\s*(false|!1)/, /(webviewTag|allowRunningInsecureContent|experimentalFeatures)\s*:\s*(true|!0)/, /enableBlinkFeatures|enableRemoteModule|loadFile\(|file:\/\//]) {
      expect(source).not.toMatch(unsafe);
    }
    const main = join(MAIN_BUNDLE, '..');
    expect(source).toContain('"../preload/index.cjs"');
    expect(existsSync(join(main, '../preload/index.cjs')), 'the preload is built where main looks for it').toBe(true);
    expect(source).toContain('"../../renderer"');
    expect(existsSync(join(main, '../../renderer/index.html')), 'the renderer is built where main serves it from').toBe(true);
  });

  it('carries the CSP and sends it with every app:// response', () => {
    const source = builtMain();
    const built = /"(default-src [^"]*)"/.exec(source)?.[1];
    expect(built).toBe(APP_CSP);
    expectStrictCsp(built!);
    expect(source).toMatch(/"content-security-policy":\s*APP_CSP/);
    // The bundler inlines constants: APP_SCHEME may appear as "app".
    expect(source).toMatch(/registerSchemesAsPrivileged\(\[\{\s*scheme: (APP_SCHEME|"app"),\s*privileges: \{\s*standard: true,\s*secure: true/);
    expect(source).toMatch(/protocol\.handle\((APP_SCHEME|"app"), async \(request\) => \{[\s\S]{0,400}rendererHeaders\(null\)[\s\S]{0,200}rendererHeaders\(file\)/);
    expect(source).toMatch(/loadURL\(APP_ENTRY_URL\)/);
  });

  it('installs the navigation, window-open, webview and permission guards, and checks every IPC sender', () => {
    const source = builtMain();
    expect(source).toMatch(/on\("web-contents-created",\s*\(_event, contents\) => guardContents\(contents\)\)/);
    expect(source).toMatch(/on\("will-navigate", \(event, url\) => \{\s*if \(!isAppPage\(url\)\) event\.preventDefault\(\);/);
    expect(source).toMatch(/on\("will-redirect", \(event, url\) => \{\s*if \(!isAppPage\(url\)\) event\.preventDefault\(\);/);
    expect(source).toMatch(/setWindowOpenHandler\(\(\) => \(\{ action: "deny" \}\)\)/);
    expect(source).toMatch(/on\("will-attach-webview", \(event\) => event\.preventDefault\(\)\)/);
    expect(source).toMatch(/setPermissionRequestHandler\(\(_contents, _permission, callback\) => callback\(false\)\)/);
    expect(source).toMatch(/setPermissionCheckHandler\(\(\) => false\)/);
    expect(source).toMatch(/on\("will-download", \(event\) => event\.preventDefault\(\)\)/);
    expect(source).toMatch(/ipcMain\.handle\(channel, \(event, request\) => handle\(\{ url: event\.senderFrame\?\.url \?\? "" \}, request\)\)/);
    expect(source.match(/ipcMain\.(handle|on)\(/g), 'channels are registered in one loop over the handler table').toHaveLength(1);
    expect(source).toMatch(/if \(!isAppPage\(sender\.url\)\) throw new .*ForbiddenSenderError/);
    expect(source).toContain('requestSingleInstanceLock()');
    expect(source).toContain('app.enableSandbox()');
  });
});

describe('what app:// serves', () => {
  it('serves regular files of the renderer folder only, index.html for /, each with the CSP', async () => {
    const root = join(temp(), 'renderer');
    mkdirSync(join(root, 'assets'), { recursive: true });
    writeFileSync(join(root, 'index.html'), '<!doctype html>');
    writeFileSync(join(root, 'assets', 'app.js'), 'export {}');
    writeFileSync(join(temp(), 'secret.txt'), 'secret');
    symlinkSync(join(temp(), 'secret.txt'), join(root, 'assets', 'link.js'));
    expect(await rendererFile(root, '/')).toBe(join(root, 'index.html'));
    expect(await rendererFile(root, '/assets/app.js')).toBe(join(root, 'assets', 'app.js'));
    for (const path of ['/assets', '/assets/missing.js', '/assets/link.js', '/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt', '/assets/%5c..%5c..%5csecret.txt', '/%00', '/%E0%A4%A']) {
      expect(await rendererFile(root, path), path).toBeNull();
    }
    for (const file of [join(root, 'index.html'), null]) expect(rendererHeaders(file)).toMatchObject({ 'content-security-policy': APP_CSP, 'x-content-type-options': 'nosniff' });
    expect(rendererHeaders(join(root, 'assets', 'app.js'))['content-type']).toMatch(/javascript/);
  });
});

describe('the built renderer (dist/renderer)', () => {
  it('holds no inline script, no inline handler and no eval, and loads scripts only from its own folder', () => {
    const indexFile = join(RENDERER, 'index.html');
    if (!existsSync(indexFile)) throw new Error(`${indexFile} is missing: build the renderer first (\`npm run build\`).`);
    const html = readFileSync(indexFile, 'utf8');
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attributes, body] of scripts) {
      expect(body!.trim(), 'inline script').toBe('');
      expect(attributes).toMatch(/\bsrc="\.\/assets\/[^"]+\.js"/);
    }
    expect(html).not.toMatch(/\son\w+\s*=|javascript:|https?:\/\//i);
    const meta = /http-equiv="Content-Security-Policy" content="([^"]*)"/.exec(html)?.[1];
    expect(meta, 'the page carries a CSP of its own too').toBeDefined();
    expect(directives(meta!).get('script-src')).toEqual(["'self'"]);
    expect(meta).not.toMatch(/unsafe|https?:/);
    for (const file of readdirSync(join(RENDERER, 'assets')).filter((name) => name.endsWith('.js'))) {
      expect(readFileSync(join(RENDERER, 'assets', file), 'utf8'), file).not.toMatch(/\beval\(|new Function\(/);
    }
  });
});
