// The step kernels on TF.js's WASM backend: the heavy ones (matrix products, optimiser updates)
// are Ticket Lab's SIMD kernels working in place on TF.js's heap; the per-row ones (softmax,
// ReLU gradient, gather) are the reference JS kernels on views of that heap.
//
// A product whose GemmSpec carries a mask hint runs on the sparse kernels (assembly/sparse.ts) when
// the mask is sparse enough that they beat the dense ones: below the crossover densities measured
// by bench/sparse-gemm-wasm.ts. TICKET_LAB_SPARSE=off keeps every product dense, =on makes every
// hinted one sparse (for timing both paths of the same run).
import * as tf from '@tensorflow/tfjs';
import type { AdamStep, SgdStep } from '../../compute/kernels/optimizer-kernels';
import { type BackendWasmInternals, heapOffset, wasmKernels } from '../../compute/wasm/wasm-kernels';
import { type HostImages, hostImages } from './kernels-cpu';
import { evalStatsJs, gatherJs, gemmJs, reluGradBiasJs, softmaxXentJs } from './kernels-js';
import type { GemmSpec, StepKernels } from './step-kernels';

/**
 * Mask density (nonzero fraction, averaged over members) below which the sparse kernels beat the
 * dense ones, from bench/sparse-gemm-wasm.ts (CPU time, 2 cores of an AMD EPYC, batch 60, K = 1
 * and 4, three runs) on LeNet-300-100's large layers, which carry the cost: x·W (784→300:
 * 0.54–0.62 but one outlier; evaluation's 1000 rows: 0.61–0.68), dz·Wᵀ (300→100: 0.48–0.55),
 * xᵀ·dz (784→300: 0.55–0.62). The small layers gain at any density (the dense kernels' column
 * tails are scalar) but cost little. At 3.5 %, IMP's last level, the sparse products take 1/7 to
 * 1/13 of the dense time.
 */
export const SPARSE_CROSSOVER = { forward: 0.55, inputGrad: 0.5, weightGrad: 0.55 } as const;

export interface WasmStepKernelOptions {
  /** Overrides SPARSE_CROSSOVER for every product: 0 keeps them dense, above 1 makes every hinted one sparse. */
  sparseBelow?: number | undefined;
}

/** The sparse threshold TICKET_LAB_SPARSE asks for, if any. */
function sparseBelowFromEnv(): number | undefined {
  const value = process.env.TICKET_LAB_SPARSE;
  if (value === 'off') return 0;
  if (value === 'on') return Number.POSITIVE_INFINITY;
  return undefined;
}

/** One index list per line of a mask view: line o of member p holds idx[ptr[p·(lines+1)+o] .. ptr[p·(lines+1)+o+1]). */
interface MaskLists {
  ptr: tf.Tensor;
  idx: tf.Tensor;
}

/** A mask viewed as [members, lines, positions]: entry (p, o, i) at offset + p·memberStride + o·lineStride + i·positionStride floats. */
interface MaskView {
  offset: number;
  members: number;
  memberStride: number;
  lines: number;
  positions: number;
  lineStride: number;
  positionStride: number;
}

