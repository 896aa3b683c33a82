// The binomial tail behind every ownership verdict, against exact values.
import { describe, expect, it } from 'vitest';
import { binomialThreshold, binomialUpperTail, logBinomialUpperTail, logGamma } from '../../../core/ownership/binomial';

describe('binomial tail', () => {
  it('gives exact tails: P[Bin(10, 1/2) ≥ 5] = 638/1024, P[Bin(256, 1/2) = 256] = 2^-256', () => {
    expect(binomialUpperTail(10, 5, 0.5)).toBeCloseTo(638 / 1024, 14);
    expect(binomialUpperTail(256, 256, 0.5) / 2 ** -256).toBeCloseTo(1, 10);
    expect(binomialUpperTail(5, 0, 0.3)).toBe(1);
    expect(binomialUpperTail(5, 6, 0.3)).toBe(0);
    // P[Bin(3, 0.2) ≥ 2] = 3·0.04·0.8 + 0.008.
    expect(binomialUpperTail(3, 2, 0.2)).toBeCloseTo(3 * 0.04 * 0.8 + 0.008, 14);
    // Far tails keep their exponent: 2^-2000 underflows a double, its logarithm does not.
    expect(logBinomialUpperTail(2000, 2000, 0.5)).toBeCloseTo(-2000 * Math.LN2, 8);
    expect(logGamma(11)).toBeCloseTo(Math.log(3628800), 12);
  });

  it('sets the thresholds ALGORITHMS.md §9.3 and §9.5 state for a false-positive rate of 1e-6', () => {
    expect(binomialThreshold(256, 0.5, 1e-6)).toBe(167);
    expect(binomialThreshold(100, 0.1, 1e-6)).toBe(28);
    expect(binomialUpperTail(256, 167, 0.5)).toBeLessThanOrEqual(1e-6);
    expect(binomialUpperTail(256, 166, 0.5)).toBeGreaterThan(1e-6);
    expect(binomialThreshold(4, 0.5, 1e-6)).toBe(5); // no count of 4 bits is that unlikely
  });
});
