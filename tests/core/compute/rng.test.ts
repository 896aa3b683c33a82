import { describe, expect, it } from 'vitest';
import { Rng } from '../../../core/compute/rng';

describe('Rng', () => {
  it('repeats a stream exactly from its seed and labels', () => {
    const a = Rng.stream(42, 'init');
    const b = Rng.stream(42, 'init');
    expect(Array.from({ length: 100 }, () => a.nextU32())).toEqual(Array.from({ length: 100 }, () => b.nextU32()));
  });

  it('gives different streams for different seeds or labels', () => {
    const first = (r: Rng) => Array.from({ length: 8 }, () => r.nextU32());
    const base = first(Rng.stream(1, 'init'));
    expect(first(Rng.stream(2, 'init'))).not.toEqual(base);
    expect(first(Rng.stream(1, 'data-order'))).not.toEqual(base);
    expect(first(Rng.stream(1, 'data-order', 0))).not.toEqual(first(Rng.stream(1, 'data-order', 1)));
  });

  it('draws integers in range, uniform enough, and valid permutations', () => {
    const rng = Rng.stream(5, 'ints');
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60_000; i++) counts[rng.int(6)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
    const p = Array.from(Rng.stream(5, 'perm').permutation(1000));
    expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });

  it('draws standard normals with mean 0 and variance 1', () => {
    const rng = Rng.stream(9, 'normal');
    let sum = 0;
    let sumSq = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const z = rng.normal();
      sum += z;
      sumSq += z * z;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.02);
    expect(Math.abs(sumSq / n - 1)).toBeLessThan(0.02);
  });
});
