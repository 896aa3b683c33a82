// A reader for plain zip archives (stored or deflated entries), enough for image-folder datasets.
// Archives come from users and the internet, so everything a hostile archive could claim is checked
// before it is trusted: entry names that climb out (`..`, absolute paths), sizes over the caps, data
// that inflates past its declared size (zip bombs), ranges outside the file, and CRC mismatches.
// Spec: PKWARE APPNOTE.TXT, sections 4.3.7 (local header), 4.3.12 (central directory), 4.3.16 (end record).
import { readFileSync, statSync } from 'node:fs';
import { crc32, inflateRawSync } from 'node:zlib';
import { DataFormatError } from '../api/errors';

export interface ZipLimits {
  /** Entries in the central directory, folders included. */
  maxEntries: number;
  /** Uncompressed bytes of one entry. */
  maxEntryBytes: number;
  /** Uncompressed bytes of all entries together: the zip-bomb cap. */
  maxTotalBytes: number;
  /** Size of the archive file itself (it is read into memory whole). */
  maxArchiveBytes: number;
}

/** Roomy for CIFAR-sized image folders (60,000 entries, 46 MB inflated); far below what would hurt a machine. */
export const DEFAULT_ZIP_LIMITS: ZipLimits = {
  maxEntries: 1_000_000,
  maxEntryBytes: 64 * 2 ** 20,
  maxTotalBytes: 2 * 2 ** 30,
  maxArchiveBytes: 2 * 2 ** 30,
};

export interface ZipEntry {
  /** The name as stored, for messages. */
  name: string;
  /** The path split at '/', without empty or '.' parts; never contains '..'. */
  segments: string[];
  isDirectory: boolean;
  size: number;
  compressedSize: number;
  method: number;
  crc32: number;
  localHeaderOffset: number;
}

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const CENTRAL_DIRECTORY_HEADER = 0x02014b50;
const LOCAL_FILE_HEADER = 0x04034b50;
const STORED = 0;
const DEFLATED = 8;

export class ZipArchive {
  private constructor(
    readonly path: string,
    private readonly bytes: Buffer,
    readonly entries: readonly ZipEntry[],
    private readonly centralDirectoryOffset: number,
  ) {}

  /** The whole archive's bytes: hashed as the source's identity. */
  get archiveBytes(): Uint8Array {
    return this.bytes;
  }

