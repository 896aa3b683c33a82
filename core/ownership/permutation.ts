// Hidden-unit permutations: the attack the ownership paper does not address (issue Step 5, item 5;
// ALGORITHMS.md §9.3 "Known limit"), and its undoing. Reordering a layer's units, together with the
// next layer's inputs, leaves the network's function unchanged and moves every channel pair the graph
// signature reads. Verification therefore first aligns the suspect's units to the claimed ticket's,
// group by group from the input, by solving an assignment problem on their weight and mask vectors.
//
// Units are handled in channel groups: the channels one permutation must move together, with every
// tensor axis that runs over them. A dense or conv layer opens a group (its kernel's output axis, its
// bias, the BatchNorm after it, the next layer's input axis); a residual block ties its body's output
// to its shortcut's, so a stage's residual stream is one group however many blocks write to it, while
// each block's inner channels (conv1 → conv2) are a group of their own. The option-A shortcut writes
// stage s's stream into the middle of stage s+1's wider stream and zeros around it: that wider group
// is tied to its parent (its middle units move exactly as the parent's do) and only its padded
// positions, zero on the shortcut, permute freely among themselves. This is every permutation the
// stream admits, so the function is preserved exactly. The network's input channels and the output
// layer's classes are never permuted.
import { InvalidRequestError } from '../api/errors';
import { Rng } from '../compute/rng';
import type { Architecture, LayerSpec, ParamSpec } from '../models/architectures';
import type { NamedTensor, WeightSet } from '../models/weights';
import type { LayerMask, MaskSet } from '../pruning/mask';
import { solveAssignment } from './assignment';

/** One axis of a tensor that runs over a group's units, the tensor seen as [outer, size, inner]. */
export interface GroupAxis {
  tensor: string;
  outer: number;
  size: number;
  inner: number;
}

export interface ChannelGroup {
  /** The first layer writing these channels: 'fc1', 'blocks.0.conv1'; a residual stream is named by its first writer ('conv'). */
  name: string;
  size: number;
  axes: GroupAxis[];
  /**
   * An option-A stream: its units offset … offset + width − 1 are the parent group's, in the parent's
   * order (parent null: the network's input, never permuted); the rest, zero on the shortcut, permute freely.
   */
  tie?: { parent: string | null; offset: number; width: number };
}

/** permutations[group][j]: the unit of the original network now at position j (new[j] = old[π[j]]). */
export interface PermutedNetwork {
  weights: WeightSet;
  masks: MaskSet;
  permutations: Record<string, Int32Array>;
}

export interface Alignment {
  /** The suspect's tensors in the reference's unit order. */
  weights: WeightSet;
  masks: MaskSet;
  /** permutations[group][j]: the suspect's unit matched to the reference's unit j (aligned[j] = suspect[σ[j]]). */
  permutations: Record<string, Int32Array>;
  /**
   * Summed cost of the matched pairs: squared weight distance in units of each tensor's mean square,
   * plus mismatched mask bits. 0 for an exact permuted copy; grows with fine-tuning noise.
   */
  cost: number;
  groupCosts: Record<string, number>;
}

interface GroupNode {
  name: string;
  size: number;
  fixed: boolean;
  tie: { parent: number; offset: number; width: number } | undefined;
  axes: GroupAxis[];
  up: number;
}

/** Union-find over channel groups; the root of a union is its earliest group, so roots come in network order. */
class GroupGraph {
  readonly nodes: GroupNode[] = [];

  create(name: string, size: number, fixed: boolean, tie?: GroupNode['tie']): number {
    this.nodes.push({ name, size, fixed, tie, axes: [], up: this.nodes.length });
    return this.nodes.length - 1;
  }

  find(g: number): number {
    while (this.nodes[g]!.up !== g) g = this.nodes[g]!.up = this.nodes[this.nodes[g]!.up]!.up;
    return g;
  }

  node(g: number): GroupNode {
    return this.nodes[this.find(g)]!;
  }

  addAxis(g: number, axis: GroupAxis): void {
    const node = this.node(g);
    if (node.fixed) return;
    if (axis.size !== node.size) throw new InvalidRequestError(`Tensor '${axis.tensor}' has ${axis.size} channels where '${node.name}' has ${node.size}: the weights do not fit the architecture.`);
    node.axes.push(axis);
  }

