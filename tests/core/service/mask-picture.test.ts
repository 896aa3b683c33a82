import { describe, expect, it } from 'vitest';
import { maskPicture, packedPicture } from '../../../core/service/mask-picture';
import { unpackBits } from '../../../core/pruning/mask-encoding';

/** A mask of the given shape, drawn at random from a fixed seed. */
function randomMask(shape: number[], seed: number) {
  const n = shape.reduce((a, b) => a * b, 1);
  const bits = new Uint8Array(n);
  let state = seed;
  for (let i = 0; i < n; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    bits[i] = state >>> 31;
  }
  return { name: 'w', shape, bits };
}

describe('mask pictures', () => {
  it('draws a dense [in, out] mask with one row per output unit', () => {
    // in = 2, out = 3: TF.js index i·3 + o.
    const mask = { name: 'fc', shape: [2, 3], bits: Uint8Array.from([1, 0, 0, 1, 1, 0]) };
    const picture = maskPicture(mask);
    expect([picture.rows, picture.cols]).toEqual([3, 2]);
    // Row o is [w(i=0, o), w(i=1, o)].
    expect([...picture.bits]).toEqual([1, 1, 0, 1, 0, 0]);
  });

  it('draws a convolution [kh, kw, in, out] as PyTorch flattens [out, in, kh, kw]', () => {
    const [kh, kw, channels, out] = [3, 2, 4, 5];
    const mask = randomMask([kh, kw, channels, out], 7);
    const picture = maskPicture(mask);
    expect([picture.rows, picture.cols]).toEqual([out, channels * kh * kw]);
    for (let o = 0; o < out; o++) {
      for (let i = 0; i < channels; i++) {
        for (let y = 0; y < kh; y++) {
          for (let x = 0; x < kw; x++) {
            const source = ((y * kw + x) * channels + i) * out + o;
            const pixel = o * channels * kh * kw + (i * kh + y) * kw + x;
            expect(picture.bits[pixel]).toBe(mask.bits[source]);
          }
        }
      }
    }
  });

  it('packs the picture MSB first and keeps every kept entry', () => {
    const mask = randomMask([300, 100], 11);
    const packed = packedPicture(mask);
    const bits = unpackBits(new Uint8Array(Buffer.from(packed.bits, 'base64')), packed.rows * packed.cols);
    expect(bits).toEqual(maskPicture(mask).bits);
    expect(bits.reduce((a, b) => a + b, 0)).toBe(mask.bits.reduce((a, b) => a + b, 0));
  });
});
