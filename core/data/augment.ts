// Seeded data augmentation for CIFAR-style training (He et al. 2016, and the lottery-ticket papers' CIFAR
// runs): pad the image with `padding` zero pixels on each side, crop a window of the original size at a
// random place, flip it left-right with probability 1/2 (torchvision's RandomCrop(32, padding=4) then
// RandomHorizontalFlip). Each image's choice is a pure function of (seed, iteration, row), like
// BatchOrder.rowsAt, so a rewound or resumed run sees the same pixels.
import { Rng } from '../compute/rng';
import { normalizationTable, type ImageSplit } from './datasets';

export interface AugmentOptions {
  seed: number;
  /** Zero pixels added on each side before cropping; 0 turns cropping off. */
  padding: number;
  /** Flip left-right with probability 1/2. */
  flip: boolean;
}

export const CIFAR_AUGMENTATION: Omit<AugmentOptions, 'seed'> = { padding: 4, flip: true };

/** Output pixel (y, x) is input pixel (y + dy, x' + dx), x' = width-1-x when flipped; outside the input it is zero. */
export interface AugmentChoice {
  dx: number;
  dy: number;
  flip: boolean;
}

/** The crop offset and flip of one image (a dataset row) at one training iteration. */
export function augmentChoice(options: AugmentOptions, iteration: number, row: number): AugmentChoice {
  const { padding } = options;
  const rng = Rng.stream(options.seed, 'augment', iteration, row);
  const dy = padding > 0 ? rng.int(2 * padding + 1) - padding : 0;
  const dx = padding > 0 ? rng.int(2 * padding + 1) - padding : 0;
  const flip = options.flip && rng.int(2) === 1;
  return { dx, dy, flip };
}

/**
 * Writes one augmented image: `values[byte]` for each source byte (a normalisation table, or identity),
 * `values[0]` for the padding, as the zero pixels are padded before normalising.
 */
function augmentInto<T extends Uint8Array | Float32Array>(
  src: Uint8Array,
  srcOffset: number,
  [height, width, channels]: readonly [number, number, number],
  { dx, dy, flip }: AugmentChoice,
  values: ArrayLike<number>,
  dst: T,
  dstOffset: number,
): void {
  const pad = values[0]!;
  for (let y = 0; y < height; y++) {
    const sy = y + dy;
    const rowOut = dstOffset + y * width * channels;
    if (sy < 0 || sy >= height) {
      dst.fill(pad, rowOut, rowOut + width * channels);
      continue;
    }
    const rowIn = srcOffset + sy * width * channels;
    for (let x = 0; x < width; x++) {
      const sx = (flip ? width - 1 - x : x) + dx;
      const out = rowOut + x * channels;
      if (sx < 0 || sx >= width) {
        for (let c = 0; c < channels; c++) dst[out + c] = pad;
      } else {
        const at = rowIn + sx * channels;
        for (let c = 0; c < channels; c++) dst[out + c] = values[src[at + c]!]!;
      }
    }
  }
}

const AS_IS: AugmentChoice = { dx: 0, dy: 0, flip: false };

const IDENTITY = Uint8Array.from({ length: 256 }, (_, v) => v);

/** One image (HWC bytes) augmented as `choice` says, as bytes: for tests and for looking at what training sees. */
export function augmentImage(image: Uint8Array, shape: readonly [number, number, number], choice: AugmentChoice): Uint8Array {
  const out = new Uint8Array(image.length);
  augmentInto(image, 0, shape, choice, IDENTITY, out, 0);
  return out;
}

/**
 * Like fillBatch, with each image augmented by its (seed, iteration, row) choice: normalised floats in
 * `xOut`, labels in `yOut`. `rows` are dataset rows (BatchOrder.rowsAt(iteration)).
 */
export function fillAugmentedBatch(
  split: ImageSplit,
  imageShape: readonly [number, number, number],
  rows: ArrayLike<number>,
  iteration: number,
  options: AugmentOptions,
  normalization: { mean: number; std: number },
  xOut: Float32Array,
  yOut: Int32Array,
): void {
  const size = imageShape[0] * imageShape[1] * imageShape[2];
  if (split.count > 0 && split.images.length !== split.count * size) {
    throw new RangeError(`images of shape [${imageShape.join(', ')}] do not fit a split of ${split.images.length} bytes for ${split.count} images`);
  }
  const table = normalizationTable(normalization);
  const unaugmentedFrom = split.unaugmentedFrom ?? split.count;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const choice = row < unaugmentedFrom ? augmentChoice(options, iteration, row) : AS_IS;
    augmentInto(split.images, row * size, imageShape, choice, table, xOut, i * size);
    yOut[i] = split.labels[row]!;
  }
}
