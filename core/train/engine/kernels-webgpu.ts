// The step kernels of the fully connected engine on TF.js's WebGPU backend, in WGSL, each prepared
// once (webgpu-prepared.ts): running one only records a dispatch.
import type { AdamStep, SgdStep } from '../../compute/kernels/optimizer-kernels';
import type { ImageSplit } from '../../data/datasets';
import type { DeviceImages, GemmSpec, StepKernels } from './step-kernels';
import { type Binding, COPY_DST, FLAT, type GpuBuffer, STORAGE, UNIFORM, WebGpuDispatcher, flatGrid } from './webgpu-prepared';

const GEMM_TILE = 64;
const GEMM_K_TILE = 16;
/** Shared-memory row stride of a tile: one more than its width, so column-wise stores hit distinct banks. */
const TILE_STRIDE = GEMM_TILE + 1;

export function webgpuStepKernels(): StepKernels {
  const gpu = new WebGpuDispatcher();
  const device = gpu.device;
  const buffer = gpu.buffer.bind(gpu);
  const uniforms = gpu.uniforms.bind(gpu);
  const prepare = gpu.prepare.bind(gpu);
  const run = gpu.run.bind(gpu);
  const flush = gpu.flush.bind(gpu);

  // Per-step optimiser constants: [stepSize, invSqrtBc2, beta1, 1−β1, beta2, 1−β2, eps, weightDecay] for Adam,
  // [lr, momentum, weightDecay] for SGD.
  const stepConstants = buffer(32, UNIFORM | COPY_DST);

  return {
    backend: 'webgpu',
    images(split: ImageSplit, normalization): DeviceImages {
      const features = split.count > 0 ? split.images.length / split.count : 0;
      if (features % 4 !== 0) throw new Error(`images of ${features} bytes: the WebGPU gather reads 4 bytes at a time`);
      // Bytes packed four to a u32 word: a quarter of the memory of floats.
      const packed = buffer(Math.max(4, split.images.length), STORAGE | COPY_DST);
      if (split.images.length > 0) device.queue.writeBuffer(packed, 0, split.images);
      const labels = buffer(4 * Math.max(1, split.count), STORAGE | COPY_DST);
      if (split.count > 0) device.queue.writeBuffer(labels, 0, Int32Array.from(split.labels));
      const table = new Float32Array([normalization.mean, normalization.std]);
      return { count: split.count, features, packed, labels, norm: buffer(16, UNIFORM, table), dispose() {} } as DeviceImages & { packed: GpuBuffer; labels: GpuBuffer; norm: GpuBuffer };
    },
    gather({ source, rows, x, labels }) {
      const src = source as DeviceImages & { packed: GpuBuffer; labels: GpuBuffer; norm: GpuBuffer };
      const ids = buffer(4 * rows, STORAGE | COPY_DST);
      const dims = uniforms([rows, src.features]);
      const d = prepare('gather', gatherWgsl, [{ buffer: src.packed }, { buffer: src.labels }, { buffer: ids }, { tensor: x, write: true }, { tensor: labels, write: true }, { buffer: src.norm }, { buffer: dims }], flatGrid(rows * src.features, 256));
      return (rowIds) => {
        flush();
        device.queue.writeBuffer(ids, 0, rowIds);
        run(d);
      };
    },
    gemm(spec) {
      const layoutA = spec.a.col === 1 ? 'k' : 'm';
      const layoutB = spec.b.col === 1 ? 'n' : 'k';
      const key = `gemm-${layoutA}${layoutB}-${spec.bias ? 'bias' : 'nobias'}-${spec.relu ? 'relu' : 'linear'}`;
      const dims = uniforms([
        spec.m, spec.n, spec.k,
        spec.a.offset, spec.a.batch, spec.a.row, spec.a.col,
        spec.b.offset, spec.b.batch, spec.b.row, spec.b.col,
        spec.c.offset, spec.c.batch, spec.c.row,
        spec.bias?.batch ?? 0, 0,
      ]);
      const bindings: Binding[] = [{ tensor: spec.a.tensor, write: false }, { tensor: spec.b.tensor, write: false }, { tensor: spec.c.tensor, write: true }];
      if (spec.bias) bindings.push({ tensor: spec.bias.tensor, write: false });
      bindings.push({ buffer: dims });
      const d = prepare(key, () => gemmWgsl(layoutA, layoutB, spec.bias !== undefined, spec.relu), bindings, [Math.ceil(spec.n / GEMM_TILE), Math.ceil(spec.m / GEMM_TILE), spec.batch]);
      return () => run(d);
    },
    reluGradBias(s) {
      const dims = uniforms([s.batch, s.rows, s.cols, s.relu ? 1 : 0]);
      const d = prepare('relu-grad-bias', reluGradBiasWgsl, [{ tensor: s.grad, write: true }, { tensor: s.output, write: false }, { tensor: s.biasGrad, write: true }, { buffer: dims }], flatGrid(s.batch * s.cols, 64));
      return () => run(d);
    },
    softmaxXent(s) {
      const dims = uniforms([s.rows, s.classes]);
      const d = prepare('softmax-xent', softmaxXentWgsl, [{ tensor: s.logits, write: false }, { tensor: s.labels, write: false }, { tensor: s.dlogits, write: true }, { tensor: s.lossSum, write: true }, { buffer: dims }], [s.batch, 1, 1]);
      return () => run(d);
    },
    evalStats(s) {
      const dims = uniforms([s.rows, s.classes, s.logitsBatch]);
      const d = prepare('eval-stats', evalStatsWgsl, [{ tensor: s.logits, write: false }, { tensor: s.labels, write: false }, { tensor: s.stats, write: true }, { buffer: dims }], [s.batch, 1, 1]);
      return () => run(d);
    },
    adam(slot) {
      const masked = slot.mask !== undefined;
      const dims = uniforms([slot.w.size]);
      const bindings: Binding[] = [{ tensor: slot.w, write: true }, { tensor: slot.m, write: true }, { tensor: slot.v, write: true }, { tensor: slot.g, write: false }];
      if (slot.mask) bindings.push({ tensor: slot.mask, write: false });
      bindings.push({ buffer: dims }, { buffer: stepConstants });
      const d = prepare(`adam-${masked}`, () => adamWgsl(masked), bindings, flatGrid(slot.w.size, 256));
      return () => run(d);
    },
    sgd(slot) {
      const masked = slot.mask !== undefined;
      const momentum = slot.buffer !== undefined;
      const dims = uniforms([slot.w.size]);
      const bindings: Binding[] = [{ tensor: slot.w, write: true }, { tensor: slot.g, write: false }];
      if (slot.buffer) bindings.push({ tensor: slot.buffer, write: true });
      if (slot.mask) bindings.push({ tensor: slot.mask, write: false });
      bindings.push({ buffer: dims }, { buffer: stepConstants });
      const d = prepare(`sgd-${masked}-${momentum}`, () => sgdWgsl(masked, momentum), bindings, flatGrid(slot.w.size, 256));
      return () => run(d);
    },
    copyMembers(src, dst, perMember) {
      const members = src.size / perMember;
      const flags = buffer(4 * members, STORAGE | COPY_DST);
      const dims = uniforms([perMember, members]);
      const d = prepare('copy-members', copyMembersWgsl, [{ tensor: src, write: false }, { tensor: dst, write: true }, { buffer: flags }, { buffer: dims }], flatGrid(src.size, 256));
      const chosen = new Uint32Array(members);
      return (list) => {
        chosen.fill(0);
        for (const p of list) chosen[p] = 1;
        flush();
        device.queue.writeBuffer(flags, 0, chosen);
        run(d);
      };
    },
    zero(tensor) {
      const dims = uniforms([tensor.size]);
      const d = prepare('zero', zeroWgsl, [{ tensor, write: true }, { buffer: dims }], flatGrid(tensor.size, 256));
      return () => run(d);
    },
    setStepConstants(adam: AdamStep | null, sgd: SgdStep | null) {
      flush();
      const values = adam
        ? [adam.stepSize, adam.invSqrtBc2, adam.beta1, 1 - adam.beta1, adam.beta2, 1 - adam.beta2, adam.epsilon, adam.weightDecay]
        : [sgd!.learningRate, sgd!.momentum, sgd!.weightDecay, 0, 0, 0, 0, 0];
      device.queue.writeBuffer(stepConstants, 0, Float32Array.from(values));
    },
    flush,
    settle: () => gpu.settle(),
    assertHealthy: () => gpu.assertHealthy(),
    dispose: () => gpu.dispose(),
  };
}

