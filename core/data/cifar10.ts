// CIFAR-10 (Krizhevsky, 2009): 50,000 training and 10,000 test images, 32×32 RGB, 10 classes, read
// from either of:
// - the official binary version, `cifar-10-batches-bin/` (data_batch_1..5.bin, test_batch.bin), each
//   record 1 label byte + 3,072 bytes of R, G, B planes, row-major 32×32;
// - an image folder (image-folder.ts): a folder holding train.zip + test.zip or train/ + test/, or one
//   .zip holding train/ and test/, with one folder per class. The project's default source,
//   ../shared/datasets/cifar10-jpeg, is such a folder of JPEG re-encodings (about quality 75) of the
//   official pixels: numbers measured on it can differ slightly from papers that used the binary files.
// Decoded image folders are cached (decoded-cache.ts); the binary files are read directly, as fast as a cache.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DataFormatError, DatasetUnavailableError } from '../api/errors';
import { defaultDatasetCacheDir } from '../store/default-path';
import type { ImageSplit } from './datasets';
import { decodedCachePath, discardDecodedCache, listDecodedCaches, peekDecodedCacheHeader, readDecodedCache, splitsDigest, writeDecodedCache, type DecodedCache } from './decoded-cache';
import { DECODER_VERSIONS } from './image-decode';
import { arrangeOneSplit, arrangeTwoSplits, decodeImageFolderSplit, openDirectoryTree, openZipTree, type FileTree, type ImageFolderSplit } from './image-folder';
import { DEFAULT_ZIP_LIMITS, type ZipLimits } from './zip';

/** Label ids 0..9 in the official order, which is also alphabetical: image folders sorted by name agree with the binary labels. */
export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] as const;
export const CIFAR10_IMAGE_SHAPE: [number, number, number] = [32, 32, 3];
const IMAGE_BYTES = 32 * 32 * 3;
const RECORD_BYTES = 1 + IMAGE_BYTES;
const TRAIN_BATCHES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
const TEST_BATCH = 'test_batch.bin';
const FULL_COUNTS = { train: 50_000, test: 10_000 };
/** Bump when decoding changes meaning (say, another colour conversion): old caches then stop matching. */
const CACHE_FORMAT = 1;
const DATASET = 'cifar10';

export const CIFAR10_INSTALL_HINT =
  'download the official binary version (https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz, 163 MB), extract it with `tar xzf`, ' +
  'and pass --data-dir PATH/cifar-10-batches-bin or set TICKET_LAB_CIFAR10_DIR to it; an image folder works too ' +
  '(a folder or .zip holding train/<class>/*.png|jpg and test/<class>/*, or a folder holding train.zip and test.zip)';

export type Cifar10Source =
  | { kind: 'binary'; dir: string }
  | { kind: 'image-folder'; path: string }
  /** A decoded copy found in the cache folder when no source was named. */
  | { kind: 'cache'; path: string };

export interface Cifar10Options {
  /** A binary folder, an image folder or a .zip; when given, nothing else is tried. */
  dataDir?: string | undefined;
  /** Where decoded image folders are kept; default: `dataset-cache` in the data folder, or $TICKET_LAB_CACHE_DIR. */
  cacheDir?: string | undefined;
  /** Images decoded so far of all to decode (for the binary files, once a file); not called when the decoded copy is used. */
  onProgress?: ((done: number, total: number) => void) | undefined;
  zipLimits?: ZipLimits | undefined;
  env?: NodeJS.ProcessEnv | undefined;
}

export interface Cifar10Data {
  /** What was decoded (for a cache, the source it was decoded from). */
  source: string;
  format: 'binary' | 'image-folder';
  train: ImageSplit;
  test: ImageSplit;
  /** SHA-256 over train images, train labels, test images, test labels: the dataset digest runs record. */
  digest: string;
  /** For image folders: whether the decoded copy was used, written, or could not be written (and why). */
  cache?: { path: string; status: 'hit' | 'written' | 'not-written'; error?: string };
}

/** The project's own copy, ../shared/datasets/cifar10-jpeg beside the checkout, when there is one. */
export function projectCifar10Dir(): string | undefined {
  let dir = __dirname;
  // The repository root is the nearest folder with a package.json (core/data/ from sources, dist/core/data/ built).
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
  return resolve(dir, '..', 'shared', 'datasets', 'cifar10-jpeg');
}

