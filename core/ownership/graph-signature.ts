// The white-box ownership signature (ALGORITHMS.md §9.2–9.3, "Ticket Lab default"): 256 keyed bits
// written into a 16×16 window of one layer's channel adjacency, read back from any mask of the same
// architecture, and scored against the exact binomial null.
//
// Protocol 'ticket-lab/graph-signature/v1' (changing any of it needs a new version):
// - lp(s) = u32be(byte length of UTF-8 s) ‖ UTF-8 s.
// - block_j(purpose) = HMAC-SHA-256(key = secret, lp(VERSION) ‖ lp(purpose) ‖ lp(fingerprint) ‖
//   lp(ticketId) ‖ lp(nonce) ‖ u32be(j)), j = 0, 1, ...; a purpose's stream is block_0 ‖ block_1 ‖ ...
// - Bits: purpose 'bits'; bit k is bit (7 − k mod 8) of stream byte ⌊k/8⌋ (MSB first).
// - Location: purpose 'location', read as u32be words; int(m) rejects words ≥ 2³² − (2³² mod m) and
//   returns word mod m. Draws in order: layer = eligible[int(#eligible)], row = int(outputs − size + 1),
//   col = int(inputs − size + 1). Eligible: prunable kernels in architecture order, not the first
//   prunable one, not the output layer, with more than `size` inputs and outputs.
// - Window cell k = r·size + c holds bit k and reads A[row + r][col + c] (row = output channel,
//   column = input channel).
// - Plan: bits as hex of the packed bits, bitsDigest = SHA-256 hex of the same packed bytes.
import { createHash } from 'node:crypto';
import { InvalidRequestError } from '../api/errors';
import { Rng } from '../compute/rng';
import type { ParamSpec } from '../models/architectures';
import type { WeightSet } from '../models/weights';
import { type MaskSet, cloneMasks, countKept } from '../pruning/mask';
import { binomialThreshold, binomialUpperTail } from './binomial';
// The same HMAC-SHA-256 counter-mode stream and field encoding as the trigger set (one construction to audit).
import { KeyedStream, triggerEncoding } from './trigger-images';
import { adjacencyOf, entryIndex, inputNode, outputNode, pairCounts, pairGeometry, requireLayer, windowAdjacency, windowGraph } from './mask-graph';

export const GRAPH_SIGNATURE_VERSION = 'ticket-lab/graph-signature/v1';
export const DEFAULT_FALSE_POSITIVE_RATE = 1e-6;

export interface SignatureMessage {
  /** The owner's key fingerprint. */
  fingerprint: string;
  ticketId: string;
  /** Fresh per claim, so two claims on one ticket carry unrelated bits. */
  nonce: string;
}

/** What a claim stores and commits before release: enough to extract and score, nothing secret. */
export interface SignaturePlan {
  version: typeof GRAPH_SIGNATURE_VERSION;
  layer: string;
  /** The layer's kernel shape: a suspect with another shape is refused, not scored. */
  shape: number[];
  /** First output channel (row of A) and first input channel (column) of the window. */
  row: number;
  col: number;
  size: number;
  n: number;
  /** The n bits, packed MSB first, as hex. */
  bits: string;
  bitsDigest: string;
}

/** The keyed stream of one purpose: the trigger set's construction, with this scheme's fields. */
function keyedStream(secret: Uint8Array, purpose: 'bits' | 'location', message: SignatureMessage): KeyedStream {
  if (secret.length === 0) throw new InvalidRequestError('The graph signature needs a secret key; it was empty.');
  return new KeyedStream(secret, triggerEncoding([GRAPH_SIGNATURE_VERSION, purpose, message.fingerprint, message.ticketId, message.nonce]));
}

/**
 * n iid uniform bits from the owner's key and the message. Not balanced on purpose: the exact null
 * (each bit matches an unrelated mask with probability 1/2) needs bits independent of everything.
 */
export function signatureBits(secret: Uint8Array, message: SignatureMessage, n = 256): Uint8Array {
  const stream = keyedStream(secret, 'bits', message);
  const bits = new Uint8Array(n);
  let byte = 0;
  for (let k = 0; k < n; k++) {
    if (k % 8 === 0) byte = stream.byte();
    bits[k] = (byte >> (7 - (k % 8))) & 1;
  }
  return bits;
}

function packBits(bits: Uint8Array): Buffer {
  const out = Buffer.alloc(Math.ceil(bits.length / 8));
  for (let k = 0; k < bits.length; k++) if (bits[k]) out[k >> 3]! |= 0x80 >> (k % 8);
  return out;
}