function gatherWgsl(): string {
  return `
struct Dims { rows: u32, features: u32 }
struct Norm { mean: f32, deviation: f32 }
@group(0) @binding(0) var<storage, read> images: array<u32>;
@group(0) @binding(1) var<storage, read> sourceLabels: array<i32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> labels: array<i32>;
@group(0) @binding(5) var<uniform> norm: Norm;
@group(0) @binding(6) var<uniform> d: Dims;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = ${FLAT(256)};
  if (idx >= d.rows * d.features) { return; }
  let i = idx / d.features;
  let j = idx - i * d.features;
  let row = u32(ids[i]);
  let byte = row * d.features + j;
  let value = f32((images[byte / 4u] >> (8u * (byte % 4u))) & 255u);
  x[idx] = (value / 255.0 - norm.mean) / norm.deviation;
  if (j == 0u) { labels[i] = sourceLabels[row]; }
}`;
}

/**
 * 64×64 output tile per workgroup of 16×16 threads, each thread 4×4 outputs (strided by 16 so
 * neighbouring threads touch neighbouring columns), k in steps of 16 through workgroup memory.
 * Tile loads follow whichever index of A and B is contiguous in memory, so they coalesce.
 */
function gemmWgsl(layoutA: 'k' | 'm', layoutB: 'n' | 'k', bias: boolean, relu: boolean): string {
  const T = GEMM_TILE;
  const KT = GEMM_K_TILE;
  const S = TILE_STRIDE;
  const loadA =
    layoutA === 'k'
      ? `let kk = idx % ${KT}u; let mm = idx / ${KT}u;`
      : `let mm = idx % ${T}u; let kk = idx / ${T}u;`;
  const loadB =
    layoutB === 'n'
      ? `let nn = idx % ${T}u; let kk = idx / ${T}u;`
      : `let kk = idx % ${KT}u; let nn = idx / ${KT}u;`;
  const acc: string[] = [];
  const fma: string[] = [];
  const store: string[] = [];
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      acc.push(`var c${i}${j} = 0.0;`);
      fma.push(`c${i}${j} += a${i} * b${j};`);
      store.push(`put(row0 + ${16 * i}u, col0 + ${16 * j}u, c${i}${j});`);
    }
  }
  return `
struct Dims { M: u32, N: u32, K: u32, aOff: u32, aBatch: u32, aRow: u32, aCol: u32, bOff: u32, bBatch: u32, bRow: u32, bCol: u32, cOff: u32, cBatch: u32, cRow: u32, biasBatch: u32, pad: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
${bias ? '@group(0) @binding(3) var<storage, read> bias: array<f32>;' : ''}
@group(0) @binding(${bias ? 4 : 3}) var<uniform> d: Dims;
var<workgroup> As: array<f32, ${KT * S}>;
var<workgroup> Bs: array<f32, ${KT * S}>;
var<private> cBase: u32;
var<private> biasBase: u32;

fn put(row: u32, col: u32, value: f32) {
  if (row < d.M && col < d.N) {
    var v = value;
    ${bias ? 'v += bias[biasBase + col];' : ''}
    ${relu ? 'v = max(v, 0.0);' : ''}
    C[cBase + row * d.cRow + col] = v;
  }
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let p = wid.z;
  let m0 = wid.y * ${T}u;
  let n0 = wid.x * ${T}u;
  let t = lid.y * 16u + lid.x;
  let aBase = d.aOff + p * d.aBatch;
  let bBase = d.bOff + p * d.bBatch;
  cBase = d.cOff + p * d.cBatch;
  biasBase = p * d.biasBatch;
  ${acc.join('\n  ')}
  for (var k0 = 0u; k0 < d.K; k0 += ${KT}u) {
    for (var r = 0u; r < 4u; r++) {
      let idx = t + r * 256u;
      {
        ${loadA}
        let gm = m0 + mm;
        let gk = k0 + kk;
        var v = 0.0;
        if (gm < d.M && gk < d.K) { v = A[aBase + gm * d.aRow + gk * d.aCol]; }
        As[kk * ${S}u + mm] = v;
      }
      {
        ${loadB}
        let gn = n0 + nn;
        let gk = k0 + kk;
        var v = 0.0;
        if (gn < d.N && gk < d.K) { v = B[bBase + gk * d.bRow + gn * d.bCol]; }
        Bs[kk * ${S}u + nn] = v;
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${KT}u; kk++) {
      let ar = kk * ${S}u + lid.y;
      let br = kk * ${S}u + lid.x;
      let a0 = As[ar]; let a1 = As[ar + 16u]; let a2 = As[ar + 32u]; let a3 = As[ar + 48u];
      let b0 = Bs[br]; let b1 = Bs[br + 16u]; let b2 = Bs[br + 32u]; let b3 = Bs[br + 48u];
      ${fma.join('\n      ')}
    }
    workgroupBarrier();
  }
  let row0 = m0 + lid.y;
  let col0 = n0 + lid.x;
  ${store.join('\n  ')}
}`;
}