export function wasmStepKernels(options: WasmStepKernelOptions = {}): StepKernels {
  const backend = tf.backend() as unknown as BackendWasmInternals;
  const kernels = wasmKernels(backend);
  const bytes = (t: tf.Tensor) => heapOffset(backend, t);
  // Views are made at call time: growing the WASM memory detaches the old buffer.
  const floats = (t: tf.Tensor) => new Float32Array(backend.wasm.HEAPU8.buffer, bytes(t), t.size);
  const ints = (t: tf.Tensor) => new Int32Array(backend.wasm.HEAPU8.buffer, bytes(t), t.size);
  let adamStep: AdamStep | null = null;
  let sgdStep: SgdStep | null = null;
  const sparseBelow = options.sparseBelow ?? sparseBelowFromEnv();

  // Sparse state, all owned here. Tensors keep their heap offsets for life, so prepared calls take
  // them once; but one scratch tensor serves every sparse product (they run one at a time) and
  // grows when a larger one is prepared, so calls read its offset when they run.
  const owned: tf.Tensor[] = [];
  let scratch: tf.Tensor | undefined;
  let scratchAt = 0;
  const useScratch = (floatCount: number) => {
    if (scratch && scratch.size >= floatCount) return;
    scratch?.dispose();
    // Kept: a caller may prepare kernels inside a tidy or a scope.
    scratch = tf.keep(tf.zeros([Math.max(1, floatCount)], 'float32'));
    scratchAt = bytes(scratch);
  };
  // Lists per mask and view: the training forward and the evaluation forward share theirs.
  const listCache = new Map<tf.Tensor, Map<string, { density: number; lists?: MaskLists }>>();
  const maskEntry = (mask: tf.Tensor, view: MaskView) => {
    let perMask = listCache.get(mask);
    if (!perMask) listCache.set(mask, (perMask = new Map()));
    const key = JSON.stringify(view);
    let entry = perMask.get(key);
    if (!entry) {
      entry = { density: maskDensity(floats(mask), view) };
      perMask.set(key, entry);
    }
    return entry;
  };
  const maskLists = (mask: tf.Tensor, view: MaskView): MaskLists => {
    const entry = maskEntry(mask, view);
    if (!entry.lists) {
      const { ptr, idx } = buildMaskLists(floats(mask), view);
      entry.lists = { ptr: tf.keep(tf.tensor(ptr, [ptr.length], 'int32')), idx: tf.keep(tf.tensor(idx.length > 0 ? idx : new Int32Array(1), [Math.max(1, idx.length)], 'int32')) };
      owned.push(entry.lists.ptr, entry.lists.idx);
    }
    return entry.lists;
  };

  /** The prepared sparse product for a hinted spec, or null where the dense one is faster. */
  const sparseGemm = (spec: GemmSpec): (() => void) | null => {
    const { batch, m, n, k, a, b, c, bias, mask } = spec;
    if (!mask || sparseBelow === 0) return null;
    const at = (view: { tensor: tf.Tensor; offset: number }) => bytes(view.tensor) + 4 * view.offset;
    if (mask.operand === 'b') {
      // Lines are B's columns (C's columns), positions the k index along them.
      const view: MaskView = { offset: b.offset, members: batch, memberStride: b.batch, lines: n, positions: k, lineStride: b.col, positionStride: b.row };
      const crossover = sparseBelow ?? (b.col === 1 ? SPARSE_CROSSOVER.forward : SPARSE_CROSSOVER.inputGrad);
      if (!(maskEntry(mask.tensor, view).density < crossover)) return null;
      const lists = maskLists(mask.tensor, view);
      useScratch(kernels.spmmScratchFloats(m, n, k));
      const [pa, pb, pc, ptr, idx] = [at(a), at(b), at(c), bytes(lists.ptr), bytes(lists.idx)];
      const biasAt = bias ? bytes(bias.tensor) : 0;
      return () =>
        kernels.spmmSparseB(batch, m, n, k, pa, a.batch, a.row, a.col, pb, b.batch, b.row, b.col, pc, c.batch, c.row, biasAt, bias?.batch ?? 0, spec.relu ? 1 : 0, ptr, idx, scratchAt);
    }
    if (bias || spec.relu) return null;
    // Lines are C's rows, positions its columns.
    const view: MaskView = { offset: c.offset, members: batch, memberStride: c.batch, lines: m, positions: n, lineStride: c.row, positionStride: 1 };
    if (!(maskEntry(mask.tensor, view).density < (sparseBelow ?? SPARSE_CROSSOVER.weightGrad))) return null;
    const lists = maskLists(mask.tensor, view);
    useScratch(kernels.sddmmScratchFloats(m, n, k));
    const [pa, pb, pc, ptr, idx] = [at(a), at(b), at(c), bytes(lists.ptr), bytes(lists.idx)];
    return () => kernels.sddmmMasked(batch, m, n, k, pa, a.batch, a.row, a.col, pb, b.batch, b.row, b.col, pc, c.batch, c.row, ptr, idx, scratchAt);
  };

  return {
    backend: 'wasm',
    images: hostImages,
    gather({ source, x, labels }) {
      const { split, table, features } = source as HostImages;
      return (rowIds) => gatherJs(split.images, split.labels, features, table, rowIds, floats(x), ints(labels));
    },
    gemm(spec) {
      const sparse = sparseGemm(spec);
      if (sparse) return sparse;
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
    dispose() {
      tf.dispose(owned);
      scratch?.dispose();
      owned.length = 0;
      scratch = undefined;
      listCache.clear();
    },
  };
}

/** Nonzero fraction of a mask view (members are the same size, so this is their mean density). */
function maskDensity(mask: Float32Array, v: MaskView): number {
  let count = 0;
  for (let p = 0; p < v.members; p++) {
    for (let o = 0; o < v.lines; o++) {
      const line = v.offset + p * v.memberStride + o * v.lineStride;
      for (let i = 0; i < v.positions; i++) if (mask[line + i * v.positionStride] !== 0) count++;
    }
  }
  return count / Math.max(1, v.members * v.lines * v.positions);
}

/** The nonzero positions of each line, ascending, member after member (see MaskLists). */
function buildMaskLists(mask: Float32Array, v: MaskView): { ptr: Int32Array; idx: Int32Array } {
  const ptr = new Int32Array(v.members * (v.lines + 1));
  const idx = new Int32Array(v.members * v.lines * v.positions);
  let count = 0;
  for (let p = 0; p < v.members; p++) {
    for (let o = 0; o < v.lines; o++) {
      ptr[p * (v.lines + 1) + o] = count;
      const line = v.offset + p * v.memberStride + o * v.lineStride;
      for (let i = 0; i < v.positions; i++) if (mask[line + i * v.positionStride] !== 0) idx[count++] = i;
    }
    ptr[p * (v.lines + 1) + v.lines] = count;
  }
  return { ptr, idx: idx.slice(0, count) };
}
