// Row ids: a prefix that says what the row is, then 10 random Crockford base32 characters.
import { randomBytes } from 'node:crypto';

const ID_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'; // Crockford base32: no i, l, o, u

/** Random ids, not counters: stores from many machines merge without collisions (DESIGN.md, Slurm). */
export function newId(prefix: 'run' | 'tk' | 'cl' | 'vf' | 'jb'): string {
  const bytes = randomBytes(10);
  let out = '';
  for (const b of bytes) out += ID_ALPHABET[b & 31];
  return `${prefix}_${out}`;
}
