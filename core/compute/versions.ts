// Versions recorded with every run, so a result can be traced to the code that made it.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

let cached: Record<string, string> | undefined;

function ticketLabVersion(): string {
  // Walk up from this file (core/compute in the source tree, dist/core/compute when built).
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ticket-lab' && pkg.version) return pkg.version;
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

export function softwareVersions(extra: Record<string, string> = {}): Record<string, string> {
  cached ??= { 'ticket-lab': ticketLabVersion(), node: process.versions.node, platform: `${process.platform}-${process.arch}` };
  return { ...cached, ...extra };
}