/** Finds CIFAR-10: the named folder; else $TICKET_LAB_CIFAR10_DIR; else a full decoded copy in the cache; else the project's copy. */
export function locateCifar10(options: Cifar10Options = {}): Cifar10Source {
  const env = options.env ?? process.env;
  if (options.dataDir) {
    return sourceAt(options.dataDir) ?? unavailable(`${options.dataDir} (given as the data folder) holds neither the binary files nor an image folder`);
  }
  const envDir = env.TICKET_LAB_CIFAR10_DIR;
  if (envDir) return sourceAt(envDir) ?? unavailable(`${envDir} (from TICKET_LAB_CIFAR10_DIR) holds neither the binary files nor an image folder`);
  const cacheDir = options.cacheDir ?? defaultDatasetCacheDir(env);
  const cached = listDecodedCaches(cacheDir, DATASET).find(isFullCifar10Cache);
  if (cached) return { kind: 'cache', path: cached };
  const projectDir = projectCifar10Dir();
  const projectSource = projectDir ? sourceAt(projectDir) : undefined;
  if (projectSource) return projectSource;
  return unavailable(`not found: TICKET_LAB_CIFAR10_DIR is not set, ${cacheDir} holds no decoded copy, and ${projectDir ?? 'the project\'s ../shared/datasets/cifar10-jpeg'} is missing or holds no train and test images`);
}

function unavailable(what: string): never {
  throw new DatasetUnavailableError(`Dataset 'cifar10': ${what}. To get it, ${CIFAR10_INSTALL_HINT}.`);
}

/** What kind of CIFAR-10 source `path` is, by its file names alone (nothing is decoded). */
export function sourceAt(path: string): Cifar10Source | undefined {
  const stat = statOrUndefined(path);
  if (!stat) return undefined;
  if (stat.isFile()) return /\.zip$/i.test(path) ? { kind: 'image-folder', path } : undefined;
  if (!stat.isDirectory()) return undefined;
  for (const dir of [path, join(path, 'cifar-10-batches-bin')]) {
    if ([...TRAIN_BATCHES, TEST_BATCH].every((name) => statOrUndefined(join(dir, name))?.isFile())) return { kind: 'binary', dir };
  }
  if (['train', 'test'].every((split) => splitTreePath(path, split))) return { kind: 'image-folder', path };
  return undefined;
}

/** `<dir>/<split>.zip`, else `<dir>/<split>/`. */
function splitTreePath(dir: string, split: string): string | undefined {
  const zip = join(dir, `${split}.zip`);
  if (statOrUndefined(zip)?.isFile()) return zip;
  const folder = join(dir, split);
  return statOrUndefined(folder)?.isDirectory() ? folder : undefined;
}

