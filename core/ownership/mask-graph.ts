// A layer's mask seen as a bipartite graph from its input channels to its output channels
// (ALGORITHMS.md §9.1): the edge i→o exists iff any kernel entry of the (i, o) pair is kept. The
// white-box signature lives in this channel adjacency, not in single kernel entries, so it reads
// the same whichever of a conv pair's kh·kw positions survive.
//
// The signature's window is a graphology graph (at most 2·16 nodes and 256 edges), which is what
// extraction and the verdict's evidence read. Whole-layer work (edge counts of layers with millions of
// entries, the embedding's repairs) stays on flat typed arrays: a graph object per entry would cost
// far more than the signature's sub-millisecond budget.
import { DirectedGraph } from 'graphology';
import { MaskFormatError } from '../api/errors';
import type { ParamSpec } from '../models/architectures';
import type { WeightSet } from '../models/weights';
import type { LayerMask, MaskSet } from '../pruning/mask';

/**
 * How a kernel's flat entries map to channel pairs. TF.js layouts: dense [in, out] and conv
 * [kh, kw, in, out] are both [positions…, in, out], so entry (p, i, o) sits at (p·in + i)·out + o,
 * with one position for a dense kernel and kh·kw for a conv.
 */
export interface PairGeometry {
  inputs: number;
  outputs: number;
  /** Kernel entries per (input, output) pair: 1 for dense, kh·kw for conv. */
  positions: number;
}

export function pairGeometry(shape: readonly number[]): PairGeometry {
  if (shape.length < 2) throw new MaskFormatError(`A kernel of shape [${shape.join(', ')}] has no input and output channels to read a graph from.`);
  const inputs = shape[shape.length - 2]!;
  const outputs = shape[shape.length - 1]!;
  const positions = shape.slice(0, -2).reduce((a, b) => a * b, 1);
  return { inputs, outputs, positions };
}

/** Flat index of kernel entry (position p, input i, output o). */
export function entryIndex(g: PairGeometry, p: number, i: number, o: number): number {
  return (p * g.inputs + i) * g.outputs + o;
}

/** Flat indices of every kernel entry of the window's channel pairs (outputs row…row+size, inputs col…col+size). */
export function windowEntries(shape: readonly number[], row: number, col: number, size: number): number[] {
  const g = pairGeometry(shape);
  const entries: number[] = [];
  for (let p = 0; p < g.positions; p++) {
    for (let o = row; o < row + size; o++) for (let i = col; i < col + size; i++) entries.push(entryIndex(g, p, i, o));
  }
  return entries;
}

/**
 * Kept entries per channel pair, indexed o·inputs + i (row = output, column = input, as A[o][i]).
 * A pair is an edge of the graph iff its count is positive.
 */
export function pairCounts(bits: Uint8Array, g: PairGeometry): Uint16Array {
  const counts = new Uint16Array(g.inputs * g.outputs);
  const perPosition = g.inputs * g.outputs;
  for (let p = 0; p < g.positions; p++) {
    const base = p * perPosition;
    for (let i = 0; i < g.inputs; i++) {
      const row = base + i * g.outputs;
      for (let o = 0; o < g.outputs; o++) counts[o * g.inputs + i]! += bits[row + o]!;
    }
  }
  return counts;
}

/** Node keys of the window graph: an input channel i and an output channel o of the layer. */
export const inputNode = (i: number): string => `in:${i}`;
export const outputNode = (o: number): string => `out:${o}`;

export interface ChannelNode {
  side: 'input' | 'output';
  channel: number;
}

export interface ChannelEdge {
  /** Kept kernel entries of the pair: 1..positions. */
  kept: number;
}

export type WindowGraph = DirectedGraph<ChannelNode, ChannelEdge>;

/**
 * The bipartite subgraph of a size×size window whose top-left pair is (row, col): every input channel
 * col…col+size and output channel row…row+size as a node (isolated ones included), an edge i→o per
 * kept pair, weighted by its kept entries.
 */
