import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MaskFormatError } from '../../../core/api/errors';
import { Rng } from '../../../core/compute/rng';
import { decodeMask, encodeMask, entropyBoundBytes, maskHeaderBytes, packBits, unpackBits } from '../../../core/pruning/mask-encoding';

const shapes = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 70 })).map((s) => [s[0]]),
  fc.tuple(fc.integer({ min: 1, max: 33 }), fc.integer({ min: 1, max: 41 })).map((s) => [s[0], s[1]]),
  fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 9 })).map((s) => [...s]),
);

/** Masks of every density, including all-zero and all-one, with runs and noise. */
const masks = shapes.chain((shape) => {
  const n = shape.reduce((a, b) => a * b, 1);
  return fc
    .oneof(
      fc.constant(new Uint8Array(n)),
      fc.constant(new Uint8Array(n).fill(1)),
      fc.uint8Array({ minLength: n, maxLength: n, min: 0, max: 1 }),
      fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer()).map(([p, seed]) => {
        const rng = Rng.stream(Math.abs(seed), 'mask');
        return Uint8Array.from({ length: n }, () => (rng.next() < p ? 1 : 0));
      }),
    )
    .map((bits) => ({ name: 'layer', shape, bits }));
});

describe('mask encoding', () => {
  it('round-trips every mask exactly', () => {
    fc.assert(
      fc.property(masks, (mask) => {
        const back = decodeMask(mask.name, encodeMask(mask));
        expect(back.shape).toEqual(mask.shape);
        expect(Array.from(back.bits)).toEqual(Array.from(mask.bits));
      }),
      { numRuns: 400 },
    );
  });

  it('packs bits MSB first, like numpy.packbits', () => {
    expect(Array.from(packBits(Uint8Array.from([1, 0, 0, 0, 0, 0, 0, 1, 1])))).toEqual([0x81, 0x80]);
    expect(Array.from(unpackBits(Uint8Array.from([0x81, 0x80]), 9))).toEqual([1, 0, 0, 0, 0, 0, 0, 1, 1]);
  });

  it.each([0.5, 0.8, 0.9, 0.95, 0.99, 0.999])('stores 1M weights at sparsity %s within 1.1x of the entropy bound plus a small header', (sparsity) => {
    const n = 1_000_000;
    const keep = Math.round((1 - sparsity) * n);
    const bits = new Uint8Array(n);
    const order = Rng.stream(7, 'bound').permutation(n);
    for (let i = 0; i < keep; i++) bits[order[i]!] = 1;
    const blob = encodeMask({ name: 'w', shape: [1000, 1000], bits });
    const header = maskHeaderBytes(blob);
    expect(header).toBeLessThanOrEqual(64);
    expect(blob.length - header).toBeLessThanOrEqual(1.1 * entropyBoundBytes(n, keep));
    expect(blob.length).toBeLessThanOrEqual(n / 8 + 64);
  });

  it('refuses damaged blobs with a MaskFormatError instead of returning a wrong mask', () => {
    const rng = Rng.stream(3, 'damage');
    const bits = Uint8Array.from({ length: 5000 }, () => (rng.next() < 0.1 ? 1 : 0));
    const blob = encodeMask({ name: 'w', shape: [50, 100], bits });
    const header = maskHeaderBytes(blob);
    let refused = 0;
    for (let i = header; i < blob.length; i += 7) {
      const damaged = blob.slice();
      damaged[i]! ^= 0x10;
      try {
        const back = decodeMask('w', damaged);
        // A flip the checksum cannot see would have to decode to the same mask.
        expect(Array.from(back.bits)).toEqual(Array.from(bits));
      } catch (error) {
        expect(error).toBeInstanceOf(MaskFormatError);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
    expect(() => decodeMask('w', blob.subarray(0, 5))).toThrow(MaskFormatError);
    expect(() => decodeMask('w', Uint8Array.from([0x50, 0x4b, 3, 4]))).toThrow(/not a Ticket Lab mask/);
    expect(() => encodeMask({ name: 'w', shape: [2], bits: Uint8Array.from([0, 2]) })).toThrow(MaskFormatError);
  });
});
