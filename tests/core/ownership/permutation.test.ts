// Hidden-unit permutation (issue Step 5, item 5): the attack leaves the function unchanged and moves
// the signature; alignment to the claimed ticket undoes it, exactly on a permuted copy and nearly so
// after noise, and the graph signature verifies again.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { Rng } from '../../../core/compute/rng';
import { type ParamSpec, architecture, paramSpecs } from '../../../core/models/architectures';
import { MaskedNetwork } from '../../../core/models/network';
import { type WeightSet, initWeights } from '../../../core/models/weights';
import { solveAssignment } from '../../../core/ownership/assignment';
import { embedSignature, planSignature, verifySignature } from '../../../core/ownership/graph-signature';
import { windowEntries } from '../../../core/ownership/mask-graph';
import { alignToReference, channelGroups, permuteHiddenUnits } from '../../../core/ownership/permutation';
import { denseMasks } from '../../../core/pruning/imp';
import { type MaskSet, countKept } from '../../../core/pruning/mask';
import { useBackend } from '../../support/backends';

const cases = [
  { id: 'lenet-300-100', inputShape: [28, 28, 1] as const },
  { id: 'conv-2', inputShape: [8, 8, 1] as const },
  { id: 'resnet-20', inputShape: [8, 8, 3] as const },
  { id: 'resnet-20-openlth', inputShape: [8, 8, 3] as const },
];

/** Seeded init, with biases and BatchNorm tensors drawn too: at init they are constant, and a permutation of constants proves nothing. */
function randomWeights(specs: readonly ParamSpec[], seed: number): WeightSet {
  const rng = Rng.stream(seed, 'permutation-test-weights');
  return initWeights(specs, seed).map((t) => {
    const spec = specs.find((s) => s.name === t.name)!;
    if (spec.kind === 'kernel') return t;
    const draw = spec.kind === 'runningVar' || spec.kind === 'gamma' ? () => 0.5 + rng.next() : () => 0.1 * rng.normal();
    return { ...t, values: t.values.map(draw) };
  });
}

/** Each kernel keeps a seeded random `keep` of its entries. */
function randomMasks(specs: readonly ParamSpec[], keep: number, seed: number): MaskSet {
  const rng = Rng.stream(seed, 'permutation-test-masks');
  return denseMasks(specs).map((m) => ({ ...m, bits: m.bits.map(() => (rng.next() < keep ? 1 : 0)) }));
}

function logits(id: string, specs: readonly ParamSpec[], weights: WeightSet, masks: MaskSet, x: Float32Array, shape: readonly number[]): Float32Array {
  const net = new MaskedNetwork(architecture(id), specs, weights, masks);
  try {
    return tf.tidy(() => net.forward(tf.tensor4d(x, [4, shape[0]!, shape[1]!, shape[2]!])).dataSync() as Float32Array);
  } finally {
    net.dispose();
  }
}

function sameTensors(a: WeightSet, b: WeightSet): boolean {
  return a.length === b.length && a.every((t, k) => t.name === b[k]!.name && Buffer.from(t.values.buffer).equals(Buffer.from(b[k]!.values.buffer)));
}

function sameMasks(a: MaskSet, b: MaskSet): boolean {
  return a.length === b.length && a.every((m, k) => m.name === b[k]!.name && Buffer.from(m.bits).equals(Buffer.from(b[k]!.bits)));
}

/** Units whose alignment undoes the attack (σ[π[j]] = j), over every group. */
function recovered(permutations: Record<string, Int32Array>, alignment: Record<string, Int32Array>): { right: number; total: number } {
  let right = 0;
  let total = 0;
  for (const [name, pi] of Object.entries(permutations)) {
    const s = alignment[name]!;
    pi.forEach((p, j) => (right += s[p] === j ? 1 : 0));
    total += pi.length;
  }
  return { right, total };
}

const isIdentity = (p: Int32Array): boolean => p.every((v, j) => v === j);

