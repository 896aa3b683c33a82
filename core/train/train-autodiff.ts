// Training one network at a time, for what the stacked step engine does not run (conv nets,
// backends without Ticket Lab's step kernels such as tfjs-node): on WebGPU, conv nets train on the
// conv step engine (engine/conv-engine.ts), elsewhere on TF.js's own ops and autodiff with the mask
// applied in the forward pass and the fused masked optimiser. Evaluation is TF.js's either way.
import * as tf from '@tensorflow/tfjs';
import { TrainingDivergedError, throwIfAborted } from '../api/errors';
import { fillAugmentedBatch } from '../data/augment';
import { BatchOrder, type ImageSplit, type LoadedDataset, fillBatch } from '../data/datasets';
import { type Architecture, type ParamSpec, hasConv } from '../models/architectures';
import { MaskedNetwork } from '../models/network';
import type { WeightSet } from '../models/weights';
import type { MaskSet } from '../pruning/mask';
import { ConvStepEngine, convEngineUnsupported } from './engine/conv-engine';
import { type MaskedOptimizer, createOptimizer } from './optimizers';
import { learningRateAt } from './schedule';
import type { CurvePoint, EvalResult, TrainInput, TrainResult } from './train';

const LOSS_SAMPLE_EVERY = 10;
/** Give the event loop a turn (Ctrl-C, progress rendering) this often. */
const YIELD_EVERY = 10;

