import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError, MaskFormatError } from '../../../core/api/errors';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { type WeightSet, initWeights } from '../../../core/models/weights';
import { binomialUpperTail } from '../../../core/ownership/binomial';
import {
  type SignaturePlan, eligibleLayers, embedSignature, extractSignature, planBits, planSignature, scoreSignature, signatureBits, verifySignature,
} from '../../../core/ownership/graph-signature';
import { adjacencyOf, entryIndex, inputNode, masksFromWeights, outputNode, pairGeometry, windowGraph } from '../../../core/ownership/mask-graph';
import { sparsityBudget } from '../../../core/pruning/budget';
import { denseMasks } from '../../../core/pruning/imp';
import { magnitudeStrategy } from '../../../core/pruning/magnitude';
import { type MaskSet, cloneMasks, countKept } from '../../../core/pruning/mask';
import { randomStrategy } from '../../../core/pruning/random';

const secret = new Uint8Array(32).map((_, i) => i * 11 + 3);
const message = { fingerprint: 'owner-fp-1', ticketId: 'ticket-1', nonce: 'nonce-1' };
const lenet = paramSpecs(architecture('lenet-300-100'), [28, 28, 1], 10);
const resnet = paramSpecs(architecture('resnet-20'), [32, 32, 3], 10);
const names = (specs: typeof lenet): string[] => specs.filter((s) => s.prunable).map((s) => s.name);

/** One-shot layer-wise magnitude masks of seeded init weights: the shape of an IMP ticket's mask. */
async function magnitudeMasks(specs: typeof lenet, weights: WeightSet, sparsity: number): Promise<MaskSet> {
  const masks = denseMasks(specs);
  const budget = sparsityBudget(masks, sparsity, 'layer', names(specs));
  return magnitudeStrategy.prune({ weights, masks, budget, params: {}, seed: 0 }, new AbortController().signal);
}

async function randomMasks(specs: typeof lenet, sparsity: number, seed: number): Promise<MaskSet> {
  const masks = denseMasks(specs);
  const budget = sparsityBudget(masks, sparsity, 'layer', names(specs));
  return randomStrategy.prune({ weights: [], masks, budget, params: {}, seed }, new AbortController().signal);
}

function layer(masks: MaskSet, name: string): Uint8Array {
  return masks.find((m) => m.name === name)!.bits;
}

describe('signature plan', () => {
  it('draws bits and window from the key, deterministically', () => {
    const plan = planSignature(resnet, secret, message);
    expect(planSignature(resnet, Uint8Array.from(secret), { ...message })).toEqual(plan);
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
    expect(plan).toMatchObject({ version: 'ticket-lab/graph-signature/v1', size: 16, n: 256 });
    expect(plan.bits).toMatch(/^[0-9a-f]{64}$/);
    expect(Array.from(planBits(plan))).toEqual(Array.from(signatureBits(secret, message)));

    const others = [
      planSignature(resnet, secret, { ...message, nonce: 'nonce-2' }),
      planSignature(resnet, secret, { ...message, ticketId: 'ticket-2' }),
      planSignature(resnet, secret, { ...message, fingerprint: 'owner-fp-2' }),
      planSignature(resnet, secret.map((x, i) => (i === 5 ? x ^ 1 : x)), message),
    ];
    for (const other of others) {
      // Unrelated bits agree on about half the cells, never on (nearly) all.
      const agree = planBits(other).reduce((n, b, k) => n + (b === planBits(plan)[k] ? 1 : 0), 0);
      expect(agree).toBeGreaterThan(90);
      expect(agree).toBeLessThan(166);
    }
  });

  it('picks an eligible layer and a window inside it, spread over layers and offsets', () => {
    expect(eligibleLayers(lenet).map((s) => s.name)).toEqual(['fc2.kernel']);
    // ResNet-20: the 32- and 64-channel convs; not the stem, not stage 1 (16 channels), not 16→32, not the output.
    const resnetEligible = eligibleLayers(resnet).map((s) => s.name);
    expect(resnetEligible).toEqual([3, 4, 5, 6, 7, 8].flatMap((b) => (b === 3 ? [`blocks.3.conv2.kernel`] : [`blocks.${b}.conv1.kernel`, `blocks.${b}.conv2.kernel`])));
    const plans = Array.from({ length: 40 }, (_, k) => planSignature(resnet, secret, { ...message, nonce: `n-${k}` }));
    for (const plan of plans) {
      const spec = resnet.find((s) => s.name === plan.layer)!;
      expect(resnetEligible).toContain(plan.layer);
      expect(plan.shape).toEqual(spec.shape);
      const g = pairGeometry(spec.shape);
      expect(plan.row + plan.size).toBeLessThanOrEqual(g.outputs);
      expect(plan.col + plan.size).toBeLessThanOrEqual(g.inputs);
    }
    expect(new Set(plans.map((p) => p.layer)).size).toBeGreaterThan(5);
    expect(new Set(plans.map((p) => `${p.layer}@${p.row},${p.col}`)).size).toBeGreaterThan(35);
  });

  it('refuses an altered plan', () => {
    const plan = planSignature(lenet, secret, message);
    const flipped = (parseInt(plan.bits[0]!, 16) ^ 1).toString(16) + plan.bits.slice(1);
    expect(() => planBits({ ...plan, bits: flipped })).toThrow(InvalidRequestError);
    expect(() => planBits({ ...plan, row: 90 })).toThrow(/does not fit/);
  });
});

