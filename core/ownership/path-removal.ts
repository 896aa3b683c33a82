// Path removal (ALGORITHMS.md §9.4, the paper's "Scheme 1", the repo's `prune_ewp`): a thief who
// wants to change an extreme ticket's topology removes whole input→output paths through the masked
// layers. The paper's point is that such a ticket cannot lose many paths without losing accuracy;
// as an attack, the removals may also flip signature bits 1 → 0 (a pair goes entirely, every kernel
// position of it), which is what the verifier's adjacency reads.
//
// One path: start at a random input channel of the first layer it runs through (by default the
// hidden masked layers); in each of them in order, pick an output channel o among those the current input still reaches (∝ Σ|W⊙M| over the
// pair's kernel positions, or uniformly with `by: 'uniform'`, the repo's `random_path`), remove the
// pair (i, o) and continue from o. Where o is no input of the next layer (a flatten, a stage change)
// the next input is random, as the repo does; an input that reaches nothing is re-drawn among the
// inputs that still reach something (the repo re-draws until one does). Every channel can be drawn
// (the repo's randint(0, C−1) never draws the last one).
import { InvalidRequestError } from '../api/errors';
import { Rng } from '../compute/rng';
import { cloneMasks, countKept } from '../pruning/mask';
import { type AttackInput, type AttackedNetwork, maskedWeights } from './attacks';
import { entryIndex, pairGeometry } from './mask-graph';

export interface PathRemovalOptions {
  /** Paths to remove: each takes at most one channel pair out of every layer it runs through. */
  paths: number;
  /**
   * The masked layers the paths run through, in order. Default: the hidden ones (every masked layer
   * but the first and the output layer), as the paper's ticket masks every conv but the first and
   * never the classifier; a conv net's first layer (3 → 16 channels: 48 pairs) would empty in a
   * few dozen paths and measure only that.
   */
  layers?: readonly string[];
  /** How the next channel is drawn: ∝ the pair's |w| (`prune_ewp`) or uniformly (`random_path`). */
  by?: 'magnitude' | 'uniform';
}

/** One masked layer's channel pairs: how many kernel entries each keeps, and their summed |w|. */
interface LayerPairs {
  name: string;
  inputs: number;
  outputs: number;
  positions: number;
  bits: Uint8Array;
  /** Indexed o·inputs + i. */
  kept: Uint16Array;
  magnitude: Float64Array;
  /** Outputs each input still reaches. */
  reach: Uint32Array;
  removed: number;
}

function layerPairs(name: string, shape: readonly number[], bits: Uint8Array, values: ArrayLike<number> | undefined): LayerPairs {
  const g = pairGeometry(shape);
  const kept = new Uint16Array(g.inputs * g.outputs);
  const magnitude = new Float64Array(g.inputs * g.outputs);
  for (let p = 0; p < g.positions; p++) {
    for (let i = 0; i < g.inputs; i++) {
      for (let o = 0; o < g.outputs; o++) {
        const e = entryIndex(g, p, i, o);
        if (!bits[e]) continue;
        kept[o * g.inputs + i]!++;
        magnitude[o * g.inputs + i]! += Math.abs(values?.[e] ?? 0);
      }
    }
  }
  const reach = new Uint32Array(g.inputs);
  for (let o = 0; o < g.outputs; o++) for (let i = 0; i < g.inputs; i++) if (kept[o * g.inputs + i]) reach[i]!++;
  return { name, ...g, bits, kept, magnitude, reach, removed: 0 };
}

/** Index k with probability weights[k] / Σ weights (all ≥ 0, Σ > 0). */
function drawWeighted(rng: Rng, weights: Float64Array): number {
  let total = 0;
  for (const w of weights) total += w;
  let target = rng.next() * total;
  let last = -1;
  for (let k = 0; k < weights.length; k++) {
    if (weights[k]! <= 0) continue;
    last = k;
    target -= weights[k]!;
    if (target < 0) return k;
  }
  return last; // rounding left a sliver: the last candidate
}