/** The layers a signature may live in, in architecture order. */
export function eligibleLayers(specs: readonly ParamSpec[], size = 16): ParamSpec[] {
  const kernels = specs.filter((s) => s.prunable);
  // The first layer sees raw pixels and the output layer the classes: both are small and the most
  // pruning-sensitive. More than `size` channels each way leaves the keyed draw a choice of offsets.
  return kernels.slice(1).filter((s) => {
    if (s.role === 'output') return false;
    const g = pairGeometry(s.shape);
    return g.inputs > size && g.outputs > size;
  });
}

/**
 * The claim's plan: bits, layer and window offset, all drawn from the key. The window is drawn, not
 * chosen for best agreement (§9.3): an independent IMP run from the same init can share the owner's
 * original mask and would then match above chance.
 */
export function planSignature(specs: readonly ParamSpec[], secret: Uint8Array, message: SignatureMessage, options: { size?: number } = {}): SignaturePlan {
  const size = options.size ?? 16;
  const layers = eligibleLayers(specs, size);
  if (layers.length === 0) throw new InvalidRequestError(`This architecture has no layer with more than ${size} input and output channels to carry a graph signature.`);
  const where = keyedStream(secret, 'location', message);
  const spec = layers[where.int(layers.length)]!;
  const g = pairGeometry(spec.shape);
  const row = where.int(g.outputs - size + 1);
  const col = where.int(g.inputs - size + 1);
  const n = size * size;
  const packed = packBits(signatureBits(secret, message, n));
  return {
    version: GRAPH_SIGNATURE_VERSION, layer: spec.name, shape: [...spec.shape], row, col, size, n,
    bits: packed.toString('hex'), bitsDigest: createHash('sha256').update(packed).digest('hex'),
  };
}

/** The plan's bits, after checking the plan is whole (it may come from a stored claim). */
export function planBits(plan: SignaturePlan): Uint8Array {
  const { size, n, row, col } = plan;
  if (plan.version !== GRAPH_SIGNATURE_VERSION) throw new InvalidRequestError(`Unknown signature version '${String(plan.version)}'; this build reads ${GRAPH_SIGNATURE_VERSION}.`);
  if (!Number.isInteger(size) || size < 1 || n !== size * size) throw new InvalidRequestError(`The signature plan's window (${size}) and bit count (${n}) disagree.`);
  const g = pairGeometry(plan.shape);
  if (!(Number.isInteger(row) && Number.isInteger(col) && row >= 0 && col >= 0 && row + size <= g.outputs && col + size <= g.inputs)) {
    throw new InvalidRequestError(`The signature window at (${row}, ${col}) of size ${size} does not fit layer '${plan.layer}' [${plan.shape.join(', ')}].`);
  }
  const packed = Buffer.from(plan.bits, 'hex');
  if (packed.length !== Math.ceil(n / 8) || packed.toString('hex') !== plan.bits.toLowerCase()) throw new InvalidRequestError(`The signature plan's bits are not ${n} bits of hex.`);
  if (createHash('sha256').update(packed).digest('hex') !== plan.bitsDigest.toLowerCase()) throw new InvalidRequestError('The signature plan\'s bits do not match its bitsDigest: the plan was altered.');
  const bits = new Uint8Array(n);
  for (let k = 0; k < n; k++) bits[k] = (packed[k >> 3]! >> (7 - (k % 8))) & 1;
  return bits;
}

/** The mask edits of one embedding: what a claim records next to its plan. */
export interface SignatureEdits {
  layer: string;
  seed: number;
  keptBefore: number;
  keptAfter: number;
  /** Window cells whose pair disagreed with its bit before embedding. */
  mismatchedCells: number;
  /** Entries switched on for bit-1 cells without an edge, and off for bit-0 cells with one. */
  bitOn: number;
  bitOff: number;
  /** Entries changed to restore the layer's kept count, inside the window (bit-1 pairs only) and outside. */
  repair: { onInside: number; onOutside: number; offInside: number; offOutside: number };
  /** Every entry changed; all in `layer`. */
  changed: number;
  /** Flat entry indices of the layer's kernel, ascending. Revived entries take their rewind values (§9.2 step 6). */
  switchedOn: number[];
  switchedOff: number[];
}

/**
 * `count` of the candidate entries: keyed-random, or with `score`, the smallest score first (random
 * among ties at the cut). Sorting a copy of the scores finds the cut, so a layer of millions of
 * entries costs one native sort.
 */
function pickEntries(candidates: Uint32Array, count: number, rng: Rng, score?: (entry: number) => number): Uint32Array {
  let pool = candidates;
  let picked: number[] = [];
  if (score) {
    const keys = Float64Array.from(candidates, score);
    const cut = keys.slice().sort()[count - 1]!;
    picked = Array.from(candidates.filter((_, j) => keys[j]! < cut));
    pool = candidates.filter((_, j) => keys[j] === cut);
  }
  const want = count - picked.length;
  for (let j = 0; j < want; j++) {
    const k = j + rng.int(pool.length - j);
    const t = pool[j]!;
    pool[j] = pool[k]!;
    pool[k] = t;
  }
  return Uint32Array.from([...picked, ...pool.subarray(0, want)]);
}