export async function trainWithAutodiff(input: TrainInput): Promise<TrainResult> {
  const { arch, specs, dataset, schedule, signal } = input;
  const start = input.startIteration ?? 0;
  const end = schedule.iterations;
  if (start > end) throw new Error(`start iteration ${start} is past the end ${end}`);

  const net = new MaskedNetwork(arch, specs, input.weights, input.masks);
  let engine: ConvStepEngine | undefined;
  try {
    if (usesConvEngine(arch, input)) engine = new ConvStepEngine(net, dataset.imageShape, dataset.numClasses, schedule.batchSize, schedule.optimizer);
  } catch (error) {
    net.dispose();
    throw error;
  }
  const optimizer = engine ? undefined : createOptimizer(schedule.optimizer, net);
  const order = new BatchOrder(dataset.train.count, schedule.batchSize, input.dataSeed);
  const [h, w, c] = dataset.imageShape;
  const xBuffer = new Float32Array(schedule.batchSize * h * w * c);
  const yBuffer = new Int32Array(schedule.batchSize);
  // Each image's crop and flip follow (data seed, iteration, row), like the batch order.
  const augment = schedule.augment && { seed: input.dataSeed, ...schedule.augment };

  const curve: CurvePoint[] = [];
  let best: { iteration: number; validation: EvalResult; weights: WeightSet } | undefined;
  let checkpoint: WeightSet | undefined;
  let lossSum = 0;
  let lossCount = 0;
  let lastLoss: number | null = null;
  let lastValAccuracy: number | null = null;
  const began = performance.now();

  const record = async (iteration: number): Promise<void> => {
    const validation = await evaluate(net, dataset.validation, dataset);
    curve.push({ iteration, trainLoss: lossCount > 0 ? lossSum / lossCount : null, valLoss: validation.loss, valAccuracy: validation.accuracy });
    lossSum = 0;
    lossCount = 0;
    lastValAccuracy = validation.accuracy;
    if (!best || validation.loss < best.validation.loss) best = { iteration, validation, weights: await net.readWeights() };
  };

  try {
    if (input.checkpointAt === start) checkpoint = await net.readWeights();
    await record(start);
    for (let iteration = start; iteration < end; iteration++) {
      throwIfAborted(signal);
      const rows = order.rowsAt(iteration);
      if (augment) fillAugmentedBatch(dataset.train, dataset.imageShape, rows, iteration, augment, dataset.normalization, xBuffer, yBuffer);
      else fillBatch(dataset.train, rows, dataset.normalization, xBuffer, yBuffer);
      let loss: number | null = null;
      if (engine) {
        engine.step(xBuffer, yBuffer, learningRateAt(schedule, iteration));
        // The mean over the last steps, read every few steps: each read waits for the GPU.
        if ((iteration + 1 - start) % LOSS_SAMPLE_EVERY === 0 || iteration + 1 === end) loss = await engine.takeMeanLoss();
      } else {
        optimizer!.setLearningRate(learningRateAt(schedule, iteration));
        const sample = autodiffStep(net, optimizer!, xBuffer, yBuffer, dataset, (iteration - start) % LOSS_SAMPLE_EVERY === 0);
        if (sample) {
          loss = (await sample.data())[0]!;
          sample.dispose();
        }
      }
      if (loss !== null) {
        if (!Number.isFinite(loss)) {
          throw new TrainingDivergedError(`Training diverged at iteration ${iteration + 1} (loss ${loss}). Lower the learning rate (--lr).`);
        }
        lossSum += loss;
        lossCount += 1;
        lastLoss = loss;
      }
      const done = iteration + 1;
      if (input.maskUpdater?.updatesAfter(done)) {
        await input.maskUpdater.update({ iteration: done, net, optimizer: optimizer!, denseGradients: () => denseGradients(net, xBuffer, yBuffer, dataset) });
      }
      if (done === input.checkpointAt) checkpoint = await net.readWeights();
      if (done % schedule.evalEvery === 0 || done === end) await record(done);
      if (done % YIELD_EVERY === 0 || done === end) {
        input.onProgress?.({ iteration: done, endIteration: end, startIteration: start, loss: lastLoss, valAccuracy: lastValAccuracy });
        await new Promise((resolve) => setImmediate(resolve));
      }
    }

    const finalWeights = await net.readWeights();
    const finalMasks = input.maskUpdater ? await net.readMasks() : undefined;
    const finalValidation = curve[curve.length - 1]!;
    const finalTest = await evaluate(net, dataset.test, dataset);
    const earlyStop = best!;
    let earlyTest = finalTest;
    if (earlyStop.iteration !== end) {
      net.assignWeights(earlyStop.weights);
      earlyTest = await evaluate(net, dataset.test, dataset);
    }
    return {
      finalWeights,
      ...(finalMasks ? { finalMasks } : {}),
      ...(checkpoint ? { checkpoint } : {}),
      earlyStop: { iteration: earlyStop.iteration, validation: earlyStop.validation, test: earlyTest },
      final: { iteration: end, validation: { loss: finalValidation.valLoss, accuracy: finalValidation.valAccuracy }, test: finalTest },
      curve,
      steps: end - start,
      trainSeconds: (performance.now() - began) / 1000,
    };
  } finally {
    engine?.dispose();
    optimizer?.dispose();
    net.dispose();
  }
}

/**
 * The conv step engine runs where it is on WebGPU, for a net it can run and masks that stay fixed
 * (gradual pruning changes them between steps, which the autodiff path handles).
 * TICKET_LAB_CONV_ENGINE=off keeps autodiff, for comparison.
 */
function usesConvEngine(arch: Architecture, input: TrainInput): boolean {
  return tf.getBackend() === 'webgpu' && hasConv(arch) && !input.maskUpdater && process.env.TICKET_LAB_CONV_ENGINE !== 'off' && convEngineUnsupported(arch) === null;
}

/**
 * One training step on TF.js's ops: forward (BatchNorm in training mode), softmax cross-entropy,
 * gradients by autodiff, the fused masked update, then the BatchNorm running statistics of the batch.
 * x and y are one batch (fillBatch's buffers); returns the loss when asked.
 */
