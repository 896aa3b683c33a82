import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { magnitudeStrategy } from '../../../core/pruning/magnitude';
import { onesMask } from '../../../core/pruning/mask';
import { pruningStrategy, pruningStrategyIds, registerPruningStrategy } from '../../../core/pruning/registry';
import type { PruningStrategy } from '../../../core/pruning/strategy';

describe('pruning strategy registry', () => {
  it('finds strategies by id and names the known ones for an unknown id', async () => {
    expect(pruningStrategyIds()).toEqual(['magnitude', 'random', 'erk', 'snip', 'grasp', 'synflow', 'jackpot', 'granet']);
    const strategy = pruningStrategy('magnitude');
    const masks = await strategy.prune({
      weights: [{ name: 'w', shape: [4], values: Float32Array.from([0.1, -3, 2, -0.5]) }],
      masks: [onesMask('w', [4])],
      budget: { scope: 'layer', keep: { w: 2 } },
      params: {},
      seed: 0,
    });
    expect(Array.from(masks[0]!.bits)).toEqual([0, 1, 1, 0]);
    expect(() => pruningStrategy('obd')).toThrow(InvalidRequestError);
    expect(() => pruningStrategy('obd')).toThrow(/Known: magnitude, random, erk, snip, grasp, synflow, jackpot, granet/);
  });

  it('refuses a second strategy with a taken id', () => {
    expect(() => registerPruningStrategy(magnitudeStrategy as PruningStrategy<never>)).toThrow(/registered twice/);
  });
});
