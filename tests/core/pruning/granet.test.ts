import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { Rng } from '../../../core/compute/rng';
import { architecture } from '../../../core/models/architectures';
import type { WeightSet } from '../../../core/models/weights';
import { ceilFraction } from '../../../core/pruning/budget';
import { cosineRegrowthRate, granetStep, granetStrategy } from '../../../core/pruning/granet';
import { type MaskSet, countKept } from '../../../core/pruning/mask';
import { pruningStrategy } from '../../../core/pruning/registry';

const tensor = (name: string, shape: number[], values: number[]) => ({ name, shape, values: Float32Array.from(values) });
const mask = (name: string, shape: number[], bits: number[]) => ({ name, shape, bits: Uint8Array.from(bits) });
const bitsOf = (masks: MaskSet) => Object.fromEntries(masks.map((m) => [m.name, Array.from(m.bits)]));

describe('GraNet regrowth rate', () => {
  it('follows a cosine from ρ0 to the final rate over training, both ends exact', () => {
    expect(cosineRegrowthRate(0, 0.5, 0.005)).toBe(0.5);
    expect(cosineRegrowthRate(1, 0.5, 0.005)).toBe(0.005);
    expect(cosineRegrowthRate(0.5, 0.5, 0.005)).toBeCloseTo(0.2525, 12);
    expect(cosineRegrowthRate(0.25, 0.5, 0.005)).toBeCloseTo(0.005 + 0.495 * (1 + Math.SQRT1_2) / 2, 12);
  });
});