interface Case {
  label: string;
  specs: typeof lenet;
  masks: () => Promise<MaskSet>;
  weights?: WeightSet;
}

const lenetWeights = initWeights(lenet, 1);
const resnetWeights = initWeights(resnet, 1);
const cases: Case[] = [
  { label: 'LeNet-300-100, magnitude 90 %, weights', specs: lenet, masks: () => magnitudeMasks(lenet, lenetWeights, 0.9), weights: lenetWeights },
  { label: 'LeNet-300-100, random 30 % (dense layer grows), weights', specs: lenet, masks: () => randomMasks(lenet, 0.3, 5), weights: lenetWeights },
  { label: 'LeNet-300-100, random 95 %', specs: lenet, masks: () => randomMasks(lenet, 0.95, 6) },
  { label: 'ResNet-20, magnitude 90 %, weights', specs: resnet, masks: () => magnitudeMasks(resnet, resnetWeights, 0.9), weights: resnetWeights },
  { label: 'ResNet-20, random 80 %', specs: resnet, masks: () => randomMasks(resnet, 0.8, 5) },
  { label: 'ResNet-20, random 96 %, weights', specs: resnet, masks: () => randomMasks(resnet, 0.96, 5), weights: resnetWeights },
];

describe.each(cases)('embedding in $label', ({ specs, masks: makeMasks, weights }) => {
  let masks: MaskSet;
  let plan: SignaturePlan;
  beforeAll(async () => {
    masks = await makeMasks();
    plan = planSignature(specs, secret, message);
  });

  it('round-trips every bit, keeps every kept count and touches one layer with few edits', () => {
    const before = cloneMasks(masks);
    const unsigned = scoreSignature(extractSignature(masks, plan), plan);
    const { masks: signed, edits } = embedSignature(masks, plan, { seed: 7, ...(weights ? { weights } : {}) });
    expect(masks.every((m, k) => Buffer.from(m.bits).equals(Buffer.from(before[k]!.bits)))).toBe(true); // the input is untouched

    expect(Array.from(extractSignature(signed, plan))).toEqual(Array.from(planBits(plan)));
    const score = scoreSignature(extractSignature(signed, plan), plan);
    expect(score).toMatchObject({ scheme: 'graph-signature', n: 256, matches: 256, threshold: 167, verified: true });
    expect(score.pValue).toBeLessThanOrEqual(1e-6);
    expect(score.pValue / 2 ** -256).toBeCloseTo(1, 9); // P[all 256 match] = 2^-256, exact in log space
    // The original mask carries no signature: its window agrees by chance only.
    expect(unsigned.verified).toBe(false);
    expect(256 - unsigned.matches).toBe(edits.mismatchedCells);

    for (const m of signed) {
      const old = layer(before, m.name);
      expect(countKept(m.bits)).toBe(countKept(old));
      if (m.name !== plan.layer) expect(Buffer.from(m.bits).equals(Buffer.from(old))).toBe(true);
    }
    // The record lists exactly the changed entries.
    const now = layer(signed, plan.layer);
    const old = layer(before, plan.layer);
    const on: number[] = [];
    const off: number[] = [];
    for (let e = 0; e < now.length; e++) if (now[e] !== old[e]) (now[e] ? on : off).push(e);
    expect(edits.switchedOn).toEqual(on);
    expect(edits.switchedOff).toEqual(off);
    expect(edits.changed).toBe(on.length + off.length);
    expect(on.length).toBe(off.length);
    expect(edits.keptAfter).toBe(edits.keptBefore);
    const { onInside, onOutside, offInside, offOutside } = edits.repair;
    expect(edits.bitOn + edits.bitOff + onInside + onOutside + offInside + offOutside).toBe(edits.changed);
    expect(onInside + onOutside + offInside + offOutside).toBe(Math.abs(edits.bitOn - edits.bitOff));

    // Few edits: each mismatched cell costs one entry on, or its pair's kept entries off, and the
    // repair at most as many again; far below rewriting the window's 256 pairs × kh·kw entries.
    const { positions } = pairGeometry(plan.shape);
    expect(edits.bitOn + edits.bitOff).toBeLessThanOrEqual(edits.mismatchedCells * positions);
    expect(edits.changed).toBeLessThanOrEqual(2 * (edits.bitOn + edits.bitOff));
    expect(edits.mismatchedCells).toBeLessThan(170); // about half the cells mismatch by chance
    expect(edits.changed).toBeLessThan(Math.min(256 * positions, 0.05 * old.length));
  });

  it('repairs outside the window as magnitude pruning would, when weights are given', () => {
    if (!weights) return;
    const { masks: signed, edits } = embedSignature(masks, plan, { seed: 7, weights });
    const w = weights.find((t) => t.name === plan.layer)!.values;
    const now = layer(signed, plan.layer);
    const g = pairGeometry(plan.shape);
    const outside = (e: number): boolean => {
      const o = e % g.outputs;
      const i = Math.floor(e / g.outputs) % g.inputs;
      return !(o >= plan.row && o < plan.row + plan.size && i >= plan.col && i < plan.col + plan.size);
    };
    if (edits.repair.offOutside > 0) {
      const removed = edits.switchedOff.filter(outside).map((e) => Math.abs(w[e]!));
      let keptMin = Infinity;
      for (let e = 0; e < now.length; e++) if (now[e] && outside(e)) keptMin = Math.min(keptMin, Math.abs(w[e]!));
      expect(removed.length).toBe(edits.repair.offOutside);
      expect(Math.max(...removed)).toBeLessThanOrEqual(keptMin);
    }
    if (edits.repair.onOutside > 0) {
      const revived = edits.switchedOn.filter(outside).map((e) => Math.abs(w[e]!));
      let prunedMax = 0;
      for (let e = 0; e < now.length; e++) if (!now[e] && outside(e)) prunedMax = Math.max(prunedMax, Math.abs(w[e]!));
      expect(Math.min(...revived)).toBeGreaterThanOrEqual(prunedMax);
    }
    expect(edits.repair.onOutside + edits.repair.offOutside + edits.repair.onInside + edits.repair.offInside).toBeGreaterThan(0);
  });

  it('verifies a maskless suspect through w ≠ 0, and reports the window', () => {
    const { masks: signed } = embedSignature(masks, plan, { seed: 7 });
    const base = weights ?? initWeights(specs, 3);
    const suspect = base.map((t) => {
      const m = signed.find((s) => s.name === t.name);
      return m ? { ...t, values: t.values.map((v, j) => (m.bits[j] ? v || 1e-3 : 0)) } : t;
    });
    const derived = masksFromWeights(suspect, specs);
    expect(Buffer.from(layer(derived, plan.layer)).equals(Buffer.from(layer(signed, plan.layer)))).toBe(true);
    const evidence = verifySignature(derived, plan);
    expect(evidence).toMatchObject({ verified: true, matches: 256, layer: plan.layer, row: plan.row, col: plan.col, size: 16 });
    expect(evidence.rowDegrees.reduce((a, b) => a + b)).toBe(evidence.windowEdges);
    expect(evidence.colDegrees.reduce((a, b) => a + b)).toBe(evidence.windowEdges);
  });
});

