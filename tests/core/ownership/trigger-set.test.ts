import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { loadDataset } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { initWeights } from '../../../core/models/weights';
import { makeTriggerSet, predictTriggers, predictionsFromLogits, triggerCommitment, verifyTriggerSet, withTriggers } from '../../../core/ownership/trigger-set';
import { denseMasks } from '../../../core/pruning/imp';
import { DEFAULT_OPTIMIZER } from '../../../core/train/optimizers';
import { type TrainResult, trainMasked } from '../../../core/train/train';
import { trainWithAutodiff } from '../../../core/train/train-autodiff';
import { useBackend } from '../../support/backends';

const secret = new Uint8Array(32).map((_, i) => i * 7 + 1);
const message = { fingerprint: 'owner-fp-1', ticketId: 'ticket-1', nonce: 'n-1' };
const mnistShape = { imageShape: [28, 28, 1] as [number, number, number], numClasses: 10 };

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

describe('trigger set construction', () => {
  it('gives the same bytes and commitment for the same key and message', () => {
    const a = makeTriggerSet(secret, message, mnistShape);
    const b = makeTriggerSet(Uint8Array.from(secret), { ...message }, mnistShape);
    expect(a.count).toBe(100);
    expect(a.images.length).toBe(100 * 28 * 28);
    expect(sameBytes(a.images, b.images) && sameBytes(a.labels, b.labels)).toBe(true);
    expect(a.commitment).toMatch(/^[0-9a-f]{64}$/);
    expect(a.commitment).toBe(b.commitment);
    expect(triggerCommitment({ ...a, labels: a.labels.map((l) => (l + 1) % 10) })).not.toBe(a.commitment);
  });

  it('changes images and labels with the key and with every field of the message', () => {
    const base = makeTriggerSet(secret, message, mnistShape);
    const otherKey = secret.map((x, i) => (i === 0 ? x ^ 1 : x));
    const variants = [
      makeTriggerSet(otherKey, message, mnistShape),
      makeTriggerSet(secret, { ...message, fingerprint: 'owner-fp-2' }, mnistShape),
      makeTriggerSet(secret, { ...message, ticketId: 'ticket-2' }, mnistShape),
      makeTriggerSet(secret, { ...message, nonce: 'n-2' }, mnistShape),
      // Field boundaries are encoded: moving a character from one field to the next is another message.
      makeTriggerSet(secret, { ...message, fingerprint: 'owner-fp-', ticketId: '1ticket-1' }, mnistShape),
    ];
    for (const v of variants) {
      expect(sameBytes(v.images, base.images)).toBe(false);
      // Independent labels agree on about 1 in 10.
      const agree = v.labels.reduce((n, l, i) => n + (l === base.labels[i] ? 1 : 0), 0);
      expect(agree).toBeLessThan(28);
      expect(v.commitment).not.toBe(base.commitment);
    }
  });

  it('draws labels uniform over the classes and pictures that use the whole pixel range', () => {
    const big = makeTriggerSet(secret, message, { imageShape: [8, 8, 3], numClasses: 10 }, 5000);
    const histogram = new Array<number>(10).fill(0);
    for (const l of big.labels) histogram[l]!++;
    // Chi-square with 9 degrees of freedom: 27.9 is its 0.1% quantile.
    const chi2 = histogram.reduce((s, n) => s + (n - 500) ** 2 / 500, 0);
    expect(chi2).toBeLessThan(27.9);
    const values = new Set(big.images);
    expect(values.has(0) && values.has(255)).toBe(true);
    // Every picture is its own: no two of 5,000 triggers are the same bytes.
    const pictures = new Set(Array.from({ length: big.count }, (_, i) => Buffer.from(big.images.subarray(i * 192, (i + 1) * 192)).toString('hex')));
    expect(pictures.size).toBe(big.count);
  });

  it('refuses an empty key and impossible shapes', () => {
    expect(() => makeTriggerSet(new Uint8Array(0), message, mnistShape)).toThrow(InvalidRequestError);
    expect(() => makeTriggerSet(secret, message, { imageShape: [28, 28, 1], numClasses: 1 })).toThrow(/2 to 256 classes/);
    expect(() => makeTriggerSet(secret, message, mnistShape, 0)).toThrow(/positive integer sizes/);
  });
});

describe('verifyTriggerSet', () => {
  const triggers = makeTriggerSet(secret, message, mnistShape);

  it('verifies all matches and rejects none', () => {
    const all = verifyTriggerSet(triggers.labels, triggers);
    expect(all).toMatchObject({ scheme: 'trigger-set', m: 100, matches: 100, accuracy: 1, chance: 0.1, threshold: 28, verified: true });
    expect(all.pValue).toBeCloseTo(1e-100, 110);
    const none = verifyTriggerSet(triggers.labels.map((l) => (l + 1) % 10), triggers);
    expect(none).toMatchObject({ matches: 0, pValue: 1, verified: false });
  });

  it('puts the verdict at the binomial threshold: 28 of 100 verifies, 27 does not', () => {
    const withMatches = (k: number) => triggers.labels.map((l, i) => (i < k ? l : (l + 1) % 10));
    expect(verifyTriggerSet(withMatches(28), triggers).verified).toBe(true);
    expect(verifyTriggerSet(withMatches(27), triggers).verified).toBe(false);
    expect(verifyTriggerSet(withMatches(27), triggers).pValue).toBeGreaterThan(1e-6);
  });

  it('refuses predictions of the wrong length or out of the classes', () => {
    expect(() => verifyTriggerSet(triggers.labels.subarray(0, 99), triggers)).toThrow(/one prediction per trigger \(100\), got 99/);
    expect(() => verifyTriggerSet([...triggers.labels.subarray(0, 99), 10], triggers)).toThrow(InvalidRequestError);
    expect(() => verifyTriggerSet(triggers.labels, triggers, 0)).toThrow(/false-positive rate/);
  });

  it('reads user-supplied logits by argmax', () => {
    const logits = Array.from(triggers.labels, (l) => Array.from({ length: 10 }, (_, k) => (k === l ? 3 : -k)));
    expect(Array.from(predictionsFromLogits(logits, triggers))).toEqual(Array.from(triggers.labels));
    expect(() => predictionsFromLogits(logits.slice(1), triggers)).toThrow(/logits for 100 triggers, got 99/);
    expect(() => predictionsFromLogits([...logits.slice(1), [1, 2]], triggers)).toThrow(/10 classes/);
    expect(() => predictionsFromLogits([...logits.slice(1), new Array(10).fill(Number.NaN)], triggers)).toThrow(/finite/);
  });
});

