// The black-box ownership scheme (ALGORITHMS.md §9.5): m trigger images with owner-chosen labels, both
// derived from the owner's key, trained into the ticket; a suspect that agrees with the keyed labels far
// more often than 1/C did not get there by chance. Verification needs only the suspect's predictions,
// so it works on a ticket, an imported file or logits the user pastes in.
//
// Protocol, version 1 (what makes the same key and message give the same bytes anywhere):
// - Keyed stream for a purpose ('images' or 'labels'): block i = HMAC-SHA-256(key = secret,
//   E || u32be(i)), i = 0, 1, 2, ..., concatenated. E is the canonical encoding: the fields
//   'ticket-lab/trigger-set/v1', purpose, fingerprint, ticketId, nonce, 'h×w×c' (e.g. '28x28x1'),
//   numClasses and m (decimal), each as u32be(UTF-8 byte length) || UTF-8 bytes.
// - Integers in [0, n) come from successive u32be words of the stream by rejection (no modulo bias).
// - Labels: m draws in [0, C) from the 'labels' stream.
// - Images (trigger-images.ts): from the 'images' stream, one after the other, row-major [h, w, c] bytes
//   in the dataset's 0..255 range: uniform noise, then rectangles, then strokes.
// - Commitment: hex SHA-256 of 'ticket-lab/trigger-set/commitment/v1' || u32be(h, w, c, C, m) ||
//   images || labels.
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { InvalidRequestError } from '../api/errors';
import { type LoadedDataset, fillBatch } from '../data/datasets';
import type { Architecture, ParamSpec } from '../models/architectures';
import { MaskedNetwork } from '../models/network';
import type { WeightSet } from '../models/weights';
import type { MaskSet } from '../pruning/mask';
import { binomialThreshold, binomialUpperTail } from './binomial';
import { KeyedStream, drawTriggerImage, triggerEncoding, u32be } from './trigger-images';

export const TRIGGER_SET_VERSION = 'ticket-lab/trigger-set/v1';
const COMMITMENT_DOMAIN = 'ticket-lab/trigger-set/commitment/v1';

/** What the trigger set is bound to: the owner's fingerprint, the ticket and a fresh nonce. */
export interface TriggerMessage {
  fingerprint: string;
  ticketId: string;
  nonce: string;
}

export interface TriggerShape {
  imageShape: [number, number, number];
  numClasses: number;
}

export interface TriggerSet extends TriggerShape {
  /** Row-major [count, h, w, c] bytes, 0..255 like the dataset's own images, so its normalisation applies. */
  images: Uint8Array;
  /** The owner-chosen labels, uniform over the classes. */
  labels: Uint8Array;
  count: number;
  /** Hex SHA-256 of (shape, images, labels): published before release, checked at verification. */
  commitment: string;
}

/** The m triggers and their labels for a key and message: the same inputs give the same bytes. */
export function makeTriggerSet(secret: Uint8Array, message: TriggerMessage, shape: TriggerShape, m = 100): TriggerSet {
  const [h, w, c] = shape.imageShape;
  if (secret.length === 0) throw new InvalidRequestError('The trigger set needs a secret key; it was empty.');
  if (![h, w, c, m].every((n) => Number.isInteger(n) && n > 0)) {
    throw new InvalidRequestError(`A trigger set needs positive integer sizes; got image shape [${shape.imageShape.join(', ')}] and ${m} triggers.`);
  }
  if (!Number.isInteger(shape.numClasses) || shape.numClasses < 2 || shape.numClasses > 256) {
    throw new InvalidRequestError(`A trigger set needs 2 to 256 classes, got ${shape.numClasses}.`);
  }
  const encode = (purpose: string) => triggerEncoding([TRIGGER_SET_VERSION, purpose, message.fingerprint, message.ticketId, message.nonce, `${h}x${w}x${c}`, String(shape.numClasses), String(m)]);
  const size = h * w * c;
  const images = new Uint8Array(m * size);
  const imageStream = new KeyedStream(secret, encode('images'));
  for (let i = 0; i < m; i++) drawTriggerImage(imageStream, shape.imageShape, images.subarray(i * size, (i + 1) * size));
  const labelStream = new KeyedStream(secret, encode('labels'));
  const labels = new Uint8Array(m);
  for (let i = 0; i < m; i++) labels[i] = labelStream.int(shape.numClasses);
  const set = { imageShape: [h, w, c] as [number, number, number], numClasses: shape.numClasses, images, labels, count: m };
  return { ...set, commitment: triggerCommitment(set) };
}

