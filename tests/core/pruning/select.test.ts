import { describe, expect, it } from 'vitest';
import { ceilFraction, layerRateBudget, sparsityBudget } from '../../../core/pruning/budget';
import { countKept, onesMask } from '../../../core/pruning/mask';
import { pruneLowest, pruneToBudget } from '../../../core/pruning/select';

describe('exact-k selection', () => {
  it('prunes exactly k entries, lowest scores first, ties by position', () => {
    const mask = onesMask('w', [6]);
    pruneLowest([{ mask, scores: Float32Array.from([0.5, 0.1, 0.1, 0.1, 0.9, 0.1]) }], 2);
    // Four entries tie at 0.1: the first two by position go, never all four.
    expect(Array.from(mask.bits)).toEqual([1, 0, 0, 1, 1, 1]);
  });

  it('never revives a pruned entry and ranks globally across tensors', () => {
    const a = { name: 'a', shape: [3], bits: Uint8Array.from([0, 1, 1]) };
    const b = onesMask('b', [3]);
    const scores = new Map([
      ['a', Float32Array.from([100, 0.2, 5])],
      ['b', Float32Array.from([0.3, 0.1, 4])],
    ]);
    pruneToBudget([a, b], scores, { scope: 'global', keep: 3, tensors: ['a', 'b'] });
    expect(Array.from(a.bits)).toEqual([0, 0, 1]);
    expect(Array.from(b.bits)).toEqual([1, 0, 1]);
  });

  it('computes IMP budgets with ceil that is exact on integers', () => {
    expect(ceilFraction(0.2, 5)).toBe(1); // 0.2·5 is 1.0000000000000002 in doubles
    expect(ceilFraction(0.2, 6)).toBe(2);
    expect(ceilFraction(0.1, 1000)).toBe(100);
    const masks = [onesMask('fc1', [10, 30]), onesMask('out', [30, 7])];
    expect(layerRateBudget(masks, { fc1: 0.2, out: 0.1 })).toEqual({ scope: 'layer', keep: { fc1: 240, out: 189 } });
    const budget = sparsityBudget(masks, 0.9, 'global', ['fc1', 'out']);
    expect(budget).toEqual({ scope: 'global', keep: 51, tensors: ['fc1', 'out'] });
    expect(countKept(masks[0]!.bits)).toBe(300);
  });
});