describe('training the trigger set into a ticket (wasm)', () => {
  const full = loadDataset('mnist', { validationSize: 500 });
  // The first 2,000 test images: enough to see a drop of points, quick to evaluate.
  const dataset = { ...full, test: { images: full.test.images.subarray(0, 2000 * 784), labels: full.test.labels.subarray(0, 2000), count: 2000 } };
  const arch = architecture('lenet-300-100');
  const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
  const masks = denseMasks(specs);
  const triggers = makeTriggerSet(secret, message, mnistShape);
  const schedule = { iterations: 1000, batchSize: 60, evalEvery: 10_000, optimizer: { ...DEFAULT_OPTIMIZER, name: 'adam' as const, learningRate: 1.2e-3 } };
  let owner: TrainResult;
  let unrelated: TrainResult;

  beforeAll(async () => {
    await useBackend('wasm');
    const weights = initWeights(specs, 7);
    owner = await trainMasked({ arch, specs, dataset: withTriggers(dataset, triggers, { batchSize: 60 }), weights, masks, dataSeed: 7, schedule });
    unrelated = await trainMasked({ arch, specs, dataset, weights, masks, dataSeed: 7, schedule });
  });

  it('mixes about perBatch triggers into each batch and leaves validation and test alone', () => {
    const mixed = withTriggers(dataset, triggers, { batchSize: 60, perBatch: 2 });
    const added = mixed.train.count - dataset.train.count;
    expect(added % triggers.count).toBe(0);
    expect((added / mixed.train.count) * 60).toBeCloseTo(2, 1);
    // Augmentation (CIFAR) leaves the trigger copies as they are, the clean rows before them as before.
    expect(mixed.train.unaugmentedFrom).toBe(dataset.train.count);
    expect(mixed.validation).toBe(dataset.validation);
    expect(mixed.test).toBe(dataset.test);
    expect(mixed.normalization).toEqual(dataset.normalization);
    expect(mixed.digest).not.toBe(dataset.digest);
    expect(() => withTriggers(dataset, makeTriggerSet(secret, message, { imageShape: [32, 32, 3], numClasses: 10 }), { batchSize: 60 })).toThrow(InvalidRequestError);
  });

  it("verifies the owner's ticket, not an unrelated one, at a bounded accuracy cost", async () => {
    const suspect = (result: TrainResult) => ({ arch, specs, weights: result.finalWeights, masks, normalization: dataset.normalization });
    const before = tf.memory().numTensors;
    const ownerVerdict = verifyTriggerSet(await predictTriggers(suspect(owner), triggers), triggers);
    const unrelatedVerdict = verifyTriggerSet(await predictTriggers(suspect(unrelated), triggers), triggers);
    expect(tf.memory().numTensors).toBe(before);
    console.log(
      `trigger accuracy owner ${ownerVerdict.accuracy} (p ${ownerVerdict.pValue.toExponential(2)}), unrelated ${unrelatedVerdict.accuracy} (p ${unrelatedVerdict.pValue.toPrecision(3)}); ` +
        `test accuracy with triggers ${owner.final.test.accuracy}, without ${unrelated.final.test.accuracy}; ${owner.steps} steps, ${owner.trainSeconds.toFixed(1)} s + ${unrelated.trainSeconds.toFixed(1)} s`,
    );
    expect(ownerVerdict.pValue).toBeLessThan(1e-6);
    expect(ownerVerdict.verified).toBe(true);
    expect(unrelatedVerdict.pValue).toBeGreaterThan(0.01);
    expect(unrelatedVerdict.verified).toBe(false);
    expect(unrelated.final.test.accuracy).toBeGreaterThan(0.9);
    expect(unrelated.final.test.accuracy - owner.final.test.accuracy).toBeLessThan(0.03);
  });

  it('trains the triggers in on the autodiff path too (the one conv nets and augmentation take)', async () => {
    const mixed = withTriggers(dataset, triggers, { batchSize: 60 });
    const result = await trainWithAutodiff({ arch, specs, dataset: mixed, weights: initWeights(specs, 8), masks, dataSeed: 8, schedule: { ...schedule, iterations: 600 } });
    const verdict = verifyTriggerSet(await predictTriggers({ arch, specs, weights: result.finalWeights, masks, normalization: dataset.normalization }, triggers), triggers);
    console.log(`autodiff: trigger accuracy ${verdict.accuracy} (p ${verdict.pValue.toExponential(2)}), test accuracy ${result.final.test.accuracy}; ${result.steps} steps, ${result.trainSeconds.toFixed(1)} s`);
    expect(verdict.verified).toBe(true);
  });
});