/** Hex SHA-256 of the shape, images and labels (see the protocol above). */
export function triggerCommitment(set: Omit<TriggerSet, 'commitment'>): string {
  const [h, w, c] = set.imageShape;
  return createHash('sha256')
    .update(COMMITMENT_DOMAIN)
    .update(Buffer.concat([h, w, c, set.numClasses, set.count].map(u32be)))
    .update(set.images)
    .update(set.labels)
    .digest('hex');
}

/**
 * The dataset with the triggers mixed into its training split, so that the training loop's shuffled
 * batches (a seeded permutation of the training rows per epoch, core/data/datasets.ts BatchOrder, the
 * same on the autodiff path and the step engines) hold `perBatch` trigger samples on average. This
 * approximates §9.5's "replace 2 samples of every batch" in expectation, without touching the loop:
 * k copies among N + k rows with k / (N + k) = perBatch / batchSize, rounded up to whole cycles of the
 * m triggers so every trigger is seen equally often. The copies are never augmented (a cropped, flipped
 * trigger is not the input the verifier queries). Validation and test splits stay as they are, and so
 * does the normalisation: the triggers are inputs to the same model, not a change of its data.
 */
export function withTriggers(dataset: LoadedDataset, triggers: TriggerSet, options: { batchSize: number; perBatch?: number }): LoadedDataset {
  const perBatch = options.perBatch ?? 2;
  const { batchSize } = options;
  checkShape(triggers, dataset);
  if (!(perBatch > 0 && perBatch < batchSize)) throw new InvalidRequestError(`Trigger samples per batch must be between 0 and the batch size (${batchSize}), got ${perBatch}.`);
  const clean = dataset.train;
  const wanted = (clean.count * perBatch) / (batchSize - perBatch);
  const copies = Math.max(1, Math.ceil(wanted / triggers.count)) * triggers.count;
  const size = clean.images.length / clean.count;
  const images = new Uint8Array((clean.count + copies) * size);
  const labels = new Uint8Array(clean.count + copies);
  images.set(clean.images);
  labels.set(clean.labels);
  for (let j = 0; j < copies; j++) {
    const t = j % triggers.count;
    images.set(triggers.images.subarray(t * size, (t + 1) * size), (clean.count + j) * size);
    labels[clean.count + j] = triggers.labels[t]!;
  }
  // A different training split is different data: runs keyed on the digest must not mistake it for the clean one.
  const digest = createHash('sha256').update(`${dataset.digest}/${triggers.commitment}/${copies}`).digest('hex');
  return { ...dataset, digest, train: { images, labels, count: clean.count + copies, unaugmentedFrom: clean.count } };
}

/** A network to query: a ticket's weights and masks, evaluated like test accuracy (eval mode). */
export interface TriggerSuspect {
  arch: Architecture;
  specs: readonly ParamSpec[];
  weights: WeightSet;
  masks: MaskSet;
  /** The dataset's pixel normalisation, as the network was trained with. */
  normalization: { mean: number; std: number };
}

const PREDICT_CHUNK = 1000;

/** The suspect network's predicted class of each trigger (argmax of its logits). */
export async function predictTriggers(suspect: TriggerSuspect, triggers: TriggerSet): Promise<Int32Array> {
  const [h, w, c] = triggers.imageShape;
  const size = h * w * c;
  const net = new MaskedNetwork(suspect.arch, suspect.specs, suspect.weights, suspect.masks);
  try {
    const predictions = new Int32Array(triggers.count);
    const x = new Float32Array(Math.min(PREDICT_CHUNK, triggers.count) * size);
    const y = new Int32Array(Math.min(PREDICT_CHUNK, triggers.count));
    for (let start = 0; start < triggers.count; start += PREDICT_CHUNK) {
      const n = Math.min(PREDICT_CHUNK, triggers.count - start);
      fillBatch(triggers, Array.from({ length: n }, (_, i) => start + i), suspect.normalization, x, y);
      const argmax = tf.tidy(() => tf.argMax(net.forward(tf.tensor4d(x.subarray(0, n * size), [n, h, w, c])), 1));
      try {
        predictions.set(await argmax.data(), start);
      } finally {
        argmax.dispose();
      }
    }
    return predictions;
  } finally {
    net.dispose();
  }
}

