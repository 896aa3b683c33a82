import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { loadDataset } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { type WeightSet, initWeights } from '../../../core/models/weights';
import { forgedSignatureAttack, randomKeyClaim, randomRevivalAttack } from '../../../core/ownership/ambiguity-attacks';
import { type AttackInput, type AttackedNetwork, fineTuneAttack, pruneAttack, retrainFromMaskAttack } from '../../../core/ownership/attacks';
import { type SignatureEvidence, type SignaturePlan, embedSignature, planBits, planSignature, verifySignature } from '../../../core/ownership/graph-signature';
import { pairGeometry, windowAdjacency } from '../../../core/ownership/mask-graph';
import { type TriggerSet, type TriggerVerdict, makeTriggerSet, predictTriggers, verifyTriggerSet, withTriggers } from '../../../core/ownership/trigger-set';
import { ceilFraction, sparsityBudget } from '../../../core/pruning/budget';
import { denseMasks } from '../../../core/pruning/imp';
import { magnitudeStrategy } from '../../../core/pruning/magnitude';
import { type MaskSet, countKept } from '../../../core/pruning/mask';
import { DEFAULT_OPTIMIZER } from '../../../core/train/optimizers';
import { type TrainSchedule, evaluateWeights, trainMasked } from '../../../core/train/train';
import { useBackend } from '../../support/backends';

const secret = new Uint8Array(32).map((_, i) => i * 13 + 5);
const message = { fingerprint: 'owner-fp-1', ticketId: 'ticket-1', nonce: 'nonce-1' };

const full = loadDataset('mnist', { validationSize: 500 });
// The first 2,000 test images: enough to see a drop of points, quick to evaluate.
const dataset = { ...full, test: { images: full.test.images.subarray(0, 2000 * 784), labels: full.test.labels.subarray(0, 2000), count: 2000 } };
const arch = architecture('lenet-300-100');
const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
const schedule: TrainSchedule = { iterations: 500, batchSize: 60, evalEvery: 10_000, optimizer: { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 1.2e-3 } };

function layer(masks: MaskSet, name: string): Uint8Array {
  return masks.find((m) => m.name === name)!.bits;
}

function tensor(weights: WeightSet, name: string): Float32Array {
  return weights.find((t) => t.name === name)!.values;
}

function kept(masks: MaskSet): number {
  return masks.reduce((n, m) => n + countKept(m.bits), 0);
}

/** Every kept entry of `inner` is kept in `outer`. */
function within(inner: MaskSet, outer: MaskSet): boolean {
  return inner.every((m) => {
    const o = layer(outer, m.name);
    return m.bits.every((b, e) => !b || o[e] === 1);
  });
}

function sameMasks(a: MaskSet, b: MaskSet): boolean {
  return a.length === b.length && a.every((m, k) => m.name === b[k]!.name && Buffer.from(m.bits).equals(Buffer.from(b[k]!.bits)));
}

/** Entries where a mask prunes carry exactly zero weight. */
function zeroWherePruned(net: AttackedNetwork): boolean {
  return net.masks.every((m) => {
    const w = tensor(net.weights, m.name);
    return m.bits.every((b, e) => b === 1 || w[e] === 0);
  });
}