describe.each(cases)('$id on $inputShape', ({ id, inputShape }) => {
  const arch = architecture(id);
  const specs = paramSpecs(arch, inputShape, 10);
  const weights = randomWeights(specs, 11);
  const masks = randomMasks(specs, 0.6, 12);
  const attacked = permuteHiddenUnits(arch, specs, weights, masks, 13);

  beforeAll(async () => {
    await useBackend('cpu');
  });

  it('keeps the logits while moving every hidden group', () => {
    const rng = Rng.stream(14, 'inputs');
    const x = Float32Array.from({ length: 4 * inputShape[0] * inputShape[1] * inputShape[2] }, () => rng.normal());
    const before = logits(id, specs, weights, masks, x, inputShape);
    const after = logits(id, specs, attacked.weights, attacked.masks, x, inputShape);
    expect(Math.max(...before.map((v) => Math.abs(v)))).toBeGreaterThan(1e-2); // not a dead network
    for (let k = 0; k < before.length; k++) expect(Math.abs(after[k]! - before[k]!)).toBeLessThan(1e-4);

    const groups = channelGroups(arch, specs);
    expect(Object.keys(attacked.permutations)).toEqual(groups.map((g) => g.name));
    for (const g of groups) expect(isIdentity(attacked.permutations[g.name]!), g.name).toBe(false);
    // Every tensor touching a hidden unit moved; the output layer's bias (the classes) did not.
    const output = specs.filter((s) => s.role === 'output' && s.kind === 'bias')[0]!.name;
    for (const [k, t] of attacked.weights.entries()) {
      const unchanged = Buffer.from(t.values.buffer).equals(Buffer.from(weights[k]!.values.buffer));
      expect(unchanged, t.name).toBe(t.name === output);
    }
    for (const [k, m] of attacked.masks.entries()) expect(countKept(m.bits)).toBe(countKept(masks[k]!.bits));
  });

  it('is undone exactly by alignment to the original', () => {
    const aligned = alignToReference(arch, specs, { weights, masks }, attacked);
    expect(sameTensors(aligned.weights, weights)).toBe(true);
    expect(sameMasks(aligned.masks, masks)).toBe(true);
    const { right, total } = recovered(attacked.permutations, aligned.permutations);
    expect(right).toBe(total);
    expect(aligned.cost).toBeLessThan(1e-6);
  });

  it('aligns the original to itself with identities at zero cost', () => {
    const aligned = alignToReference(arch, specs, { weights, masks }, { weights, masks });
    for (const p of Object.values(aligned.permutations)) expect(isIdentity(p)).toBe(true);
    expect(aligned.cost).toBeLessThan(1e-6);
  });

  it.each([
    ['its ticket mask', 0.6],
    ['dense masks (weights alone)', 1],
  ] as const)('recovers the units after Gaussian noise, with %s', (_label, keep) => {
    const m = keep === 1 ? denseMasks(specs) : masks;
    const permuted = keep === 1 ? permuteHiddenUnits(arch, specs, weights, m, 13) : attacked;
    // Noise at 20 % of each tensor's RMS: far more than fine-tuning at a small learning rate moves a weight.
    const rng = Rng.stream(15, 'noise');
    const noisy = permuted.weights.map((t) => {
      const rms = Math.sqrt(t.values.reduce((s, v) => s + v * v, 0) / t.values.length);
      return { ...t, values: t.values.map((v) => v + 0.2 * rms * rng.normal()) };
    });
    const aligned = alignToReference(arch, specs, { weights, masks: m }, { weights: noisy, masks: permuted.masks });
    const { right, total } = recovered(permuted.permutations, aligned.permutations);
    expect(right / total).toBeGreaterThanOrEqual(0.99);
    expect(sameMasks(aligned.masks, m)).toBe(right === total);
  });

  it('moves the graph signature, and alignment brings it back', () => {
    const secret = new Uint8Array(32).map((_, i) => i * 7 + 1);
    const plan = planSignature(specs, secret, { fingerprint: 'owner', ticketId: id, nonce: 'permutation' });
    const { masks: signed } = embedSignature(masks, plan, { seed: 3, weights });
    expect(verifySignature(signed, plan).verified).toBe(true);
    const stolen = permuteHiddenUnits(arch, specs, weights, signed, 16);
    const moved = verifySignature(stolen.masks, plan);
    expect(moved.verified).toBe(false);
    expect(moved.matches).toBeLessThan(170);
    const aligned = alignToReference(arch, specs, { weights, masks: signed }, stolen);
    expect(verifySignature(aligned.masks, plan)).toMatchObject({ verified: true, matches: 256 });
  });

  it('blind to the signature window, aligns a stranger the same whatever the reference holds there', () => {
    const secret = new Uint8Array(32).map((_, i) => i * 5 + 3);
    const plan = planSignature(specs, secret, { fingerprint: 'owner', ticketId: id, nonce: 'blind' });
    const { masks: signed } = embedSignature(masks, plan, { seed: 3, weights });
    const stranger = permuteHiddenUnits(arch, specs, randomWeights(specs, 99), randomMasks(specs, 0.6, 98), 5);
    const entries = windowEntries(plan.shape, plan.row, plan.col, plan.size);
    // The window's entries of the reference flipped: another signature, the same alignment.
    const flipped = signed.map((m) => (m.name === plan.layer ? { ...m, bits: m.bits.map((b, k) => (entries.includes(k) ? 1 - b : b)) } : m));
    const blind = { blind: { tensor: plan.layer, entries } };
    const a = alignToReference(arch, specs, { weights, masks: signed }, stranger, blind);
    const b = alignToReference(arch, specs, { weights, masks: flipped }, stranger, blind);
    for (const [group, perm] of Object.entries(a.permutations)) expect([...b.permutations[group]!], group).toEqual([...perm]);
    // Seeing the window, the alignment depends on it.
    const seeing = alignToReference(arch, specs, { weights, masks: flipped }, stranger);
    expect(Object.entries(a.permutations).some(([group, perm]) => perm.some((v, j) => v !== seeing.permutations[group]![j]))).toBe(true);
  });
});