/**
 * Writes the plan's bits into a copy of the masks (§9.2 steps 3 and 5, no function patterns):
 * a bit-1 cell without an edge gets one random kernel position switched on, a bit-0 cell with an
 * edge loses all its entries; then the layer's kept count is restored exactly, first inside bit-1
 * pairs (which leaves every bit as written), then outside the window. Outside, with `weights`, the
 * switched-on entries are the largest |w| and the switched-off ones the smallest, as magnitude
 * pruning would pick them; without, keyed-random. The input masks and every other layer are untouched.
 */
export function embedSignature(masks: MaskSet, plan: SignaturePlan, options: { seed: number; weights?: WeightSet }): { masks: MaskSet; edits: SignatureEdits } {
  const q = planBits(plan);
  const original = requireLayer(masks, plan.layer, plan.shape);
  const g = pairGeometry(plan.shape);
  const { row, col, size } = plan;
  const rng = Rng.stream(options.seed, 'graph-signature-embed', plan.layer);
  const bits = original.bits.slice();
  const keptBefore = countKept(bits);
  const on = new Set<number>();
  const off = new Set<number>();
  const flip = (entry: number, value: 0 | 1): void => {
    bits[entry] = value;
    (value ? on : off).add(entry);
  };
  const before = windowAdjacency(bits, g, row, col, size);
  let mismatchedCells = 0;
  let bitOn = 0;
  let bitOff = 0;
  for (let k = 0; k < size * size; k++) {
    if (before[k] === q[k]) continue;
    mismatchedCells++;
    const o = row + Math.floor(k / size);
    const i = col + (k % size);
    if (q[k]) {
      flip(entryIndex(g, rng.int(g.positions), i, o), 1);
      bitOn++;
    } else {
      for (let p = 0; p < g.positions; p++) {
        const e = entryIndex(g, p, i, o);
        if (bits[e]) {
          flip(e, 0);
          bitOff++;
        }
      }
    }
  }

  const repair = { onInside: 0, onOutside: 0, offInside: 0, offOutside: 0 };
  const inWindow = (o: number, i: number): boolean => o >= row && o < row + size && i >= col && i < col + size;
  const bitOnePairEntries = (kept: 0 | 1): number[] => {
    const out: number[] = [];
    for (let k = 0; k < size * size; k++) {
      if (!q[k]) continue;
      for (let p = 0; p < g.positions; p++) {
        const e = entryIndex(g, p, col + (k % size), row + Math.floor(k / size));
        if (bits[e] === kept) out.push(e);
      }
    }
    return out;
  };
  const outsideEntries = (kept: 0 | 1): Uint32Array => {
    const out: number[] = [];
    for (let e = 0; e < bits.length; e++) {
      if (bits[e] === kept && !inWindow(e % g.outputs, Math.floor(e / g.outputs) % g.inputs)) out.push(e);
    }
    return Uint32Array.from(out);
  };
  const weights = options.weights?.find((t) => t.name === plan.layer)?.values;
  if (options.weights && (!weights || weights.length !== bits.length)) {
    throw new InvalidRequestError(`The weights given for the signature have no tensor '${plan.layer}' of shape [${plan.shape.join(', ')}].`);
  }
  let excess = countKept(bits) - keptBefore;
  if (excess < 0) {
    const free = Uint32Array.from(bitOnePairEntries(0));
    const inside = pickEntries(free, Math.min(-excess, free.length), rng);
    for (const e of inside) flip(e, 1);
    repair.onInside = inside.length;
    excess += inside.length;
    if (excess < 0) {
      const pool = outsideEntries(0);
      if (pool.length < -excess) throw new InvalidRequestError(`Layer '${plan.layer}' is too dense to carry the signature at its sparsity.`);
      const outside = pickEntries(pool, -excess, rng, weights && ((e) => -Math.abs(weights[e]!)));
      for (const e of outside) flip(e, 1);
      repair.onOutside = outside.length;
    }
  } else if (excess > 0) {
    // A bit-1 pair keeps its edge while one entry remains; random order spreads the removals.
    const counts = pairCounts(bits, g);
    const inside = rng.shuffle(bitOnePairEntries(1));
    for (const e of inside) {
      if (excess === 0) break;
      const pair = (e % g.outputs) * g.inputs + (Math.floor(e / g.outputs) % g.inputs);
      if (counts[pair]! < 2) continue;
      counts[pair]!--;
      flip(e, 0);
      repair.offInside++;
      excess--;
    }
    if (excess > 0) {
      const pool = outsideEntries(1);
      if (pool.length < excess) throw new InvalidRequestError(`Layer '${plan.layer}' is too sparse to carry the signature at its sparsity.`);
      const outside = pickEntries(pool, excess, rng, weights && ((e) => Math.abs(weights[e]!)));
      for (const e of outside) flip(e, 0);
      repair.offOutside = outside.length;
    }
  }

  // An entry switched on and later off (or back) is no change: only net flips are recorded.
  const switchedOn = [...on].filter((e) => bits[e] === 1 && original.bits[e] === 0).sort((a, b) => a - b);
  const switchedOff = [...off].filter((e) => bits[e] === 0 && original.bits[e] === 1).sort((a, b) => a - b);
  const next = cloneMasks(masks);
  next.find((m) => m.name === plan.layer)!.bits = bits;
  const edits: SignatureEdits = {
    layer: plan.layer, seed: options.seed, keptBefore, keptAfter: countKept(bits), mismatchedCells, bitOn, bitOff, repair,
    changed: switchedOn.length + switchedOff.length, switchedOn, switchedOff,
  };
  return { masks: next, edits };
}