/** Removes one path's pair from `layer`, entering at input `i`; returns the output it left by, or -1 when the layer has no pair left. */
function removeStep(layer: LayerPairs, i: number, by: 'magnitude' | 'uniform', rng: Rng): number {
  let input = i;
  if (input >= layer.inputs || layer.reach[input] === 0) {
    // Re-draw among the inputs that still reach something: rejection sampling until one does, in one draw.
    const live = new Float64Array(layer.inputs);
    for (let k = 0; k < layer.inputs; k++) live[k] = layer.reach[k]! > 0 ? 1 : 0;
    if (!live.some((v) => v > 0)) return -1;
    input = drawWeighted(rng, live);
  }
  const weights = new Float64Array(layer.outputs);
  let mass = 0;
  for (let o = 0; o < layer.outputs; o++) {
    const pair = o * layer.inputs + input;
    if (!layer.kept[pair]) continue;
    weights[o] = by === 'magnitude' ? layer.magnitude[pair]! : 1;
    mass += weights[o]!;
  }
  // Kept entries whose weights are all exactly zero: connected, but no magnitude to weigh them by.
  if (mass === 0) for (let o = 0; o < layer.outputs; o++) weights[o] = layer.kept[o * layer.inputs + input]! > 0 ? 1 : 0;
  const o = drawWeighted(rng, weights);
  for (let p = 0; p < layer.positions; p++) layer.bits[entryIndex(layer, p, input, o)] = 0;
  layer.kept[o * layer.inputs + input] = 0;
  layer.magnitude[o * layer.inputs + input] = 0;
  layer.reach[input]!--;
  layer.removed++;
  return o;
}

/** Every masked layer but the first and the last (the output layer); all of them when there are two or fewer. */
export function hiddenLayers(names: readonly string[]): string[] {
  return names.length > 2 ? names.slice(1, -1) : [...names];
}

/** The claimed ticket with `paths` paths removed (no retraining: the service fine-tunes a copy when asked). */
export function pathRemovalAttack(input: Pick<AttackInput, 'weights' | 'masks' | 'seed'>, options: PathRemovalOptions): AttackedNetwork {
  const { paths } = options;
  const by = options.by ?? 'magnitude';
  if (!Number.isInteger(paths) || paths < 1) throw new InvalidRequestError(`Path removal takes a positive whole number of paths, got ${paths}.`);
  const masks = cloneMasks(input.masks);
  const names = options.layers ?? hiddenLayers(masks.map((m) => m.name));
  const unknown = names.find((name) => !masks.some((m) => m.name === name));
  if (unknown !== undefined) throw new InvalidRequestError(`Path removal was asked to run through '${unknown}', which the ticket does not mask.`);
  if (names.length === 0) throw new InvalidRequestError('The ticket has no masked layers to remove paths from.');
  const layers = names.map((name) => {
    const m = masks.find((mask) => mask.name === name)!;
    return layerPairs(m.name, m.shape, m.bits, input.weights.find((t) => t.name === m.name)?.values);
  });
  const keptBefore = masks.reduce((n, m) => n + countKept(m.bits), 0);
  const rng = Rng.stream(input.seed, 'path-removal', by);
  for (let path = 0; path < paths; path++) {
    let channel = rng.int(layers[0]!.inputs);
    for (const layer of layers) {
      const out = removeStep(layer, channel, by, rng);
      channel = out < 0 ? Number.MAX_SAFE_INTEGER : out; // an emptied layer: the next one draws its input
    }
  }
  const keptAfter = masks.reduce((n, m) => n + countKept(m.bits), 0);
  return {
    weights: maskedWeights(input.weights, masks), masks,
    description: {
      attack: 'path-removal', paths, by, layers: names, seed: input.seed, keptBefore, keptAfter, entriesRemoved: keptBefore - keptAfter,
      pairsRemoved: Object.fromEntries(layers.map((l) => [l.name, l.removed])),
    },
  };
}
