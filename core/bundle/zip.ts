// The zip container of signed ticket bundles (.tlb). Writing is deterministic: the same entries give
// the same bytes, so a bundle's digest depends on its contents alone. Reading treats the file as
// hostile: names that would leave the folder, links, duplicates, encryption, zip64, several disks,
// sizes over the limits and entries whose headers disagree are refused from the headers alone, before
// anything is inflated; inflating is then bounded by the declared size and checked against the CRC.
// Spec: PKWARE APPNOTE.TXT 6.3, sections 4.3.7 (local file header), 4.3.9 (data descriptor),
// 4.3.12 (central directory header), 4.3.15 (zip64 end of central directory locator), 4.3.16 (end of
// central directory record), 4.4.4 (general purpose flags), 4.5.3 (zip64 extra field).
import { mkdirSync, readdirSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import { BundleRejectedError, type BundleRejection, InvalidRequestError } from '../api/errors';

export interface ZipEntryInput {
  /** A relative path with '/' between folders, like `masks/fc1.kernel.bin`. */
  name: string;
  data: Uint8Array;
}

export interface ZipLimits {
  /** Entries in the central directory, folders included. */
  maxEntries: number;
  /** Declared uncompressed bytes of one entry. */
  maxEntryBytes: number;
  /** Declared uncompressed bytes of all entries together. */
  maxTotalBytes: number;
  /** Uncompressed over compressed bytes of one entry larger than RATIO_FLOOR_BYTES. */
  maxRatio: number;
}

/** Roomy for the largest zoo models' weights; far below what would hurt a machine. */
export const DEFAULT_ZIP_LIMITS: Readonly<ZipLimits> = Object.freeze({
  maxEntries: 10_000,
  maxEntryBytes: 2 ** 30,
  maxTotalBytes: 2 * 2 ** 30,
  maxRatio: 200,
});

// The ratio limit applies only above this size: a small manifest or an all-ones mask of repeated
// bytes deflates far beyond 200:1 yet costs nothing to inflate, while a bomb needs size to do harm.
const RATIO_FLOOR_BYTES = 2 ** 20;

export interface ZipEntryInfo {
  /** The name as stored: a folder's ends with '/'. */
  name: string;
  isDirectory: boolean;
  method: 0 | 8;
  compressedSize: number;
  size: number;
  crc32: number;
  /** Where the entry's compressed bytes start in the archive. */
  dataOffset: number;
}

const LOCAL_HEADER = 0x04034b50;
const LOCAL_HEADER_BYTES = 30;
const CENTRAL_HEADER = 0x02014b50;
const CENTRAL_HEADER_BYTES = 46;
const END_RECORD = 0x06054b50;
const END_RECORD_BYTES = 22;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_LOCATOR_BYTES = 20;
const DATA_DESCRIPTOR = 0x08074b50;
const MAX_U16 = 0xffff;
const MAX_U32 = 0xffffffff;

const STORED = 0;
const DEFLATED = 8;
const FLAG_ENCRYPTED = 0x0001;
const FLAG_DATA_DESCRIPTOR = 0x0008;
const FLAG_STRONG_ENCRYPTION = 0x0040;
const FLAG_UTF8 = 0x0800;
const EXTRA_ZIP64 = 0x0001;
// Info-ZIP's second, "Unicode" name: some tools extract under it instead of the header's name.
const EXTRA_UNICODE_PATH = 0x7075;

// Version 2.0 (deflate) needed; made by Unix (3), so readers take the mode from the external attributes.
const VERSION_NEEDED = 20;
const VERSION_MADE_BY = (3 << 8) | VERSION_NEEDED;
const DOS_TIME_MIDNIGHT = 0;
const DOS_DATE_1980_01_01 = ((1980 - 1980) << 9) | (1 << 5) | 1;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const REGULAR_FILE_ATTRIBUTES = (S_IFREG | 0o644) * 0x10000;
// Fixed so that the same bytes always deflate the same way (zlib's own default balance).
const DEFLATE_LEVEL = 6;
const MAX_SEGMENT_BYTES = 255;
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\.|$)/i;

