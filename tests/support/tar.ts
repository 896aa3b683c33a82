// Extracting the tar fixtures their scripts wrote (Python's tarfile, ustar), without a tar package.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** Extracts a ustar archive (regular files and folders only: what the fixture script writes). */
export function untar(gz: Buffer, into: string): void {
  const tar = gunzipSync(gz);
  const text = (at: number, length: number) => {
    const field = tar.subarray(at, at + length);
    const end = field.indexOf(0);
    return field.subarray(0, end < 0 ? length : end).toString('utf8');
  };
  for (let at = 0; at + 512 <= tar.length; ) {
    if (tar.subarray(at, at + 512).every((b) => b === 0)) break;
    const prefix = text(at + 345, 155);
    const name = (prefix ? `${prefix}/` : '') + text(at, 100);
    const size = parseInt(text(at + 124, 12).trim() || '0', 8);
    const type = String.fromCharCode(tar[at + 156]!);
    if (name.split('/').includes('..') || name.startsWith('/')) throw new Error(`unsafe tar member ${name}`);
    const path = join(into, name);
    if (type === '5') mkdirSync(path, { recursive: true });
    else if (type === '0' || type === '\0') {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, tar.subarray(at + 512, at + 512 + size));
    } else throw new Error(`unexpected tar member type ${JSON.stringify(type)} for ${name}`);
    at += 512 + Math.ceil(size / 512) * 512;
  }
}