function reluGradBiasWgsl(): string {
  return `
struct Dims { batch: u32, rows: u32, cols: u32, relu: u32 }
@group(0) @binding(0) var<storage, read_write> grad: array<f32>;
@group(0) @binding(1) var<storage, read> outputs: array<f32>;
@group(0) @binding(2) var<storage, read_write> biasGrad: array<f32>;
@group(0) @binding(3) var<uniform> d: Dims;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = ${FLAT(64)};
  if (idx >= d.batch * d.cols) { return; }
  let p = idx / d.cols;
  let j = idx - p * d.cols;
  var sum = 0.0;
  for (var i = 0u; i < d.rows; i++) {
    let at = (p * d.rows + i) * d.cols + j;
    var g = grad[at];
    if (d.relu != 0u && !(outputs[at] > 0.0)) {
      g = 0.0;
      grad[at] = 0.0;
    }
    sum += g;
  }
  biasGrad[idx] = sum;
}`;
}

/** One workgroup per member; its 64 threads share the rows, then thread 0 adds the mean loss. */
export function softmaxXentWgsl(): string {
  return `
struct Dims { rows: u32, classes: u32 }
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(3) var<storage, read_write> lossSum: array<f32>;
@group(0) @binding(4) var<uniform> d: Dims;
var<workgroup> partial: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let p = wid.x;
  var total = 0.0;
  for (var i = lid.x; i < d.rows; i += 64u) {
    let at = (p * d.rows + i) * d.classes;
    let label = u32(labels[p * d.rows + i]);
    var m = logits[at];
    for (var j = 1u; j < d.classes; j++) { m = max(m, logits[at + j]); }
    var s = 0.0;
    for (var j = 0u; j < d.classes; j++) { s += exp(logits[at + j] - m); }
    let lse = m + log(s);
    total += lse - logits[at + label];
    for (var j = 0u; j < d.classes; j++) {
      dlogits[at + j] = (exp(logits[at + j] - lse) - select(0.0, 1.0, j == label)) / f32(d.rows);
    }
  }
  partial[lid.x] = total;
  workgroupBarrier();
  if (lid.x == 0u) {
    var sum = 0.0;
    for (var t = 0u; t < 64u; t++) { sum += partial[t]; }
    lossSum[p] += sum / f32(d.rows);
  }
}`;
}