  union(a: number, b: number): number {
    let keep = this.find(a);
    let drop = this.find(b);
    if (keep === drop) return keep;
    if (drop < keep) [keep, drop] = [drop, keep];
    const k = this.nodes[keep]!;
    const d = this.nodes[drop]!;
    if (k.size !== d.size) throw new InvalidRequestError(`A residual block adds ${k.size} channels ('${k.name}') to ${d.size} ('${d.name}').`);
    if (k.tie && d.tie) throw new InvalidRequestError(`Channels '${k.name}' and '${d.name}' are both zero-padded shortcut streams; permuting them is not supported.`);
    k.tie ??= d.tie;
    k.fixed ||= d.fixed;
    k.axes.push(...d.axes);
    d.up = keep;
    if (k.fixed) this.fix(keep);
    return keep;
  }

  /** A stream that reaches the input or the output cannot move, nor can the parent channels inside it. */
  private fix(g: number): void {
    const node = this.node(g);
    node.fixed = true;
    const tie = node.tie;
    node.tie = undefined;
    if (tie) this.fix(tie.parent);
  }
}

const BATCHNORM_TENSORS = ['gamma', 'beta', 'runningMean', 'runningVar'] as const;

/** The channel groups of an architecture, in network order; fixed channels (input, classes) are left out. */
export function channelGroups(arch: Architecture, specs: readonly ParamSpec[]): ChannelGroup[] {
  const graph = buildGroups(arch, specs);
  return rootsOf(graph).map((g) => {
    const node = graph.nodes[g]!;
    const tie = node.tie && { parent: graph.node(node.tie.parent).fixed ? null : graph.node(node.tie.parent).name, offset: node.tie.offset, width: node.tie.width };
    return { name: node.name, size: node.size, axes: node.axes.map((a) => ({ ...a })), ...(tie ? { tie } : {}) };
  });
}

function rootsOf(graph: GroupGraph): number[] {
  return graph.nodes.flatMap((n, g) => (n.up === g && !n.fixed ? [g] : []));
}

function buildGroups(arch: Architecture, specs: readonly ParamSpec[]): GroupGraph {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const spec = (name: string): ParamSpec => {
    const s = byName.get(name);
    if (!s) throw new InvalidRequestError(`${arch.id} has no parameter '${name}': the specs are not this architecture's.`);
    return s;
  };
  const vector = (s: ParamSpec): GroupAxis => ({ tensor: s.name, outer: 1, size: s.shape[0]!, inner: 1 });
  const graph = new GroupGraph();

  const walk = (layers: readonly LayerSpec[], prefix: string, group: number): number => {
    for (const layer of layers) {
      if (layer.kind === 'conv2d') {
        const name = `${prefix}${layer.name}`;
        const kernel = spec(`${name}.kernel`);
        const [kh, kw, cin, cout] = kernel.shape as [number, number, number, number];
        graph.addAxis(group, { tensor: kernel.name, outer: kh * kw, size: cin, inner: cout });
        group = graph.create(name, cout, false);
        graph.addAxis(group, { tensor: kernel.name, outer: kh * kw * cin, size: cout, inner: 1 });
        const bias = byName.get(`${name}.bias`);
        if (bias) graph.addAxis(group, vector(bias));
      } else if (layer.kind === 'batchnorm') {
        for (const kind of BATCHNORM_TENSORS) graph.addAxis(group, vector(spec(`${prefix}${layer.name}.${kind}`)));
      } else if (layer.kind === 'residual') {
        const blockPrefix = `${prefix}${layer.name}.`;
        const body = walk(layer.body, blockPrefix, group);
        const { shortcut } = layer;
        let through = group;
        if (shortcut.kind === 'subsample-pad') {
          const size = graph.node(body).size;
          const width = graph.node(group).size;
          // As subsamplePad (core/models/network.ts): floor(extra / 2) zero channels before the input's.
          through = graph.create(`${blockPrefix}shortcut`, size, false, { parent: group, offset: Math.floor((size - width) / 2), width });
        } else if (shortcut.kind === 'projection') {
          through = walk(shortcut.layers, blockPrefix, group);
        }
        group = graph.union(body, through);
      } else if (layer.kind === 'dense') {
        const name = `${prefix}${layer.name}`;
        const kernel = spec(`${name}.kernel`);
        const [rows, units] = kernel.shape as [number, number];
        const input = graph.node(group);
        // After a flatten the rows run (h, w, c), so a channel's rows are every input.size-th: one per pixel.
        if (!input.fixed) graph.addAxis(group, { tensor: kernel.name, outer: rows / input.size, size: input.size, inner: units });
        group = graph.create(name, units, layer.role === 'output');
        graph.addAxis(group, { tensor: kernel.name, outer: rows, size: units, inner: 1 });
        graph.addAxis(group, vector(spec(`${name}.bias`)));
      }
      // maxpool, globalavgpool and flatten keep the channels where they are.
    }
    return group;
  };
  walk(arch.layers, '', graph.create('input', 0, true));
  for (const g of rootsOf(graph)) {
    for (const axis of graph.nodes[g]!.axes) {
      if (!Number.isInteger(axis.outer) || axis.outer * axis.size * axis.inner !== sizeOfSpec(spec(axis.tensor))) {
        throw new InvalidRequestError(`Tensor '${axis.tensor}' [${spec(axis.tensor).shape.join(', ')}] does not split into the ${axis.size} channels of '${graph.nodes[g]!.name}'.`);
      }
    }
  }
  return graph;
}

