// Starting a worker thread on one of core's modules. Node runs JavaScript workers only: from dist/
// the entry is the compiled .js beside its caller; from the TypeScript sources (vitest) it is the
// .ts file, which the bootstrap compiles module by module with esbuild (a dev dependency), so tests
// run the sources they test rather than a dist/ that may be stale.
import { extname, join } from 'node:path';
import { Worker } from 'node:worker_threads';

const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
const { createRequire } = require('node:module');
const requireEntry = createRequire(workerData.entry);
if (workerData.entry.endsWith('.ts')) {
  const { readFileSync } = require('node:fs');
  const { transformSync } = requireEntry('esbuild');
  requireEntry.extensions['.ts'] = (module, filename) => {
    const { code } = transformSync(readFileSync(filename, 'utf8'), { loader: 'ts', format: 'cjs', target: 'node20', sourcefile: filename, sourcemap: 'inline' });
    module._compile(code, filename);
  };
}
requireEntry(workerData.entry);
`;

/** The worker module `name` in `dir`, with the extension of the calling file (`callerFile`: its __filename). */
export function workerEntry(dir: string, name: string, callerFile: string): string {
  return join(dir, `${name}${extname(callerFile) === '.ts' ? '.ts' : '.js'}`);
}

/** A worker running `entry`; `data` reaches it as workerData (beside `entry`). */
export function startWorker(entry: string, data: Record<string, unknown> = {}): Worker {
  return new Worker(BOOTSTRAP, { eval: true, workerData: { ...data, entry } });
}