const utf8 = new TextDecoder('utf-8', { fatal: true });

// ---- Writing ----

/**
 * Deterministic: entries in the order given; fixed DOS date 1980-01-01 00:00; UTF-8 flag; Unix
 * 'version made by' with regular-file mode 0644; deflate (fixed level) when it is smaller and stays
 * within DEFAULT_ZIP_LIMITS.maxRatio, else stored; no extra fields, comments or data descriptors.
 */
export function writeZip(entries: readonly ZipEntryInput[]): Uint8Array {
  if (entries.length >= MAX_U16) throw new InvalidRequestError(`A bundle holds at most ${MAX_U16 - 1} entries; ${entries.length} were given.`);
  const claims = new PathClaims((message) => {
    throw new InvalidRequestError(`Cannot write the bundle: ${message}`);
  });
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const problem = name.toString('utf8') === entry.name ? nameProblem(entry.name) : { reason: 'malformed' as const, why: 'is not valid Unicode' };
    if (problem !== undefined) throw new InvalidRequestError(`Cannot write the bundle: entry ${quote(entry.name)} ${problem.why}.`);
    if (entry.name.endsWith('/')) throw new InvalidRequestError(`Cannot write the bundle: entry ${quote(entry.name)} names a folder; bundles list files only.`);
    claims.claimEntry(entry.name, false);

    const data = entry.data;
    if (data.length >= MAX_U32) throw new InvalidRequestError(`Cannot write the bundle: entry ${quote(entry.name)} is ${data.length} bytes, more than a zip without zip64 holds.`);
    const deflated = deflateRawSync(data, { level: DEFLATE_LEVEL });
    // Kept stored when deflating would trip our own reader's ratio limit (a large uniform mask).
    const deflate = deflated.length < data.length && !overRatio(data.length, deflated.length, DEFAULT_ZIP_LIMITS.maxRatio);
    const body = deflate ? deflated : data;
    const fields: HeaderFields = { method: deflate ? DEFLATED : STORED, crc: crc32(data) >>> 0, compressedSize: body.length, size: data.length, name };

    const local = Buffer.alloc(LOCAL_HEADER_BYTES + name.length);
    local.writeUInt32LE(LOCAL_HEADER, 0);
    local.writeUInt16LE(VERSION_NEEDED, 4);
    writeCommonFields(local, 6, fields);
    name.copy(local, LOCAL_HEADER_BYTES);

    const central = Buffer.alloc(CENTRAL_HEADER_BYTES + name.length);
    central.writeUInt32LE(CENTRAL_HEADER, 0);
    central.writeUInt16LE(VERSION_MADE_BY, 4);
    central.writeUInt16LE(VERSION_NEEDED, 6);
    writeCommonFields(central, 8, fields);
    // Comment length, disk number start and internal attributes stay 0.
    central.writeUInt32LE(REGULAR_FILE_ATTRIBUTES, 38);
    central.writeUInt32LE(offset, 42);
    name.copy(central, CENTRAL_HEADER_BYTES);

    locals.push(local, Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    centrals.push(central);
    offset += local.length + body.length;
    if (offset >= MAX_U32) throw new InvalidRequestError('Cannot write the bundle: its entries pass 4 GiB, more than a zip without zip64 holds.');
  }
  const directorySize = centrals.reduce((sum, c) => sum + c.length, 0);
  if (offset + directorySize >= MAX_U32) throw new InvalidRequestError('Cannot write the bundle: it passes 4 GiB, more than a zip without zip64 holds.');

  const end = Buffer.alloc(END_RECORD_BYTES);
  end.writeUInt32LE(END_RECORD, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directorySize, 12);
  end.writeUInt32LE(offset, 16);
  const zip = Buffer.concat([...locals, ...centrals, end]);
  return new Uint8Array(zip.buffer, zip.byteOffset, zip.byteLength);
}