describe('channel groups', () => {
  it('ties a ResNet stage\'s stream across its blocks, the option-A stream to the stage before', () => {
    const specs = paramSpecs(architecture('resnet-20'), [8, 8, 3], 10);
    const groups = channelGroups(architecture('resnet-20'), specs);
    const summary = groups.map((g) => [g.name, g.size, g.tie ?? null]);
    expect(summary).toEqual([
      ['conv', 16, null],
      ...[0, 1, 2].map((b) => [`blocks.${b}.conv1`, 16, null]),
      ['blocks.3.conv1', 32, null],
      ['blocks.3.conv2', 32, { parent: 'conv', offset: 8, width: 16 }],
      ...[4, 5].map((b) => [`blocks.${b}.conv1`, 32, null]),
      ['blocks.6.conv1', 64, null],
      ['blocks.6.conv2', 64, { parent: 'blocks.3.conv2', offset: 16, width: 32 }],
      ...[7, 8].map((b) => [`blocks.${b}.conv1`, 64, null]),
    ]);
    // Stage 1's stream: the stem conv, its BatchNorm, every block's conv2 and bn2 write it; every conv1 and stage 2's first block read it.
    const stem = groups[0]!.axes.map((a) => a.tensor);
    expect(stem).toEqual(expect.arrayContaining(['conv.kernel', 'bn.gamma', 'bn.runningVar', 'blocks.0.conv2.kernel', 'blocks.2.bn2.beta', 'blocks.3.conv1.kernel']));
    expect(stem).not.toContain('blocks.3.conv2.kernel');

    // The permutation respects the tie: the middle of stage 2's stream follows stage 1's.
    const weights = randomWeights(specs, 1);
    const { permutations } = permuteHiddenUnits(architecture('resnet-20'), specs, weights, denseMasks(specs), 2);
    const stage1 = permutations['conv']!;
    const stage2 = permutations['blocks.3.conv2']!;
    for (let k = 0; k < 16; k++) expect(stage2[8 + k]).toBe(8 + stage1[k]!);
    expect([...stage2.slice(0, 8), ...stage2.slice(24)].every((p) => p < 8 || p >= 24)).toBe(true);
  });

  it('gives the open_lth ResNet\'s projection streams their own groups, and a conv net\'s flatten its channels', () => {
    const openlth = channelGroups(architecture('resnet-20-openlth'), paramSpecs(architecture('resnet-20-openlth'), [8, 8, 3], 10));
    const streams = openlth.filter((g) => !g.name.endsWith('conv1'));
    expect(streams.map((g) => [g.name, g.size, g.tie])).toEqual([['conv', 16, undefined], ['blocks.3.conv2', 32, undefined], ['blocks.6.conv2', 64, undefined]]);
    expect(streams[1]!.axes.map((a) => a.tensor)).toContain('blocks.3.shortcut.0.kernel');

    const conv2 = channelGroups(architecture('conv-2'), paramSpecs(architecture('conv-2'), [8, 8, 1], 10));
    expect(conv2.map((g) => [g.name, g.size])).toEqual([['conv1', 64], ['conv2', 64], ['fc1', 256], ['fc2', 256]]);
    // fc1 reads the 4×4×64 pooled map: conv2's channels, one row per pixel.
    expect(conv2[1]!.axes.find((a) => a.tensor === 'fc1.kernel')).toEqual({ tensor: 'fc1.kernel', outer: 16, size: 64, inner: 256 });
  });

  it('refuses weights of another architecture', () => {
    const arch = architecture('lenet-8-4');
    const specs = paramSpecs(arch, [4, 4, 1], 10);
    const other = initWeights(paramSpecs(architecture('lenet-8-5'), [4, 4, 1], 10), 1);
    expect(() => permuteHiddenUnits(arch, specs, other, [], 1)).toThrow(InvalidRequestError);
    expect(() => alignToReference(arch, specs, { weights: initWeights(specs, 1), masks: [] }, { weights: other, masks: [] })).toThrow(InvalidRequestError);
  });
});