function sizeOfSpec(s: ParamSpec): number {
  return s.shape.reduce((a, b) => a * b, 1);
}

/** Every tensor's permutable axes, each with its group: a kernel has up to two. */
function axesByTensor(graph: GroupGraph): Map<string, Array<{ axis: GroupAxis; group: number }>> {
  const out = new Map<string, Array<{ axis: GroupAxis; group: number }>>();
  for (const group of rootsOf(graph)) {
    for (const axis of graph.nodes[group]!.axes) {
      const list = out.get(axis.tensor) ?? [];
      list.push({ axis, group });
      out.set(axis.tensor, list);
    }
  }
  return out;
}

/** out[a, j, b] = values[a, perm[j], b]. */
function permuteAxis<T extends Float32Array | Uint8Array>(values: T, axis: GroupAxis, perm: Int32Array): T {
  const out = values.slice() as T;
  const { outer, size, inner } = axis;
  for (let a = 0; a < outer; a++) {
    for (let j = 0; j < size; j++) {
      const dst = (a * size + j) * inner;
      const src = (a * size + perm[j]!) * inner;
      for (let b = 0; b < inner; b++) out[dst + b] = values[src + b]!;
    }
  }
  return out;
}

type Permutations = Map<number, Int32Array>;

/** Applies every group's permutation along the axes of `name`, but along `except`. */
function permuteTensor<T extends Float32Array | Uint8Array>(values: T, axes: ReadonlyMap<string, Array<{ axis: GroupAxis; group: number }>>, name: string, perms: Permutations, except?: GroupAxis): T {
  let out = values;
  for (const { axis, group } of axes.get(name) ?? []) {
    const perm = perms.get(group);
    if (perm && axis !== except) out = permuteAxis(out, axis, perm);
  }
  return out;
}

function applyPermutations(graph: GroupGraph, perms: Permutations, weights: WeightSet, masks: MaskSet): { weights: WeightSet; masks: MaskSet } {
  const axes = axesByTensor(graph);
  return {
    weights: weights.map((t) => ({ name: t.name, shape: [...t.shape], values: permuteTensor(t.values, axes, t.name, perms) })),
    masks: masks.map((m) => ({ name: m.name, shape: [...m.shape], bits: permuteTensor(m.bits, axes, m.name, perms) })),
  };
}

function named(graph: GroupGraph, perms: Permutations): Record<string, Int32Array> {
  return Object.fromEntries([...perms].map(([g, perm]) => [graph.nodes[g]!.name, perm]));
}

/** The positions of a tied group that are zero on the option-A shortcut. */
function padPositions(node: GroupNode): number[] {
  const { offset, width } = node.tie!;
  return Array.from({ length: node.size }, (_, j) => j).filter((j) => j < offset || j >= offset + width);
}

/** A tied group's permutation: the middle follows the parent's, the padded positions as `pads` (a permutation of their indices) says. */
function tiedPermutation(graph: GroupGraph, node: GroupNode, perms: Permutations, pads: Int32Array): Int32Array {
  const { parent, offset, width } = node.tie!;
  const parentPerm = perms.get(graph.find(parent));
  const perm = new Int32Array(node.size);
  for (let k = 0; k < width; k++) perm[offset + k] = offset + (parentPerm ? parentPerm[k]! : k);
  const free = padPositions(node);
  free.forEach((j, r) => (perm[j] = free[pads[r]!]!));
  return perm;
}

