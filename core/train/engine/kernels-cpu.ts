// The step kernels on TF.js's pure-JS cpu backend: the reference every other backend is tested
// against. They run on the value arrays the backend keeps for each tensor.
import * as tf from '@tensorflow/tfjs';
import { cpuValues } from '../../compute/kernels/custom-kernel';
import { type AdamStep, type SgdStep, runAdamKernel, runSgdKernel } from '../../compute/kernels/optimizer-kernels';
import type { ImageSplit } from '../../data/datasets';
import { evalStatsJs, gatherJs, gemmJs, normalizationTable, reluGradBiasJs, softmaxXentJs } from './kernels-js';
import type { DeviceImages, StepKernels } from './step-kernels';

/** A split as the CPU backends gather from it: the bytes stay in JS. */
export interface HostImages extends DeviceImages {
  split: ImageSplit;
  table: Float32Array;
}

export function hostImages(split: ImageSplit, normalization: { mean: number; std: number }): HostImages {
  return { count: split.count, features: split.count > 0 ? split.images.length / split.count : 0, split, table: normalizationTable(normalization), dispose() {} };
}

export function cpuStepKernels(): StepKernels {
  const backend = tf.backend();
  const floats = (t: tf.Tensor) => cpuValues(backend, t) as Float32Array;
  const ints = (t: tf.Tensor) => cpuValues(backend, t) as Int32Array;
  let adamStep: AdamStep | null = null;
  let sgdStep: SgdStep | null = null;
  return {
    backend: 'cpu',
    images: hostImages,
    gather({ source, x, labels }) {
      const { split, table, features } = source as HostImages;
      return (rowIds) => gatherJs(split.images, split.labels, features, table, rowIds, floats(x), ints(labels));
    },
    gemm(spec) {
      return () => gemmJs(spec, { a: floats(spec.a.tensor), b: floats(spec.b.tensor), c: floats(spec.c.tensor), bias: spec.bias ? floats(spec.bias.tensor) : undefined });
    },
    reluGradBias(s) {
      return () => reluGradBiasJs(s.batch, s.rows, s.cols, s.relu, floats(s.grad), floats(s.output), floats(s.biasGrad));
    },
    softmaxXent(s) {
      return () => softmaxXentJs(s.batch, s.rows, s.classes, floats(s.logits), ints(s.labels), floats(s.dlogits), floats(s.lossSum));
    },
    evalStats(s) {
      return () => evalStatsJs(s.batch, s.rows, s.classes, floats(s.logits), s.logitsBatch, ints(s.labels), floats(s.stats));
    },
    adam(slot) {
      return () => runAdamKernel(slot, adamStep!);
    },
    sgd(slot) {
      return () => runSgdKernel(slot, sgdStep!);
    },
    copyMembers(src, dst, perMember) {
      return (members) => {
        const from = floats(src);
        const to = floats(dst);
        for (const p of members) to.set(from.subarray(p * perMember, (p + 1) * perMember), p * perMember);
      };
    },
    zero(tensor) {
      return () => floats(tensor).fill(0);
    },
    setStepConstants(adam, sgd) {
      adamStep = adam;
      sgdStep = sgd;
    },
    flush() {},
    settle: () => Promise.resolve(),
    assertHealthy() {},
    dispose() {},
  };
}
