import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { sparsityBudget } from '../../../core/pruning/budget';
import { erkDensities, erkParams, erkStrategy } from '../../../core/pruning/erk';
import { type MaskSet, countKept, onesMask } from '../../../core/pruning/mask';

// conv [3,3,2,4]: n 72, ERK raw 12/72, ER raw 6/8; dense [10,20]: n 200, raw 30/200; [2,2]: n 4, raw 1.
const shapes = { conv: [3, 3, 2, 4], fc: [10, 20], tiny: [2, 2] };

function masksOf(s: Record<string, number[]>): MaskSet {
  return Object.entries(s).map(([name, shape]) => onesMask(name, shape));
}

const defaults = erkParams.parse({});

describe('ERK densities', () => {
  it('match a hand computation, making the tiny layer dense (ERK)', () => {
    // Loop 1: rhs 0.5·276 = 138, divisor 12 + 30 + 4 = 46, ε = 3, ε·raw(tiny) = 3 > 1: tiny dense.
    // Loop 2: rhs 0.5·272 − 0.5·4 = 134, divisor 42, ε = 134/42; largest ε·raw = 67/126 ≤ 1.
    const d = erkDensities(shapes, 0.5, true);
    expect(d.tiny).toBe(1);
    expect(d.conv).toBeCloseTo(67 / 126, 12);
    expect(d.fc).toBeCloseTo(67 / 140, 12);
  });

  it('match a hand computation with plain ER, two layers made dense in turn', () => {
    // Loop 1: ε = 138/88, tiny dense. Loop 2: ε = 134/84, ε·0.75 > 1: conv dense.
    // Loop 3: rhs 0.5·200 − 0.5·76 = 62, divisor 30: d(fc) = 62/30 · 0.15 = 0.31.
    const d = erkDensities(shapes, 0.5, false);
    expect(d.tiny).toBe(1);
    expect(d.conv).toBe(1);
    expect(d.fc).toBeCloseTo(0.31, 12);
  });

  it('keep d·Σn entries in total on the LTH zoo', () => {
    for (const id of ['lenet-300-100', 'conv-6']) {
      const kernels = paramSpecs(architecture(id), [32, 32, 3], 10).filter((s) => s.prunable);
      const total = kernels.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
      for (const density of [0.2, 0.01, 0.001]) {
        for (const kernelAware of [true, false]) {
          const d = erkDensities(Object.fromEntries(kernels.map((s) => [s.name, s.shape])), density, kernelAware);
          const kept = kernels.reduce((n, s) => n + d[s.name]! * s.shape.reduce((a, b) => a * b, 1), 0);
          expect(kept / total).toBeCloseTo(density, 9);
          for (const v of Object.values(d)) expect(v > 0 && v <= 1).toBe(true);
        }
      }
    }
  });

  it('are all 0 at density 0 and all 1 at density 1', () => {
    expect(erkDensities(shapes, 0, true)).toEqual({ conv: 0, fc: 0, tiny: 0 });
    expect(erkDensities(shapes, 1, true)).toEqual({ conv: 1, fc: 1, tiny: 1 });
  });
});

describe('ERK strategy', () => {
  it('keeps exactly round(d_l · n_l) entries per layer, the same ones for the same seed', async () => {
    const masks = masksOf(shapes);
    const budget = sparsityBudget(masks, 0.5, 'global', Object.keys(shapes));
    const run = (seed: number) => erkStrategy.prune({ weights: [], masks, budget, params: defaults, seed });
    const a = await run(7);
    // 67/126·72 = 38.29 → 38; 67/140·200 = 95.71 → 96; tiny dense.
    expect(a.map((m) => countKept(m.bits))).toEqual([38, 96, 4]);
    expect(masks.every((m) => countKept(m.bits) === m.bits.length)).toBe(true); // input untouched
    const b = await run(7);
    const c = await run(8);
    expect(b.map((m) => Array.from(m.bits))).toEqual(a.map((m) => Array.from(m.bits)));
    expect(c.map((m) => Array.from(m.bits))).not.toEqual(a.map((m) => Array.from(m.bits)));
  });

  it('never revives a pruned entry; a layer sparser than its ERK count keeps all it has', async () => {
    const masks = masksOf(shapes);
    const fc = masks[1]!;
    for (let i = 0; i < fc.bits.length; i += 2) fc.bits[i] = 0; // 100 of 200 kept, ERK wants 96
    const tiny = masks[2]!;
    tiny.bits[0] = 0; // ERK wants it dense: 3 stay
    const budget = { scope: 'global' as const, keep: 138, tensors: Object.keys(shapes) };
    const next = await erkStrategy.prune({ weights: [], masks, budget, params: defaults, seed: 1 });
    expect(next.map((m) => countKept(m.bits))).toEqual([38, 96, 3]);
    for (const [l, m] of next.entries()) {
      for (let i = 0; i < m.bits.length; i++) if (!masks[l]!.bits[i]) expect(m.bits[i]).toBe(0);
    }
  });

  it('leaves tensors outside the budget alone and refuses a layer budget', async () => {
    const masks = masksOf(shapes);
    const next = await erkStrategy.prune({ weights: [], masks, budget: { scope: 'global', keep: 10, tensors: ['fc'] }, params: defaults, seed: 1 });
    expect(next.map((m) => countKept(m.bits))).toEqual([72, 10, 4]);
    await expect(erkStrategy.prune({ weights: [], masks, budget: { scope: 'layer', keep: { fc: 10 } }, params: defaults, seed: 1 })).rejects.toThrow(InvalidRequestError);
    await expect(erkStrategy.prune({ weights: [], masks, budget: { scope: 'layer', keep: { fc: 10 } }, params: defaults, seed: 1 })).rejects.toThrow(/per-layer densities/);
  });

  it('has params with defaults and rejects unknown ones', () => {
    expect(erkParams.parse({})).toEqual({ kernelAware: true });
    expect(erkParams.parse({ kernelAware: false })).toEqual({ kernelAware: false });
    expect(() => erkParams.parse({ kernel: false })).toThrow();
  });
});
