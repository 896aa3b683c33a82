// The desktop app loads the renderer the e2e suite drives in Chromium: electron-vite's renderer
// section (electron.vite.config.ts) must build exactly what renderer/vite.config.mts builds. Both are
// built in memory (write: false), so dist/renderer, which other suites serve, is left alone.
import { join } from 'node:path';
import { resolveConfig } from 'electron-vite';
import { build, type Rolldown } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..', '..');

type BuildOutput = Awaited<ReturnType<typeof build>>;

/** File name → content of every chunk and asset a build emitted. */
function files(output: BuildOutput): Map<string, string> {
  const outputs = (Array.isArray(output) ? output : [output]) as Rolldown.RolldownOutput[];
  const out = new Map<string, string>();
  for (const item of outputs.flatMap((o) => o.output)) {
    out.set(item.fileName, item.type === 'chunk' ? item.code : typeof item.source === 'string' ? item.source : Buffer.from(item.source).toString('base64'));
  }
  return out;
}

describe('the renderer bundle', () => {
  // Both builds as `npm run build` runs them: production (vitest sets NODE_ENV=test).
  const saved = { NODE_ENV: process.env.NODE_ENV, NODE_ENV_ELECTRON_VITE: process.env.NODE_ENV_ELECTRON_VITE };
  beforeAll(() => {
    process.env.NODE_ENV = 'production';
    process.env.NODE_ENV_ELECTRON_VITE = 'production';
  });
  afterAll(() => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  it('is the same from electron-vite as from the renderer config', async () => {
    const { config } = await resolveConfig({ configFile: join(ROOT, 'electron.vite.config.ts'), logLevel: 'silent' }, 'build', 'production');
    const renderer = config?.renderer;
    expect(renderer).toBeDefined();
    const fromElectronVite = files(await build({ ...renderer, logLevel: 'silent', build: { ...renderer!.build, write: false } }));
    const fromRendererConfig = files(await build({ configFile: join(ROOT, 'renderer', 'vite.config.mts'), logLevel: 'silent', build: { write: false } }));

    expect(fromElectronVite.has('index.html')).toBe(true);
    expect([...fromElectronVite.keys()].sort()).toEqual([...fromRendererConfig.keys()].sort());
    for (const [name, content] of fromRendererConfig) expect(fromElectronVite.get(name) === content, name).toBe(true);
  });
});
