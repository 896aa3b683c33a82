// The bundle zip container on real bytes: round trips through readZip and extractZip, byte-identical
// writes, Python's zipfile as an independent reader (and writer), and every hostile archive refused
// with its reason code before a single file lands in the extraction folder.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BundleRejectedError, type BundleRejection, InvalidRequestError } from '../../../core/api/errors';
import { DEFAULT_ZIP_LIMITS, extractZip, listZip, readZip, writeZip, type ZipEntryInput, type ZipLimits } from '../../../core/bundle/zip';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-zip-');
const MiB = 2 ** 20;
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Incompressible bytes from a seeded xorshift, the same on every run. */
function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[i] = state & 0xff;
  }
  return out;
}

function freshFolder(): string {
  return mkdtempSync(join(temp(), 'extract-'));
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function python(script: string, args: string[] = []): Buffer {
  return execFileSync('/usr/bin/python3', ['-c', script, ...args], { maxBuffer: 256 * MiB });
}

/** A zip built by Python's zipfile: `body` uses `z`, an open ZipFile writing to `out`. */
function pythonZip(body: string): Uint8Array {
  const script = `import io, sys, warnings, zipfile\nwarnings.simplefilter('ignore')\nout = io.BytesIO()\nwith zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:\n${body
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n')}\nsys.stdout.buffer.write(out.getvalue())`;
  return new Uint8Array(python(script));
}

// ---- Archives byte by byte, for what our writer would never produce ----

interface RawEntry {
  name: string | Uint8Array;
  /** The entry's content: the default CRC and size. */
  plain?: Uint8Array;
  /** The bytes in the archive; defaults to `plain` (stored). */
  data?: Uint8Array;
  method?: number;
  flags?: number;
  crc?: number;
  size?: number;
  compressedSize?: number;
  /** Unix mode, in the external attributes' high 16 bits. */
  mode?: number;
  diskStart?: number;
  centralExtra?: Uint8Array;
  localExtra?: Uint8Array;
  /** Fields of the local header that differ from the central one. */
  local?: { name?: string; crc?: number; flags?: number; method?: number };
}

interface RawEnd {
  disk?: number;
  directoryDisk?: number;
  diskCount?: number;
  count?: number;
  /** Bytes between the central directory and the end record (a zip64 locator, say). */
  beforeEnd?: Uint8Array;
  comment?: Uint8Array;
  /** Bytes before the first entry, not counted in any offset. */
  prefix?: Uint8Array;
}

function nameBytes(name: string | Uint8Array): Buffer {
  return typeof name === 'string' ? Buffer.from(name, 'utf8') : Buffer.from(name);
}

function rawZip(entries: RawEntry[], end: RawEnd = {}): Uint8Array {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const plain = entry.plain ?? new Uint8Array(0);
    const data = entry.data ?? plain;
    const name = nameBytes(entry.name);
    const localName = entry.local?.name === undefined ? name : nameBytes(entry.local.name);
    const flags = entry.flags ?? 0x0800;
    const method = entry.method ?? 0;
    const crc = entry.crc ?? crc32(plain) >>> 0;
    const size = entry.size ?? plain.length;
    const compressedSize = entry.compressedSize ?? data.length;
    const localExtra = Buffer.from(entry.localExtra ?? []);
    const centralExtra = Buffer.from(entry.centralExtra ?? []);

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(entry.local?.flags ?? flags, 6);
    local.writeUInt16LE(entry.local?.method ?? method, 8);
    local.writeUInt32LE(entry.local?.crc ?? crc, 14);
    local.writeUInt32LE(compressedSize, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(localName.length, 26);
    local.writeUInt16LE(localExtra.length, 28);
    locals.push(local, localName, localExtra, Buffer.from(data));

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(0x0314, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(compressedSize, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt16LE(centralExtra.length, 30);
    central.writeUInt16LE(entry.diskStart ?? 0, 34);
    central.writeUInt32LE((entry.mode ?? 0o100644) * 0x10000, 38);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name, centralExtra);
    offset += local.length + localName.length + localExtra.length + data.length;
  }
  const directorySize = centrals.reduce((sum, c) => sum + c.length, 0);
  const comment = Buffer.from(end.comment ?? []);
  const record = Buffer.alloc(22);
  record.writeUInt32LE(0x06054b50, 0);
  record.writeUInt16LE(end.disk ?? 0, 4);
  record.writeUInt16LE(end.directoryDisk ?? 0, 6);
  record.writeUInt16LE(end.diskCount ?? end.count ?? entries.length, 8);
  record.writeUInt16LE(end.count ?? entries.length, 10);
  record.writeUInt32LE(directorySize, 12);
  record.writeUInt32LE(offset, 16);
  record.writeUInt16LE(comment.length, 20);
  const parts = [Buffer.from(end.prefix ?? []), ...locals, ...centrals, Buffer.from(end.beforeEnd ?? []), record, comment];
  return new Uint8Array(Buffer.concat(parts));
}

function deflated(name: string, plain: Uint8Array, extra: Partial<RawEntry> = {}): RawEntry {
  return { name, plain, data: deflateRawSync(plain), method: 8, ...extra };
}

/** An extra-field block: id, length, data. */
function extraBlock(id: number, length: number): Uint8Array {
  const block = Buffer.alloc(4 + length);
  block.writeUInt16LE(id, 0);
  block.writeUInt16LE(length, 2);
  return block;
}

function refusal(action: () => unknown): BundleRejectedError {
  try {
    action();
  } catch (error) {
    if (error instanceof BundleRejectedError) return error;
    throw error;
  }
  throw new Error('expected a BundleRejectedError, but the archive was accepted');
}

/**
 * Refused by readZip and extractZip with this reason and a message matching `pattern`, leaving the
 * folder empty; by listZip too unless the fault shows only when inflating.
 */
function expectRefused(zip: Uint8Array, reason: BundleRejection, pattern: RegExp, options: { limits?: Partial<ZipLimits>; whenInflating?: boolean } = {}): void {
  const folder = freshFolder();
  const error = refusal(() => extractZip(zip, folder, options.limits));
  expect(error.code).toBe('BUNDLE_REJECTED');
  expect({ reason: error.reason, message: error.message }).toEqual({ reason, message: expect.stringMatching(pattern) });
  expect(error.message).toMatch(/^Bundle rejected: /);
  expect(readdirSync(folder)).toEqual([]);
  expect(refusal(() => readZip(zip, options.limits)).reason).toBe(reason);
  if (options.whenInflating) expect(() => listZip(zip, options.limits)).not.toThrow();
  else expect(refusal(() => listZip(zip, options.limits)).reason).toBe(reason);
}

const manifest = text(JSON.stringify({ format: 'ticket-lab-bundle', version: 1, layers: Array.from({ length: 40 }, (_, i) => `fc${i}`) }));
const mask = new Uint8Array(4096).map((_, i) => (i % 7 === 0 ? 0 : 1));
const weights = noise(3000, 7);
const ENTRIES: ZipEntryInput[] = [
  { name: 'manifest.json', data: manifest },
  { name: 'masks/fc1.kernel.bin', data: mask },
  { name: 'weights/fc1.kernel.bin', data: weights },
  { name: 'weights/deep/nested/empty.bin', data: new Uint8Array(0) },
  { name: 'model.sig', data: text('{"payload":"x"}') },
];

describe('writeZip', () => {
  it('round-trips through readZip and extractZip, deflating what shrinks and storing the rest', () => {
    const zip = writeZip(ENTRIES);
    const files = readZip(zip);
    expect([...files.keys()]).toEqual(ENTRIES.map((e) => e.name));
    for (const entry of ENTRIES) expect(Buffer.from(files.get(entry.name)!).equals(Buffer.from(entry.data))).toBe(true);

    const methods = Object.fromEntries(listZip(zip).map((e) => [e.name, e.method]));
    expect(methods).toMatchObject({ 'manifest.json': 8, 'masks/fc1.kernel.bin': 8, 'weights/fc1.kernel.bin': 0, 'weights/deep/nested/empty.bin': 0 });

    const folder = freshFolder();
    expect(extractZip(zip, folder)).toEqual(ENTRIES.map((e) => e.name));
    for (const entry of ENTRIES) {
      const path = join(folder, ...entry.name.split('/'));
      expect(readFileSync(path).equals(Buffer.from(entry.data))).toBe(true);
      expect(statSync(path).mode & 0o777).toBe(0o600);
    }
    expect(readdirSync(folder).sort()).toEqual(['manifest.json', 'masks', 'model.sig', 'weights']);
  });

  it('writes byte-identical zips for the same entries', () => {
    const again = ENTRIES.map((e) => ({ name: e.name, data: new Uint8Array(e.data) }));
    expect(Buffer.from(writeZip(ENTRIES)).equals(Buffer.from(writeZip(again)))).toBe(true);
    expect(writeZip([]).length).toBe(22);
    expect(readZip(writeZip([])).size).toBe(0);
  });

  it("is read by Python's zipfile: testzip passes, names, contents and the fixed header fields match", () => {
    const path = join(temp(), 'ours.tlb');
    writeFileSync(path, writeZip(ENTRIES));
    const script = [
      'import hashlib, json, sys, zipfile',
      'with zipfile.ZipFile(sys.argv[1]) as z:',
      "    print(json.dumps({'bad': z.testzip(), 'comment': z.comment.hex(), 'entries': [{",
      "        'name': i.filename, 'sha256': hashlib.sha256(z.read(i)).hexdigest(), 'date': list(i.date_time),",
      "        'system': i.create_system, 'mode': i.external_attr >> 16, 'utf8': bool(i.flag_bits & 0x800),",
      "        'descriptor': bool(i.flag_bits & 0x8), 'extra': i.extra.hex(), 'comment': i.comment.hex()} for i in z.infolist()]}))",
    ].join('\n');
    const report = JSON.parse(python(script, [path]).toString('utf8')) as { bad: string | null; comment: string; entries: unknown[] };
    expect(report.bad).toBeNull();
    expect(report.comment).toBe('');
    expect(report.entries).toEqual(
      ENTRIES.map((e) => ({
        name: e.name,
        sha256: sha256(e.data),
        date: [1980, 1, 1, 0, 0, 0],
        system: 3,
        mode: 0o100644,
        utf8: true,
        descriptor: false,
        extra: '',
        comment: '',
      })),
    );
  });

  it('stores a large uniform entry rather than deflate it past the ratio limit its own reader applies', () => {
    const zeros = new Uint8Array(2 * MiB);
    const zip = writeZip([{ name: 'masks/dense.bin', data: zeros }]);
    expect(listZip(zip)[0]).toMatchObject({ method: 0, size: 2 * MiB });
    expect(readZip(zip).get('masks/dense.bin')?.length).toBe(2 * MiB);
  });

  it('refuses names it would refuse to read, folders and duplicates', () => {
    const data = new Uint8Array(1);
    for (const name of ['../x', '/x', 'a//b', 'a\\b', 'masks/', '']) {
      expect(() => writeZip([{ name, data }]), name).toThrow(InvalidRequestError);
    }
    expect(() => writeZip([{ name: 'a.bin', data }, { name: 'A.bin', data }])).toThrow(/differ only in letter case/);
    expect(() => writeZip([{ name: 'a', data }, { name: 'a/b', data }])).toThrow(/both a file and a folder/);
  });
});

describe('reading archives from elsewhere', () => {
  it("reads Python's zips: deflated and stored, a folder entry (skipped), an archive comment", () => {
    const zip = pythonZip(
      [
        "z.writestr('manifest.json', '{\"a\": 1}' * 50)",
        "z.writestr(zipfile.ZipInfo('masks/'), '')",
        "z.writestr('masks/fc1.bin', bytes(range(256)), compress_type=zipfile.ZIP_STORED)",
        "z.comment = b'ticket lab'",
      ].join('\n'),
    );
    expect(listZip(zip).map((e) => [e.name, e.isDirectory, e.method])).toEqual([
      ['manifest.json', false, 8],
      ['masks/', true, 0],
      ['masks/fc1.bin', false, 0],
    ]);
    const folder = freshFolder();
    expect(extractZip(zip, folder)).toEqual(['manifest.json', 'masks/fc1.bin']);
    expect(readFileSync(join(folder, 'manifest.json'), 'utf8')).toBe('{"a": 1}'.repeat(50));
    expect([...readFileSync(join(folder, 'masks', 'fc1.bin'))]).toEqual(Array.from({ length: 256 }, (_, i) => i));
  });

  it("reads a zip streamed with data descriptors (Python writing to a pipe)", () => {
    const script = "import sys, zipfile\nwith zipfile.ZipFile(sys.stdout.buffer, 'w', zipfile.ZIP_DEFLATED) as z:\n    z.writestr('manifest.json', 'x' * 1000)\n    z.writestr('model.sig', 'sig')";
    const zip = new Uint8Array(python(script));
    const files = readZip(zip);
    expect(Buffer.from(files.get('manifest.json')!).toString()).toBe('x'.repeat(1000));
    expect(Buffer.from(files.get('model.sig')!).toString()).toBe('sig');
  });

  it('accepts a 1 MiB entry of repeated bytes: the ratio limit starts above that floor', () => {
    const zip = rawZip([deflated('masks/ones.bin', new Uint8Array(MiB).fill(1))]);
    expect(readZip(zip).get('masks/ones.bin')?.length).toBe(MiB);
  });
});

describe('refuses as malformed', () => {
  const good = writeZip(ENTRIES);

  it('what is not a zip, or is truncated', () => {
    expectRefused(new Uint8Array(0), 'malformed', /too short/);
    expectRefused(text('{"this": "is json, not a zip archive at all"}'), 'malformed', /not a zip archive/);
    expectRefused(good.subarray(0, good.length - 1), 'malformed', /not a zip archive, or it is truncated/);
    expectRefused(good.subarray(good.length - 22), 'malformed', /central directory/);
    expectRefused(new Uint8Array([...good, 0]), 'malformed', /not a zip archive/);
  });

  it('bad signatures and data spliced in before the entries', () => {
    const directory = new DataView(good.buffer, good.byteOffset).getUint32(good.length - 6, true);
    const badCentral = new Uint8Array(good);
    badCentral[directory] = 0x51;
    expectRefused(badCentral, 'malformed', /no valid header for entry 1/);
    const badLocal = new Uint8Array(good);
    badLocal[0] = 0x51;
    expectRefused(badLocal, 'malformed', /"manifest.json" has no valid local header/);
    expectRefused(rawZip([{ name: 'a.bin', plain: text('a') }], { prefix: text('#!/bin/sh\n') }), 'malformed', /central directory/);
  });

  it('a local header that disagrees with the central one', () => {
    const plain = text('hello');
    expectRefused(rawZip([{ name: 'a.bin', plain, local: { name: 'b.bin' } }]), 'malformed', /"a.bin"'s local header disagrees .* name/);
    expectRefused(rawZip([{ name: 'a.bin', plain, local: { crc: 1234 } }]), 'malformed', /"a.bin"'s local header disagrees .* CRC/);
    expectRefused(rawZip([{ name: 'a.bin', plain, local: { flags: 0x0808 } }]), 'malformed', /disagrees .* flags/);
    expectRefused(rawZip([deflated('a.bin', plain, { local: { method: 0 } })]), 'malformed', /disagrees .* method/);
  });

  it('data past the end of the entries, and entries that overlap (the non-recursive zip bomb)', () => {
    expectRefused(rawZip([{ name: 'a.bin', plain: text('abc'), compressedSize: 5000, size: 5000 }]), 'malformed', /"a.bin"'s 5000 bytes of data run past/);

    // a.bin's sizes stretched, in both headers, over b.bin's header and data.
    const zip = rawZip([{ name: 'a.bin', plain: text('first') }, { name: 'b.bin', plain: text('second') }]);
    const view = new DataView(zip.buffer);
    const directory = view.getUint32(zip.length - 6, true);
    const span = 5 + 30 + 'b.bin'.length + 6;
    for (const at of [18, 22, directory + 20, directory + 24]) view.setUint32(at, span, true);
    expectRefused(zip, 'malformed', /"b.bin" starts inside the bytes of entry "a.bin"/);
  });

  it('a compression method other than stored or deflate, or a stored entry whose sizes differ', () => {
    expectRefused(rawZip([{ name: 'a.bin', plain: text('abc'), method: 12 }]), 'malformed', /method 12/);
    expectRefused(rawZip([{ name: 'a.bin', plain: text('abc'), size: 4 }]), 'malformed', /stored but claims 3 bytes .* and 4/);
  });

  it('a CRC or size that differs after inflating, a lying header (declares 10 bytes, inflates to more), broken deflate data', () => {
    const plain = noise(1000, 3);
    expectRefused(rawZip([deflated('a.bin', plain, { crc: (crc32(plain) ^ 1) >>> 0 })]), 'malformed', /"a.bin"'s bytes do not match its CRC-32/, { whenInflating: true });
    expectRefused(rawZip([{ name: 'a.bin', plain, crc: 0 }]), 'malformed', /CRC-32/, { whenInflating: true });
    expectRefused(rawZip([deflated('liar.bin', plain, { size: 10, crc: crc32(plain.subarray(0, 10)) })]), 'malformed', /"liar.bin" does not inflate to its declared 10 bytes/, { whenInflating: true });
    expectRefused(rawZip([deflated('short.bin', plain, { size: 2000 })]), 'malformed', /"short.bin" inflates to 1000 bytes, not its declared 2000/, { whenInflating: true });
    expectRefused(rawZip([{ name: 'junk.bin', plain, data: noise(200, 9), method: 8 }]), 'malformed', /"junk.bin" does not inflate/, { whenInflating: true });
  });
});

describe('refuses entry names', () => {
  const cases: Array<[string, BundleRejection]> = [
    ['../evil.txt', 'path-traversal'],
    ['masks/../../evil.txt', 'path-traversal'],
    ['masks/..', 'path-traversal'],
    ['/etc/passwd', 'path-traversal'],
    ['C:/Windows/evil.dll', 'path-traversal'],
    ['c:evil.txt', 'path-traversal'],
    ['masks\\..\\evil.txt', 'path-traversal'],
    ['', 'malformed'],
    ['evil\0.txt', 'malformed'],
    ['masks//fc1.bin', 'malformed'],
    ['./manifest.json', 'malformed'],
    ['masks/./fc1.bin', 'malformed'],
    ['masks/fc1\u0001.bin', 'malformed'],
    ['masks/fc1.bin:stream', 'malformed'],
    ['masks/fc1.', 'malformed'],
    ['masks/fc1 ', 'malformed'],
    [`${'a'.repeat(256)}.bin`, 'malformed'],
    ['masks/CON', 'unsafe-entry'],
    ['nul.txt', 'unsafe-entry'],
  ];
  it.each(cases)('%j as %s', (name, reason) => {
    expectRefused(rawZip([{ name: 'ok.bin', plain: text('fine') }, { name, plain: text('evil') }]), reason, name === '' ? /empty name/ : /entry "/);
  });

  it('that are not valid UTF-8, or non-ASCII without the UTF-8 flag', () => {
    expectRefused(rawZip([{ name: new Uint8Array([0x6d, 0xff, 0x61]), plain: text('x') }]), 'malformed', /entry 1 has a name that is not valid UTF-8/);
    expectRefused(rawZip([{ name: 'masques/é.bin', plain: text('x'), flags: 0 }]), 'malformed', /non-ASCII name without the UTF-8 flag/);
  });

  it("that Python's zipfile writes as given", () => {
    const zip = pythonZip("z.writestr('manifest.json', '{}')\nz.writestr(zipfile.ZipInfo('../../evil.sh'), 'echo owned')");
    expectRefused(zip, 'path-traversal', /"..\/..\/evil.sh" climbs out/);
  });
});

describe('refuses as unsafe', () => {
  it("a symlink, built by Python's zipfile and byte by byte, and other special files", () => {
    const python = pythonZip("z.writestr('manifest.json', '{}')\ninfo = zipfile.ZipInfo('masks')\ninfo.external_attr = 0o120777 << 16\nz.writestr(info, '/etc')");
    expectRefused(python, 'unsafe-entry', /"masks" is a symbolic link/);
    expectRefused(rawZip([{ name: 'link', plain: text('../../etc/passwd'), mode: 0o120777 }]), 'unsafe-entry', /symbolic link/);
    expectRefused(rawZip([{ name: 'fifo', mode: 0o010644 }]), 'unsafe-entry', /special file/);
    expectRefused(rawZip([{ name: 'folder', mode: 0o040755 }]), 'unsafe-entry', /marked as a folder/);
  });

  it('duplicate names: exact, by letter case, by Unicode form, and folders by case', () => {
    const duplicate = pythonZip("z.writestr('manifest.json', '{}')\nz.writestr('manifest.json', '{\"evil\": 1}')");
    expectRefused(duplicate, 'unsafe-entry', /"manifest.json" appears twice/);
    expectRefused(rawZip([{ name: 'manifest.json', plain: text('a') }, { name: 'Manifest.JSON', plain: text('b') }]), 'unsafe-entry', /differ only in letter case/);
    expectRefused(rawZip([{ name: 'caf\u00e9.bin', plain: text('a') }, { name: 'cafe\u0301.bin', plain: text('b') }]), 'unsafe-entry', /Unicode form/);
    expectRefused(rawZip([{ name: 'masks/a.bin', plain: text('a') }, { name: 'Masks/b.bin', plain: text('b') }]), 'unsafe-entry', /"masks" and "Masks"/);
    expectRefused(rawZip([{ name: 'masks/' }, { name: 'masks/' }]), 'unsafe-entry', /appears twice/);
  });

  it('a folder and a file of the same name', () => {
    expectRefused(rawZip([{ name: 'masks/' }, { name: 'masks', plain: text('x') }]), 'unsafe-entry', /both a file and a folder/);
    expectRefused(rawZip([{ name: 'masks', plain: text('x') }, { name: 'masks/fc1.bin', plain: text('y') }]), 'unsafe-entry', /both a file and a folder/);
  });

  it('an encrypted entry', () => {
    expectRefused(rawZip([{ name: 'secret.bin', plain: text('x'), flags: 0x0801 }]), 'unsafe-entry', /"secret.bin" is encrypted/);
    expectRefused(rawZip([{ name: 'aes.bin', plain: text('x'), flags: 0x0801, method: 99 }]), 'unsafe-entry', /encrypted/);
    expectRefused(rawZip([{ name: 'strong.bin', plain: text('x'), flags: 0x0841 }]), 'unsafe-entry', /encrypted/);
  });

  it('zip64: markers in an entry or the end record, a zip64 extra field, a zip64 locator', () => {
    expectRefused(rawZip([{ name: 'big.bin', plain: text('x'), size: 0xffffffff, compressedSize: 0xffffffff }]), 'unsafe-entry', /"big.bin" is a zip64 entry/);
    expectRefused(rawZip([{ name: 'far.bin', plain: text('x'), centralExtra: extraBlock(0x0001, 8) }]), 'unsafe-entry', /zip64 entry/);
    expectRefused(rawZip([{ name: 'far.bin', plain: text('x'), localExtra: extraBlock(0x0001, 16) }]), 'unsafe-entry', /zip64 entry/);
    expectRefused(rawZip([{ name: 'a.bin', plain: text('x') }], { count: 0xffff, diskCount: 0xffff }), 'unsafe-entry', /zip64 archive/);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    expectRefused(rawZip([{ name: 'a.bin', plain: text('x') }], { beforeEnd: locator }), 'unsafe-entry', /zip64 locator/);
  });

  it('an archive on several disks', () => {
    expectRefused(rawZip([{ name: 'a.bin', plain: text('x') }], { disk: 1, directoryDisk: 1 }), 'unsafe-entry', /several disks/);
    expectRefused(rawZip([{ name: 'a.bin', plain: text('x') }], { diskCount: 0 }), 'unsafe-entry', /several disks/);
    expectRefused(rawZip([{ name: 'a.bin', plain: text('x'), diskStart: 2 }]), 'unsafe-entry', /"a.bin" starts on disk 2/);
  });

  it('a second name in an Info-ZIP Unicode path field', () => {
    expectRefused(rawZip([{ name: 'a.bin', plain: text('x'), centralExtra: extraBlock(0x7075, 9) }]), 'unsafe-entry', /second name/);
  });
});

describe('refuses as too large, from the central directory, before inflating anything', () => {
  it('more entries than maxEntries, even when the end record is all there is', () => {
    const three = writeZip(ENTRIES.slice(0, 3));
    expectRefused(three, 'too-large', /3 entries, more than the 2/, { limits: { maxEntries: 2 } });
    expect(readZip(three, { maxEntries: 3 }).size).toBe(3);
    const count = DEFAULT_ZIP_LIMITS.maxEntries + 1;
    expectRefused(rawZip([], { count, diskCount: count }), 'too-large', /10001 entries/);
  });

  it('an entry over maxEntryBytes, refused on its declared size though its data would not even inflate', () => {
    const declared = DEFAULT_ZIP_LIMITS.maxEntryBytes + 1;
    expectRefused(rawZip([{ name: 'weights/huge.bin', data: noise(64, 1), method: 8, size: declared }]), 'too-large', /"weights\/huge.bin" declares 1073741825 bytes/);
    expectRefused(writeZip([{ name: 'w.bin', data: noise(100, 2) }]), 'too-large', /declares 100 bytes, more than the 99/, { limits: { maxEntryBytes: 99 } });
  });

  it('entries over maxTotalBytes together', () => {
    const zip = writeZip([{ name: 'a.bin', data: noise(600, 1) }, { name: 'b.bin', data: noise(600, 2) }]);
    expectRefused(zip, 'too-large', /up to entry "b.bin" declare 1200 bytes in all/, { limits: { maxTotalBytes: 1000 } });
    expect(readZip(zip, { maxTotalBytes: 1200 }).size).toBe(2);
  });

  it('a zip bomb: 64 MiB of zeros deflated to about 64 KiB, refused by its ratio', () => {
    const bomb = rawZip([{ name: 'manifest.json', plain: text('{}') }, deflated('masks/bomb.bin', new Uint8Array(64 * MiB))]);
    expect(bomb.length).toBeLessThan(200 * 1024);
    expectRefused(bomb, 'too-large', /"masks\/bomb.bin" would inflate \d+ bytes to 67108864, a ratio over 200: it looks like a zip bomb/);
    // The same entry with garbage data: refused as too-large all the same, so nothing was inflated.
    const garbage = rawZip([{ name: 'bomb.bin', data: noise(60_000, 5), method: 8, size: 64 * MiB }]);
    expectRefused(garbage, 'too-large', /ratio over 200/);
  });
});

describe('extractZip', () => {
  it('needs an existing, empty folder and leaves a non-empty one as it was', () => {
    const zip = writeZip(ENTRIES);
    const folder = freshFolder();
    writeFileSync(join(folder, 'keep.txt'), 'mine');
    expect(() => extractZip(zip, folder)).toThrow(/not empty/);
    expect(() => extractZip(zip, folder)).toThrow(InvalidRequestError);
    expect(readdirSync(folder)).toEqual(['keep.txt']);
    expect(() => extractZip(zip, join(folder, 'missing'))).toThrow(InvalidRequestError);
    expect(() => extractZip(zip, join(folder, 'keep.txt'))).toThrow(/not a folder/);
  });

  it('refuses limits that would switch the checks off', () => {
    const zip = writeZip(ENTRIES);
    expect(() => readZip(zip, { maxRatio: Number.NaN })).toThrow(InvalidRequestError);
    expect(() => readZip(zip, { maxEntries: -1 })).toThrow(InvalidRequestError);
  });
});
