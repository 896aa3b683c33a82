// Decoded images kept on disk, so a dataset of compressed images (CIFAR-10 as 60,000 JPEGs, about a
// minute to decode) is decoded once. One file per (dataset, source content, decoder versions):
//   8 bytes magic | u32 LE header length | JSON header | train images | train labels | test images | test labels
// The header's `digest` is the SHA-256 of the body, which is also the dataset digest runs record
// (datasets.ts hashes the same four arrays in the same order), so checking the cache costs no extra hash.
// Written to a temporary file and renamed, so a killed process leaves no half cache under the real name.
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageSplit } from './datasets';

const MAGIC = 'TLDSC001';
const PARTIAL_MARK = '.partial-';
/** Headers are a few hundred bytes; a larger length means a damaged file. */
const MAX_HEADER_BYTES = 1 << 20;
/** Temporary files older than this were left by a killed process: removed on the next write. */
const STALE_PARTIAL_MS = 60 * 60 * 1000;

export interface DecodedCacheHeader {
  dataset: string;
  /** Identity of the source content and the decoders: the file name carries its first 32 hex digits. */
  key: string;
  /** What was decoded, for the record. */
  source: string;
  decoders: string;
  imageShape: [number, number, number];
  classNames: string[];
  trainCount: number;
  testCount: number;
  /** SHA-256 of the body: train images, train labels, test images, test labels. */
  digest: string;
}

export interface DecodedCache {
  header: DecodedCacheHeader;
  train: ImageSplit;
  test: ImageSplit;
}

export function decodedCachePath(dir: string, dataset: string, key: string): string {
  return join(dir, `${dataset}-${key.slice(0, 32)}.bin`);
}

/** SHA-256 over the four arrays in cache (and dataset digest) order. */
export function splitsDigest(train: ImageSplit, test: ImageSplit): string {
  const hash = createHash('sha256');
  for (const part of [train.images, train.labels, test.images, test.labels]) hash.update(part);
  return hash.digest('hex');
}

/**
 * The cache at `path`, or undefined when it is missing, truncated, altered, of another shape or (when
 * `key` is given) of another source: the caller decodes again.
 */
export function readDecodedCache(path: string, dataset: string, imageShape: readonly [number, number, number], key?: string): DecodedCache | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    return undefined;
  }
  if (bytes.length < 12 || bytes.toString('latin1', 0, 8) !== MAGIC) return undefined;
  const headerLength = bytes.readUInt32LE(8);
  if (headerLength > MAX_HEADER_BYTES || 12 + headerLength > bytes.length) return undefined;
  let header: DecodedCacheHeader;
  try {
    header = JSON.parse(bytes.toString('utf8', 12, 12 + headerLength)) as DecodedCacheHeader;
  } catch {
    return undefined;
  }
  const size = imageShape[0] * imageShape[1] * imageShape[2];
  const counts = [header.trainCount, header.testCount];
  if (
    header.dataset !== dataset ||
    (key !== undefined && header.key !== key) ||
    !Array.isArray(header.classNames) ||
    JSON.stringify(header.imageShape) !== JSON.stringify(imageShape) ||
    !counts.every((n) => Number.isSafeInteger(n) && n >= 0) ||
    12 + headerLength + (header.trainCount + header.testCount) * (size + 1) !== bytes.length
  ) {
    return undefined;
  }
  const body = bytes.subarray(12 + headerLength);
  if (createHash('sha256').update(body).digest('hex') !== header.digest) return undefined;
  let at = body.byteOffset;
  const take = (length: number) => {
    const view = new Uint8Array(body.buffer, at, length);
    at += length;
    return view;
  };
  const trainImages = take(header.trainCount * size);
  const trainLabels = take(header.trainCount);
  const testImages = take(header.testCount * size);
  const testLabels = take(header.testCount);
  return {
    header,
    train: { images: trainImages, labels: trainLabels, count: header.trainCount },
    test: { images: testImages, labels: testLabels, count: header.testCount },
  };
}

/** Writes the cache atomically (temporary file, fsync, rename). Throws on I/O errors; the caller decides whether that matters. */
export function writeDecodedCache(path: string, header: Omit<DecodedCacheHeader, 'digest'>, train: ImageSplit, test: ImageSplit): DecodedCacheHeader {
  const full: DecodedCacheHeader = { ...header, digest: splitsDigest(train, test) };
  const dir = join(path, '..');
  mkdirSync(dir, { recursive: true });
  removeStalePartials(dir);
  const json = Buffer.from(JSON.stringify(full), 'utf8');
  const prefix = Buffer.alloc(12);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.length, 8);
  const temporary = `${path}${PARTIAL_MARK}${process.pid}-${Date.now()}`;
  const fd = openSync(temporary, 'w');
  try {
    for (const part of [prefix, json, train.images, train.labels, test.images, test.labels]) writeAll(fd, part);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkQuietly(temporary);
    throw error;
  }
  closeSync(fd);
  try {
    renameSync(temporary, path);
  } catch (error) {
    unlinkQuietly(temporary);
    throw error;
  }
  return full;
}

/** The header of a cache file without reading its body (180 MB for CIFAR-10); the body is checked when read. */
export function peekDecodedCacheHeader(path: string, dataset: string): DecodedCacheHeader | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const prefix = Buffer.alloc(12);
    if (readSync(fd, prefix, 0, 12, 0) !== 12 || prefix.toString('latin1', 0, 8) !== MAGIC) return undefined;
    const headerLength = prefix.readUInt32LE(8);
    if (headerLength > MAX_HEADER_BYTES) return undefined;
    const json = Buffer.alloc(headerLength);
    if (readSync(fd, json, 0, headerLength, 12) !== headerLength) return undefined;
    const header = JSON.parse(json.toString('utf8')) as DecodedCacheHeader;
    return header.dataset === dataset ? header : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Complete caches of a dataset in `dir`, newest first. */
export function listDecodedCaches(dir: string, dataset: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const pattern = new RegExp(`^${dataset.replace(/[^a-z0-9]/gi, '\\$&')}-[0-9a-f]{32}\\.bin$`);
  return names
    .filter((name) => pattern.test(name))
    .map((name) => ({ path: join(dir, name), mtime: mtimeOf(join(dir, name)) }))
    .sort((a, b) => b.mtime - a.mtime)
    .map((entry) => entry.path);
}

/** Removes a damaged cache file, so it is not found again; a cache is only ever a copy. */
export function discardDecodedCache(path: string): void {
  unlinkQuietly(path);
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}

function removeStalePartials(dir: string): void {
  const now = Date.now();
  for (const name of readdirSync(dir)) {
    if (!name.includes(PARTIAL_MARK)) continue;
    const path = join(dir, name);
    if (now - mtimeOf(path) > STALE_PARTIAL_MS) unlinkQuietly(path);
  }
}

function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone, or not ours to remove: nothing to do.
  }
}