export function windowGraph(bits: Uint8Array, g: PairGeometry, row: number, col: number, size: number): WindowGraph {
  const graph: WindowGraph = new DirectedGraph<ChannelNode, ChannelEdge>();
  for (let c = 0; c < size; c++) graph.addNode(inputNode(col + c), { side: 'input', channel: col + c });
  for (let r = 0; r < size; r++) graph.addNode(outputNode(row + r), { side: 'output', channel: row + r });
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      let kept = 0;
      for (let p = 0; p < g.positions; p++) kept += bits[entryIndex(g, p, col + c, row + r)]!;
      if (kept > 0) graph.addDirectedEdge(inputNode(col + c), outputNode(row + r), { kept });
    }
  }
  return graph;
}

/** The window graph's adjacency A[o][i] ∈ {0, 1}, row-major: cell r·size + c is the edge (col + c) → (row + r). */
export function adjacencyOf(graph: WindowGraph, row: number, col: number, size: number): Uint8Array {
  const a = new Uint8Array(size * size);
  graph.forEachEdge((_edge, _attributes, source, target, sourceAttributes, targetAttributes) => {
    a[(targetAttributes.channel - row) * size + (sourceAttributes.channel - col)] = 1;
  });
  return a;
}

/** The channel adjacency A[o][i] ∈ {0, 1} of a size×size window whose top-left pair is (row, col), row-major. */
export function windowAdjacency(bits: Uint8Array, g: PairGeometry, row: number, col: number, size: number): Uint8Array {
  return adjacencyOf(windowGraph(bits, g, row, col, size), row, col, size);
}

/** The layer named `name` with exactly `shape`, or a MaskFormatError that names both. */
export function requireLayer(masks: MaskSet, name: string, shape: readonly number[]): LayerMask {
  const mask = masks.find((m) => m.name === name);
  if (!mask) {
    const names = masks.map((m) => m.name);
    throw new MaskFormatError(
      `The signature lives in layer '${name}' [${shape.join(', ')}], but this mask set has no such layer ` +
        `(it has ${names.slice(0, 6).join(', ')}${names.length > 6 ? ', ...' : ''}): check the suspect has the claim's architecture.`,
    );
  }
  const same = mask.shape.length === shape.length && mask.shape.every((d, k) => d === shape[k]);
  if (!same || mask.bits.length !== shape.reduce((a, b) => a * b, 1)) {
    throw new MaskFormatError(
      `Layer '${name}' has shape [${mask.shape.join(', ')}] in this mask set, but the signature was planned for ` +
        `[${shape.join(', ')}]: the suspect is not of the claim's architecture.`,
    );
  }
  return mask;
}

/**
 * The mask of a maskless suspect (ALGORITHMS.md §9.3): entry kept iff w ≠ 0, for every prunable
 * kernel. With `keep`, the named layers instead keep their `keep` entries of largest |w|: for a
 * suspect densified by fine-tuning, scored at the claim's per-layer count (report both).
 */
export function masksFromWeights(weights: WeightSet, specs: readonly ParamSpec[], keep?: ReadonlyMap<string, number>): MaskSet {
  return specs
    .filter((s) => s.prunable)
    .map((spec) => {
      const tensor = weights.find((t) => t.name === spec.name);
      if (!tensor) throw new MaskFormatError(`The suspect's weights have no tensor '${spec.name}': they are not of the claim's architecture.`);
      const bits = new Uint8Array(tensor.values.length);
      const k = keep?.get(spec.name);
      if (k === undefined) {
        for (let j = 0; j < bits.length; j++) bits[j] = tensor.values[j] !== 0 ? 1 : 0;
      } else {
        // Stable order on ties (position), so the derived mask repeats exactly.
        const order = Array.from({ length: bits.length }, (_, j) => j);
        order.sort((a, b) => Math.abs(tensor.values[b]!) - Math.abs(tensor.values[a]!) || a - b);
        for (let j = 0; j < Math.min(k, bits.length); j++) bits[order[j]!] = 1;
      }
      return { name: spec.name, shape: [...tensor.shape], bits };
    });
}