describe('attacks on a claimed LeNet-300-100 ticket (wasm)', () => {
  let plan: SignaturePlan;
  let triggers: TriggerSet;
  let claimed: AttackInput;
  let unattacked: Measured;
  const lines: string[] = [];

  interface Measured {
    testAccuracy: number;
    signature: SignatureEvidence;
    trigger: TriggerVerdict;
  }

  async function measure(label: string, net: { weights: WeightSet; masks: MaskSet }, extra = ''): Promise<Measured> {
    const { test } = await evaluateWeights(arch, specs, dataset, net.weights, net.masks);
    const signature = verifySignature(net.masks, plan);
    const trigger = verifyTriggerSet(await predictTriggers({ arch, specs, weights: net.weights, masks: net.masks, normalization: dataset.normalization }, triggers), triggers);
    lines.push(
      `${label}: test ${test.accuracy.toFixed(4)}; signature ${signature.matches}/256 (p ${signature.pValue.toExponential(2)}, ${signature.verified ? 'verified' : 'NOT verified'}); ` +
        `trigger ${trigger.matches}/100 (p ${trigger.pValue.toExponential(2)}, ${trigger.verified ? 'verified' : 'NOT verified'})${extra}`,
    );
    return { testAccuracy: test.accuracy, signature, trigger };
  }

  beforeAll(async () => {
    await useBackend('wasm');
    // A real ticket: train dense, prune 90 % of each layer by magnitude, sign the mask and train the
    // signed ticket from its init (the rewind point) with the trigger set mixed in: the owner's claim.
    const init = initWeights(specs, 1);
    const dense = await trainMasked({ arch, specs, dataset, weights: init, masks: denseMasks(specs), schedule: { ...schedule, iterations: 300 }, dataSeed: 1 });
    const names = specs.filter((s) => s.prunable).map((s) => s.name);
    const ticket = await magnitudeStrategy.prune(
      { weights: dense.finalWeights, masks: denseMasks(specs), budget: sparsityBudget(denseMasks(specs), 0.9, 'layer', names), params: {}, seed: 0 },
      new AbortController().signal,
    );
    plan = planSignature(specs, secret, message);
    const { masks } = embedSignature(ticket, plan, { seed: 1, weights: dense.finalWeights });
    triggers = makeTriggerSet(secret, message, { imageShape: dataset.imageShape, numClasses: dataset.numClasses });
    const owner = await trainMasked({ arch, specs, dataset: withTriggers(dataset, triggers, { batchSize: 60, perBatch: 4 }), weights: init, masks, schedule, dataSeed: 2 });
    claimed = { arch, specs, dataset, weights: owner.finalWeights, masks, schedule, seed: 11 };
    unattacked = await measure('claimed ticket (unattacked)', claimed, `; ${kept(masks)} weights kept, signature in ${plan.layer} at (${plan.row}, ${plan.col})`);
  });

  afterAll(() => {
    console.log(lines.join('\n'));
  });

  it('starts from a claim whose signature and trigger set both verify', () => {
    expect(unattacked.signature).toMatchObject({ matches: 256, verified: true });
    expect(unattacked.trigger.verified).toBe(true);
    expect(unattacked.testAccuracy).toBeGreaterThan(0.85);
  });

  it('does not verify a random-key claim on the untouched ticket', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const claim = randomKeyClaim(claimed, { seed });
      expect(sameMasks(claim.masks, claimed.masks)).toBe(true);
      expect(claim.plan.bitsDigest).not.toBe(plan.bitsDigest);
      const evidence = verifySignature(claim.masks, claim.plan);
      if (seed === 1) lines.push(`random-key claim (seed 1): ${evidence.matches}/256 at (${claim.plan.row}, ${claim.plan.col}), p ${evidence.pValue.toPrecision(3)}`);
      expect(evidence.verified).toBe(false);
      expect(evidence.pValue).toBeGreaterThan(1e-6);
    }
  });

  it('fine-tunes with the mask fixed: the signature cannot move, the weights do', async () => {
    const before = tf.memory().numTensors;
    const tuned = await fineTuneAttack(claimed, { iterations: 200 });
    expect(tf.memory().numTensors).toBe(before);
    expect(tuned.description).toMatchObject({ attack: 'fine-tune', mask: 'fixed', iterations: 200, rewindLearningRate: false, startIteration: 0 });
    expect(tuned.description.optimizer).toMatchObject({ name: 'sgd', learningRate: 0.01, momentum: 0.9 });
    expect(sameMasks(tuned.masks, claimed.masks)).toBe(true);
    expect(zeroWherePruned(tuned)).toBe(true);
    const w = tensor(tuned.weights, plan.layer);
    const w0 = tensor(claimed.weights, plan.layer);
    expect(w.some((v, e) => v !== w0[e])).toBe(true);
    const m = await measure('fine-tune 200 steps, SGD 0.01, mask fixed', tuned);
    expect(m.signature).toMatchObject({ matches: 256, verified: true });
  });

  it('fine-tunes with LR rewinding: the last N steps of the ticket\'s own schedule', async () => {
    const tuned = await fineTuneAttack(claimed, { iterations: 200, rewindLearningRate: true });
    expect(tuned.description).toMatchObject({ rewindLearningRate: true, startIteration: 300, iterations: 200 });
    expect(tuned.description.optimizer).toEqual(schedule.optimizer);
    expect(sameMasks(tuned.masks, claimed.masks)).toBe(true);
    const m = await measure('fine-tune 200 steps, LR rewound (Adam 1.2e-3, steps 300..500)', tuned);
    expect(m.signature).toMatchObject({ matches: 256, verified: true });
    await expect(fineTuneAttack(claimed, { iterations: 501, rewindLearningRate: true })).rejects.toThrow(InvalidRequestError);
    await expect(fineTuneAttack({ ...claimed, schedule: undefined }, { iterations: 10, rewindLearningRate: true })).rejects.toThrow(/schedule/);
  });

  it('fine-tunes free: the mask of w ≠ 0 densifies; the claimed-count mask is scored beside it', async () => {
    const tuned = await fineTuneAttack(claimed, { iterations: 100, free: true });
    expect(tuned.description).toMatchObject({ mask: 'free', iterations: 100 });
    expect(kept(tuned.masks)).toBeGreaterThan(kept(claimed.masks));
    const countMatched = tuned.claimedCountMasks!;
    for (const m of claimed.masks) expect(countKept(layer(countMatched, m.name))).toBe(countKept(m.bits));
    const dense = await measure('fine-tune 100 steps free, mask w ≠ 0', tuned, `; ${kept(tuned.masks)} of ${kept(denseMasks(specs))} nonzero`);
    const byCount = await measure('fine-tune 100 steps free, claimed-count mask', { weights: tuned.weights, masks: countMatched });
    expect(dense.signature.matches).toBeLessThanOrEqual(256);
    // Small-rate updates do not overtake the trained weights: the largest |w| are still the claimed ones.
    expect(byCount.signature.verified).toBe(true);
  });

  it.each([
    [0.1, 'magnitude'],
    [0.5, 'magnitude'],
    [0.5, 'random'],
  ] as const)('prunes a further %s of the remaining weights by %s, without fine-tuning', async (fraction, by) => {
    const pruned = await pruneAttack(claimed, { fraction, by });
    const before = kept(claimed.masks);
    expect(kept(pruned.masks)).toBe(before - ceilFraction(fraction, before));
    expect(pruned.description).toMatchObject({ attack: 'prune', fraction, by, scope: 'global', keptBefore: before, pruned: ceilFraction(fraction, before) });
    expect(within(pruned.masks, claimed.masks)).toBe(true);
    expect(zeroWherePruned(pruned)).toBe(true);
    const m = await measure(`prune +${fraction * 100} % by ${by}`, pruned);
    // Pruning only removes edges: a bit-0 cell still matches, a bit-1 cell matches while one entry of its pair survives.
    expect(m.signature.matches).toBeLessThanOrEqual(unattacked.signature.matches);
    const bits = planBits(plan);
    const window = windowAdjacency(layer(pruned.masks, plan.layer), pairGeometry(plan.shape), plan.row, plan.col, plan.size);
    expect(m.signature.matches).toBe(256 - bits.reduce((n, b, k) => n + (b === 1 && window[k] === 0 ? 1 : 0), 0));
    if (fraction <= 0.1) expect(m.signature.verified).toBe(true);
    if (by === 'magnitude') {
      // The smallest kept weights went: none removed is larger than any survivor.
      let removedMax = 0;
      let keptMin = Infinity;
      for (const mask of claimed.masks) {
        const w = tensor(claimed.weights, mask.name);
        const now = layer(pruned.masks, mask.name);
        mask.bits.forEach((b, e) => {
          if (!b) return;
          if (now[e]) keptMin = Math.min(keptMin, Math.abs(w[e]!));
          else removedMax = Math.max(removedMax, Math.abs(w[e]!));
        });
      }
      expect(removedMax).toBeLessThanOrEqual(keptMin);
    }
  });

  it('prunes the same fraction of every layer with scope layer', async () => {
    const pruned = await pruneAttack(claimed, { fraction: 0.2, scope: 'layer' });
    for (const m of claimed.masks) expect(countKept(layer(pruned.masks, m.name))).toBe(countKept(m.bits) - ceilFraction(0.2, countKept(m.bits)));
    expect(within(pruned.masks, claimed.masks)).toBe(true);
  });

  it.each([
    [0.1, 'all layers'],
    [0.5, 'the signature layer'],
  ] as const)('revives %s of the pruned entries of %s at random', async (fraction, where) => {
    const layers = where === 'all layers' ? undefined : [plan.layer];
    const revived = randomRevivalAttack(claimed, { fraction, ...(layers ? { layers } : {}) });
    const pool = (layers ?? claimed.masks.map((m) => m.name)).reduce((n, name) => n + layer(claimed.masks, name).length - countKept(layer(claimed.masks, name)), 0);
    expect(revived.description).toMatchObject({ attack: 'random-revival', prunedBefore: pool, revived: ceilFraction(fraction, pool) });
    expect(kept(revived.masks) - kept(claimed.masks)).toBe(ceilFraction(fraction, pool));
    // Only zeros became ones, and every revived entry carries a weight.
    expect(within(claimed.masks, revived.masks)).toBe(true);
    expect(zeroWherePruned(revived)).toBe(true);
    for (const m of revived.masks) {
      const old = layer(claimed.masks, m.name);
      const w = tensor(revived.weights, m.name);
      const w0 = tensor(claimed.weights, m.name);
      m.bits.forEach((b, e) => {
        if (old[e]) expect(w[e]).toBe(w0[e]);
        else if (b) expect(w[e]).not.toBe(0);
      });
      if (layers && m.name !== plan.layer) expect(Buffer.from(m.bits).equals(Buffer.from(old))).toBe(true);
    }
    const m = await measure(`random revival ${fraction * 100} % of ${where}`, revived);
    // Revival only adds edges: a bit-1 cell still matches.
    const bits = planBits(plan);
    const window = windowAdjacency(layer(revived.masks, plan.layer), pairGeometry(plan.shape), plan.row, plan.col, plan.size);
    expect(m.signature.matches).toBe(256 - bits.reduce((n, b, k) => n + (b === 0 && window[k] === 1 ? 1 : 0), 0));
  });

  it("forges a signature over the owner's: both verify", async () => {
    // Seed 11's window does not overlap the owner's (asserted), so only the forger's kept-count repair can touch it.
    const forged = forgedSignatureAttack(claimed, { seed: 11 });
    expect(forged.plan.layer).toBe(plan.layer); // LeNet-300-100 has one eligible layer
    const overlaps = Math.abs(forged.plan.row - plan.row) < plan.size && Math.abs(forged.plan.col - plan.col) < plan.size;
    expect(overlaps).toBe(false);
    expect(kept(forged.masks)).toBe(kept(claimed.masks));
    expect(zeroWherePruned(forged)).toBe(true);
    expect(forged.description).toMatchObject({ attack: 'forged-signature', changed: forged.edits.changed });
    expect(forged.description.reinitialized).toBeGreaterThan(0);

    const forgedEvidence = verifySignature(forged.masks, forged.plan);
    expect(forgedEvidence).toMatchObject({ matches: 256, verified: true });
    const g = pairGeometry(plan.shape);
    const ownerBefore = windowAdjacency(layer(claimed.masks, plan.layer), g, plan.row, plan.col, plan.size);
    const ownerAfter = windowAdjacency(layer(forged.masks, plan.layer), g, plan.row, plan.col, plan.size);
    const touched = ownerAfter.reduce((n, a, k) => n + (a !== ownerBefore[k] ? 1 : 0), 0);
    const m = await measure('forged signature (attacker seed 11), not retrained', forged, `; forged ${forgedEvidence.matches}/256 at (${forged.plan.row}, ${forged.plan.col}); ${forged.edits.changed} entries changed, ${touched} owner cells touched by the repair`);
    expect(m.signature.matches).toBe(256 - touched);
    expect(m.signature.verified).toBe(true);
  });

  it('re-trains from the mask: the topology (and signature) stays, the weights and the trigger set go', async () => {
    const retrained = await retrainFromMaskAttack(claimed, { schedule: { ...schedule, iterations: 300 }, seed: 5 });
    expect(retrained.description).toMatchObject({ attack: 'retrain-from-mask', seed: 5, iterations: 300 });
    expect(sameMasks(retrained.masks, claimed.masks)).toBe(true);
    expect(zeroWherePruned(retrained)).toBe(true);
    const w = tensor(retrained.weights, plan.layer);
    const w0 = tensor(claimed.weights, plan.layer);
    const same = layer(claimed.masks, plan.layer).reduce((n, b, e) => n + (b && w[e] === w0[e] ? 1 : 0), 0);
    expect(same).toBe(0);
    const m = await measure('re-trained from the mask, fresh init, 300 steps', retrained);
    expect(m.signature).toMatchObject({ matches: 256, verified: true });
    // Trained on clean data only, the network's predictions are independent of the keyed labels: the null holds.
    expect(m.trigger.verified).toBe(false);
  });

  it('refuses impossible strengths', async () => {
    await expect(pruneAttack(claimed, { fraction: 1 })).rejects.toThrow(InvalidRequestError);
    await expect(pruneAttack(claimed, { fraction: -0.1 })).rejects.toThrow(InvalidRequestError);
    expect(() => randomRevivalAttack(claimed, { fraction: 1.5 })).toThrow(InvalidRequestError);
    expect(() => randomRevivalAttack(claimed, { fraction: 0.1, layers: ['nope'] })).toThrow(/nope/);
    await expect(fineTuneAttack(claimed, { iterations: 10, epochs: 1 })).rejects.toThrow(/not both/);
    await expect(retrainFromMaskAttack({ ...claimed, schedule: undefined })).rejects.toThrow(/schedule/);
  });
});