describe('GraNet mask update', () => {
  // a [2,3]: all active. b [4]: b1 pruned (weight 0).
  const weights: WeightSet = [tensor('a', [2, 3], [0.9, -0.1, 0.5, 0.05, -0.7, 0.3]), tensor('b', [4], [0.2, 0, -0.6, 0.4])];
  const gradients: WeightSet = [tensor('a', [2, 3], [5, 0.2, -0.4, 3, 9, -0.1]), tensor('b', [4], [-1, 2, 0.5, 2])];
  const masks = [mask('a', [2, 3], [1, 1, 1, 1, 1, 1]), mask('b', [4], [1, 0, 1, 1])];

  it('prunes globally to the budget, then swaps ceil(ρ·nnz) per layer by |w| out and dense |∂L/∂w| in (hand-computed)', async () => {
    // Pruning, global keep 6 of 9 active: |w| 0.05 (a3), 0.1 (a1), 0.2 (b0) go.
    //   a [1,0,1,0,1,1] (4), b [0,0,1,1] (2).
    // Regeneration at ρ = 0.5: a removes ceil(2) = 2 smallest active, 0.3 (a5) and 0.5 (a2); of the
    //   mask-0 entries a1 0.2, a2 0.4, a3 3, a5 0.1 it regrows a3 and a2 (just removed, eligible).
    //   The active a0, a4 have larger gradients but are no candidates.
    // b removes 1, 0.4 (b3); of b0 1, b1 2, b3 2 it regrows one: b1 and b3 tie, the lower index wins.
    const step = granetStep({ weights, masks, budget: { scope: 'global', keep: 6, tensors: ['a', 'b'] }, regrowthRate: 0.5, gradients });
    expect(bitsOf(step.afterPruning)).toEqual({ a: [1, 0, 1, 0, 1, 1], b: [0, 0, 1, 1] });
    expect(bitsOf(step.masks)).toEqual({ a: [1, 0, 1, 1, 1, 0], b: [0, 1, 1, 0] });
    expect(step.pruned).toBe(3);
    expect(step.regrown).toBe(3);
    // The strategy is the same update, ρ from the cosine at `progress` (0: ρ0); inputs untouched.
    const viaRegistry = await pruningStrategy<{ regrowthRate: number }>('granet').prune({
      weights, masks, budget: { scope: 'global', keep: 6, tensors: ['a', 'b'] }, params: { regrowthRate: 0.5 }, seed: 0,
      context: { arch: architecture('lenet-300-100'), specs: [], gradients },
    });
    expect(bitsOf(viaRegistry)).toEqual(bitsOf(step.masks));
    expect(bitsOf(masks)).toEqual({ a: [1, 1, 1, 1, 1, 1], b: [1, 0, 1, 1] });
  });

  it('without regrowth (GMP) stops after the pruning step and needs no gradients', async () => {
    const gmp = await granetStrategy.prune({ weights, masks, budget: { scope: 'global', keep: 6, tensors: ['a', 'b'] }, params: { regrow: false, progress: 0, regrowthRate: 0.5, finalRegrowthRate: 0.005 }, seed: 0 });
    expect(bitsOf(gmp)).toEqual({ a: [1, 0, 1, 0, 1, 1], b: [0, 0, 1, 1] });
  });

  it('keeps only |w| strictly above a zero threshold: active zeros go, pruned entries never come back', () => {
    // 4 active, two of them exactly 0; the budget asks for 5. Only the two non-zero weights stay.
    const w = [tensor('c', [6], [0, 0.3, 0, 0, -0.2, 0])];
    const m = [mask('c', [6], [1, 1, 0, 1, 1, 0])];
    const step = granetStep({ weights: w, masks: m, budget: { scope: 'global', keep: 5, tensors: ['c'] }, regrowthRate: 0 });
    expect(bitsOf(step.masks)).toEqual({ c: [0, 1, 0, 0, 1, 0] });
    // Tensors the budget does not name are not pruned, zeros included (regeneration-only updates).
    const untouched = granetStep({ weights: w, masks: m, budget: { scope: 'layer', keep: {} }, regrowthRate: 0 });
    expect(bitsOf(untouched.masks)).toEqual(bitsOf(m));
  });

  it('leaves every layer\'s count unchanged in regeneration, and regrows the largest |∂L/∂w| among the mask-0 entries', () => {
    const rng = Rng.stream(7, 'granet-test');
    const shapes: Record<string, number[]> = { conv: [3, 3, 2, 4], fc: [20, 10], out: [10, 3] };
    for (const rate of [0.005, 0.1, 0.5, 1]) {
      const names = Object.keys(shapes);
      const masks = names.map((n) => mask(n, shapes[n]!, Array.from({ length: shapes[n]!.reduce((a, b) => a * b) }, () => (rng.next() < 0.4 ? 1 : 0))));
      const weights = masks.map((m) => tensor(m.name, m.shape, Array.from(m.bits, (b) => (b ? rng.normal() : 0))));
      const gradients = masks.map((m) => tensor(m.name, m.shape, Array.from(m.bits, () => rng.normal())));
      const step = granetStep({ weights, masks, budget: { scope: 'layer', keep: {} }, regrowthRate: rate, gradients });
      let regrown = 0;
      for (const [i, before] of masks.entries()) {
        const after = step.masks[i]!;
        const active = countKept(before.bits);
        expect(countKept(after.bits)).toBe(active);
        regrown += ceilFraction(rate, active);
        // Regrown = kept now, pruned before: each beats every mask-0 entry left out, by |g|.
        const g = gradients[i]!.values;
        const left = Array.from(after.bits.keys()).filter((k) => !after.bits[k] && !before.bits[k]).map((k) => Math.abs(g[k]!));
        const grown = Array.from(after.bits.keys()).filter((k) => after.bits[k] && !before.bits[k]).map((k) => Math.abs(g[k]!));
        if (grown.length > 0 && left.length > 0) expect(Math.min(...grown)).toBeGreaterThanOrEqual(Math.max(...left));
      }
      expect(step.regrown).toBe(regrown);
      expect(step.pruned).toBe(0);
    }
  });

  it('refuses bad options and missing gradients with InvalidRequestError', async () => {
    const input = { weights, masks, budget: { scope: 'global' as const, keep: 6, tensors: ['a', 'b'] }, seed: 0 };
    for (const params of [{ regrowthRate: 1.5 }, { regrowthRate: -0.1 }, { finalRegrowthRate: 2 }, { progress: 1.2 }, { rate: 0.5 }]) {
      await expect(granetStrategy.prune({ ...input, params: params as never })).rejects.toThrow(InvalidRequestError);
    }
    await expect(granetStrategy.prune({ ...input, params: {} as never })).rejects.toThrow(/dense gradient/);
  });
});
