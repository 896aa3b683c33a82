// Fused, masked optimiser updates (ALGORITHMS.md §0): one kernel per parameter tensor writes the
// new weights and moments in place, where stock TF.js needs about ten element-wise ops (and as
// many dispatches and memory passes) per tensor. Pruned entries (mask 0) come out exactly 0.
//
// Implementations: cpu (plain JS, float32 rounding at each step: the reference), wasm (SIMD, in
// place on the TF.js heap), webgpu (WGSL); other backends (tfjs-node) use the composite of stock ops.
import * as tf from '@tensorflow/tfjs';
import { type BackendWasmInternals, heapOffset, wasmKernels } from '../wasm/wasm-kernels';
import { type CustomKernel, type KernelArgs, cpuValues, hasKernel, registerKernels, runInPlace } from './custom-kernel';
import { type WgslKernel, dispatchWgsl, flatGrid } from './webgpu-dispatch';

export const ADAM_KERNEL = 'TicketLabMaskedAdam';
export const SGD_KERNEL = 'TicketLabMaskedSgd';

/** One Adam step's constants; `stepSize` = lr / (1 − β1ᵗ), `invSqrtBc2` = 1 / √(1 − β2ᵗ) (PyTorch's form). */
export interface AdamStep {
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
  stepSize: number;
  invSqrtBc2: number;
}

export interface SgdStep {
  learningRate: number;
  momentum: number;
  weightDecay: number;
}

/** A parameter tensor with its optimiser state; `mask` is absent for tensors never pruned (biases). */
export interface AdamSlot {
  w: tf.Variable;
  m: tf.Variable;
  v: tf.Variable;
  mask?: tf.Tensor | undefined;
}

export interface SgdSlot {
  w: tf.Variable;
  /** Momentum buffer; absent for plain SGD. */
  buffer?: tf.Variable | undefined;
  mask?: tf.Tensor | undefined;
}

type AdamAttrs = {
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  stepSize: number;
  invSqrtBc2: number;
  eps: number;
  weightDecay: number;
};

function adamAttrs(step: AdamStep): AdamAttrs {
  return {
    beta1: step.beta1,
    oneMinusBeta1: 1 - step.beta1,
    beta2: step.beta2,
    oneMinusBeta2: 1 - step.beta2,
    stepSize: step.stepSize,
    invSqrtBc2: step.invSqrtBc2,
    eps: step.epsilon,
    weightDecay: step.weightDecay,
  };
}

/** Runs the fused kernel of the current backend in place; for callers that know it has one. */
export function runAdamKernel(inputs: { w: tf.Tensor; g: tf.Tensor; m: tf.Tensor; v: tf.Tensor; mask?: tf.Tensor | undefined }, step: AdamStep): void {
  const { mask, ...rest } = inputs;
  runInPlace(ADAM_KERNEL, { ...rest, ...(mask ? { mask } : {}) }, adamAttrs(step));
}

export function runSgdKernel(inputs: { w: tf.Tensor; g: tf.Tensor; buffer?: tf.Tensor | undefined; mask?: tf.Tensor | undefined }, step: SgdStep): void {
  const { mask, buffer, ...rest } = inputs;
  runInPlace(SGD_KERNEL, { ...rest, ...(buffer ? { buffer } : {}), ...(mask ? { mask } : {}) }, { lr: step.learningRate, momentum: step.momentum, weightDecay: step.weightDecay });
}

/** Updates w, m and v in place from the gradient g. */
export function adamUpdate(slot: AdamSlot, g: tf.Tensor, step: AdamStep): void {
  const inputs: tf.NamedTensorMap = { w: slot.w, g, m: slot.m, v: slot.v, ...(slot.mask ? { mask: slot.mask } : {}) };
  if (hasKernel(ADAM_KERNEL)) {
    runInPlace(ADAM_KERNEL, inputs, adamAttrs(step));
    return;
  }
  const a = adamAttrs(step);
  tf.tidy(() => {
    let grad = a.weightDecay > 0 ? tf.add(g, tf.mul(a.weightDecay, slot.w)) : g;
    if (slot.mask) grad = tf.mul(grad, slot.mask);
    const m = tf.add(tf.mul(a.beta1, slot.m), tf.mul(a.oneMinusBeta1, grad));
    const v = tf.add(tf.mul(a.beta2, slot.v), tf.mul(a.oneMinusBeta2, tf.square(grad)));
    let w = tf.sub(slot.w, tf.mul(a.stepSize, tf.div(m, tf.add(tf.mul(tf.sqrt(v), a.invSqrtBc2), a.eps))));
    if (slot.mask) w = tf.mul(w, slot.mask);
    slot.m.assign(m);
    slot.v.assign(v);
    slot.w.assign(w);
  });
}

