import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataFormatError, DatasetUnavailableError } from '../../../core/api/errors';
import { CIFAR10_CLASSES, loadCifar10, locateCifar10, parseCifar10Batch, projectCifar10Dir } from '../../../core/data/cifar10';
import { loadDataset } from '../../../core/data/datasets';
import { decodedCachePath, writeDecodedCache } from '../../../core/data/decoded-cache';
import { arrangeOneSplit, decodeImageFolderSplit, openZipTree } from '../../../core/data/image-folder';
import { ZipArchive } from '../../../core/data/zip';
import { buildZip, jpegBytes, pngBytes } from '../../support/image-files';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder();
const SIZE = 32 * 32 * 3;
let folders = 0;
const freshDir = (name: string) => {
  const dir = join(temp(), `${name}-${folders++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
};

/** Image `k` as HWC bytes: a pattern that differs in every pixel, channel and image. */
function noisyImage(k: number): Uint8Array {
  return Uint8Array.from({ length: SIZE }, (_, i) => (k * 37 + i * 13 + ((i * i) >> 3)) % 256);
}

/** Image `k` as smooth gradients, which JPEG keeps within a few levels. */
function smoothImage(k: number): Uint8Array {
  const out = new Uint8Array(SIZE);
  for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) for (let c = 0; c < 3; c++) out[(y * 32 + x) * 3 + c] = 20 + ((k * 7) % 40) + y * 2 + x * 2 + c * 30;
  return out;
}

/** Binary CIFAR-10 records (label byte, then R, G, B planes) for images `first..first+count-1`, label k % 10. */
function binaryBatch(first: number, count: number): Buffer {
  const out = Buffer.alloc(count * (1 + SIZE));
  for (let r = 0; r < count; r++) {
    const k = first + r;
    const image = noisyImage(k);
    const at = r * (1 + SIZE);
    out[at] = k % 10;
    for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) out[at + 1 + c * 1024 + p] = image[p * 3 + c]!;
  }
  return out;
}

function writeBinaryFolder(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (let b = 1; b <= 5; b++) writeFileSync(join(dir, `data_batch_${b}.bin`), binaryBatch((b - 1) * 2, 2));
  writeFileSync(join(dir, 'test_batch.bin'), binaryBatch(100, 3));
}

/** `files` maps a path inside the folder to its bytes. */
function writeTree(dir: string, files: Record<string, Uint8Array>): void {
  for (const [path, bytes] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), bytes);
  }
}

/** Every class gets `perClass` images; image k of class c is image number c * perClass + k, pattern by `image`. */
function imageFolderFiles(prefix: string, perClass: number, encode: (k: number) => Uint8Array, ext: string): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  CIFAR10_CLASSES.forEach((name, c) => {
    for (let k = 0; k < perClass; k++) files[`${prefix}${name}/${String(k).padStart(4, '0')}.${ext}`] = encode(c * perClass + k);
  });
  return files;
}

const png = (k: number) => pngBytes(noisyImage(k), 32, 32);
const jpg = (k: number) => jpegBytes(smoothImage(k), 32, 32, 95);

function maxAbsDiff(a: Uint8Array, b: Uint8Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

describe('CIFAR-10 binary format', () => {
  it('turns CHW records into HWC images with their labels', () => {
    const split = parseCifar10Batch(binaryBatch(4, 3), 'batch');
    expect(split.count).toBe(3);
    expect(Array.from(split.labels)).toEqual([4, 5, 6]);
    for (let r = 0; r < 3; r++) expect(split.images.subarray(r * SIZE, (r + 1) * SIZE)).toEqual(noisyImage(4 + r));
    // Red plane first: pixel (0, 1)'s red is the record's byte 1 + 1, its green byte 1 + 1024 + 1.
    const record = binaryBatch(4, 1);
    expect(record.length).toBe(3073);
    expect([split.images[3], split.images[4]]).toEqual([record[2], record[1 + 1024 + 1]]);
  });

  it('refuses files that are not whole records, and labels past 9', () => {
    expect(() => parseCifar10Batch(new Uint8Array(3074), 'x.bin')).toThrow(/not a whole number of CIFAR-10 records/);
    expect(() => parseCifar10Batch(new Uint8Array(0), 'x.bin')).toThrow(DataFormatError);
    const bad = binaryBatch(0, 2);
    bad[3073] = 10;
    expect(() => parseCifar10Batch(bad, 'x.bin')).toThrow(/record 1 has label 10/);
  });

  it('loads a binary folder (or its parent) through loadDataset with the seeded validation split', () => {
    const parent = freshDir('binary');
    writeBinaryFolder(join(parent, 'cifar-10-batches-bin'));
    const direct = loadCifar10({ dataDir: join(parent, 'cifar-10-batches-bin'), cacheDir: freshDir('cache') });
    expect(direct.format).toBe('binary');
    expect([direct.train.count, direct.test.count]).toEqual([10, 3]);
    expect(direct.train.images.subarray(9 * SIZE)).toEqual(noisyImage(9));
    expect(direct.cache).toBeUndefined();

    const ds = loadDataset('cifar10', { dataDir: parent, validationSize: 4, splitSeed: 3 });
    expect(ds.imageShape).toEqual([32, 32, 3]);
    expect(ds.numClasses).toBe(10);
    expect([ds.train.count, ds.validation.count, ds.test.count]).toEqual([6, 4, 3]);
    expect(ds.digest).toBe(direct.digest);
    expect(ds.normalization.std).toBeGreaterThan(0);
    const labels = [...ds.train.labels, ...ds.validation.labels].sort((a, b) => a - b);
    expect(labels).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});

describe('CIFAR-10 image folders', () => {
  it('reads PNG class folders exactly, labels in alphabetical (= official) order, and caches the decoded pixels', () => {
    const dir = freshDir('png');
    writeTree(dir, { ...imageFolderFiles('train/', 2, png, 'png'), ...imageFolderFiles('test/', 1, (k) => png(100 + k), 'png'), 'train/README.txt': Buffer.from('ignored') });
    const cacheDir = freshDir('cache');
    const progress: Array<[number, number]> = [];
    const first = loadCifar10({ dataDir: dir, cacheDir, onProgress: (done, total) => progress.push([done, total]) });
    expect(first.format).toBe('image-folder');
    expect([first.train.count, first.test.count]).toEqual([20, 10]);
    expect(progress.at(-1)).toEqual([30, 30]);
    for (let k = 0; k < 20; k++) {
      expect(first.train.labels[k]).toBe(Math.floor(k / 2));
      expect(first.train.images.subarray(k * SIZE, (k + 1) * SIZE)).toEqual(noisyImage(k));
    }
    expect(first.test.images.subarray(3 * SIZE, 4 * SIZE)).toEqual(noisyImage(103));
    expect(first.cache?.status).toBe('written');

    // The second load reads the decoded copy: no image is decoded, the same data and digest come back.
    progress.length = 0;
    const second = loadCifar10({ dataDir: dir, cacheDir, onProgress: (done, total) => progress.push([done, total]) });
    expect(second.cache).toEqual({ path: first.cache!.path, status: 'hit' });
    expect(progress).toEqual([]);
    expect(second.digest).toBe(first.digest);
    expect(second.train.images).toEqual(first.train.images);
    expect(second.test.labels).toEqual(first.test.labels);
    expect(second.source).toBe(dir);
  });

  it('rebuilds a damaged or truncated cache, and never leaves a partial file under the real name', () => {
    const dir = freshDir('png-cache');
    writeTree(dir, { ...imageFolderFiles('train/', 1, png, 'png'), ...imageFolderFiles('test/', 1, (k) => png(50 + k), 'png') });
    const cacheDir = freshDir('cache');
    const first = loadCifar10({ dataDir: dir, cacheDir });
    const path = first.cache!.path;
    expect(readdirSync(cacheDir)).toEqual([path.split('/').at(-1)]);

    const bytes = readFileSync(path);
    bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0xff;
    writeFileSync(path, bytes);
    let decoded = 0;
    const rebuilt = loadCifar10({ dataDir: dir, cacheDir, onProgress: (done) => (decoded = done) });
    expect(rebuilt.cache?.status).toBe('written');
    expect(decoded).toBe(20);
    expect(rebuilt.digest).toBe(first.digest);

    writeFileSync(path, readFileSync(path).subarray(0, 5000));
    expect(loadCifar10({ dataDir: dir, cacheDir }).cache?.status).toBe('written');
    expect(loadCifar10({ dataDir: dir, cacheDir }).cache?.status).toBe('hit');
  });

  it('still loads when the decoded copy cannot be written, and says so', () => {
    const dir = freshDir('unwritable');
    writeTree(dir, { ...imageFolderFiles('train/', 1, png, 'png'), ...imageFolderFiles('test/', 1, png, 'png') });
    const blocker = join(freshDir('blocker'), 'a-file');
    writeFileSync(blocker, 'not a folder');
    const warnings: string[] = [];
    const ds = loadDataset('cifar10', { dataDir: dir, cacheDir: join(blocker, 'cache'), validationSize: 2, onWarning: (message) => warnings.push(message) });
    expect([ds.train.count, ds.validation.count, ds.test.count]).toEqual([8, 2, 10]);
    expect(warnings).toEqual([expect.stringMatching(/could not write the decoded copy .*ENOTDIR.*decoded again next time/)]);
  });

  it('reads JPEGs from a zip holding train/ and test/ under a wrapping folder, within JPEG tolerance', () => {
    const files = { ...imageFolderFiles('cifar/train/', 1, jpg, 'jpg'), ...imageFolderFiles('cifar/test/', 1, (k) => jpg(10 + k), 'jpeg') };
    const zipPath = join(freshDir('zip'), 'cifar.zip');
    // Entries in a shuffled order, some deflated: the decoded order must not depend on the archive's.
    const entries = Object.entries(files).reverse().map(([name, data], i) => ({ name, data, deflate: i % 2 === 0 }));
    writeFileSync(zipPath, buildZip(entries));
    const data = loadCifar10({ dataDir: zipPath, cacheDir: freshDir('cache') });
    expect([data.train.count, data.test.count]).toEqual([10, 10]);
    expect(Array.from(data.train.labels)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (let k = 0; k < 10; k++) {
      expect(maxAbsDiff(data.train.images.subarray(k * SIZE, (k + 1) * SIZE), smoothImage(k))).toBeLessThanOrEqual(6);
      expect(maxAbsDiff(data.test.images.subarray(k * SIZE, (k + 1) * SIZE), smoothImage(10 + k))).toBeLessThanOrEqual(6);
    }
  });

  it('reads a folder holding train.zip and test.zip of class folders (the project\'s layout)', () => {
    const dir = freshDir('two-zips');
    writeFileSync(join(dir, 'train.zip'), buildZip(Object.entries(imageFolderFiles('', 1, png, 'png')).map(([name, data]) => ({ name, data }))));
    writeFileSync(join(dir, 'test.zip'), buildZip(Object.entries(imageFolderFiles('test/', 2, png, 'png')).map(([name, data]) => ({ name, data, deflate: true }))));
    const data = loadCifar10({ dataDir: dir, cacheDir: freshDir('cache') });
    expect([data.train.count, data.test.count]).toEqual([10, 20]);
    expect(data.test.images.subarray(19 * SIZE)).toEqual(noisyImage(19));
    expect(data.test.labels[19]).toBe(9);
  });

  it('refuses images of the wrong size or channels, and wrong class folders, naming the file', () => {
    const cases: Array<[Record<string, Uint8Array>, RegExp]> = [
      [{ 'train/cat/odd.png': pngBytes(new Uint8Array(16 * 16 * 3), 16, 16) }, /train[/\\]cat[/\\]odd\.png is 16×16×3; this dataset needs 32×32×3/],
      [{ 'train/cat/grey.png': pngBytes(new Uint8Array(SIZE), 32, 32, { colorType: 0 }) }, /grey\.png is 32×32×1/],
      [{ 'train/cat/see-through.png': pngBytes(new Uint8Array(SIZE), 32, 32, { colorType: 6, alpha: 10 }) }, /see-through\.png has transparent pixels/],
      [{ 'train/cat/big.jpg': jpegOfSize(64, 48) }, /big\.jpg is 64×48×3/],
      [{ 'train/cat/fake.jpg': Buffer.from('not an image') }, /fake\.jpg is neither a PNG nor a JPEG/],
      [{ 'train/cat/cut.jpg': jpg(0).subarray(0, 300) }, /cut\.jpg is a damaged JPEG/],
      [{ 'train/cat/anim.gif': Buffer.from('GIF89a') }, /anim\.gif: only PNG and JPEG images are read/],
      [{ 'train/kitten/0.png': png(0) }, /class folders .*kitten.*CIFAR-10 needs exactly airplane/],
    ];
    for (const [extra, message] of cases) {
      const dir = freshDir('bad');
      const base = { ...imageFolderFiles('train/', 1, png, 'png'), ...imageFolderFiles('test/', 1, png, 'png') };
      writeTree(dir, { ...base, ...extra });
      const load = () => loadCifar10({ dataDir: dir, cacheDir: freshDir('cache') });
      expect(load).toThrow(DataFormatError);
      expect(load).toThrow(message);
    }
  });

  it('refuses images at different depths', () => {
    const dir = freshDir('depths');
    writeTree(dir, { ...imageFolderFiles('train/', 1, png, 'png'), ...imageFolderFiles('test/', 1, png, 'png'), 'test/cat/extra/0.png': png(0) });
    expect(() => loadCifar10({ dataDir: dir, cacheDir: freshDir('cache') })).toThrow(/are not both in the layout <class>\/<image>/);
  });
});

function jpegOfSize(width: number, height: number): Buffer {
  return jpegBytes(new Uint8Array(width * height * 3).fill(128), width, height);
}

describe('zip reader', () => {
  const image = png(0);
  const open = (entries: Parameters<typeof buildZip>[0], limits = {}) => {
    const path = join(freshDir('hostile'), 'x.zip');
    writeFileSync(path, buildZip(entries));
    return ZipArchive.open(path, { maxEntries: 100, maxEntryBytes: 10_000, maxTotalBytes: 50_000, maxArchiveBytes: 1_000_000, ...limits });
  };

  it('reads stored and deflated entries', () => {
    const archive = open([{ name: 'a/b.png', data: image }, { name: 'a/c.bin', data: new Uint8Array(5000).fill(7), deflate: true }]);
    expect(archive.entries.map((e) => e.segments)).toEqual([['a', 'b.png'], ['a', 'c.bin']]);
    expect(Buffer.from(archive.read(archive.entries[0]!))).toEqual(image);
    expect(new Uint8Array(archive.read(archive.entries[1]!))).toEqual(new Uint8Array(5000).fill(7));
  });

  it('refuses paths that climb out or are absolute', () => {
    for (const name of ['../evil.png', 'train/../../evil.png', 'a\\..\\..\\evil.png', '/etc/passwd', 'C:/evil.png']) {
      expect(() => open([{ name, data: image }])).toThrow(DataFormatError);
    }
    expect(() => open([{ name: 'train/../../evil.png', data: image }])).toThrow(/climbs out of its folder/);
  });

  it('refuses absurd declared sizes before inflating anything', () => {
    expect(() => open([{ name: 'big.png', data: image, declaredSize: 2 ** 31 }])).toThrow(/declares 2147483648 bytes uncompressed/);
    const many = Array.from({ length: 6 }, (_, i) => ({ name: `f${i}`, data: new Uint8Array(9_000) }));
    expect(() => open(many)).toThrow(/more than 50000 bytes uncompressed in all/);
    expect(() => open(many, { maxEntries: 5 })).toThrow(/declares 6 entries/);
  });

  it('stops inflating at the declared size (zip bomb) and checks CRC-32', () => {
    const bomb = open([{ name: 'bomb', data: new Uint8Array(1_000_000), deflate: true, declaredSize: 1000 }], { maxTotalBytes: 10_000 });
    expect(() => bomb.read(bomb.entries[0]!)).toThrow(/inflates to more than its declared 1000 bytes/);
    const damaged = open([{ name: 'a.png', data: image, crc: 12345 }]);
    expect(() => damaged.read(damaged.entries[0]!)).toThrow(/fails its CRC-32 check/);
    const short = open([{ name: 'a.bin', data: new Uint8Array(100), deflate: true, declaredSize: 200 }]);
    expect(() => short.read(short.entries[0]!)).toThrow(/holds 100 bytes, not its declared 200/);
  });

  it('refuses files that are not zips', () => {
    const path = join(freshDir('notzip'), 'x.zip');
    writeFileSync(path, Buffer.from('hello, this is not a zip archive at all'));
    expect(() => ZipArchive.open(path)).toThrow(/not a zip archive/);
  });
});

describe('finding CIFAR-10', () => {
  it('says what to download and where when the named folder holds no CIFAR-10', () => {
    const empty = freshDir('empty');
    expect(() => locateCifar10({ dataDir: empty })).toThrow(DatasetUnavailableError);
    expect(() => locateCifar10({ dataDir: empty })).toThrow(/holds neither the binary files nor an image folder.*cifar-10-binary\.tar\.gz.*--data-dir/);
    expect(() => locateCifar10({ env: { TICKET_LAB_CIFAR10_DIR: empty } })).toThrow(/from TICKET_LAB_CIFAR10_DIR/);
  });

  it('uses $TICKET_LAB_CIFAR10_DIR, then a full decoded copy, then the project\'s ../shared copy; a small cache is never the default', () => {
    const binary = freshDir('env-binary');
    writeBinaryFolder(binary);
    expect(locateCifar10({ env: { TICKET_LAB_CIFAR10_DIR: binary }, cacheDir: freshDir('cache') })).toEqual({ kind: 'binary', dir: binary });

    // A cache of a tiny image folder (as --data-dir leaves behind) must not stand in for CIFAR-10.
    const tiny = freshDir('tiny');
    writeTree(tiny, { ...imageFolderFiles('train/', 1, png, 'png'), ...imageFolderFiles('test/', 1, png, 'png') });
    const cacheDir = freshDir('cache');
    expect(loadCifar10({ dataDir: tiny, cacheDir }).cache?.status).toBe('written');
    const found = locateCifar10({ env: {}, cacheDir });
    expect(found).toEqual({ kind: 'image-folder', path: projectCifar10Dir() });
    expect(projectCifar10Dir()).toMatch(/shared[/\\]datasets[/\\]cifar10-jpeg$/);
  });
});

describe('the project\'s CIFAR-10 JPEGs (../shared/datasets/cifar10-jpeg)', () => {
  it('decodes test.zip: 10,000 32×32 RGB images, 1,000 per class, labels 0-9', () => {
    const path = join(projectCifar10Dir()!, 'test.zip');
    expect(existsSync(path), `${path} should exist (see ../shared/datasets/README.md)`).toBe(true);
    const split = arrangeOneSplit(openZipTree(path));
    expect(split.classNames).toEqual([...CIFAR10_CLASSES]);
    const data = decodeImageFolderSplit(split, CIFAR10_CLASSES, 32, 32, () => {});
    expect(data.count).toBe(10_000);
    const perClass = new Array<number>(10).fill(0);
    for (const label of data.labels) perClass[label]!++;
    expect(perClass).toEqual(new Array(10).fill(1000));
    // Real photographs: every channel spans most of 0..255 and the mean sits mid-range.
    let sum = 0;
    for (const v of data.images) sum += v;
    const mean = sum / data.images.length / 255;
    expect(mean).toBeGreaterThan(0.4);
    expect(mean).toBeLessThan(0.55);
  });

  // The slow one: 60,000 JPEGs decoded (10-15 s on 2 cores), a 184 MB decoded copy written, then
  // found again as the default source and read back (about 1 s).
  it('loads as the default cifar10: 45,000 / 5,000 / 10,000, decoded once, then read from the cache', () => {
    const cacheDir = freshDir('full-cache');
    // A damaged copy that claims to be full CIFAR-10 is found first, fails its check on reading, and is removed.
    const damaged = decodedCachePath(cacheDir, 'cifar10', 'f'.repeat(64));
    const tiny = { images: new Uint8Array(SIZE), labels: new Uint8Array(1), count: 1 };
    const claims = { dataset: 'cifar10', key: 'f'.repeat(64), source: 'elsewhere', decoders: '', imageShape: [32, 32, 3] as [number, number, number] };
    writeDecodedCache(damaged, { ...claims, classNames: [...CIFAR10_CLASSES], trainCount: 50_000, testCount: 10_000 }, tiny, tiny);
    expect(locateCifar10({ env: {}, cacheDir })).toEqual({ kind: 'cache', path: damaged });

    const progress: number[] = [];
    const first = loadDataset('cifar10', { cacheDir, onProgress: (done, total) => progress.push(done / total) });
    expect(first.source).toBe(projectCifar10Dir());
    expect(existsSync(damaged)).toBe(false);
    expect([first.train.count, first.validation.count, first.test.count]).toEqual([45_000, 5_000, 10_000]);
    expect(progress.at(-1)).toBe(1);
    const perClass = new Array<number>(10).fill(0);
    for (const label of [...first.train.labels, ...first.validation.labels]) perClass[label]!++;
    expect(perClass).toEqual(new Array(10).fill(5000));
    expect(first.normalization.mean).toBeGreaterThan(0.4);
    expect(first.normalization.std).toBeGreaterThan(0.2);

    progress.length = 0;
    const again = loadDataset('cifar10', { cacheDir, validationSize: 5000, splitSeed: 0, onProgress: (done, total) => progress.push(done / total) });
    // Another source key (the decoded copy), so not the in-memory object. (Not `.not.toBe`: on a mismatch
    // vitest deep-compares the two datasets to explain itself, which takes minutes and gigabytes here.)
    expect(again === first).toBe(false);
    expect(progress).toEqual([]);
    expect(again.digest).toBe(first.digest);
    expect(again.source).toBe(first.source);
    expect(again.validation.labels).toEqual(first.validation.labels);
    expect(again.normalization).toEqual(first.normalization);
  });
});