function statOrUndefined(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

export function loadCifar10(options: Cifar10Options = {}): Cifar10Data {
  return readCifar10(locateCifar10(options), options);
}

export function readCifar10(source: Cifar10Source, options: Cifar10Options = {}): Cifar10Data {
  switch (source.kind) {
    case 'binary':
      return readBinaryFolder(source.dir, options.onProgress);
    case 'image-folder':
      return readImageFolder(source.path, options);
    case 'cache': {
      const cache = readDecodedCache(source.path, DATASET, CIFAR10_IMAGE_SHAPE);
      if (cache) return fromCache(cache, source.path);
      // Only its header was read when it was found; its body fails the check. Drop it and decode the project's copy again.
      discardDecodedCache(source.path);
      const projectDir = projectCifar10Dir();
      const fallback = projectDir ? sourceAt(projectDir) : undefined;
      if (!fallback) unavailable(`the decoded copy ${source.path} is damaged and no source to decode again was found`);
      return readCifar10(fallback, options);
    }
  }
}

function fromCache(cache: DecodedCache, path: string): Cifar10Data {
  return {
    source: cache.header.source,
    format: 'image-folder',
    train: cache.train,
    // Copied out so the 180 MB file buffer is freed once the caller has split the training rows.
    test: { images: cache.test.images.slice(), labels: cache.test.labels.slice(), count: cache.test.count },
    digest: cache.header.digest,
    cache: { path, status: 'hit' },
  };
}

function isFullCifar10Cache(path: string): boolean {
  const header = peekDecodedCacheHeader(path, DATASET);
  return (
    header !== undefined &&
    header.trainCount === FULL_COUNTS.train &&
    header.testCount === FULL_COUNTS.test &&
    JSON.stringify(header.classNames) === JSON.stringify(CIFAR10_CLASSES)
  );
}

// ---- image folders ----

function readImageFolder(path: string, options: Cifar10Options): Cifar10Data {
  const limits = options.zipLimits ?? DEFAULT_ZIP_LIMITS;
  let train: ImageFolderSplit;
  let test: ImageFolderSplit;
  let trees: FileTree[];
  if (statOrUndefined(path)?.isFile()) {
    const tree = openZipTree(path, limits);
    ({ train, test } = arrangeTwoSplits(tree));
    trees = [tree];
  } else {
    trees = ['train', 'test'].map((split) => {
      const treePath = splitTreePath(path, split)!;
      return treePath.endsWith('.zip') ? openZipTree(treePath, limits) : openDirectoryTree(treePath);
    });
    train = arrangeOneSplit(trees[0]!);
    test = arrangeOneSplit(trees[1]!);
  }
  for (const [name, split] of [['train', train], ['test', test]] as const) {
    if (JSON.stringify(split.classNames) !== JSON.stringify(CIFAR10_CLASSES)) {
      throw new DataFormatError(
        `${path}: the ${name} split has class folders ${split.classNames.join(', ')}; CIFAR-10 needs exactly ${CIFAR10_CLASSES.join(', ')} (label ids 0-9 in that order).`,
      );
    }
  }

  // Keyed by content, not by size and modification time: copying or unzipping changes times (a needless
  // minute of decoding), while an edit that keeps both would serve stale pixels. Hashing the 61 MB of
  // the project's zips takes a fraction of a second.
  const key = createHash('sha256')
    .update(JSON.stringify({ format: CACHE_FORMAT, decoders: DECODER_VERSIONS, content: trees.map((tree) => tree.contentDigest()) }))
    .digest('hex');
  const cacheDir = options.cacheDir ?? defaultDatasetCacheDir(options.env ?? process.env);
  const cachePath = decodedCachePath(cacheDir, DATASET, key);
  const cached = readDecodedCache(cachePath, DATASET, CIFAR10_IMAGE_SHAPE, key);
  if (cached) return fromCache(cached, cachePath);

  const total = train.images.length + test.images.length;
  let done = 0;
  const onImage = () => {
    done++;
    // Every 250 images: often enough for a smooth progress line, rare enough to cost nothing.
    if (options.onProgress && (done % 250 === 0 || done === total)) options.onProgress(done, total);
  };
  const classNames = [...CIFAR10_CLASSES];
  const trainData = decodeImageFolderSplit(train, classNames, 32, 32, onImage);
  const testData = decodeImageFolderSplit(test, classNames, 32, 32, onImage);

  const header = { dataset: DATASET, key, source: path, decoders: DECODER_VERSIONS, imageShape: CIFAR10_IMAGE_SHAPE, classNames, trainCount: trainData.count, testCount: testData.count };
  try {
    const written = writeDecodedCache(cachePath, header, trainData, testData);
    return { source: path, format: 'image-folder', train: trainData, test: testData, digest: written.digest, cache: { path: cachePath, status: 'written' } };
  } catch (error) {
    // A read-only or full disk costs speed next time, not this load.
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return {
      source: path,
      format: 'image-folder',
      train: trainData,
      test: testData,
      digest: splitsDigest(trainData, testData),
      cache: { path: cachePath, status: 'not-written', error: `could not write the decoded copy ${cachePath}: ${reason}` },
    };
  }
}

// ---- the official binary files ----

function readBinaryFolder(dir: string, onProgress: Cifar10Options['onProgress']): Cifar10Data {
  const batches = [...TRAIN_BATCHES, TEST_BATCH].map((name) => readBinaryBatchFile(join(dir, name)));
  const total = batches.reduce((sum, batch) => sum + batch.count, 0);
  let done = 0;
  for (const batch of batches) {
    done += batch.count;
    onProgress?.(done, total);
  }
  const train = concatSplits(batches.slice(0, TRAIN_BATCHES.length));
  const test = batches[TRAIN_BATCHES.length]!;
  return { source: dir, format: 'binary', train, test, digest: splitsDigest(train, test) };
}

function readBinaryBatchFile(path: string): ImageSplit {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new DataFormatError(`Cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, { cause: error });
  }
  return parseCifar10Batch(bytes, path);
}

/** One binary batch file: records of 1 label byte + R, G, B planes (CHW), turned into HWC rows. */
export function parseCifar10Batch(bytes: Uint8Array, where: string): ImageSplit {
  if (bytes.length === 0 || bytes.length % RECORD_BYTES !== 0) {
    throw new DataFormatError(
      `${where} is ${bytes.length} bytes, not a whole number of CIFAR-10 records (${RECORD_BYTES} bytes each: 1 label + 3,072 pixels). ` +
        'Use the binary version (cifar-10-binary.tar.gz), not the Python or MATLAB one.',
    );
  }
  const count = bytes.length / RECORD_BYTES;
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Uint8Array(count);
  const plane = 32 * 32;
  for (let r = 0; r < count; r++) {
    const record = r * RECORD_BYTES;
    const label = bytes[record]!;
    if (label >= CIFAR10_CLASSES.length) throw new DataFormatError(`${where}: record ${r} has label ${label}; CIFAR-10 labels are 0-9.`);
    labels[r] = label;
    const out = r * IMAGE_BYTES;
    for (let p = 0; p < plane; p++) {
      images[out + 3 * p] = bytes[record + 1 + p]!;
      images[out + 3 * p + 1] = bytes[record + 1 + plane + p]!;
      images[out + 3 * p + 2] = bytes[record + 1 + 2 * plane + p]!;
    }
  }
  return { images, labels, count };
}

function concatSplits(splits: ImageSplit[]): ImageSplit {
  const count = splits.reduce((sum, s) => sum + s.count, 0);
  const images = new Uint8Array(count * IMAGE_BYTES);
  const labels = new Uint8Array(count);
  let row = 0;
  for (const split of splits) {
    images.set(split.images, row * IMAGE_BYTES);
    labels.set(split.labels, row);
    row += split.count;
  }
  return { images, labels, count };
}