function evalStatsWgsl(): string {
  return `
struct Dims { rows: u32, classes: u32, logitsBatch: u32 }
@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<uniform> d: Dims;
var<workgroup> lossPart: array<f32, 64>;
var<workgroup> hitPart: array<f32, 64>;
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let p = wid.x;
  var loss = 0.0;
  var hits = 0.0;
  for (var i = lid.x; i < d.rows; i += 64u) {
    let at = p * d.logitsBatch + i * d.classes;
    let label = u32(labels[i]);
    var m = logits[at];
    var best = 0u;
    for (var j = 1u; j < d.classes; j++) {
      let v = logits[at + j];
      if (v > m) { m = v; best = j; }
    }
    var s = 0.0;
    for (var j = 0u; j < d.classes; j++) { s += exp(logits[at + j] - m); }
    loss += m + log(s) - logits[at + label];
    hits += select(0.0, 1.0, best == label);
  }
  lossPart[lid.x] = loss;
  hitPart[lid.x] = hits;
  workgroupBarrier();
  if (lid.x == 0u) {
    var l = 0.0;
    var h = 0.0;
    for (var t = 0u; t < 64u; t++) { l += lossPart[t]; h += hitPart[t]; }
    stats[2u * p] += l;
    stats[2u * p + 1u] += h;
  }
}`;
}

