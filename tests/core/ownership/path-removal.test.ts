// Path removal (ALGORITHMS.md §9.4): whole channel pairs go, one per masked layer per path, drawn as
// the scheme says, and nothing else changes.
import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import type { WeightSet } from '../../../core/models/weights';
import { entryIndex, pairCounts, pairGeometry } from '../../../core/ownership/mask-graph';
import { pathRemovalAttack } from '../../../core/ownership/path-removal';
import { type MaskSet, countKept } from '../../../core/pruning/mask';

/** A tensor and a mask per shape, weights |w| = 1 + entry index mod 7 (signs alternate), every entry kept. */
function net(shapes: number[][], fill: (name: string, e: number) => number = (_n, e) => (e % 2 ? -1 : 1) * (1 + (e % 7))): { weights: WeightSet; masks: MaskSet } {
  const names = shapes.map((_, k) => `layer${k}/kernel`);
  return {
    weights: shapes.map((shape, k) => ({ name: names[k]!, shape, values: Float32Array.from({ length: shape.reduce((a, b) => a * b) }, (_, e) => fill(names[k]!, e)) })),
    masks: shapes.map((shape, k) => ({ name: names[k]!, shape, bits: new Uint8Array(shape.reduce((a, b) => a * b)).fill(1) })),
  };
}

const edges = (m: MaskSet[number]): number => pairCounts(m.bits, pairGeometry(m.shape)).reduce((a, c) => a + (c > 0 ? 1 : 0), 0);

describe('path removal', () => {
  it('takes one whole channel pair out of every layer per path, only removes, and zeroes what it removes', () => {
    // A conv [kh=3, kw=3, 4, 8], a conv [3, 3, 8, 8] and a dense layer over a flatten [128, 10]: outputs of the
    // second conv (0..7) are valid inputs of the dense layer too, so paths run through all three.
    const base = net([[3, 3, 4, 8], [3, 3, 8, 8], [128, 10]]);
    const all = { layers: base.masks.map((m) => m.name) };
    const attacked = pathRemovalAttack({ ...base, seed: 3 }, { paths: 5, ...all });
    expect(attacked.description.pairsRemoved).toEqual({ 'layer0/kernel': 5, 'layer1/kernel': 5, 'layer2/kernel': 5 });
    attacked.masks.forEach((m, k) => {
      const before = base.masks[k]!;
      expect(edges(before) - edges(m)).toBe(5);
      // A removed pair loses every kernel position: entries removed = 5 pairs × positions.
      expect(countKept(before.bits) - countKept(m.bits)).toBe(5 * pairGeometry(m.shape).positions);
      m.bits.forEach((bit, e) => {
        expect(bit).toBeLessThanOrEqual(before.bits[e]!);
        if (!bit) expect(attacked.weights[k]!.values[e]).toBe(0);
        else expect(attacked.weights[k]!.values[e]).toBe(base.weights[k]!.values[e]);
      });
    });
    expect(base.masks.every((m) => countKept(m.bits) === m.bits.length)).toBe(true); // the input is untouched
    expect(pathRemovalAttack({ ...base, seed: 3 }, { paths: 5, ...all }).masks).toEqual(attacked.masks);
    expect(pathRemovalAttack({ ...base, seed: 4 }, { paths: 5, ...all }).masks).not.toEqual(attacked.masks);
  });

  it('runs through the hidden layers by default, leaving the first and the output layer whole', () => {
    const base = net([[3, 3, 3, 4], [3, 3, 4, 8], [3, 3, 8, 8], [128, 10]]);
    const attacked = pathRemovalAttack({ ...base, seed: 1 }, { paths: 4 });
    expect(attacked.description.layers).toEqual(['layer1/kernel', 'layer2/kernel']);
    expect(attacked.description.pairsRemoved).toEqual({ 'layer1/kernel': 4, 'layer2/kernel': 4 });
    expect(attacked.masks[0]).toEqual(base.masks[0]);
    expect(attacked.masks[3]).toEqual(base.masks[3]);
    expect(() => pathRemovalAttack({ ...base, seed: 1 }, { paths: 4, layers: ['nope'] })).toThrow(/does not mask/);
  });

  it('draws the next channel in proportion to the pair\'s |w|, or uniformly over the connected ones', () => {
    // Input i → output 0 has |w| = 1000, → output 1 has |w| = 1: by magnitude output 0 goes first almost always.
    const base = net([[3, 2]], (_n, e) => (e % 2 === 0 ? 1000 : 1));
    let heavy = 0;
    let heavyUniform = 0;
    for (let seed = 0; seed < 200; seed++) {
      const g = pairGeometry([3, 2]);
      const byMagnitude = pathRemovalAttack({ ...base, seed }, { paths: 1 }).masks[0]!.bits;
      const uniform = pathRemovalAttack({ ...base, seed }, { paths: 1, by: 'uniform' }).masks[0]!.bits;
      for (let i = 0; i < 3; i++) {
        if (!byMagnitude[entryIndex(g, 0, i, 0)]) heavy++;
        if (!uniform[entryIndex(g, 0, i, 0)]) heavyUniform++;
      }
    }
    expect(heavy).toBeGreaterThanOrEqual(197); // P[light] = 1/1001 per draw
    expect(heavyUniform).toBeGreaterThan(70); // Bin(200, 1/2): 70..130 with probability > 1 − 1e-5
    expect(heavyUniform).toBeLessThan(130);
  });

  it('draws every input channel, the last included, and re-draws one that reaches nothing', () => {
    const base = net([[3, 1]]);
    const starts = new Set<number>();
    for (let seed = 0; seed < 60; seed++) {
      const bits = pathRemovalAttack({ ...base, seed }, { paths: 1 }).masks[0]!.bits;
      starts.add(bits.indexOf(0));
    }
    expect([...starts].sort()).toEqual([0, 1, 2]);
    // Three paths through a 3×1 layer: the second and third must re-draw among the inputs left, so all go.
    const emptied = pathRemovalAttack({ ...base, seed: 0 }, { paths: 3 });
    expect(countKept(emptied.masks[0]!.bits)).toBe(0);
    // More paths than pairs: the layer empties, and the rest of the paths pass through it.
    const more = pathRemovalAttack({ ...net([[3, 1], [1, 4]]), seed: 0 }, { paths: 6 }); // two layers: both are run through
    expect(more.description.pairsRemoved).toEqual({ 'layer0/kernel': 3, 'layer1/kernel': 4 });
  });

  it('refuses a count that is no positive whole number', () => {
    const base = net([[3, 1]]);
    expect(() => pathRemovalAttack({ ...base, seed: 0 }, { paths: 0 })).toThrow(InvalidRequestError);
    expect(() => pathRemovalAttack({ ...base, seed: 0 }, { paths: 1.5 })).toThrow(InvalidRequestError);
  });
});