interface HeaderFields {
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  name: Buffer;
}

/** Flags through extra length: the run of fields that the local and central headers share. */
function writeCommonFields(header: Buffer, at: number, fields: HeaderFields): void {
  header.writeUInt16LE(FLAG_UTF8, at);
  header.writeUInt16LE(fields.method, at + 2);
  header.writeUInt16LE(DOS_TIME_MIDNIGHT, at + 4);
  header.writeUInt16LE(DOS_DATE_1980_01_01, at + 6);
  header.writeUInt32LE(fields.crc, at + 8);
  header.writeUInt32LE(fields.compressedSize, at + 12);
  header.writeUInt32LE(fields.size, at + 16);
  header.writeUInt16LE(fields.name.length, at + 20);
  // Extra field length stays 0.
}

// ---- Reading ----

/** Parses and checks the end record, the central directory and every local header; inflates nothing. */
export function listZip(bytes: Uint8Array, limits: Partial<ZipLimits> = {}): ZipEntryInfo[] {
  const max = resolveLimits(limits);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const directory = readEndRecord(bytes, view, max);
  const records = readCentralDirectory(bytes, view, directory, max);
  const claims = new PathClaims((message) => reject('unsafe-entry', message));
  for (const record of records) claims.claimEntry(record.info.name, record.info.isDirectory);
  const spans = records.map((record) => checkLocalHeader(bytes, view, record, directory.offset));
  checkNoOverlap(spans);
  return records.map((record) => record.info);
}

/**
 * Every file entry's bytes (folders are skipped), after all the checks of listZip, inflated no
 * further than the declared size and checked against it and the CRC. Stored entries are views into
 * `bytes`, not copies.
 */
export function readZip(bytes: Uint8Array, limits: Partial<ZipLimits> = {}): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const entry of listZip(bytes, limits)) {
    if (!entry.isDirectory) files.set(entry.name, entryBytes(bytes, entry));
  }
  return files;
}

/**
 * Writes every file entry into `folder`, which must exist and be empty (the caller makes it with
 * mkdtemp), creating sub-folders. Every entry is read and checked (readZip) before the first write;
 * each file is created with flag 'wx' (never overwrites, never follows a link), mode 0o600, at a path
 * re-checked to lie inside `folder`. Returns the names written.
 */