function adamWgsl(masked: boolean): string {
  return `
struct Dims { n: u32 }
struct Step { stepSize: f32, inv: f32, beta1: f32, c1: f32, beta2: f32, c2: f32, eps: f32, wd: f32 }
@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> m: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read> g: array<f32>;
${masked ? '@group(0) @binding(4) var<storage, read> mask: array<f32>;' : ''}
@group(0) @binding(${masked ? 5 : 4}) var<uniform> d: Dims;
@group(0) @binding(${masked ? 6 : 5}) var<uniform> s: Step;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${FLAT(256)};
  if (i >= d.n) { return; }
  let wi = w[i];
  let keep = ${masked ? 'mask[i] != 0.0' : 'true'};
  let gi = select(0.0, g[i] + s.wd * wi, keep);
  let mi = s.beta1 * m[i] + s.c1 * gi;
  let vi = s.beta2 * v[i] + s.c2 * (gi * gi);
  m[i] = mi;
  v[i] = vi;
  w[i] = select(0.0, wi - s.stepSize * (mi / (sqrt(vi) * s.inv + s.eps)), keep);
}`;
}

function sgdWgsl(masked: boolean, momentum: boolean): string {
  let binding = 2;
  const bufferDecl = momentum ? `@group(0) @binding(${binding++}) var<storage, read_write> buf: array<f32>;` : '';
  const maskDecl = masked ? `@group(0) @binding(${binding++}) var<storage, read> mask: array<f32>;` : '';
  return `
struct Dims { n: u32 }
struct Step { lr: f32, mu: f32, wd: f32, pad0: f32, pad1: f32, pad2: f32, pad3: f32, pad4: f32 }
@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
${bufferDecl}
${maskDecl}
@group(0) @binding(${binding}) var<uniform> d: Dims;
@group(0) @binding(${binding + 1}) var<uniform> s: Step;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${FLAT(256)};
  if (i >= d.n) { return; }
  let wi = w[i];
  let keep = ${masked ? 'mask[i] != 0.0' : 'true'};
  var gi = select(0.0, g[i] + s.wd * wi, keep);
  ${momentum ? 'gi = s.mu * buf[i] + gi;\n  buf[i] = gi;' : ''}
  w[i] = select(0.0, wi - s.lr * gi, keep);
}`;
}

function copyMembersWgsl(): string {
  return `
struct Dims { perMember: u32, members: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> chosen: array<u32>;
@group(0) @binding(3) var<uniform> d: Dims;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${FLAT(256)};
  if (i >= d.perMember * d.members) { return; }
  if (chosen[i / d.perMember] != 0u) { dst[i] = src[i]; }
}`;
}

export function zeroWgsl(): string {
  return `
struct Dims { n: u32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> d: Dims;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${FLAT(256)};
  if (i < d.n) { x[i] = 0.0; }
}`;
}

export type { GemmSpec };
