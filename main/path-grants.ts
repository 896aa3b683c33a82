// The app reads and writes only files the user chose (DESIGN.md, Security of the app): what an open
// dialog returned or a drop carried may be read (a folder with everything in it), and what a save
// dialog returned may be written. Paths are compared where they really are (symlinks resolved), so a
// link inside a granted folder does not lead out of it.
import { lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, parse, resolve, sep } from 'node:path';
import { InvalidRequestError, PathNotGrantedError } from '../core/api/errors';
import type { LabApiMethod } from '../core/api/lab-api';

/** Reading: inputs (a model, a bundle, a data folder). Writing: an export's output, a file the save dialog named. */
export type GrantAccess = 'read' | 'write';

/**
 * A path as the OS will follow it: realpath where it exists, else its nearest existing folder's
 * realpath and the rest (an export not written yet). A dangling link counts as where it points, so
 * a link to a file made later cannot smuggle that file in.
 */
export function realLocation(path: string, depth = 0): string {
  const rest: string[] = [];
  let at = resolve(path);
  for (;;) {
    try {
      return join(realpathSync.native(at), ...rest);
    } catch {
      if (depth < 40 && lstatSync(at, { throwIfNoEntry: false })?.isSymbolicLink()) {
        return join(realLocation(resolve(realLocation(dirname(at), depth + 1), readlinkSync(at)), depth + 1), ...rest);
      }
      const parent = dirname(at);
      if (parent === at) return resolve(path);
      rest.unshift(basename(at));
      at = parent;
    }
  }
}

/**
 * An absolute path without `..`: the service opens the string it is given, and the OS resolves `..`
 * after following links (`granted/link/../x` is not `granted/x`), so such a path is refused outright.
 */
function plainAbsolute(path: string, field: string): string {
  if (!isAbsolute(path)) throw new PathNotGrantedError(`${field}: give the absolute path of a file you chose, not '${path}'.`);
  if (path.includes('\0')) throw new InvalidRequestError(`${field}: a path cannot hold a NUL character.`);
  if (path.split(/[\\/]/).includes('..')) throw new PathNotGrantedError(`${field}: '${path}' steps out of its folder with '..'; give the path without it.`);
  return resolve(path);
}

interface Grant {
  folder: boolean;
  write: boolean;
}

export class PathGrants {
  /** By real location. */
  private readonly grants = new Map<string, Grant>();

  /** Grants what the user chose. A read grant must exist; a filesystem root is never granted (it would grant everything). */
  grant(path: string, access: GrantAccess): void {
    const { real, grant } = this.planGrant(path, access);
    this.grants.set(real, { folder: grant.folder, write: grant.write || (this.grants.get(real)?.write ?? false) });
  }

  canGrant(path: string, access: GrantAccess): boolean {
    try {
      this.planGrant(path, access);
      return true;
    } catch {
      return false;
    }
  }

  private planGrant(path: string, access: GrantAccess): { real: string; grant: Grant } {
    const real = realLocation(plainAbsolute(path, 'path'));
    if (parse(real).root === real) throw new PathNotGrantedError(`${path} is a whole drive: choose a file or a folder on it.`);
    const info = statSync(real, { throwIfNoEntry: false });
    if (access === 'read' && !info) throw new PathNotGrantedError(`${path} does not exist.`);
    if (access === 'write' && info?.isDirectory()) throw new PathNotGrantedError(`${path} is a folder: an export is written to a file.`);
    return { real, grant: { folder: info?.isDirectory() ?? false, write: access === 'write' } };
  }

  /** Whether the user chose `path` (reading: it, or a folder it lies in; writing: exactly it, in a save dialog). */
  allows(path: string, access: GrantAccess): boolean {
    try {
      this.check(path, access, 'path');
      return true;
    } catch {
      return false;
    }
  }

  /** Throws a PathNotGrantedError naming `field` unless the user chose `path` for `access`. */
  check(path: string, access: GrantAccess, field: string): void {
    const real = realLocation(plainAbsolute(path, field));
    const exact = this.grants.get(real);
    if (access === 'write') {
      if (exact?.write) return;
      throw new PathNotGrantedError(`${field}: ${path} was not chosen as where to save; choose it with Export… (a save dialog) first.`);
    }
    if (exact) return;
    for (const [granted, { folder }] of this.grants) if (folder && real.startsWith(`${granted}${sep}`)) return;
    throw new PathNotGrantedError(`${field}: ${path} was not chosen in this app; open it with File › Open… or drop it on the window first.`);
  }
}

/** A request field that names a file or folder, and whether the service reads or writes it. */
export interface PathField {
  field: string;
  access: GrantAccess;
  /** Some fields are a path only sometimes (verify's suspect: a ticket id or a model file). */
  isPath?: (request: Record<string, unknown>) => boolean;
}

const read = (field: string, isPath?: PathField['isPath']): PathField => ({ field, access: 'read', ...(isPath ? { isPath } : {}) });
const write = (field: string): PathField => ({ field, access: 'write' });

/** The service's test for a ticket id suspect (core/service/lab-service.ts, suspect()); logits are always a file. */
const TICKET_ID = /^tk_[0-9a-z]+$/;

/**
 * Every request field that is a path (core/api/schemas.ts), checked before the service sees it.
 * dataDir (a dataset's folder) must be chosen too, and the app's own data folder does not count:
 * without dataDir the service already looks there (its dataset cache) and in the default places, and
 * naming that folder could only point a reader at what else it holds: the database and the owner's
 * private key. Not paths: verifyBundle's ignorePaths (names inside the chosen folder, skipped, never read).
 */
export const REQUEST_PATH_FIELDS: Readonly<Partial<Record<LabApiMethod, readonly PathField[]>>> = {
  inspectModelFile: [read('path')],
  predict: [read('path'), read('input')],
  importModel: [read('path')],
  importRuns: [read('path')],
  verify: [read('suspect', (r) => r.logits === true || !TICKET_ID.test(String(r.suspect)))],
  verifyBundle: [read('path'), read('key'), read('signature')],
  importBundle: [read('path'), read('key')],
  exportMask: [write('output')],
  exportTriggers: [write('output')],
  exportBundle: [write('output')],
  evaluate: [read('dataDir')],
  searchImp: [read('dataDir')],
  searchOneShot: [read('dataDir')],
  searchAtInit: [read('dataDir')],
  searchGradual: [read('dataDir')],
  resumeRun: [read('dataDir')],
  claim: [read('dataDir')],
  attack: [read('dataDir')],
  instability: [read('dataDir')],
  essentialSparsity: [read('dataDir')],
  criteriaOverlap: [read('dataDir')],
  mergeDatabases: [read('files')],
  sweepStatus: [read('dir')],
};

/** The paths a (validated) request names, a submitted job's own request included. */
export function requestPaths(method: LabApiMethod, request: Record<string, unknown>): Array<{ field: string; path: string; access: GrantAccess }> {
  if (method === 'submitJob') {
    const inner = request.request as Record<string, unknown>;
    return requestPaths(request.method as LabApiMethod, inner).map((p) => ({ ...p, field: `request.${p.field}` }));
  }
  // A field holds one path, or a list of them (mergeDatabases' files): every one is checked.
  return (REQUEST_PATH_FIELDS[method] ?? [])
    .filter(({ isPath }) => isPath?.(request) ?? true)
    .flatMap(({ field, access }) => {
      const value = request[field];
      const paths = typeof value === 'string' ? [value] : Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
      return paths.map((path, i) => ({ field: Array.isArray(value) ? `${field}[${i}]` : field, path, access }));
    });
}