/**
 * A uniformly random permutation of every hidden channel group that leaves the network's function
 * unchanged: the attack the verdict must survive. Masks move with their weights; tensors the
 * architecture does not name pass through unchanged.
 */
export function permuteHiddenUnits(arch: Architecture, specs: readonly ParamSpec[], weights: WeightSet, masks: MaskSet, seed: number | Rng): PermutedNetwork {
  const rng = typeof seed === 'number' ? Rng.stream(seed, 'permute-hidden-units') : seed;
  const graph = buildGroups(arch, specs);
  checkTensors(graph, specs, weights, masks, 'network');
  const perms: Permutations = new Map();
  for (const g of rootsOf(graph)) {
    const node = graph.nodes[g]!;
    const draw = (n: number) => Int32Array.from(rng.permutation(n));
    perms.set(g, node.tie ? tiedPermutation(graph, node, perms, draw(node.size - node.tie.width)) : draw(node.size));
  }
  return { ...applyPermutations(graph, perms, weights, masks), permutations: named(graph, perms) };
}

function checkTensors(graph: GroupGraph, specs: readonly ParamSpec[], weights: WeightSet, masks: MaskSet, what: string): void {
  for (const [name] of axesByTensor(graph)) {
    const size = sizeOfSpec(specs.find((s) => s.name === name)!);
    const w = weights.find((t) => t.name === name);
    if (!w || w.values.length !== size) throw new InvalidRequestError(`The ${what}'s weights have no tensor '${name}' of ${size} values: they are not of this architecture.`);
    const m = masks.find((t) => t.name === name);
    if (m && m.bits.length !== size) throw new InvalidRequestError(`The ${what}'s mask '${name}' has ${m.bits.length} entries, the tensor ${size}.`);
  }
}

/** Weights as the forward pass sees them: zero where the mask prunes. */
function effective(t: NamedTensor, mask: LayerMask | undefined): Float32Array {
  return mask ? t.values.map((v, k) => (mask.bits[k] ? v : 0)) : t.values;
}

/** Unit j's entries of a tensor seen as [outer, size, inner], as row j of a [size, outer·inner] matrix. */
function unitRows(values: ArrayLike<number>, axis: GroupAxis): Float64Array {
  const { outer, size, inner } = axis;
  const length = outer * inner;
  const out = new Float64Array(size * length);
  for (let a = 0; a < outer; a++) {
    for (let j = 0; j < size; j++) {
      const src = (a * size + j) * inner;
      const dst = j * length + a * inner;
      for (let b = 0; b < inner; b++) out[dst + b] = values[src + b]!;
    }
  }
  return out;
}

/** cost[r·n + s] += ‖x_r − y_s‖² / scale over the units' rows. */
function addDistances(cost: Float64Array, x: Float64Array, y: Float64Array, n: number, scale: number): void {
  const length = x.length / n;
  const norm = (m: Float64Array, j: number) => {
    let sum = 0;
    for (let k = j * length; k < (j + 1) * length; k++) sum += m[k]! * m[k]!;
    return sum;
  };
  const ny = Array.from({ length: n }, (_, s) => norm(y, s));
  for (let r = 0; r < n; r++) {
    const nx = norm(x, r);
    for (let s = 0; s < n; s++) {
      let dot = 0;
      for (let k = 0, p = r * length, q = s * length; k < length; k++) dot += x[p + k]! * y[q + k]!;
      cost[r * n + s]! += Math.max(0, nx + ny[s]! - 2 * dot) / scale;
    }
  }
}

function meanSquare(values: ArrayLike<number>): number {
  let sum = 0;
  for (let k = 0; k < values.length; k++) sum += values[k]! * values[k]!;
  return values.length === 0 ? 0 : sum / values.length;
}

/**
 * The suspect's units in the reference's order, group by group from the input: each group's units are
 * matched by their weight and mask vectors, after the groups they read from are aligned (a layer's
 * incoming weights only compare once its inputs are in the same order), by solving the assignment
 * problem. Then every group is matched again with all its tensors, outgoing weights included, until
 * nothing changes: that breaks ties between units whose incoming weights agree (dead units, pruned
 * inputs). Costs are in units of each tensor's mean square, so BatchNorm statistics and kernels weigh alike.
 */