  static open(path: string, limits: ZipLimits = DEFAULT_ZIP_LIMITS): ZipArchive {
    let size: number;
    try {
      size = statSync(path).size;
    } catch (error) {
      throw new DataFormatError(`Cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, { cause: error });
    }
    if (size > limits.maxArchiveBytes) {
      throw new DataFormatError(`${path} is ${size} bytes, more than the ${limits.maxArchiveBytes} this reader accepts: extract it and pass the folder instead.`);
    }
    return ZipArchive.fromBytes(readFileSync(path), path, limits);
  }

  static fromBytes(bytes: Buffer, path: string, limits: ZipLimits = DEFAULT_ZIP_LIMITS): ZipArchive {
    const end = findEndOfCentralDirectory(bytes, path);
    const disk = bytes.readUInt16LE(end + 4);
    const directoryDisk = bytes.readUInt16LE(end + 6);
    const entriesOnDisk = bytes.readUInt16LE(end + 8);
    const entryCount = bytes.readUInt16LE(end + 10);
    const directorySize = bytes.readUInt32LE(end + 12);
    const directoryOffset = bytes.readUInt32LE(end + 16);
    if (entryCount === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff) {
      throw new DataFormatError(`${path} is a ZIP64 archive, which this reader does not support: extract it and pass the folder instead.`);
    }
    if (disk !== 0 || directoryDisk !== 0 || entriesOnDisk !== entryCount) {
      throw new DataFormatError(`${path} is split over several disks; join it into one archive or extract it.`);
    }
    if (entryCount > limits.maxEntries) {
      throw new DataFormatError(`${path} declares ${entryCount} entries, more than the ${limits.maxEntries} this reader accepts.`);
    }
    if (directoryOffset + directorySize > end) {
      throw new DataFormatError(`${path} is damaged: its central directory lies outside the file.`);
    }

    const entries: ZipEntry[] = [];
    const seen = new Set<string>();
    let totalBytes = 0;
    let at = directoryOffset;
    for (let i = 0; i < entryCount; i++) {
      if (at + 46 > directoryOffset + directorySize || bytes.readUInt32LE(at) !== CENTRAL_DIRECTORY_HEADER) {
        throw new DataFormatError(`${path} is damaged: central directory entry ${i + 1} of ${entryCount} is missing.`);
      }
      const flags = bytes.readUInt16LE(at + 8);
      const method = bytes.readUInt16LE(at + 10);
      const crc = bytes.readUInt32LE(at + 16);
      const compressedSize = bytes.readUInt32LE(at + 20);
      const size = bytes.readUInt32LE(at + 24);
      const nameLength = bytes.readUInt16LE(at + 28);
      const extraLength = bytes.readUInt16LE(at + 30);
      const commentLength = bytes.readUInt16LE(at + 32);
      const localHeaderOffset = bytes.readUInt32LE(at + 42);
      const next = at + 46 + nameLength + extraLength + commentLength;
      if (next > directoryOffset + directorySize) throw new DataFormatError(`${path} is damaged: central directory entry ${i + 1} runs past its end.`);
      // Names are UTF-8 when flag bit 11 says so; older tools write CP437, identical for the ASCII names datasets use.
      const name = bytes.toString(flags & 0x800 ? 'utf8' : 'latin1', at + 46, at + 46 + nameLength);
      at = next;

      const segments = safeSegments(name, path);
      const isDirectory = name.endsWith('/') || name.endsWith('\\');
      if (flags & 0x1) throw new DataFormatError(`${path}: ${name} is encrypted; this reader only takes unencrypted archives.`);
      if (!isDirectory && method !== STORED && method !== DEFLATED) {
        throw new DataFormatError(`${path}: ${name} uses compression method ${method}; only stored (0) and deflate (8) are supported.`);
      }
      if (size > limits.maxEntryBytes) {
        throw new DataFormatError(`${path}: ${name} declares ${size} bytes uncompressed, more than the ${limits.maxEntryBytes} this reader accepts for one entry.`);
      }
      totalBytes += size;
      if (totalBytes > limits.maxTotalBytes) {
        throw new DataFormatError(`${path} declares more than ${limits.maxTotalBytes} bytes uncompressed in all, more than this reader accepts (a zip bomb?).`);
      }
      if (localHeaderOffset + 30 + compressedSize > directoryOffset) {
        throw new DataFormatError(`${path} is damaged: the data of ${name} lies outside the file.`);
      }
      const key = segments.join('/');
      if (seen.has(key) && !isDirectory) throw new DataFormatError(`${path}: ${name} appears twice.`);
      seen.add(key);
      entries.push({ name, segments, isDirectory, size, compressedSize, method, crc32: crc, localHeaderOffset });
    }
    return new ZipArchive(path, bytes, entries, directoryOffset);
  }

  /** The entry's uncompressed bytes, checked against its declared size and CRC-32. */
  read(entry: ZipEntry): Uint8Array {
    const bytes = this.bytes;
    const at = entry.localHeaderOffset;
    if (bytes.readUInt32LE(at) !== LOCAL_FILE_HEADER) throw new DataFormatError(`${this.path} is damaged: the local header of ${entry.name} is missing.`);
    const start = at + 30 + bytes.readUInt16LE(at + 26) + bytes.readUInt16LE(at + 28);
    const stop = start + entry.compressedSize;
    if (stop > this.centralDirectoryOffset) throw new DataFormatError(`${this.path} is damaged: the data of ${entry.name} lies outside the file.`);
    const stored = bytes.subarray(start, stop);
    let data: Uint8Array;
    if (entry.method === STORED) {
      if (entry.compressedSize !== entry.size) throw new DataFormatError(`${this.path}: ${entry.name} is stored but its two sizes differ.`);
      data = stored;
    } else {
      try {
        // maxOutputLength stops inflation at the declared size, so a lying header cannot fill memory.
        data = inflateRawSync(stored, { maxOutputLength: Math.max(entry.size, 1) });
      } catch (error) {
        const tooLarge = (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
        throw new DataFormatError(
          tooLarge
            ? `${this.path}: ${entry.name} inflates to more than its declared ${entry.size} bytes (a zip bomb?).`
            : `${this.path}: ${entry.name} does not inflate: ${(error as Error).message}.`,
          { cause: error },
        );
      }
    }
    if (data.length !== entry.size) throw new DataFormatError(`${this.path}: ${entry.name} holds ${data.length} bytes, not its declared ${entry.size}.`);
    if (crc32(data) !== entry.crc32) throw new DataFormatError(`${this.path}: ${entry.name} fails its CRC-32 check; the archive is damaged.`);
    return data;
  }
}

function findEndOfCentralDirectory(bytes: Buffer, path: string): number {
  // The record is 22 bytes plus a comment of at most 65,535 bytes, at the very end.
  const lowest = Math.max(0, bytes.length - 22 - 0xffff);
  for (let at = bytes.length - 22; at >= lowest; at--) {
    if (bytes.readUInt32LE(at) === END_OF_CENTRAL_DIRECTORY) return at;
  }
  throw new DataFormatError(`${path} is not a zip archive (no end-of-central-directory record).`);
}

/** Splits an entry name into path parts, refusing any that could land outside the folder it is read into. */
function safeSegments(name: string, path: string): string[] {
  if (name.length === 0 || name.includes('\0')) throw new DataFormatError(`${path} has an entry with an empty or NUL-containing name.`);
  // Some Windows tools write '\' despite the spec; treat it as a separator so '..\\' is caught too.
  const normalized = name.replace(/\\/g, '/');
  if (normalized.startsWith('/') || /^[A-Za-z]:/.test(normalized)) {
    throw new DataFormatError(`${path} has an entry with an absolute path (${name}); refusing the archive.`);
  }
  const segments = normalized.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new DataFormatError(`${path} has an entry that climbs out of its folder (${name}); refusing the archive.`);
  return segments;
}
