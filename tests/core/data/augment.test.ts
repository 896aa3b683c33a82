import { describe, expect, it } from 'vitest';
import { augmentChoice, augmentImage, CIFAR_AUGMENTATION, fillAugmentedBatch } from '../../../core/data/augment';
import { fillBatch, type ImageSplit } from '../../../core/data/datasets';

/** A 3×4 image with 2 channels: pixel (y, x) holds 10·y + x + 1 in channel 0 and 100 + that in channel 1. */
const SHAPE = [3, 4, 2] as const;
const IMAGE = Uint8Array.from({ length: 24 }, (_, i) => {
  const pixel = Math.floor(i / 2);
  const value = 10 * Math.floor(pixel / 4) + (pixel % 4) + 1;
  return i % 2 === 0 ? value : 100 + value;
});

/** Channel 0 of an augmented image as rows, for readable expectations. */
function channel0(image: Uint8Array): number[][] {
  return [0, 1, 2].map((y) => [0, 1, 2, 3].map((x) => image[(y * 4 + x) * 2]!));
}

describe('augmentation', () => {
  it('flips left-right and shifts the crop window, padding with zeros', () => {
    expect(channel0(augmentImage(IMAGE, SHAPE, { dx: 0, dy: 0, flip: false }))).toEqual([
      [1, 2, 3, 4],
      [11, 12, 13, 14],
      [21, 22, 23, 24],
    ]);
    expect(channel0(augmentImage(IMAGE, SHAPE, { dx: 0, dy: 0, flip: true }))).toEqual([
      [4, 3, 2, 1],
      [14, 13, 12, 11],
      [24, 23, 22, 21],
    ]);
    // The window moves one right and one up: the image shifts left and down, zeros enter right and top.
    expect(channel0(augmentImage(IMAGE, SHAPE, { dx: 1, dy: -1, flip: false }))).toEqual([
      [0, 0, 0, 0],
      [2, 3, 4, 0],
      [12, 13, 14, 0],
    ]);
    // Crop, then flip (torchvision's order): the zero column of the crop ends up on the left.
    expect(channel0(augmentImage(IMAGE, SHAPE, { dx: 1, dy: 2, flip: true }))).toEqual([
      [0, 24, 23, 22],
      [0, 0, 0, 0],
      [0, 0, 0, 0],
    ]);
    // Channels travel together.
    const shifted = augmentImage(IMAGE, SHAPE, { dx: -2, dy: 0, flip: false });
    expect(Array.from(shifted.subarray(0, 8))).toEqual([0, 0, 0, 0, 1, 101, 2, 102]);
  });

  it('chooses per (seed, iteration, row), the same every time, offsets within the padding, flips about half', () => {
    const options = { seed: 7, ...CIFAR_AUGMENTATION };
    expect(augmentChoice(options, 12, 345)).toEqual(augmentChoice({ ...options }, 12, 345));
    const atIteration = (iteration: number) => Array.from({ length: 50 }, (_, row) => augmentChoice(options, iteration, row));
    expect(atIteration(3)).toEqual(atIteration(3));
    expect(atIteration(4)).not.toEqual(atIteration(3));
    expect(Array.from({ length: 50 }, (_, row) => augmentChoice({ ...options, seed: 8 }, 3, row))).not.toEqual(atIteration(3));

    const choices = Array.from({ length: 4000 }, (_, i) => augmentChoice(options, i, i % 97));
    const dxs = new Set(choices.map((c) => c.dx));
    expect([...dxs].sort((a, b) => a - b)).toEqual([-4, -3, -2, -1, 0, 1, 2, 3, 4]);
    expect(new Set(choices.map((c) => c.dy)).size).toBe(9);
    const flips = choices.filter((c) => c.flip).length / choices.length;
    expect(flips).toBeGreaterThan(0.45);
    expect(flips).toBeLessThan(0.55);
    expect(augmentChoice({ seed: 7, padding: 0, flip: false }, 5, 5)).toEqual({ dx: 0, dy: 0, flip: false });
  });

  it('fills a normalised batch: augmented pixels, padding as a normalised black pixel, labels of the rows', () => {
    const split: ImageSplit = { images: Uint8Array.from([...IMAGE, ...IMAGE.map((v) => 255 - v)]), labels: Uint8Array.from([3, 8]), count: 2 };
    const normalization = { mean: 0.5, std: 0.25 };
    const options = { seed: 1, ...CIFAR_AUGMENTATION, padding: 1 };
    const rows = [1, 0];
    const x = new Float32Array(2 * 24);
    const y = new Int32Array(2);
    fillAugmentedBatch(split, SHAPE, rows, 9, options, normalization, x, y);
    expect(Array.from(y)).toEqual([8, 3]);
    rows.forEach((row, i) => {
      const bytes = augmentImage(split.images.subarray(row * 24, (row + 1) * 24), SHAPE, augmentChoice(options, 9, row));
      const expected = Array.from(bytes, (v) => (v / 255 - 0.5) / 0.25);
      Array.from(x.subarray(i * 24, (i + 1) * 24)).forEach((value, j) => expect(value).toBeCloseTo(expected[j]!, 5));
    });

    // No source byte is 0, so every -2 (a normalised 0) is padding; seed 1 shifts at least one of the two.
    expect(x.filter((value) => value === -2).length).toBeGreaterThan(0);

    // No padding, no flip: exactly fillBatch.
    const plain = new Float32Array(2 * 24);
    fillBatch(split, rows, normalization, plain, new Int32Array(2));
    fillAugmentedBatch(split, SHAPE, rows, 9, { seed: 1, padding: 0, flip: false }, normalization, x, y);
    expect(x).toEqual(plain);
  });

  it('leaves rows from unaugmentedFrom on as they are (trained-in trigger inputs), and augments the rows before', () => {
    const split: ImageSplit = { images: Uint8Array.from([...IMAGE, ...IMAGE.map((v) => 255 - v)]), labels: Uint8Array.from([3, 8]), count: 2, unaugmentedFrom: 1 };
    const normalization = { mean: 0.5, std: 0.25 };
    const options = { seed: 1, ...CIFAR_AUGMENTATION, padding: 1 };
    const plain = new Float32Array(2 * 24);
    fillBatch(split, [0, 1], normalization, plain, new Int32Array(2));
    // Over many iterations row 0 is moved at least once; row 1 never is.
    let rowZeroChanged = false;
    for (let iteration = 0; iteration < 20; iteration++) {
      const x = new Float32Array(2 * 24);
      fillAugmentedBatch(split, SHAPE, [0, 1], iteration, options, normalization, x, new Int32Array(2));
      expect(x.subarray(24)).toEqual(plain.subarray(24));
      if (!x.subarray(0, 24).every((v, j) => v === plain[j])) rowZeroChanged = true;
    }
    expect(rowZeroChanged).toBe(true);
  });
});
