// The renderer's build: one Vite config, used by `npm run build` (served by `ticket-lab serve`, driven
// by the e2e suite in Chromium) and by electron.vite.config.ts's renderer section (the desktop app),
// so both load the same bundle.
import { fileURLToPath } from 'node:url';
import vue from '@vitejs/plugin-vue';
import type { UserConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

const rendererConfig: UserConfig = {
  root: here,
  // Relative asset URLs: the same files load from the server's / and from the app's file://.
  base: './',
  plugins: [vue()],
  build: {
    outDir: fileURLToPath(new URL('../dist/renderer', import.meta.url)),
    emptyOutDir: true,
    target: 'chrome120',
    // The CSP allows no inline script or style: keep every asset a file.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 1500,
  },
};

export default rendererConfig;