describe('window graph', () => {
  it('has a node per window channel and an edge per kept pair of a conv kernel, weighted by its kept entries', () => {
    // [kh=2, kw=1, in=3, out=2]: entry (p, i, o) at (p·3 + i)·2 + o.
    const shape = [2, 1, 3, 2];
    const g = pairGeometry(shape);
    const bits = new Uint8Array(12);
    bits[entryIndex(g, 0, 0, 0)] = 1;
    bits[entryIndex(g, 1, 0, 0)] = 1; // pair (0 → 0) kept twice
    bits[entryIndex(g, 1, 2, 1)] = 1; // pair (2 → 1) once
    bits[entryIndex(g, 0, 1, 1)] = 1; // pair (1 → 1) once
    // Window over inputs 0..1 and outputs 0..1: (2 → 1) is outside it.
    const graph = windowGraph(bits, g, 0, 0, 2);
    expect(graph.order).toBe(4);
    expect(graph.size).toBe(2);
    expect(graph.getDirectedEdgeAttributes(inputNode(0), outputNode(0))).toEqual({ kept: 2 });
    expect(graph.hasDirectedEdge(inputNode(1), outputNode(1))).toBe(true);
    expect(Array.from(adjacencyOf(graph, 0, 0, 2))).toEqual([1, 0, 0, 1]);
    // Window over inputs 1..2: (0 → 0) is outside it, (1 → 1) and (2 → 1) inside.
    const right = windowGraph(bits, g, 0, 1, 2);
    expect(right.hasNode(inputNode(0))).toBe(false);
    expect(right.hasDirectedEdge(inputNode(2), outputNode(1))).toBe(true);
    expect(Array.from(adjacencyOf(right, 0, 1, 2))).toEqual([0, 0, 1, 1]);
    expect(right.inDegree(outputNode(1))).toBe(2);
  });
});