/** The n bits read from the plan's window of any mask set of the claim's architecture. */
export function extractSignature(masks: MaskSet, plan: SignaturePlan): Uint8Array {
  planBits(plan);
  const mask = requireLayer(masks, plan.layer, plan.shape);
  return windowAdjacency(mask.bits, pairGeometry(plan.shape), plan.row, plan.col, plan.size);
}

// binomialThreshold sums a tail per candidate count (O(n²) log-gamma calls): once per (n, rate) is enough.
const thresholds = new Map<string, number>();
function matchThreshold(n: number, falsePositiveRate: number): number {
  const key = `${n}:${falsePositiveRate}`;
  let threshold = thresholds.get(key);
  if (threshold === undefined) thresholds.set(key, (threshold = binomialThreshold(n, 0.5, falsePositiveRate)));
  return threshold;
}

export interface SignatureScore {
  scheme: 'graph-signature';
  n: number;
  matches: number;
  /** P[Bin(n, 1/2) ≥ matches]: the chance a mask not derived from the key matches this well. */
  pValue: number;
  /** The fewest matches that verify. */
  threshold: number;
  falsePositiveRate: number;
  verified: boolean;
}

/**
 * Under H0 each bit matches with probability exactly 1/2 whatever the mask, because the bits are
 * iid and independent of it: the score needs no model of the suspect's sparsity.
 */
export function scoreSignature(extracted: Uint8Array, plan: SignaturePlan, falsePositiveRate = DEFAULT_FALSE_POSITIVE_RATE): SignatureScore {
  const bits = planBits(plan);
  if (extracted.length !== bits.length) throw new InvalidRequestError(`Extracted ${extracted.length} bits, but the plan has ${bits.length}.`);
  if (!(falsePositiveRate > 0 && falsePositiveRate < 1)) throw new InvalidRequestError(`The false-positive rate must lie in (0, 1), got ${falsePositiveRate}.`);
  let matches = 0;
  for (let k = 0; k < bits.length; k++) if (extracted[k] === bits[k]) matches++;
  const threshold = matchThreshold(bits.length, falsePositiveRate);
  return {
    scheme: 'graph-signature', n: bits.length, matches, pValue: binomialUpperTail(bits.length, matches, 0.5), threshold, falsePositiveRate,
    verified: matches >= threshold,
  };
}

/** The verdict with what a reader needs to weigh it: where the bits were read, and the window's graph. */
export interface SignatureEvidence extends SignatureScore {
  layer: string;
  row: number;
  col: number;
  size: number;
  /** Edges of the window's subgraph, and the layer's edge density: a near-empty or near-full window is worth a look. */
  windowEdges: number;
  layerEdgeDensity: number;
  /** Degrees inside the window: of its output channels (rows) and input channels (columns). */
  rowDegrees: number[];
  colDegrees: number[];
}

export function verifySignature(masks: MaskSet, plan: SignaturePlan, falsePositiveRate = DEFAULT_FALSE_POSITIVE_RATE): SignatureEvidence {
  planBits(plan);
  const { row, col, size } = plan;
  const bits = requireLayer(masks, plan.layer, plan.shape).bits;
  const g = pairGeometry(plan.shape);
  const graph = windowGraph(bits, g, row, col, size);
  const counts = pairCounts(bits, g);
  return {
    ...scoreSignature(adjacencyOf(graph, row, col, size), plan, falsePositiveRate), layer: plan.layer, row, col, size,
    windowEdges: graph.size, layerEdgeDensity: counts.reduce((a, c) => a + (c > 0 ? 1 : 0), 0) / counts.length,
    rowDegrees: Array.from({ length: size }, (_, r) => graph.inDegree(outputNode(row + r))),
    colDegrees: Array.from({ length: size }, (_, c) => graph.outDegree(inputNode(col + c))),
  };
}
