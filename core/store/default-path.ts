// Where the one database lives when no --db or TICKET_LAB_DB says otherwise. The desktop app
// opens the same file, so the CLI and the app share tickets. Decoded dataset caches live beside it.
import { homedir } from 'node:os';
import { join } from 'node:path';

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return join(env.APPDATA ?? join(homedir(), 'AppData', 'Roaming'), 'ticket-lab');
  if (platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'ticket-lab');
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'ticket-lab');
}

export function defaultDbPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.TICKET_LAB_DB || join(defaultDataDir(env), 'lab.db');
}

/** Decoded copies of datasets that are slow to decode (CIFAR-10's 60,000 JPEGs); safe to delete. */
export function defaultDatasetCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.TICKET_LAB_CACHE_DIR || join(defaultDataDir(env), 'dataset-cache');
}

/** The owner's private signing key (ownership claims, signed bundles): one per user, not per database. */
export function defaultOwnerKeyPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.TICKET_LAB_KEY || join(defaultDataDir(env), 'owner-key.pem');
}
