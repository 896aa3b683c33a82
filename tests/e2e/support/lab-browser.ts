// The e2e suite's real parts: `ticket-lab serve` (the built CLI, in its own process) on a seeded
// database, and Debian's Chromium driven by Playwright (its own browser download is not reachable).
import { startCli } from '../../support/cli-process';

export { launchChromium } from '../../../scripts/chromium';

export interface ServedLab {
  /** The URL with the token, as `serve` printed it. */
  url: string;
  origin: string;
  token: string;
  stop(): Promise<void>;
}

export async function serveLab(dbPath: string, ownerKeyPath: string, extraArgs: string[] = []): Promise<ServedLab> {
  const { child, done } = startCli(['--db', dbPath, '--json', 'serve', ...extraArgs], { TICKET_LAB_KEY: ownerKeyPath });
  const printed = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    void done.then((result) => reject(new Error(`serve exited (${result.code}): ${result.stderr}`)));
  });
  const { url } = JSON.parse(printed) as { url: string };
  const parsed = new URL(url);
  return {
    url,
    origin: parsed.origin,
    token: parsed.searchParams.get('token')!,
    stop: async () => {
      child.kill('SIGINT');
      await done;
    },
  };
}
