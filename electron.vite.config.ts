// The desktop app's build: `electron-vite build` writes main, preload and renderer under dist/,
// beside the tsc build of core (dist/core) that it relies on. It needs no Electron binary.
//
// main (dist/electron/main/index.js, CommonJS): main/'s own code is bundled, core/ is not. Every
// import of core/ stays a require of dist/core (the tsc build), for two reasons:
//   - core finds files next to its own modules: the job worker (`workerEntry(__dirname, 'job-worker',
//     __filename)` in core/jobs/job-runner.ts), the stack worker, the WASM kernels, package.json for
//     versions. Bundled into dist/electron/main, __dirname would point there and none would be found.
//   - one copy of core per process: main's `instanceof LabError` must see the class the service throws.
// Packages (better-sqlite3, @tensorflow/*, webgpu, ws, zod) stay external too (electron-vite's
// externalizeDeps), so native addons load from node_modules as they do for the CLI.
//
// preload (dist/electron/preload/index.cjs, CommonJS): a sandboxed preload may require only
// 'electron', so zod and core/api are bundled into it and nothing else is external.
//
// renderer: renderer/vite.config.mts itself, so the app loads the very bundle (dist/renderer) that
// `ticket-lab serve` serves and the e2e suite drives in Chromium. electron-vite's defaults for a
// renderer (no minifying, Electron's Chrome as target) are overridden back to that config's.
import { existsSync } from 'node:fs';
import { dirname, relative, resolve, sep } from 'node:path';
import { defineConfig } from 'electron-vite';
import type { Plugin } from 'vite';
// '.mjs' is how NodeNext TypeScript names renderer/vite.config.mts; the bundler maps it back.
import rendererConfig from './renderer/vite.config.mjs';

const ROOT = __dirname;
const CORE = resolve(ROOT, 'core');
const DIST_CORE = resolve(ROOT, 'dist', 'core');
const OUT = resolve(ROOT, 'dist', 'electron');
const MAIN_OUT = resolve(OUT, 'main');

/** Resolves main's imports of core/ to dist/core's compiled modules, left as requires (see above). */
function coreFromDist(): Plugin {
  return {
    name: 'ticket-lab:core-from-dist',
    enforce: 'pre',
    resolveId(source, importer) {
      if (!importer || !source.startsWith('.')) return null;
      const target = resolve(dirname(importer), source).replace(/\.[cm]?[jt]s$/, '');
      if (!target.startsWith(CORE + sep)) return null;
      const built = resolve(DIST_CORE, `${relative(CORE, target)}.js`);
      if (!existsSync(built)) this.error(`${relative(ROOT, built)} is missing: build core first (tsc -p tsconfig.build.json), as \`npm run build\` does.`);
      // A relative external id is written unchanged: relative to the output file, not the source
      // (dist/electron/main/index.js → ../../core/...).
      return { id: relative(MAIN_OUT, built).split(sep).join('/'), external: true };
    },
  };
}

export default defineConfig({
  main: {
    plugins: [coreFromDist()],
    build: {
      outDir: MAIN_OUT,
      emptyOutDir: true,
      sourcemap: true,
      rolldownOptions: {
        input: { index: resolve(ROOT, 'main', 'index.ts') },
        output: { format: 'cjs', entryFileNames: '[name].js' },
      },
    },
  },
  preload: {
    build: {
      outDir: resolve(OUT, 'preload'),
      emptyOutDir: true,
      externalizeDeps: false,
      rolldownOptions: {
        input: { index: resolve(ROOT, 'preload', 'index.ts') },
        output: { format: 'cjs', entryFileNames: '[name].cjs', codeSplitting: false },
      },
    },
  },
  renderer: {
    ...rendererConfig,
    build: {
      ...rendererConfig.build,
      // What `vite build` does by default (electron-vite turns minifying off for renderers).
      minify: 'oxc',
      rolldownOptions: { input: resolve(ROOT, 'renderer', 'index.html') },
    },
  },
});
