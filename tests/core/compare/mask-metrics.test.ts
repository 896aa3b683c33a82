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
