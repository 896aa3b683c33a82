// What app:// serves: the built renderer's regular files and nothing else, each with the app's CSP.
// No Electron here: index.ts hands these to protocol.handle, and the security test calls them.
import { realpath, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { APP_CSP } from './window-options';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/**
 * The real path of the file `pathname` names under `root` (index.html for /), or null: a name that
 * leaves the folder, as written or through a link, a folder, or nothing. The router uses hash routes,
 * so every other path is a file or a 404.
 */
export async function rendererFile(root: string, pathname: string): Promise<string | null> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.split(/[\\/]/).includes('..')) return null;
  const base = await realpath(resolve(root)).catch(() => null);
  if (!base) return null;
  const file = decoded === '/' || decoded === '' ? join(base, 'index.html') : resolve(base, `.${decoded}`);
  const real = await realpath(file).catch(() => null);
  if (!real || !real.startsWith(`${base}${sep}`)) return null;
  return (await stat(real)).isFile() ? real : null;
}

/** Headers of every app:// response, a 404 included: the CSP travels with each document. */
export function rendererHeaders(file: string | null): Record<string, string> {
  return {
    'content-type': file ? (CONTENT_TYPES[extname(file)] ?? 'application/octet-stream') : 'text/plain; charset=utf-8',
    'content-security-policy': APP_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-cache',
  };
}