export function autodiffStep(
  net: MaskedNetwork,
  optimizer: MaskedOptimizer,
  xBuffer: Float32Array,
  yBuffer: Int32Array,
  dataset: Pick<LoadedDataset, 'imageShape' | 'numClasses'>,
  keepLoss: boolean,
): tf.Scalar | undefined {
  const [h, w, c] = dataset.imageShape;
  return tf.tidy(() => {
    const x = tf.tensor4d(xBuffer, [yBuffer.length, h, w, c]);
    const y = tf.oneHot(tf.tensor1d(yBuffer, 'int32'), dataset.numClasses);
    const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, net.forward(x, { training: true })) as tf.Scalar, net.variables);
    optimizer.step(byParamName(net, grads));
    net.commitRunningStats();
    return keepLoss ? tf.keep(value) : undefined;
  });
}

/**
 * ∂L/∂w of one batch with the unmasked kernels: dense, pruned entries included. BatchNorm in training
 * mode, as the step's own gradient, without a second running-statistic update. Tensors are the caller's.
 */
function denseGradients(
  net: MaskedNetwork,
  xBuffer: Float32Array,
  yBuffer: Int32Array,
  dataset: Pick<LoadedDataset, 'imageShape' | 'numClasses'>,
): Record<string, tf.Tensor> {
  const [h, w, c] = dataset.imageShape;
  return tf.tidy(() => {
    const x = tf.tensor4d(xBuffer, [yBuffer.length, h, w, c]);
    const y = tf.oneHot(tf.tensor1d(yBuffer, 'int32'), dataset.numClasses);
    const { grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, net.forward(x, { denseGradient: true, training: true })) as tf.Scalar, net.variables);
    net.discardRunningStats();
    return byParamName(net, grads);
  });
}

/** tf.variableGrads keys gradients by the engine's variable names; the optimiser wants parameter names. */
function byParamName(net: MaskedNetwork, grads: tf.NamedTensorMap): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [name, v] of net.params) {
    const g = grads[v.name];
    if (g) out[name] = g;
  }
  return out;
}

const EVAL_CHUNK = 1000;

/** Mean cross-entropy and accuracy over a split, in chunks so memory stays bounded. */
export async function evaluate(net: MaskedNetwork, split: ImageSplit, dataset: LoadedDataset): Promise<EvalResult> {
  if (split.count === 0) return { loss: Number.NaN, accuracy: Number.NaN };
  const [h, w, c] = dataset.imageShape;
  let lossSum = 0;
  let correct = 0;
  const x = new Float32Array(Math.min(EVAL_CHUNK, split.count) * h * w * c);
  const y = new Int32Array(Math.min(EVAL_CHUNK, split.count));
  for (let start = 0; start < split.count; start += EVAL_CHUNK) {
    const n = Math.min(EVAL_CHUNK, split.count - start);
    const rows = Array.from({ length: n }, (_, i) => start + i);
    fillBatch(split, rows, dataset.normalization, x, y);
    const stats = tf.tidy(() => {
      const logits = net.forward(tf.tensor4d(x.subarray(0, n * h * w * c), [n, h, w, c]));
      const labels = tf.tensor1d(y.subarray(0, n), 'int32');
      const logProbs = tf.logSoftmax(logits);
      const picked = tf.sum(tf.mul(logProbs, tf.oneHot(labels, dataset.numClasses)));
      const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32'));
      return tf.stack([tf.neg(picked), hits]);
    });
    const [l, k] = await stats.data();
    stats.dispose();
    lossSum += l!;
    correct += k!;
  }
  return { loss: lossSum / split.count, accuracy: correct / split.count };
}

/** Validation and test metrics of given weights under given masks, without training. */
export async function evaluateWeights(
  arch: Architecture,
  specs: readonly ParamSpec[],
  dataset: LoadedDataset,
  weights: WeightSet,
  masks: MaskSet,
): Promise<{ validation: EvalResult; test: EvalResult }> {
  const net = new MaskedNetwork(arch, specs, weights, masks);
  try {
    return { validation: await evaluate(net, dataset.validation, dataset), test: await evaluate(net, dataset.test, dataset) };
  } finally {
    net.dispose();
  }
}