export function extractZip(bytes: Uint8Array, folder: string, limits: Partial<ZipLimits> = {}): string[] {
  const root = emptyFolder(folder);
  const files = readZip(bytes, limits);
  const made = new Set<string>([root]);
  const written: string[] = [];
  for (const [name, data] of files) {
    const target = resolve(root, ...name.split('/'));
    const inside = relative(root, target);
    if (inside === '' || inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
      reject('path-traversal', `entry ${quote(name)} resolves outside the bundle's folder.`);
    }
    const parent = dirname(target);
    makeFolders(root, parent, made);
    if (realpathSync(parent) !== parent) reject('unsafe-entry', `the folder of entry ${quote(name)} changed into a link while the bundle was extracted.`);
    try {
      writeFileSync(target, data, { flag: 'wx', mode: 0o600 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ELOOP') reject('unsafe-entry', `entry ${quote(name)} collides with a file already extracted.`, error);
      throw error;
    }
    written.push(name);
  }
  return written;
}

/** The folder's real path, refused unless it is an existing, empty folder. */
function emptyFolder(folder: string): string {
  let root: string;
  let problem: string | undefined;
  try {
    root = realpathSync(folder);
    if (!statSync(root).isDirectory()) problem = 'it is not a folder';
    else if (readdirSync(root).length > 0) problem = 'it is not empty (make a fresh one with mkdtemp)';
  } catch (error) {
    throw new InvalidRequestError(`Cannot extract the bundle into ${folder}: ${(error as NodeJS.ErrnoException).code ?? String(error)}.`, { cause: error });
  }
  if (problem !== undefined) throw new InvalidRequestError(`Cannot extract the bundle into ${folder}: ${problem}.`);
  return root;
}

/** Creates the folders from `root` down to `folder`, each once, private to the user. */
function makeFolders(root: string, folder: string, made: Set<string>): void {
  let current = root;
  for (const segment of relative(root, folder).split(sep)) {
    if (segment === '') continue;
    current = join(current, segment);
    if (made.has(current)) continue;
    mkdirSync(current, { mode: 0o700 });
    made.add(current);
  }
}

function resolveLimits(limits: Partial<ZipLimits>): ZipLimits {
  const resolved = { ...DEFAULT_ZIP_LIMITS };
  for (const key of Object.keys(DEFAULT_ZIP_LIMITS) as Array<keyof ZipLimits>) {
    const value = limits[key];
    if (value === undefined) continue;
    // A NaN limit would make every comparison false and so let everything through.
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new InvalidRequestError(`The zip limit ${key} must be a number of at least 0; got ${String(value)}.`);
    resolved[key] = value;
  }
  return resolved;
}

function overRatio(size: number, compressedSize: number, maxRatio: number): boolean {
  return size > RATIO_FLOOR_BYTES && size > compressedSize * maxRatio;
}

interface CentralDirectory {
  offset: number;
  end: number;
  count: number;
}

function readEndRecord(bytes: Uint8Array, view: DataView, max: ZipLimits): CentralDirectory {
  if (bytes.length < END_RECORD_BYTES) reject('malformed', `the file is ${bytes.length} bytes, too short to be a zip archive.`);
  // The record is the last thing in the file, followed only by its own comment (at most 65,535 bytes).
  let at = -1;
  const lowest = Math.max(0, bytes.length - END_RECORD_BYTES - MAX_U16);
  for (let candidate = bytes.length - END_RECORD_BYTES; candidate >= lowest; candidate--) {
    if (view.getUint32(candidate, true) === END_RECORD && view.getUint16(candidate + 20, true) === bytes.length - candidate - END_RECORD_BYTES) {
      at = candidate;
      break;
    }
  }
  if (at < 0) reject('malformed', 'the file is not a zip archive, or it is truncated: it has no end-of-central-directory record.');

  if (at >= ZIP64_LOCATOR_BYTES && view.getUint32(at - ZIP64_LOCATOR_BYTES, true) === ZIP64_LOCATOR) {
    reject('unsafe-entry', 'the archive is a zip64 archive (it has a zip64 locator); bundles are plain zips.');
  }
  const disk = view.getUint16(at + 4, true);
  const directoryDisk = view.getUint16(at + 6, true);
  const diskCount = view.getUint16(at + 8, true);
  const count = view.getUint16(at + 10, true);
  const size = view.getUint32(at + 12, true);
  const offset = view.getUint32(at + 16, true);
  if ([disk, directoryDisk, diskCount, count].includes(MAX_U16) || size === MAX_U32 || offset === MAX_U32) {
    reject('unsafe-entry', 'the archive is a zip64 archive (its end record holds zip64 markers); bundles are plain zips.');
  }
  if (disk !== 0 || directoryDisk !== 0 || diskCount !== count) reject('unsafe-entry', 'the archive spans several disks; bundles are a single file.');
  if (count > max.maxEntries) reject('too-large', `the archive lists ${count} entries, more than the ${max.maxEntries} a bundle may hold.`);
  if (offset + size !== at) {
    reject('malformed', `the central directory (bytes ${offset} to ${offset + size}) does not end where the end record starts (byte ${at}); the file is damaged or has data spliced in.`);
  }
  return { offset, end: at, count };
}

interface CentralRecord {
  info: ZipEntryInfo;
  label: string;
  flags: number;
  nameBytes: Uint8Array;
  localOffset: number;
}

function readCentralDirectory(bytes: Uint8Array, view: DataView, directory: CentralDirectory, max: ZipLimits): CentralRecord[] {
  const records: CentralRecord[] = [];
  let total = 0;
  let at = directory.offset;
  for (let index = 0; index < directory.count; index++) {
    if (at + CENTRAL_HEADER_BYTES > directory.end || view.getUint32(at, true) !== CENTRAL_HEADER) {
      reject('malformed', `the central directory has no valid header for entry ${index + 1} of ${directory.count} (byte ${at}); the file is damaged.`);
    }
    const flags = view.getUint16(at + 8, true);
    const method = view.getUint16(at + 10, true);
    const crc = view.getUint32(at + 16, true);
    const compressedSize = view.getUint32(at + 20, true);
    const size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const diskStart = view.getUint16(at + 34, true);
    const mode = view.getUint32(at + 38, true) >>> 16;
    const localOffset = view.getUint32(at + 42, true);
    const nameStart = at + CENTRAL_HEADER_BYTES;
    const next = nameStart + nameLength + extraLength + commentLength;
    if (next > directory.end) reject('malformed', `the central directory header of entry ${index + 1} runs past the directory's end; the file is damaged.`);
    const nameBytes = bytes.subarray(nameStart, nameStart + nameLength);
    const extra = bytes.subarray(nameStart + nameLength, nameStart + nameLength + extraLength);
    at = next;

    const name = decodeName(nameBytes, flags, index);
    const entry = `entry ${quote(name)}`;
    const problem = nameProblem(name);
    if (problem !== undefined) reject(problem.reason, `${entry} ${problem.why}.`);
    const isDirectory = name.endsWith('/');
    if ((flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) !== 0) reject('unsafe-entry', `${entry} is encrypted; bundles hold only plain entries.`);
    if (compressedSize === MAX_U32 || size === MAX_U32 || localOffset === MAX_U32 || diskStart === MAX_U16 || hasExtra(extra, EXTRA_ZIP64)) {
      // A zip bomb's usual costume: say it is too large when it declares so, else that zip64 is not read here.
      const declared = size === MAX_U32 ? zip64Size(extra) : undefined;
      if (declared !== undefined && declared > max.maxEntryBytes) {
        reject('too-large', `${entry} declares ${declared} bytes (zip64), more than the ${max.maxEntryBytes} one bundle entry may hold.`);
      }
      reject('unsafe-entry', `${entry} is a zip64 entry; bundles are plain zips.`);
    }
    if (diskStart !== 0) reject('unsafe-entry', `${entry} starts on disk ${diskStart}; bundles are a single file.`);
    if (hasExtra(extra, EXTRA_UNICODE_PATH)) reject('unsafe-entry', `${entry} carries a second name (an Info-ZIP Unicode path field) that other tools would extract under.`);
    const type = mode & S_IFMT;
    if (type === S_IFLNK) reject('unsafe-entry', `${entry} is a symbolic link; bundles hold only regular files.`);
    if (type === S_IFDIR && !isDirectory) reject('unsafe-entry', `${entry} is marked as a folder but its name does not end with '/'.`);
    if (type !== 0 && type !== S_IFREG && type !== S_IFDIR) reject('unsafe-entry', `${entry} is a special file (mode ${mode.toString(8)}); bundles hold only regular files.`);
    if (method !== STORED && method !== DEFLATED) reject('malformed', `${entry} uses compression method ${method}; bundles use only stored (0) or deflate (8).`);
    if (method === STORED && compressedSize !== size) reject('malformed', `${entry} is stored but claims ${compressedSize} bytes in the archive and ${size} uncompressed.`);
    if (isDirectory && size !== 0) reject('malformed', `${entry} is a folder but claims ${size} bytes of data.`);

    if (size > max.maxEntryBytes) reject('too-large', `${entry} declares ${size} bytes, more than the ${max.maxEntryBytes} one bundle entry may hold.`);
    total += size;
    if (total > max.maxTotalBytes) reject('too-large', `the entries up to ${entry} declare ${total} bytes in all, more than the ${max.maxTotalBytes} a bundle may hold.`);
    if (overRatio(size, compressedSize, max.maxRatio)) {
      reject('too-large', `${entry} would inflate ${compressedSize} bytes to ${size}, a ratio over ${max.maxRatio}: it looks like a zip bomb.`);
    }

    const info: ZipEntryInfo = { name, isDirectory, method: method as 0 | 8, compressedSize, size, crc32: crc, dataOffset: 0 };
    records.push({ info, label: entry, flags, nameBytes, localOffset });
  }
  if (at !== directory.end) reject('malformed', `the central directory holds ${directory.end - at} bytes after its ${directory.count} entries; the file is damaged.`);
  return records;
}

/** The name as UTF-8, refused when it is not valid UTF-8 or is non-ASCII without the UTF-8 flag (whose meaning readers disagree on). */
function decodeName(nameBytes: Uint8Array, flags: number, index: number): string {
  if ((flags & FLAG_UTF8) === 0 && nameBytes.some((byte) => byte >= 0x80)) {
    reject('malformed', `entry ${index + 1} has a non-ASCII name without the UTF-8 flag; tools would read it under different names.`);
  }
  try {
    return utf8.decode(nameBytes);
  } catch (error) {
    return reject('malformed', `entry ${index + 1} has a name that is not valid UTF-8.`, error);
  }
}

interface NameProblem {
  reason: BundleRejection;
  why: string;
}

/**
 * What is wrong with a name, if anything. Beyond names that climb out, it refuses what one operating
 * system would read differently from another, so that a bundle extracts the same everywhere.
 */
function nameProblem(name: string): NameProblem | undefined {
  const traversal = (why: string): NameProblem => ({ reason: 'path-traversal', why });
  const malformed = (why: string): NameProblem => ({ reason: 'malformed', why });
  if (name === '') return malformed('has an empty name');
  if (name.includes('\\')) return traversal('contains a backslash, a folder separator on Windows');
  if (name.startsWith('/')) return traversal('is an absolute path');
  if (/^[A-Za-z]:/.test(name)) return traversal('starts with a drive letter');
  const segments = (name.endsWith('/') ? name.slice(0, -1) : name).split('/');
  if (segments.includes('..')) return traversal("climbs out of its folder with '..'");
  if (name.includes('\0')) return malformed('contains a NUL character');
  if (/[\u0001-\u001f\u007f]/.test(name)) return malformed('contains a control character');
  if (name.includes(':')) return malformed("contains ':', which Windows reads as a drive or a data stream");
  for (const segment of segments) {
    if (segment === '') return malformed('has an empty path segment');
    if (segment === '.') return malformed("has a '.' path segment");
    if (segment.endsWith('.') || segment.endsWith(' ')) return malformed(`has the segment ${quote(segment)}, whose trailing dot or space Windows drops`);
    if (Buffer.byteLength(segment, 'utf8') > MAX_SEGMENT_BYTES) return malformed(`has a segment longer than ${MAX_SEGMENT_BYTES} bytes`);
    if (WINDOWS_DEVICE.test(segment)) return { reason: 'unsafe-entry', why: `has the segment ${quote(segment)}, a device name on Windows` };
  }
  return undefined;
}

/**
 * Every path a zip would create, files and the folders above them: refuses exact duplicates, a file
 * that is also a folder, and names equal but for letter case or Unicode form, which are one file on
 * macOS and Windows.
 */
class PathClaims {
  private readonly paths = new Map<string, { path: string; isFile: boolean; explicit: boolean; entry: string }>();

  constructor(private readonly refuse: (message: string) => never) {}

  claimEntry(name: string, isDirectory: boolean): void {
    const segments = (isDirectory ? name.slice(0, -1) : name).split('/');
    for (let depth = 1; depth < segments.length; depth++) this.claim(segments.slice(0, depth).join('/'), false, false, name);
    this.claim(segments.join('/'), !isDirectory, isDirectory, name);
  }

  private claim(path: string, isFile: boolean, explicit: boolean, entry: string): void {
    // Upper then lower case: catches both 'K'/'k' and the Turkish dotless 'ı' that upper-cases to 'I'.
    const key = path.normalize('NFC').toUpperCase().toLowerCase();
    const prior = this.paths.get(key);
    if (prior === undefined) {
      this.paths.set(key, { path, isFile, explicit, entry });
      return;
    }
    if (prior.path !== path) {
      this.refuse(`entries ${quote(prior.entry)} and ${quote(entry)} name ${quote(prior.path)} and ${quote(path)}, which differ only in letter case or Unicode form and would be one file on macOS and Windows.`);
    }
    if (prior.isFile && isFile) this.refuse(`entry ${quote(entry)} appears twice.`);
    if (prior.isFile || isFile) this.refuse(`entries ${quote(prior.entry)} and ${quote(entry)} make ${quote(path)} both a file and a folder.`);
    if (prior.explicit && explicit) this.refuse(`entry ${quote(entry)} appears twice.`);
    prior.explicit ||= explicit;
  }
}

/** Whether a well-formed prefix of the extra field holds a block with this id. */
/** The uncompressed size a zip64 extra field declares (its first 8-byte value, present when the header's size is 0xFFFFFFFF). */
function zip64Size(extra: Uint8Array): number | undefined {
  const view = new DataView(extra.buffer, extra.byteOffset, extra.byteLength);
  for (let at = 0; at + 4 <= extra.length; ) {
    const length = view.getUint16(at + 2, true);
    if (view.getUint16(at, true) === EXTRA_ZIP64) return length >= 8 && at + 12 <= extra.length ? Number(view.getBigUint64(at + 4, true)) : undefined;
    at += 4 + length;
  }
  return undefined;
}

function hasExtra(extra: Uint8Array, id: number): boolean {
  const view = new DataView(extra.buffer, extra.byteOffset, extra.byteLength);
  for (let at = 0; at + 4 <= extra.length; ) {
    if (view.getUint16(at, true) === id) return true;
    at += 4 + view.getUint16(at + 2, true);
  }
  return false;
}

interface Span {
  label: string;
  start: number;
  end: number;
}

/** Checks the entry's local header against its central one; sets its data offset; returns the bytes it covers. */
function checkLocalHeader(bytes: Uint8Array, view: DataView, record: CentralRecord, directoryOffset: number): Span {
  const { info, label } = record;
  const at = record.localOffset;
  if (at + LOCAL_HEADER_BYTES > directoryOffset || view.getUint32(at, true) !== LOCAL_HEADER) {
    reject('malformed', `${label} has no valid local header at byte ${at}; the file is damaged.`);
  }
  const flags = view.getUint16(at + 6, true);
  const method = view.getUint16(at + 8, true);
  const crc = view.getUint32(at + 14, true);
  const compressedSize = view.getUint32(at + 18, true);
  const size = view.getUint32(at + 22, true);
  const nameLength = view.getUint16(at + 26, true);
  const extraLength = view.getUint16(at + 28, true);
  const dataOffset = at + LOCAL_HEADER_BYTES + nameLength + extraLength;
  if (dataOffset > directoryOffset) reject('malformed', `${label}'s local header runs into the central directory; the file is damaged.`);
  const disagree = (what: string): never => reject('malformed', `${label}'s local header disagrees with the central directory about its ${what}.`);
  if (flags !== record.flags) disagree('flags');
  if (method !== info.method) disagree('compression method');
  if (!sameBytes(bytes.subarray(at + LOCAL_HEADER_BYTES, at + LOCAL_HEADER_BYTES + nameLength), record.nameBytes)) disagree('name');
  // With a data descriptor the local header may leave CRC and sizes at zero; they follow the data.
  const deferred = (flags & FLAG_DATA_DESCRIPTOR) !== 0 && crc === 0 && compressedSize === 0 && size === 0;
  if (!deferred && (crc !== info.crc32 || compressedSize !== info.compressedSize || size !== info.size)) disagree('CRC or sizes');
  const extra = bytes.subarray(at + LOCAL_HEADER_BYTES + nameLength, dataOffset);
  if (compressedSize === MAX_U32 || size === MAX_U32 || hasExtra(extra, EXTRA_ZIP64)) reject('unsafe-entry', `${label} is a zip64 entry; bundles are plain zips.`);
  if (hasExtra(extra, EXTRA_UNICODE_PATH)) reject('unsafe-entry', `${label} carries a second name (an Info-ZIP Unicode path field) that other tools would extract under.`);

  let end = dataOffset + info.compressedSize;
  if (end > directoryOffset) reject('malformed', `${label}'s ${info.compressedSize} bytes of data run past the entries' area into the central directory or the end of the file.`);
  if ((flags & FLAG_DATA_DESCRIPTOR) !== 0) end = checkDataDescriptor(view, record, end, directoryOffset);
  info.dataOffset = dataOffset;
  return { label, start: at, end };
}

/** The descriptor after the data (signature optional) must repeat the central CRC and sizes; returns where it ends. */
function checkDataDescriptor(view: DataView, record: CentralRecord, at: number, directoryOffset: number): number {
  const { info, label } = record;
  const matches = (from: number): boolean =>
    from + 12 <= directoryOffset &&
    view.getUint32(from, true) === info.crc32 &&
    view.getUint32(from + 4, true) === info.compressedSize &&
    view.getUint32(from + 8, true) === info.size;
  if (at + 4 <= directoryOffset && view.getUint32(at, true) === DATA_DESCRIPTOR && matches(at + 4)) return at + 16;
  if (matches(at)) return at + 12;
  return reject('malformed', `${label}'s data descriptor is missing or disagrees with the central directory.`);
}

/** Entries whose bytes overlap are the trick of non-recursive zip bombs: refused, like any damage. */
function checkNoOverlap(spans: Span[]): void {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const previous = sorted[i - 1]!;
    const current = sorted[i]!;
    if (current.start < previous.end) reject('malformed', `${current.label} starts inside the bytes of ${previous.label}; entries must not overlap.`);
  }
}

function entryBytes(bytes: Uint8Array, entry: ZipEntryInfo): Uint8Array {
  const label = `entry ${quote(entry.name)}`;
  const raw = bytes.subarray(entry.dataOffset, entry.dataOffset + entry.compressedSize);
  let data: Uint8Array = raw;
  if (entry.method === DEFLATED) {
    try {
      // Bounded: a stream that inflates past its declared size stops there with an error.
      const inflated = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
      data = new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength);
    } catch (error) {
      reject('malformed', `${label} does not inflate to its declared ${entry.size} bytes (${error instanceof Error ? error.message : String(error)}).`, error);
    }
  }
  if (data.length !== entry.size) reject('malformed', `${label} inflates to ${data.length} bytes, not its declared ${entry.size}.`);
  if (crc32(data) >>> 0 !== entry.crc32) reject('malformed', `${label}'s bytes do not match its CRC-32; the file is damaged.`);
  return data;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** A name for a message: quoted, control characters escaped, cut short (names are attacker-sized). */
function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

function reject(reason: BundleRejection, message: string, cause?: unknown): never {
  throw new BundleRejectedError(reason, `Bundle rejected: ${message}`, cause === undefined ? undefined : { cause });
}
