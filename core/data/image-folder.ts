// The "image folder" layout (as torchvision's ImageFolder): one folder per class holding .png/.jpg
// files, in a directory or a .zip, either for one split (`airplane/0001.jpg`) or for both
// (`train/airplane/0001.jpg`, `test/...`). A single wrapping folder (`cifar10/train/...`) is allowed.
// Class names sorted by code unit order give the label ids, so the same folders give the same labels
// on every machine and locale. Files and entries are visited in sorted path order for the same reason.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataFormatError } from '../api/errors';
import type { ImageSplit } from './datasets';
import { decodeRgbImageInto } from './image-decode';
import { DEFAULT_ZIP_LIMITS, ZipArchive, type ZipLimits } from './zip';

export interface TreeFile {
  /** Path parts inside the tree. */
  segments: string[];
  /** Where the file is, for messages: a path, or `archive.zip:entry`. */
  where: string;
  read(): Uint8Array;
}

export interface FileTree {
  where: string;
  files: TreeFile[];
  /** SHA-256 of the tree's content, the identity of what was decoded. */
  contentDigest(): string;
}

export interface ImageFolderSplit {
  classNames: string[];
  /** Sorted by class, then by path. */
  images: Array<{ file: TreeFile; className: string }>;
}

const IMAGE_EXTENSIONS = /\.(png|jpe?g)$/i;
/** Image files this reader cannot decode: refused by name rather than silently left out. */
const UNSUPPORTED_IMAGE_EXTENSIONS = /\.(bmp|gif|webp|tiff?|ppm|pgm|heic|avif)$/i;
const MAX_DIRECTORY_DEPTH = 8;
const MAX_DIRECTORY_FILES = 1_000_000;

export function openZipTree(path: string, limits: ZipLimits = DEFAULT_ZIP_LIMITS): FileTree {
  const archive = ZipArchive.open(path, limits);
  const files = archive.entries
    .filter((entry) => !entry.isDirectory && entry.segments.length > 0)
    .map((entry) => ({ segments: entry.segments, where: `${path}:${entry.name}`, read: () => archive.read(entry) }));
  return { where: path, files, contentDigest: () => createHash('sha256').update(archive.archiveBytes).digest('hex') };
}

export function openDirectoryTree(root: string): FileTree {
  const files: TreeFile[] = [];
  const walk = (dir: string, segments: string[]) => {
    if (segments.length > MAX_DIRECTORY_DEPTH) throw new DataFormatError(`${dir} is nested more than ${MAX_DIRECTORY_DEPTH} folders deep inside ${root}.`);
    for (const name of readable(dir, () => readdirSync(dir)).sort()) {
      const path = join(dir, name);
      // statSync follows links, so a linked class folder works; the depth cap stops link loops.
      const stat = readable(path, () => statSync(path));
      if (stat.isDirectory()) walk(path, [...segments, name]);
      else if (stat.isFile()) {
        if (files.length >= MAX_DIRECTORY_FILES) throw new DataFormatError(`${root} holds more than ${MAX_DIRECTORY_FILES} files, more than this reader accepts.`);
        files.push({ segments: [...segments, name], where: path, read: () => readable(path, () => readFileSync(path)) });
      }
    }
  };
  walk(root, []);
  return {
    where: root,
    files,
    contentDigest() {
      const hash = createHash('sha256');
      const length = Buffer.alloc(8);
      for (const file of sortedByPath(files)) {
        const bytes = file.read();
        length.writeBigUInt64LE(BigInt(bytes.length));
        hash.update(file.segments.join('/')).update('\0').update(length).update(bytes);
      }
      return hash.digest('hex');
    },
  };
}

