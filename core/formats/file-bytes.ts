// What every format reader does around its own parsing: read the file whole within the size limit,
// name things in messages safely, and turn whatever a hostile file still provokes into the one
// typed error.
import { readFileSync, statSync } from 'node:fs';
import type { DataFormatError } from '../api/errors';
import { type ModelFileContents, ModelFileError, type ReadLimits } from './model-format';

/** A name or literal for a message: quoted (so empty or odd names show) and cut short (names are attacker-sized). */
export function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

/** An error's code (ENOENT) or message, for a message of our own. */
export function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return (error as NodeJS.ErrnoException).code ?? error.message;
}

/** The file's bytes, refused before reading when it is larger than the limit. */
export function readFileBytes(path: string, limits: ReadLimits): Buffer {
  const tooBig = (n: number) => `the file is ${n} bytes, more than the ${limits.maxFileBytes} this reader accepts; raise maxFileBytes if the file is trusted.`;
  let bytes: Buffer;
  try {
    const size = statSync(path).size;
    if (size > limits.maxFileBytes) throw new ModelFileError(path, tooBig(size));
    bytes = readFileSync(path);
  } catch (error) {
    if (error instanceof ModelFileError) throw error;
    throw new ModelFileError(path, `cannot read the file (${errorText(error)}).`, { cause: error });
  }
  // The file may have changed since statSync: only the bytes actually read count.
  if (bytes.length > limits.maxFileBytes) throw new ModelFileError(path, tooBig(bytes.length));
  return bytes;
}

/** Runs a reader; anything but a ModelFileError (a RangeError from an allocation, say) still reaches the user as one, naming the file. */
export function guardedRead(path: string, title: string, read: () => ModelFileContents): ModelFileContents {
  try {
    return read();
  } catch (error) {
    if (error instanceof ModelFileError) throw error;
    throw new ModelFileError(path, `reading it as ${title} failed (${errorText(error)}).`, { cause: error });
  }
}

/** A value for a message, cut short; stringify can itself fail on absurdly deep nesting. */
export function show(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    return 'a value too deeply nested to print';
  }
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Throws the one error of the readers, naming the file. */
export function refuse(path: string, reason: string, cause?: unknown): never {
  throw new ModelFileError(path, reason, cause === undefined ? undefined : { cause });
}

/** zip.ts messages start with the archive's path, which ModelFileError adds again: drop it. */
export function zipReason(error: DataFormatError, path: string): string {
  const message = error.message;
  if (message.startsWith(`${path}: `)) return message.slice(path.length + 2);
  if (message.startsWith(`${path} `)) return `the archive ${message.slice(path.length + 1)}`;
  return message;
}