describe('verification under the null', () => {
  it('does not verify a ticket pruned from another seed', async () => {
    const plan = planSignature(lenet, secret, message);
    const other = await magnitudeMasks(lenet, initWeights(lenet, 2), 0.9);
    const score = scoreSignature(extractSignature(other, plan), plan);
    expect(score.verified).toBe(false);
    expect(score.pValue).toBeGreaterThan(1e-6);
  });

  // The false-positive guarantee is over the key: for any fixed suspect mask, fresh iid bits match
  // each cell with probability exactly 1/2, so the matches are Bin(256, 1/2). (Over random masks with
  // one fixed key they are not: a window of density d matches n₁·d + n₀·(1 − d) cells on average.)
  // So: one realistic suspect mask, 300 claims with fresh nonces, and
  // - the p-values are super-uniform, P[p ≤ α] ≤ α (discrete, hence ≤, not =); an empirical fraction
  //   of 300 exceeds α by more than 3 standard errors with probability below about 0.2 %;
  // - the empirical CDF of the matches stays within the Kolmogorov–Smirnov 1 % band 1.63/√300 of the
  //   exact binomial CDF (for a discrete law the KS test is conservative, so the band holds at least as often).
  // Seeds and nonces are fixed: the check is deterministic, and the bounds say why it should pass.
  it.each([
    ['LeNet-300-100, magnitude 90 %', lenet, () => magnitudeMasks(lenet, initWeights(lenet, 4), 0.9)],
    ['ResNet-20, random 96 %', resnet, () => randomMasks(resnet, 0.96, 4)],
  ] as const)('gives calibrated p-values over claims: %s', async (_label, specs, makeMasks) => {
    const suspect = await makeMasks();
    const trials = 300;
    const matches: number[] = [];
    const pValues: number[] = [];
    for (let t = 0; t < trials; t++) {
      const plan = planSignature(specs, secret, { ...message, nonce: `null-${t}` });
      const score = scoreSignature(extractSignature(suspect, plan), plan);
      matches.push(score.matches);
      pValues.push(score.pValue);
      expect(score.verified).toBe(false);
    }
    for (const alpha of [0.01, 0.05, 0.1, 0.5]) {
      const fraction = pValues.filter((p) => p <= alpha).length / trials;
      expect(fraction).toBeLessThanOrEqual(alpha + 3 * Math.sqrt((alpha * (1 - alpha)) / trials));
    }
    let ks = 0;
    for (let k = 0; k <= 256; k++) {
      const empirical = matches.filter((m) => m <= k).length / trials;
      ks = Math.max(ks, Math.abs(empirical - (1 - binomialUpperTail(256, k + 1, 0.5))));
    }
    expect(ks).toBeLessThan(1.63 / Math.sqrt(trials));
  });
});

describe('extraction on another architecture', () => {
  it('names the layer and the shapes', async () => {
    const plan = planSignature(lenet, secret, message);
    const resnetMasks = await randomMasks(resnet, 0.9, 1);
    expect(() => extractSignature(resnetMasks, plan)).toThrow(MaskFormatError);
    expect(() => extractSignature(resnetMasks, plan)).toThrow(/no such layer.*fc2\.kernel|fc2\.kernel.*no such layer/);
    const conv2 = paramSpecs(architecture('conv-2'), [32, 32, 3], 10);
    const conv2Masks = denseMasks(conv2);
    expect(() => extractSignature(conv2Masks, plan)).toThrow(/'fc2\.kernel' has shape \[256, 256\].*\[300, 100\]/);
  });
});
