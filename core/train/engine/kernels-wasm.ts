// The step kernels on TF.js's WASM backend: the heavy ones (matrix products, optimiser updates)
// are Ticket Lab's SIMD kernels working in place on TF.js's heap; the per-row ones (softmax,
// ReLU gradient, gather) are the reference JS kernels on views of that heap.
import * as tf from '@tensorflow/tfjs';
import type { AdamStep, SgdStep } from '../../compute/kernels/optimizer-kernels';
import { type BackendWasmInternals, heapOffset, wasmKernels } from '../../compute/wasm/wasm-kernels';
import { type HostImages, hostImages } from './kernels-cpu';
import { evalStatsJs, gatherJs, gemmJs, reluGradBiasJs, softmaxXentJs } from './kernels-js';
import type { StepKernels } from './step-kernels';

export function wasmStepKernels(): StepKernels {
  const backend = tf.backend() as unknown as BackendWasmInternals;
  const kernels = wasmKernels(backend);
  const bytes = (t: tf.Tensor) => heapOffset(backend, t);
  // Views are made at call time: growing the WASM memory detaches the old buffer.
  const floats = (t: tf.Tensor) => new Float32Array(backend.wasm.HEAPU8.buffer, bytes(t), t.size);
  const ints = (t: tf.Tensor) => new Int32Array(backend.wasm.HEAPU8.buffer, bytes(t), t.size);
  let adamStep: AdamStep | null = null;
  let sgdStep: SgdStep | null = null;

  return {
    backend: 'wasm',
    images: hostImages,
    gather({ source, x, labels }) {
      const { split, table, features } = source as HostImages;
      return (rowIds) => gatherJs(split.images, split.labels, features, table, rowIds, floats(x), ints(labels));
    },
    gemm(spec) {
      const { batch, m, n, k, a, b, c, bias } = spec;
      const at = (view: { tensor: tf.Tensor; offset: number }) => bytes(view.tensor) + 4 * view.offset;
      if (b.col === 1) {
        const biasAt = bias ? bytes(bias.tensor) : 0;
        return () =>
          kernels.gemmRowsN(batch, m, n, k, at(a), a.batch, a.row, a.col, at(b), b.batch, b.row, at(c), c.batch, c.row, biasAt, bias?.batch ?? 0, spec.relu ? 1 : 0);
      }
      if (a.col === 1 && b.row === 1 && !bias && !spec.relu) {
        return () => kernels.gemmDotK(batch, m, n, k, at(a), a.batch, a.row, at(b), b.batch, b.col, at(c), c.batch, c.row);
      }
      // Layouts the step never asks for: correct, not fast.
      return () => gemmJs(spec, { a: floats(a.tensor), b: floats(b.tensor), c: floats(c.tensor), bias: bias ? floats(bias.tensor) : undefined });
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
    adam({ w, g, m, v, mask }) {
      const n = w.size;
      const [pw, pg, pm, pv, pmask] = [bytes(w), bytes(g), bytes(m), bytes(v), mask ? bytes(mask) : 0];
      return () => {
        const s = adamStep!;
        kernels.adamUpdate(pw, pg, pm, pv, pmask, n, s.beta1, 1 - s.beta1, s.beta2, 1 - s.beta2, s.stepSize, s.invSqrtBc2, s.epsilon, s.weightDecay);
      };
    },
    sgd({ w, g, buffer, mask }) {
      const n = w.size;
      const [pw, pg, pb, pmask] = [bytes(w), bytes(g), buffer ? bytes(buffer) : 0, mask ? bytes(mask) : 0];
      return () => {
        const s = sgdStep!;
        kernels.sgdUpdate(pw, pg, pb, pmask, n, s.learningRate, s.momentum, s.weightDecay);
      };
    },
    copyMembers(src, dst, perMember) {
      return (members) => {
        const heap = new Float32Array(backend.wasm.HEAPU8.buffer);
        const from = bytes(src) / 4;
        const to = bytes(dst) / 4;
        for (const p of members) heap.copyWithin(to + p * perMember, from + p * perMember, from + (p + 1) * perMember);
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