/** Updates w (and the momentum buffer) in place from the gradient g. */
export function sgdUpdate(slot: SgdSlot, g: tf.Tensor, step: SgdStep): void {
  const inputs: tf.NamedTensorMap = { w: slot.w, g, ...(slot.buffer ? { buffer: slot.buffer } : {}), ...(slot.mask ? { mask: slot.mask } : {}) };
  const attrs = { lr: step.learningRate, momentum: step.momentum, weightDecay: step.weightDecay };
  if (hasKernel(SGD_KERNEL)) {
    runInPlace(SGD_KERNEL, inputs, attrs);
    return;
  }
  tf.tidy(() => {
    let grad = step.weightDecay > 0 ? tf.add(g, tf.mul(step.weightDecay, slot.w)) : g;
    if (slot.mask) grad = tf.mul(grad, slot.mask);
    if (slot.buffer) {
      grad = tf.add(tf.mul(step.momentum, slot.buffer), grad);
      slot.buffer.assign(grad);
    }
    let w = tf.sub(slot.w, tf.mul(step.learningRate, grad));
    if (slot.mask) w = tf.mul(w, slot.mask);
    slot.w.assign(w);
  });
}

// ---- cpu: the reference, float32 at every step like the other backends ----

const f32 = Math.fround;

function adamCpu({ inputs, backend, attrs }: KernelArgs) {
  const a = attrs as unknown as AdamAttrs;
  const w = cpuValues(backend, inputs.w!);
  const g = cpuValues(backend, inputs.g!);
  const m = cpuValues(backend, inputs.m!);
  const v = cpuValues(backend, inputs.v!);
  const mask = inputs.mask ? cpuValues(backend, inputs.mask) : undefined;
  const [b1, c1, b2, c2, step, inv, eps, wd] = [a.beta1, a.oneMinusBeta1, a.beta2, a.oneMinusBeta2, a.stepSize, a.invSqrtBc2, a.eps, a.weightDecay].map(f32) as [number, number, number, number, number, number, number, number];
  for (let i = 0; i < w.length; i++) {
    const wi = w[i]!;
    const keep = !mask || mask[i] !== 0;
    const gi = keep ? f32(g[i]! + f32(wd * wi)) : 0;
    const mi = f32(f32(b1 * m[i]!) + f32(c1 * gi));
    const vi = f32(f32(b2 * v[i]!) + f32(c2 * f32(gi * gi)));
    m[i] = mi;
    v[i] = vi;
    w[i] = keep ? f32(wi - f32(step * f32(mi / f32(f32(f32(Math.sqrt(vi)) * inv) + eps)))) : 0;
  }
  return [];
}

function sgdCpu({ inputs, backend, attrs }: KernelArgs) {
  const { lr, momentum, weightDecay } = attrs as unknown as { lr: number; momentum: number; weightDecay: number };
  const w = cpuValues(backend, inputs.w!);
  const g = cpuValues(backend, inputs.g!);
  const buffer = inputs.buffer ? cpuValues(backend, inputs.buffer) : undefined;
  const mask = inputs.mask ? cpuValues(backend, inputs.mask) : undefined;
  const [rate, mu, wd] = [lr, momentum, weightDecay].map(f32) as [number, number, number];
  for (let i = 0; i < w.length; i++) {
    const wi = w[i]!;
    const keep = !mask || mask[i] !== 0;
    let gi = keep ? f32(g[i]! + f32(wd * wi)) : 0;
    if (buffer) {
      gi = f32(f32(mu * buffer[i]!) + gi);
      buffer[i] = gi;
    }
    w[i] = keep ? f32(wi - f32(rate * gi)) : 0;
  }
  return [];
}

// ---- wasm: SIMD, in place on the TF.js heap (core/compute/wasm/assembly/optimizers.ts) ----

function adamWasm({ inputs, backend, attrs }: KernelArgs) {
  const a = attrs as unknown as AdamAttrs;
  const be = backend as unknown as BackendWasmInternals;
  const at = (t: tf.TensorInfo | undefined) => (t ? heapOffset(be, t) : 0);
  wasmKernels(be).adamUpdate(
    at(inputs.w), at(inputs.g), at(inputs.m), at(inputs.v), at(inputs.mask), tf.util.sizeFromShape(inputs.w!.shape),
    a.beta1, a.oneMinusBeta1, a.beta2, a.oneMinusBeta2, a.stepSize, a.invSqrtBc2, a.eps, a.weightDecay,
  );
  return [];
}

function sgdWasm({ inputs, backend, attrs }: KernelArgs) {
  const { lr, momentum, weightDecay } = attrs as unknown as { lr: number; momentum: number; weightDecay: number };
  const be = backend as unknown as BackendWasmInternals;
  const at = (t: tf.TensorInfo | undefined) => (t ? heapOffset(be, t) : 0);
  wasmKernels(be).sgdUpdate(at(inputs.w), at(inputs.g), at(inputs.buffer), at(inputs.mask), tf.util.sizeFromShape(inputs.w!.shape), lr, momentum, weightDecay);
  return [];
}

// ---- webgpu: one dispatch per tensor ----

