// What a training-step engine needs from a backend: a handful of kernels, each prepared once for
// fixed tensors and then run every step with no per-call setup (no shape checks, no allocation,
// on WebGPU no bind-group creation). A stock TF.js op costs about 100 µs of host time on WebGPU
// and 25 µs on WASM; a prepared call costs a few µs, which is what makes small nets fast.
//
// Tensors are TF.js tensors the engine owns for its whole life (allocated once, written in place).
import type * as tf from '@tensorflow/tfjs';
import type { AdamStep, SgdStep } from '../../compute/kernels/optimizer-kernels';
import type { ImageSplit } from '../../data/datasets';

/** A strided view of a batch of matrices inside a tensor; strides and offset count floats. */
export interface MatrixView {
  tensor: tf.Tensor;
  offset: number;
  /** Between consecutive matrices of the batch; 0 broadcasts one matrix to every member. */
  batch: number;
  row: number;
  col: number;
}

/** C[p] = relu?( A[p]·B[p] + bias[p] ) for p < batch; C is row-major (col stride 1). */
export interface GemmSpec {
  batch: number;
  m: number;
  n: number;
  k: number;
  a: MatrixView;
  b: MatrixView;
  c: { tensor: tf.Tensor; offset: number; batch: number; row: number };
  bias?: { tensor: tf.Tensor; batch: number } | undefined;
  relu: boolean;
  /**
   * A fixed 0/1 mask a backend may exploit (or ignore: the dense product is always right). Laid out
   * as the operand's view (same offset and strides, read as [batch, rows, cols]); its values must
   * not change while the prepared kernel lives. 'b': B is zero wherever the mask is 0. 'c': only
   * C's entries where the mask is 1 are wanted; the others may be left as they were.
   */
  mask?: { tensor: tf.Tensor; operand: 'b' | 'c' } | undefined;
}

/**
 * The gradient at a layer's output becomes the gradient at its pre-activation (zero where the ReLU
 * output is not positive), in place; its sum over rows is the bias gradient.
 */
export interface ReluGradBiasSpec {
  batch: number;
  rows: number;
  cols: number;
  /** [batch, rows, cols]: dL/dy in, dL/dz out. */
  grad: tf.Tensor;
  /** [batch, rows, cols]: the layer's output; unused without ReLU. */
  output: tf.Tensor;
  relu: boolean;
  /** [batch, cols]. */
  biasGrad: tf.Tensor;
}

/**
 * Mean softmax cross-entropy per member over its rows: writes dL/dlogits = (softmax − onehot)/rows
 * and adds each member's mean loss to lossSum[p] (read and cleared by the engine now and then).
 */
export interface SoftmaxXentSpec {
  batch: number;
  rows: number;
  classes: number;
  logits: tf.Tensor;
  /** [batch, rows] int32. */
  labels: tf.Tensor;
  dlogits: tf.Tensor;
  /** [batch] float32. */
  lossSum: tf.Tensor;
}

/** Adds each member's summed loss and correct count over the first `validRows` rows to stats[p] = (loss, correct). */
export interface EvalStatsSpec {
  batch: number;
  rows: number;
  classes: number;
  /** Member p's logits start at p·logitsBatch floats (rows × classes of them, row-major). */
  logits: tf.Tensor;
  logitsBatch: number;
  /** [rows] int32, shared by every member. */
  labels: tf.Tensor;
  /** [batch, 2] float32. */
  stats: tf.Tensor;
}

export interface AdamSlotSpec {
  w: tf.Tensor;
  g: tf.Tensor;
  m: tf.Tensor;
  v: tf.Tensor;
  mask?: tf.Tensor | undefined;
}

export interface SgdSlotSpec {
  w: tf.Tensor;
  g: tf.Tensor;
  buffer?: tf.Tensor | undefined;
  mask?: tf.Tensor | undefined;
}

/** A split's images and labels where the backend's gather reads them (on the GPU: uploaded once). */
export interface DeviceImages {
  readonly count: number;
  readonly features: number;
  dispose(): void;
}

/** Gathers rows of a split into x [rows, features] (normalised floats) and labels [rows] (int32). */
export interface GatherSpec {
  source: DeviceImages;
  rows: number;
  x: tf.Tensor;
  labels: tf.Tensor;
}

export interface StepKernels {
  readonly backend: 'cpu' | 'wasm' | 'webgpu';
  /** Makes a split's images available to `gather` (normalised as (x/255 − mean)/std). */
  images(split: ImageSplit, normalization: { mean: number; std: number }): DeviceImages;
  /** Prepared gather; the returned function takes the row index of each of `rows` outputs. */
  gather(spec: GatherSpec): (rowIds: Int32Array) => void;
  gemm(spec: GemmSpec): () => void;
  reluGradBias(spec: ReluGradBiasSpec): () => void;
  softmaxXent(spec: SoftmaxXentSpec): () => void;
  evalStats(spec: EvalStatsSpec): () => void;
  adam(slot: AdamSlotSpec): () => void;
  sgd(slot: SgdSlotSpec): () => void;
  /** Copies `perMember` floats of each listed member from src to dst (same layout). */
  copyMembers(src: tf.Tensor, dst: tf.Tensor, perMember: number): (members: readonly number[]) => void;
  /** Sets a whole tensor to zero. */
  zero(tensor: tf.Tensor): () => void;
  /** The constants of the coming step's optimiser update; on WebGPU also the point where queued work is submitted. */
  setStepConstants(adam: AdamStep | null, sgd: SgdStep | null): void;
  /** Submits whatever is queued (WebGPU); a no-op on the CPU backends. */
  flush(): void;
  /** Submits, and waits until the GPU is at most one such call behind, so the host never runs far ahead. */
  settle(): Promise<void>;
  /** Throws if the device reported an error (an invalid shader, a lost device) since the kernels were made. */
  assertHealthy(): void;
  dispose(): void;
}