describe('assignment solver', () => {
  function bruteForce(cost: Float64Array, n: number): number {
    let best = Infinity;
    const visit = (row: number, used: number, sum: number): void => {
      if (row === n) {
        best = Math.min(best, sum);
        return;
      }
      for (let c = 0; c < n; c++) if (!(used & (1 << c))) visit(row + 1, used | (1 << c), sum + cost[row * n + c]!);
    };
    visit(0, 0, 0);
    return best;
  }

  it('finds the least-cost permutation, ties and negative costs included', () => {
    const rng = Rng.stream(1, 'assignment');
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + (trial % 7);
      const cost = Float64Array.from({ length: n * n }, () => (trial % 3 === 0 ? rng.int(3) - 1 : rng.normal() * 10));
      const column = solveAssignment(cost, n);
      expect(new Set(column).size).toBe(n);
      const sum = column.reduce((s, c, r) => s + cost[r * n + c]!, 0);
      expect(sum).toBeCloseTo(bruteForce(cost, n), 9);
    }
    expect(solveAssignment(new Float64Array(0), 0)).toEqual(new Int32Array(0));
    expect(() => solveAssignment(new Float64Array(3), 2)).toThrow(RangeError);
  });

  it('undoes a shuffle of 300 units in well under a second', () => {
    const rng = Rng.stream(2, 'assignment-large');
    const n = 300;
    const truth = rng.permutation(n);
    const cost = Float64Array.from({ length: n * n }, (_, k) => (truth[Math.floor(k / n)] === k % n ? 0 : 1 + rng.next()));
    const start = performance.now();
    expect(Array.from(solveAssignment(cost, n))).toEqual(Array.from(truth));
    expect(performance.now() - start).toBeLessThan(1000);
  });
});
