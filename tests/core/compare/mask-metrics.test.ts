import { describe, expect, it } from 'vitest';
import { compareMasks } from '../../../core/compare/mask-metrics';

const mask = (name: string, bits: number[]) => ({ name, shape: [bits.length], bits: Uint8Array.from(bits) });

describe('mask similarity', () => {
  it('computes IoU, Hamming distance and the chance IoU per tensor and in total', () => {
    const a = [mask('x', [1, 1, 0, 0]), mask('y', [1, 0, 1, 0, 1, 0])];
    const b = [mask('x', [1, 0, 1, 0]), mask('y', [1, 0, 1, 0, 1, 0])];
    const c = compareMasks(a, b);
    const x = c.layers.find((l) => l.name === 'x')!;
    expect(x.iou).toBeCloseTo(1 / 3);
    expect(x.hamming).toBe(2);
    expect(x.hammingFraction).toBe(0.5);
    expect(x.chanceIou).toBeCloseTo(0.25 / (0.5 + 0.5 - 0.25));
    expect(c.layers.find((l) => l.name === 'y')!.iou).toBe(1);
    expect(c.total.iou).toBeCloseTo(4 / 6);
    expect(c.total.hamming).toBe(2);
    expect(c.unmatched).toEqual([]);
  });

  it('reports tensors present in one mask only, or with other shapes', () => {
    const c = compareMasks([mask('x', [1, 0]), mask('z', [1])], [mask('x', [1, 0, 1]), mask('w', [0])]);
    expect(c.layers).toEqual([]);
    expect(c.unmatched.sort()).toEqual(['w', 'x', 'z']);
  });
});

describe('overlap |A∩B|/|A|', () => {
  it('is the share of A kept in B, beside its chance value d_b, checked by hand', () => {
    // A keeps 2 of 5, B keeps 3 of 5, one entry in both.
    const c = compareMasks([mask('x', [1, 1, 0, 0, 0])], [mask('x', [1, 0, 1, 1, 0])]);
    expect(c.total.both).toBe(1);
    expect(c.total.overlap).toBe(1 / 2);
    // Independent B: each of A's entries is kept with probability d_b = 3/5.
    expect(c.total.chanceOverlap).toBe(3 / 5);
    expect(c.total.iou).toBe(1 / 4);
    expect(c.total.chanceIou).toBeCloseTo((0.4 * 0.6) / (0.4 + 0.6 - 0.4 * 0.6), 12);
  });

  it('is 1 for an empty A (vacuously) and in the total sums counts over tensors', () => {
    const c = compareMasks([mask('x', [0, 0]), mask('y', [1, 1, 1, 0])], [mask('x', [1, 0]), mask('y', [1, 0, 0, 1])]);
    expect(c.layers.find((l) => l.name === 'x')!.overlap).toBe(1);
    expect(c.total.overlap).toBe(1 / 3);
    expect(c.total.chanceOverlap).toBe(3 / 6);
  });
});