const WORKGROUP = 256;
/** Index of this invocation over a grid that may spill from x into y (flatGrid). */
const FLAT_INDEX = `gid.x + gid.y * nwg.x * ${WORKGROUP}u`;

function adamWgsl(masked: boolean): WgslKernel {
  return {
    key: `ticket-lab-adam-${masked ? 'masked' : 'dense'}`,
    code: `
struct Params { n: u32, beta1: f32, c1: f32, beta2: f32, c2: f32, stepSize: f32, inv: f32, eps: f32, wd: f32 }
@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> m: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
${masked ? '@group(0) @binding(4) var<storage, read> mask: array<f32>;' : ''}
@group(0) @binding(${masked ? 5 : 4}) var<uniform> p: Params;
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${FLAT_INDEX};
  if (i >= p.n) { return; }
  let wi = w[i];
  let keep = ${masked ? 'mask[i] != 0.0' : 'true'};
  let gi = select(0.0, g[i] + p.wd * wi, keep);
  let mi = p.beta1 * m[i] + p.c1 * gi;
  let vi = p.beta2 * v[i] + p.c2 * (gi * gi);
  m[i] = mi;
  v[i] = vi;
  w[i] = select(0.0, wi - p.stepSize * (mi / (sqrt(vi) * p.inv + p.eps)), keep);
}`,
  };
}

function sgdWgsl(masked: boolean, momentum: boolean): WgslKernel {
  const maskBinding = masked ? (momentum ? 3 : 2) : -1;
  const uniformBinding = 2 + (momentum ? 1 : 0) + (masked ? 1 : 0);
  return {
    key: `ticket-lab-sgd-${masked ? 'masked' : 'dense'}-${momentum ? 'momentum' : 'plain'}`,
    code: `
struct Params { n: u32, lr: f32, mu: f32, wd: f32 }
@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
${momentum ? '@group(0) @binding(2) var<storage, read_write> buf: array<f32>;' : ''}
${masked ? `@group(0) @binding(${maskBinding}) var<storage, read> mask: array<f32>;` : ''}
@group(0) @binding(${uniformBinding}) var<uniform> p: Params;
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${FLAT_INDEX};
  if (i >= p.n) { return; }
  let wi = w[i];
  let keep = ${masked ? 'mask[i] != 0.0' : 'true'};
  var gi = select(0.0, g[i] + p.wd * wi, keep);
  ${momentum ? 'gi = p.mu * buf[i] + gi;\n  buf[i] = gi;' : ''}
  w[i] = select(0.0, wi - p.lr * gi, keep);
}`,
  };
}

function adamWebGpu({ inputs, backend, attrs }: KernelArgs) {
  const a = attrs as unknown as AdamAttrs;
  const n = tf.util.sizeFromShape(inputs.w!.shape);
  const masked = inputs.mask !== undefined;
  dispatchWgsl(
    backend,
    adamWgsl(masked),
    [
      { tensor: inputs.w!, access: 'read_write' },
      { tensor: inputs.m!, access: 'read_write' },
      { tensor: inputs.v!, access: 'read_write' },
      { tensor: inputs.g!, access: 'read' },
      ...(masked ? [{ tensor: inputs.mask!, access: 'read' as const }] : []),
    ],
    [
      { type: 'uint32', value: n },
      ...[a.beta1, a.oneMinusBeta1, a.beta2, a.oneMinusBeta2, a.stepSize, a.invSqrtBc2, a.eps, a.weightDecay].map((value) => ({ type: 'float32' as const, value })),
    ],
    flatGrid(n, WORKGROUP),
  );
  return [];
}

function sgdWebGpu({ inputs, backend, attrs }: KernelArgs) {
  const { lr, momentum, weightDecay } = attrs as unknown as { lr: number; momentum: number; weightDecay: number };
  const n = tf.util.sizeFromShape(inputs.w!.shape);
  const masked = inputs.mask !== undefined;
  const hasBuffer = inputs.buffer !== undefined;
  dispatchWgsl(
    backend,
    sgdWgsl(masked, hasBuffer),
    [
      { tensor: inputs.w!, access: 'read_write' },
      { tensor: inputs.g!, access: 'read' },
      ...(hasBuffer ? [{ tensor: inputs.buffer!, access: 'read_write' as const }] : []),
      ...(masked ? [{ tensor: inputs.mask!, access: 'read' as const }] : []),
    ],
    [
      { type: 'uint32', value: n },
      { type: 'float32', value: lr },
      { type: 'float32', value: momentum },
      { type: 'float32', value: weightDecay },
    ],
    flatGrid(n, WORKGROUP),
  );
  return [];
}

export const OPTIMIZER_KERNELS: readonly CustomKernel[] = [
  { name: ADAM_KERNEL, implementations: { cpu: adamCpu, wasm: adamWasm, webgpu: adamWebGpu } },
  { name: SGD_KERNEL, implementations: { cpu: sgdCpu, wasm: sgdWasm, webgpu: sgdWebGpu } },
];

registerKernels(OPTIMIZER_KERNELS);
