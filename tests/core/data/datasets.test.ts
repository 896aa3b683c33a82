import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DataFormatError, DatasetUnavailableError, InvalidRequestError } from '../../../core/api/errors';
import { BatchOrder, fillBatch, loadDataset } from '../../../core/data/datasets';
import { encodeIdxU8, parseIdx } from '../../../core/data/idx';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder();

/** Writes a tiny MNIST-shaped dataset: image i is filled with the value i, its label i % 10. */
function writeTinyDataset(dir: string, train: number, test: number, gzip: boolean): void {
  mkdirSync(dir, { recursive: true });
  const images = (n: number) => encodeIdxU8([n, 28, 28], Uint8Array.from({ length: n * 784 }, (_, k) => Math.floor(k / 784) % 256));
  const labels = (n: number) => encodeIdxU8([n], Uint8Array.from({ length: n }, (_, i) => i % 10));
  const write = (name: string, bytes: Uint8Array) => writeFileSync(join(dir, gzip ? `${name}.gz` : name), gzip ? gzipSync(bytes) : bytes);
  write('train-images-idx3-ubyte', images(train));
  write('train-labels-idx1-ubyte', labels(train));
  write('t10k-images-idx3-ubyte', images(test));
  write('t10k-labels-idx1-ubyte', labels(test));
}

describe('IDX reader', () => {
  it('reads raw and gzip-compressed IDX files of every element type', () => {
    const u8 = encodeIdxU8([2, 3], Uint8Array.from([1, 2, 3, 4, 5, 255]));
    for (const bytes of [u8, gzipSync(u8)]) {
      const parsed = parseIdx(bytes);
      expect(parsed.dims).toEqual([2, 3]);
      expect(Array.from(parsed.data)).toEqual([1, 2, 3, 4, 5, 255]);
    }
    // Big-endian float32 (type 0x0D) and int16 (0x0B).
    const f32 = new Uint8Array(4 + 4 + 8);
    const view = new DataView(f32.buffer);
    f32.set([0, 0, 0x0d, 1]);
    view.setUint32(4, 2, false);
    view.setFloat32(8, 1.5, false);
    view.setFloat32(12, -2.25, false);
    expect(Array.from(parseIdx(f32).data)).toEqual([1.5, -2.25]);
  });

  it('rejects malformed files with a clear DataFormatError', () => {
    expect(() => parseIdx(Uint8Array.from([1, 2, 3]))).toThrow(DataFormatError);
    expect(() => parseIdx(Uint8Array.from([0, 0, 0x42, 1, 0, 0, 0, 1, 7]))).toThrow(/unknown IDX type/);
    const truncated = encodeIdxU8([10, 10], new Uint8Array(100)).subarray(0, 50);
    expect(() => parseIdx(truncated)).toThrow(/should hold 112 bytes/);
    expect(() => parseIdx(Uint8Array.from([0x1f, 0x8b, 1, 2, 3]))).toThrow(/does not decompress/);
    // A header claiming 2^32 × 2^32 elements is refused before anything is allocated.
    const huge = Uint8Array.from([0, 0, 8, 2, 255, 255, 255, 255, 255, 255, 255, 255]);
    expect(() => parseIdx(huge)).toThrow(/more than this reader accepts/);
  });
});

describe('datasets', () => {
  it('loads a user folder of IDX files, holds out a seeded validation split, and normalises', () => {
    for (const gzip of [false, true]) {
      const dir = join(temp(), gzip ? 'gz' : 'raw');
      writeTinyDataset(dir, 100, 20, gzip);
      const ds = loadDataset('mnist', { dataDir: dir, validationSize: 30, splitSeed: 1 });
      expect([ds.train.count, ds.validation.count, ds.test.count]).toEqual([70, 30, 20]);
      // Every training image appears exactly once in train ∪ validation.
      const firstPixels = [...ds.train.images.filter((_, k) => k % 784 === 0), ...ds.validation.images.filter((_, k) => k % 784 === 0)];
      expect(firstPixels.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
      const again = loadDataset('mnist', { dataDir: dir, validationSize: 30, splitSeed: 2 });
      expect(Array.from(again.validation.labels)).not.toEqual(Array.from(ds.validation.labels));
      const x = new Float32Array(2 * 784);
      const y = new Int32Array(2);
      fillBatch(ds.train, [0, 1], ds.normalization, x, y);
      expect(x[0]).toBeCloseTo((ds.train.images[0]! / 255 - ds.normalization.mean) / ds.normalization.std, 5);
    }
  });

  it('gives the same batch for the same seed and iteration, reshuffled each epoch', () => {
    const order = new BatchOrder(100, 10, 7);
    const first = Array.from(order.rowsAt(3));
    expect(Array.from(new BatchOrder(100, 10, 7).rowsAt(3))).toEqual(first);
    expect(Array.from(order.rowsAt(13))).not.toEqual(first);
    const epoch = Array.from({ length: 10 }, (_, i) => Array.from(order.rowsAt(i))).flat();
    expect(epoch.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('says where it looked and what to do when a dataset is missing, and lists valid names', () => {
    expect(() => loadDataset('mnist', { dataDir: join(temp(), 'nowhere') })).toThrow(DatasetUnavailableError);
    expect(() => loadDataset('mnist', { dataDir: join(temp(), 'nowhere') })).toThrow(/train-images-idx3-ubyte/);
    expect(() => loadDataset('imagenet')).toThrow(InvalidRequestError);
    expect(() => loadDataset('imagenet')).toThrow(/mnist, fashion-mnist/);
  });

  it('loads the bundled MNIST: 60,000 training and 10,000 test images', () => {
    const ds = loadDataset('mnist');
    expect(ds.train.count + ds.validation.count).toBe(60_000);
    expect(ds.validation.count).toBe(5000);
    expect(ds.test.count).toBe(10_000);
    expect(ds.normalization.mean).toBeCloseTo(0.1307, 2);
    expect(ds.normalization.std).toBeCloseTo(0.3081, 2);
  });

  it('loads Fashion-MNIST from Debian\'s dataset-fashion-mnist (installed by scripts/system-deps.sh)', () => {
    expect(existsSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz'), 'run scripts/system-deps.sh to install dataset-fashion-mnist').toBe(true);
    const ds = loadDataset('fashion-mnist');
    expect(ds.train.count + ds.validation.count).toBe(60_000);
    expect(ds.test.count).toBe(10_000);
    expect(ds.digest).not.toBe(loadDataset('mnist').digest);
    expect(ds.normalization.mean).toBeCloseTo(0.286, 2);
  });
});
