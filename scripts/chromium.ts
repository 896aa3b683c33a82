// Debian's Chromium, driven by Playwright, for the e2e suite and the heat-map benchmark. Playwright's
// own browser download is not reachable here; scripts/system-deps.sh installs /usr/bin/chromium.
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`No Chromium at ${CHROMIUM}: \`bash scripts/system-deps.sh\` installs Debian's (set CHROMIUM_PATH for another).`);
  // Chromium's own sandbox needs user namespaces, which root in a container does not get.
  const args = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}