export function alignToReference(
  arch: Architecture,
  specs: readonly ParamSpec[],
  reference: { weights: WeightSet; masks: MaskSet },
  suspect: { weights: WeightSet; masks: MaskSet },
  options: {
    /**
     * Reference entries the matching must not see (read as zero, weight and mask): a signature's
     * window, so that the alignment cannot pull a stranger's mask towards the signature's bits.
     */
    blind?: { tensor: string; entries: readonly number[] };
  } = {},
): Alignment {
  const graph = buildGroups(arch, specs);
  checkTensors(graph, specs, reference.weights, reference.masks, 'reference');
  checkTensors(graph, specs, suspect.weights, suspect.masks, 'suspect');
  const axes = axesByTensor(graph);
  const roots = rootsOf(graph);
  const mask = (set: MaskSet, name: string) => set.find((m) => m.name === name);
  const tensors = new Map([...axes.keys()].map((name) => {
    const ref = reference.weights.find((t) => t.name === name)!;
    const sus = suspect.weights.find((t) => t.name === name)!;
    const refMask = mask(reference.masks, name);
    const susMask = mask(suspect.masks, name);
    let refValues = effective(ref, refMask);
    const susValues = effective(sus, susMask);
    const blind = options.blind?.tensor === name ? options.blind.entries : null;
    if (blind) {
      refValues = Float32Array.from(refValues);
      for (const k of blind) refValues[k] = 0;
    }
    const ones = () => new Uint8Array(ref.values.length).fill(1);
    // Two dense masks carry no evidence: skip their distances, the costliest part on wide layers.
    const pruned = (m: LayerMask | undefined) => m !== undefined && m.bits.includes(0);
    let masks = pruned(refMask) || pruned(susMask) ? { ref: refMask?.bits ?? ones(), sus: susMask?.bits ?? ones() } : undefined;
    if (masks && blind) {
      const bits = Uint8Array.from(masks.ref);
      for (const k of blind) bits[k] = 0;
      masks = { ...masks, ref: bits };
    }
    return [name, { refValues, susValues, scale: meanSquare(refValues) || meanSquare(susValues), masks }];
  }));

  const sigma: Permutations = new Map();
  const costs = new Map<number, number>();
  const solve = (g: number, usable: (axis: GroupAxis) => boolean): Int32Array => {
    const node = graph.nodes[g]!;
    const n = node.size;
    const cost = new Float64Array(n * n);
    for (const axis of node.axes) {
      if (!usable(axis)) continue;
      const t = tensors.get(axis.tensor)!;
      // The suspect's other axes in the reference's order, this one as it is: row s is the suspect's unit s.
      if (t.scale > 0) addDistances(cost, unitRows(t.refValues, axis), unitRows(permuteTensor(t.susValues, axes, axis.tensor, sigma, axis), axis), n, t.scale);
      if (t.masks) addDistances(cost, unitRows(t.masks.ref, axis), unitRows(permuteTensor(t.masks.sus, axes, axis.tensor, sigma, axis), axis), n, 1);
    }
    let perm: Int32Array;
    if (node.tie) {
      const free = padPositions(node);
      const sub = new Float64Array(free.length * free.length);
      free.forEach((r, i) => free.forEach((s, k) => (sub[i * free.length + k] = cost[r * n + s]!)));
      perm = tiedPermutation(graph, node, sigma, solveAssignment(sub, free.length));
    } else {
      perm = solveAssignment(cost, n);
    }
    costs.set(g, perm.reduce((sum, s, r) => sum + cost[r * n + s]!, 0));
    return perm;
  };

  // First pass: a tensor counts once its other axes are aligned (or fixed: those have no entry).
  for (const g of roots) {
    sigma.set(g, solve(g, (axis) => axes.get(axis.tensor)!.every((other) => other.axis === axis || sigma.has(other.group))));
  }
  for (let round = 0; round < 4; round++) {
    let changed = false;
    for (const g of roots) {
      const next = solve(g, () => true);
      if (next.some((s, j) => s !== sigma.get(g)![j])) changed = true;
      sigma.set(g, next);
    }
    if (!changed) break;
  }
  const groupCosts = Object.fromEntries(roots.map((g) => [graph.nodes[g]!.name, costs.get(g)!]));
  return {
    ...applyPermutations(graph, sigma, suspect.weights, suspect.masks),
    permutations: named(graph, sigma),
    cost: Object.values(groupCosts).reduce((a, b) => a + b, 0),
    groupCosts,
  };
}