/** Runs a file-system call, turning its error (a broken link, no permission) into one that names the path. */
function readable<T>(path: string, call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw new DataFormatError(`Cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, { cause: error });
  }
}

/** Image files of the tree, junk left out (hidden files, macOS resource forks, non-images such as a README). */
function imageFiles(tree: FileTree): TreeFile[] {
  const images: TreeFile[] = [];
  for (const file of tree.files) {
    if (file.segments.some((s) => s.startsWith('.') || s === '__MACOSX')) continue;
    const name = file.segments[file.segments.length - 1]!;
    if (UNSUPPORTED_IMAGE_EXTENSIONS.test(name)) throw new DataFormatError(`${file.where}: only PNG and JPEG images are read; convert it or remove it.`);
    if (IMAGE_EXTENSIONS.test(name)) images.push(file);
  }
  return sortedByPath(images);
}

/** One split: every image sits in `<wrapper...>/<class>/<file>`, with the same wrapper for all. */
export function arrangeOneSplit(tree: FileTree): ImageFolderSplit {
  return arrange(tree, imageFiles(tree), 2, () => undefined).get(undefined)!;
}

/** Both splits: every image sits in `<wrapper...>/{train,test}/<class>/<file>`. */
export function arrangeTwoSplits(tree: FileTree): { train: ImageFolderSplit; test: ImageFolderSplit } {
  const splits = arrange(tree, imageFiles(tree), 3, (file, depth) => {
    const split = file.segments[file.segments.length - depth]!;
    if (split !== 'train' && split !== 'test') {
      throw new DataFormatError(`${file.where} is not inside a train/ or test/ folder; ${tree.where} should hold train/<class>/<image> and test/<class>/<image>.`);
    }
    return split;
  });
  const train = splits.get('train');
  const test = splits.get('test');
  if (!train || !test) throw new DataFormatError(`${tree.where} should hold both train/ and test/ folders of class folders; found only ${train ? 'train' : 'test'}/.`);
  return { train, test };
}

function arrange(
  tree: FileTree,
  images: TreeFile[],
  depth: number,
  splitOf: (file: TreeFile, depth: number) => string | undefined,
): Map<string | undefined, ImageFolderSplit> {
  const layout = depth === 3 ? '<split>/<class>/<image>' : '<class>/<image>';
  if (images.length === 0) throw new DataFormatError(`${tree.where} holds no .png or .jpg images in the layout ${layout}.`);
  const first = images[0]!;
  const wrapper = first.segments.slice(0, first.segments.length - depth);
  const splits = new Map<string | undefined, ImageFolderSplit>();
  for (const file of images) {
    const n = file.segments.length;
    if (n < depth || n - depth !== wrapper.length || wrapper.some((s, i) => file.segments[i] !== s)) {
      throw new DataFormatError(`${file.where} and ${first.where} are not both in the layout ${layout}; ${tree.where} must hold class folders side by side.`);
    }
    const split = splitOf(file, depth);
    let entry = splits.get(split);
    if (!entry) splits.set(split, (entry = { classNames: [], images: [] }));
    entry.images.push({ file, className: file.segments[n - 2]! });
  }
  for (const split of splits.values()) {
    split.classNames = [...new Set(split.images.map((image) => image.className))].sort();
    // Sorted by class, then path (the input already is by path, and sort is stable): the order of the
    // decoded rows does not depend on the archive's order.
    split.images.sort((a, b) => compareStrings(a.className, b.className));
  }
  return splits;
}

/**
 * Decodes a split into HWC RGB bytes, every image exactly height×width, with labels from `classNames`
 * (the dataset's list, not the split's: a test split missing a class still labels the others right).
 * Calls `onImage` after each image.
 */
export function decodeImageFolderSplit(split: ImageFolderSplit, classNames: readonly string[], height: number, width: number, onImage: () => void): ImageSplit {
  const size = height * width * 3;
  const count = split.images.length;
  const images = new Uint8Array(count * size);
  const labels = new Uint8Array(count);
  split.images.forEach(({ file, className }, i) => {
    const label = classNames.indexOf(className);
    if (label < 0) throw new DataFormatError(`${file.where} is in class folder '${className}', which is not one of ${classNames.join(', ')}.`);
    labels[i] = label;
    decodeRgbImageInto(file.read(), file.where, width, height, images.subarray(i * size, (i + 1) * size));
    onImage();
  });
  return { images, labels, count };
}

function sortedByPath(files: TreeFile[]): TreeFile[] {
  return files
    .map((file) => ({ file, path: file.segments.join('/') }))
    .sort((a, b) => compareStrings(a.path, b.path))
    .map(({ file }) => file);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