/** Predicted classes from logits the user supplies: one row of C numbers per trigger, argmax (first on ties). */
export function predictionsFromLogits(logits: ArrayLike<ArrayLike<number>>, triggers: TriggerSet): Int32Array {
  if (logits.length !== triggers.count) throw new InvalidRequestError(`Expected logits for ${triggers.count} triggers, got ${logits.length} rows.`);
  const predictions = new Int32Array(triggers.count);
  for (let i = 0; i < logits.length; i++) {
    const row = logits[i]!;
    if (row.length !== triggers.numClasses) throw new InvalidRequestError(`Logits row ${i} has ${row.length} values; the trigger set has ${triggers.numClasses} classes.`);
    let best = 0;
    for (let k = 0; k < row.length; k++) {
      if (!Number.isFinite(row[k])) throw new InvalidRequestError(`Logits row ${i} holds ${row[k]} at class ${k}; logits must be finite numbers.`);
      if (row[k]! > row[best]!) best = k;
    }
    predictions[i] = best;
  }
  return predictions;
}

export interface TriggerVerdict {
  scheme: 'trigger-set';
  m: number;
  /** Triggers the suspect labels as the owner's key does. */
  matches: number;
  accuracy: number;
  /** P(match) under H0: the keyed labels are uniform and independent of the suspect. */
  chance: number;
  /** P[Bin(m, 1/C) ≥ matches]. */
  pValue: number;
  /** The fewest matches that verify at `falsePositiveRate` (28 of 100 for C = 10 at 1e-6). */
  threshold: number;
  falsePositiveRate: number;
  verified: boolean;
}

/** The binomial test of §9.5 on a suspect's predicted class per trigger. */
export function verifyTriggerSet(predictions: ArrayLike<number>, triggers: TriggerSet, falsePositiveRate = 1e-6): TriggerVerdict {
  const m = triggers.count;
  if (predictions.length !== m) throw new InvalidRequestError(`Expected one prediction per trigger (${m}), got ${predictions.length}.`);
  if (!(falsePositiveRate > 0 && falsePositiveRate < 1)) throw new InvalidRequestError(`The false-positive rate must be in (0, 1), got ${falsePositiveRate}.`);
  let matches = 0;
  for (let i = 0; i < m; i++) {
    const p = predictions[i]!;
    if (!Number.isInteger(p) || p < 0 || p >= triggers.numClasses) throw new InvalidRequestError(`Prediction ${i} is ${p}; predictions are classes 0..${triggers.numClasses - 1}.`);
    if (p === triggers.labels[i]) matches++;
  }
  const chance = 1 / triggers.numClasses;
  const pValue = binomialUpperTail(m, matches, chance);
  return {
    scheme: 'trigger-set',
    m,
    matches,
    accuracy: matches / m,
    chance,
    pValue,
    threshold: binomialThreshold(m, chance, falsePositiveRate),
    falsePositiveRate,
    verified: pValue <= falsePositiveRate,
  };
}

function checkShape(triggers: TriggerSet, dataset: Pick<LoadedDataset, 'id' | 'imageShape' | 'numClasses'>): void {
  const same = triggers.imageShape.every((n, i) => n === dataset.imageShape[i]) && triggers.numClasses === dataset.numClasses;
  if (!same) {
    throw new InvalidRequestError(
      `The trigger set is for ${triggers.imageShape.join('×')} images in ${triggers.numClasses} classes; ${dataset.id} has ${dataset.imageShape.join('×')} in ${dataset.numClasses}.`,
    );
  }
}
