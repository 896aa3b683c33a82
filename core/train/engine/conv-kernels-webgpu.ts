// WGSL for the conv step engine (conv-engine.ts): the three products of a conv layer as implicit
// GEMMs, BatchNorm's statistics and gradients as per-chunk partials merged per channel, and the
// small kernels around them (pooling, shortcuts, the masked update). Every shape is baked into the
// shader as a constant, so index arithmetic divides by constants, and each layer gets its own
// pipeline (cached by a key that names the shape).
//
// Layouts are TF.js's: activations NHWC, conv kernels [kh, kw, in, out], dense kernels [in, out]
// (a dense layer is run as a 1×1 conv on a 1×1 image).
import { FLAT } from './webgpu-prepared';

/** One conv layer's geometry. Padding is floor(k/2) on every side: 'same' at stride 1, PyTorch's at stride 2. */
export interface ConvGeometry {
  batch: number;
  height: number;
  width: number;
  inChannels: number;
  kernel: number;
  stride: number;
  outHeight: number;
  outWidth: number;
  outChannels: number;
}

export function convGeometry(batch: number, height: number, width: number, inChannels: number, kernel: number, stride: number, outChannels: number): ConvGeometry {
  const pad = Math.floor(kernel / 2);
  return {
    batch, height, width, inChannels, kernel, stride, outChannels,
    outHeight: Math.floor((height + 2 * pad - kernel) / stride) + 1,
    outWidth: Math.floor((width + 2 * pad - kernel) / stride) + 1,
  };
}

export const geometryKey = (g: ConvGeometry) => `${g.batch}x${g.height}x${g.width}x${g.inChannels}-k${g.kernel}s${g.stride}-${g.outChannels}`;

/** The K-step of every product: 16 reduction indices per pass through workgroup memory. */
export const K_TILE = 16;
const THREADS = 256;

/**
 * Output tile of a product with `columns` output columns: TN columns (16, 32 or 64) by TM rows, 256
 * threads each computing a 4×4 block strided by the thread grid (so neighbours touch neighbouring
 * columns). Narrow layers get tall tiles, so every tile does the same work.
 */
export function gemmTile(columns: number): { tm: number; tn: number; threadsM: number; threadsN: number } {
  const tn = columns <= 16 ? 16 : columns <= 32 ? 32 : 64;
  const threadsN = tn / 4;
  const threadsM = THREADS / threadsN;
  return { tm: 4 * threadsM, tn, threadsN, threadsM };
}

export type ConvProduct = 'forward' | 'inputGrad' | 'filterGrad';

export interface ProductOptions {
  /** forward: add the bias; the kernel binds it after the output. */
  bias?: boolean;
  /** forward: ReLU of the result. */
  relu?: boolean;
  /** inputGrad: add to what the output holds instead of overwriting it (a residual block's two paths). */
  accumulate?: boolean;
  /**
   * filterGrad: rows of the reduction (pixels × images) per split; forward: reduction indices per
   * split (a multiple of 16), each split writing its partial product, bias and ReLU left to
   * splitSumWgsl. The grid's z is the split.
   */
  chunk?: number;
}

/**
 * The GEMM view of each product:
 * - forward: y[m = (n, oy, ox), co] = Σ_{k = (ky, kx, ci)} x[n, oy·s − p + ky, ox·s − p + kx, ci] · w[k, co];
 * - inputGrad: dx[m = (n, iy, ix), ci] = Σ_{k = (ky, kx, co)} dy[n, (iy + p − ky)/s, (ix + p − kx)/s, co] · w[ky, kx, ci, co],
 *   the terms whose output position is whole and inside;
 * - filterGrad: dw_z[m = (ky, kx, ci), co] = Σ_{r in split z} x[n, oy·s − p + ky, ox·s − p + kx, ci] · dy[r = (n, oy, ox), co].
 * Rows, columns and the reduction are bounds-checked, so any size runs; when the channel count that
 * the reduction walks is a multiple of 16, a K-step stays inside one (ky, kx) and its decode is hoisted.
 */
export function convProductWgsl(product: ConvProduct, g: ConvGeometry, options: ProductOptions = {}): string {
  const pad = Math.floor(g.kernel / 2);
  const columns = product === 'inputGrad' ? g.inChannels : g.outChannels;
  const { tm, tn, threadsN, threadsM } = gemmTile(columns);
  const consts = `
const H = ${g.height}u; const W = ${g.width}u; const CIN = ${g.inChannels}u; const KS = ${g.kernel}u; const S = ${g.stride}u;
const PAD = ${pad}; const OH = ${g.outHeight}u; const OW = ${g.outWidth}u; const COUT = ${g.outChannels}u;
const TM = ${tm}u; const TN = ${tn}u; const TX = ${threadsN}u; const TY = ${threadsM}u; const KT = ${K_TILE}u;`;
  const acc: string[] = [];
  const fma: string[] = [];
  const store: string[] = [];
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      acc.push(`var c${i}${j} = 0.0;`);
      fma.push(`c${i}${j} += a${i} * b${j};`);
      store.push(`put(row0 + ${i}u * TY, col0 + ${j}u * TX, c${i}${j});`);
    }
  }
  const compute = `
    workgroupBarrier();
    for (var kk = 0u; kk < KT; kk++) {
      let ar = kk * TM + ty;
      let br = kk * TN + tx;
      let a0 = As[ar]; let a1 = As[ar + TY]; let a2 = As[ar + 2u * TY]; let a3 = As[ar + 3u * TY];
      let b0 = Bs[br]; let b1 = Bs[br + TX]; let b2 = Bs[br + 2u * TX]; let b3 = Bs[br + 3u * TX];
      ${fma.join('\n      ')}
    }
    workgroupBarrier();`;
  // Each thread computes rows ty + i·TY and columns tx + j·TX of the workgroup's tile.
  const prologue = `@compute @workgroup_size(${THREADS})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = lid.x;
  let tx = t % TX;
  let ty = t / TX;
  let m0 = wid.y * TM;
  let n0 = wid.x * TN;`;
  const epilogue = `  let row0 = m0 + ty;
  let col0 = n0 + tx;
  ${store.join('\n  ')}
}`;
  const header = `${consts}
var<workgroup> As: array<f32, ${K_TILE * tm}>;
var<workgroup> Bs: array<f32, ${K_TILE * tn}>;`;
  const aPerThread = (tm * K_TILE) / THREADS;
  const bPerThread = (tn * K_TILE) / THREADS;
  const aStep = THREADS / tm;
  // B's K-step tile from a row-major [reduction, COUT] operand (the forward's kernel, the filter
  // gradient's dy), read along COUT so neighbouring threads load neighbouring floats.
  const rowMajorTile = (operand: string, end: string) => `for (var q = 0u; q < ${bPerThread}u; q++) {
      let idx = t + q * ${THREADS}u;
      let nn = idx % TN;
      let kk = idx / TN;
      let gn = n0 + nn;
      let gk = k0 + kk;
      var v = 0.0;
      if (gn < COUT && gk < ${end}) { v = ${operand}[gk * COUT + gn]; }
      Bs[kk * TN + nn] = v;
    }`;

  if (product === 'forward') {
    const M = g.batch * g.outHeight * g.outWidth;
    const KD = g.kernel * g.kernel * g.inChannels;
    const aligned = g.inChannels % K_TILE === 0;
    const split = options.chunk !== undefined;
    if (split && options.chunk! % K_TILE !== 0) throw new Error(`a split forward takes chunks of a multiple of ${K_TILE}`);
    return `${header}
const M = ${M}u; const KD = ${KD}u; const CHUNK = ${options.chunk ?? KD}u;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${options.bias && !split ? '@group(0) @binding(3) var<storage, read> bias: array<f32>;' : ''}
var<private> outBase: u32;
fn put(row: u32, col: u32, value: f32) {
  if (row < M && col < COUT) {
    var v = value;
    ${options.bias && !split ? 'v += bias[col];' : ''}
    ${options.relu && !split ? 'v = max(v, 0.0);' : ''}
    y[outBase + row * COUT + col] = v;
  }
}
${prologue}
  let ar = t % TM;
  let kc = t / TM;
  let gm = m0 + ar;
  let rowOk = gm < M;
  let img = gm / (OH * OW);
  let rem = gm % (OH * OW);
  let iy0 = i32((rem / OW) * S) - PAD;
  let ix0 = i32((rem % OW) * S) - PAD;
  let xImg = img * H * W * CIN;
  outBase = wid.z * M * COUT;
  let kEnd = min(wid.z * CHUNK + CHUNK, KD);
  ${acc.join('\n  ')}
  for (var k0 = wid.z * CHUNK; k0 < kEnd; k0 += KT) {
    ${aligned ? 'let kyx = k0 / CIN; let ky = i32(kyx / KS); let kx = i32(kyx % KS); let iy = iy0 + ky; let ix = ix0 + kx;\n    let inside = rowOk && iy >= 0 && iy < i32(H) && ix >= 0 && ix < i32(W);\n    let base = xImg + (u32(iy) * W + u32(ix)) * CIN + k0 % CIN;' : ''}
    for (var q = 0u; q < ${aPerThread}u; q++) {
      let kk = kc + q * ${aStep}u;
      var v = 0.0;
      ${aligned
        ? 'if (inside) { v = x[base + kk]; }'
        : `let gk = k0 + kk;
      let kyx = gk / CIN; let iy = iy0 + i32(kyx / KS); let ix = ix0 + i32(kyx % KS);
      if (rowOk && gk < kEnd && iy >= 0 && iy < i32(H) && ix >= 0 && ix < i32(W)) { v = x[xImg + (u32(iy) * W + u32(ix)) * CIN + gk % CIN]; }`}
      As[kk * TM + ar] = v;
    }
    ${rowMajorTile('w', 'kEnd')}
    ${compute}
  }
${epilogue}`;
  }

  if (product === 'inputGrad') {
    const M = g.batch * g.height * g.width;
    const KD = g.kernel * g.kernel * g.outChannels;
    const aligned = g.outChannels % K_TILE === 0;
    // An output position oy contributes to iy when iy + p − ky = oy·s: whole, and inside the output.
    const position = `
      let sy = iy0 - ky; let sx = ix0 - kx;
      let inside = rowOk && sy >= 0 && sx >= 0 && u32(sy) % S == 0u && u32(sx) % S == 0u && u32(sy) / S < OH && u32(sx) / S < OW;
      let base = dyImg + ((u32(sy) / S) * OW + u32(sx) / S) * COUT;`;
    return `${header}
const M = ${M}u; const KD = ${KD}u;
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
fn put(row: u32, col: u32, value: f32) {
  if (row < M && col < CIN) {
    ${options.accumulate ? 'dx[row * CIN + col] += value;' : 'dx[row * CIN + col] = value;'}
  }
}
${prologue}
  let ar = t % TM;
  let kc = t / TM;
  let gm = m0 + ar;
  let rowOk = gm < M;
  let img = gm / (H * W);
  let rem = gm % (H * W);
  let iy0 = i32(rem / W) + PAD;
  let ix0 = i32(rem % W) + PAD;
  let dyImg = img * OH * OW * COUT;
  ${acc.join('\n  ')}
  for (var k0 = 0u; k0 < KD; k0 += KT) {
    ${aligned ? `let kyx = k0 / COUT; let ky = i32(kyx / KS); let kx = i32(kyx % KS);${position}` : ''}
    for (var q = 0u; q < ${aPerThread}u; q++) {
      let kk = kc + q * ${aStep}u;
      var v = 0.0;
      ${aligned
        ? 'if (inside) { v = dy[base + k0 % COUT + kk]; }'
        : `let gk = k0 + kk;
      let kyx = gk / COUT; let ky = i32(kyx / KS); let kx = i32(kyx % KS);${position}
      if (inside && gk < KD) { v = dy[base + gk % COUT]; }`}
      As[kk * TM + ar] = v;
    }
    // B[k = (ky, kx, co), ci] = w[ky, kx, ci, co]: read along co (the reduction) so loads coalesce.
    for (var q = 0u; q < ${bPerThread}u; q++) {
      let idx = t + q * ${THREADS}u;
      let kk = idx % KT;
      let nn = idx / KT;
      let gn = n0 + nn;
      let gk = k0 + kk;
      var v = 0.0;
      if (gn < CIN && gk < KD) { v = w[((gk / COUT) * CIN + gn) * COUT + gk % COUT]; }
      Bs[kk * TN + nn] = v;
    }
    ${compute}
  }
${epilogue}`;
  }

  // filterGrad
  const KD = g.kernel * g.kernel * g.inChannels;
  const P = g.batch * g.outHeight * g.outWidth;
  const chunk = options.chunk ?? P;
  return `${header}
const KD = ${KD}u; const P = ${P}u; const CHUNK = ${chunk}u;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
var<workgroup> pBase: array<u32, ${K_TILE}>;
var<workgroup> pY: array<i32, ${K_TILE}>;
var<workgroup> pX: array<i32, ${K_TILE}>;
var<workgroup> pOk: array<u32, ${K_TILE}>;
var<private> outBase: u32;
fn put(row: u32, col: u32, value: f32) {
  if (row < KD && col < COUT) { partial[outBase + row * COUT + col] = value; }
}
${prologue}
  let pStart = wid.z * CHUNK;
  let pEnd = min(pStart + CHUNK, P);
  outBase = wid.z * KD * COUT;
  // This thread's row of A is one (ky, kx, ci) for the whole reduction.
  let ar = t % TM;
  let kc = t / TM;
  let gm = m0 + ar;
  let rowOk = gm < KD;
  let ci = gm % CIN;
  let kyx = gm / CIN;
  let ky = i32(kyx / KS);
  let kx = i32(kyx % KS);
  ${acc.join('\n  ')}
  for (var k0 = pStart; k0 < pEnd; k0 += KT) {
    // The K-step's output positions, decoded once for the workgroup.
    if (t < KT) {
      let p = k0 + t;
      let img = p / (OH * OW);
      let rem = p % (OH * OW);
      pBase[t] = img * H * W * CIN;
      pY[t] = i32((rem / OW) * S) - PAD;
      pX[t] = i32((rem % OW) * S) - PAD;
      pOk[t] = select(0u, 1u, p < pEnd);
    }
    workgroupBarrier();
    for (var q = 0u; q < ${aPerThread}u; q++) {
      let kk = kc + q * ${aStep}u;
      let iy = pY[kk] + ky;
      let ix = pX[kk] + kx;
      var v = 0.0;
      if (rowOk && pOk[kk] != 0u && iy >= 0 && iy < i32(H) && ix >= 0 && ix < i32(W)) { v = x[pBase[kk] + (u32(iy) * W + u32(ix)) * CIN + ci]; }
      As[kk * TM + ar] = v;
    }
    ${rowMajorTile('dy', 'pEnd')}
    ${compute}
  }
${epilogue}`;
}

/**
 * The end of a split forward product: y = Σ over splits of the partials, plus the bias, then ReLU if
 * asked; elementwise over [rows, columns].
 */
export function splitSumWgsl(rows: number, columns: number, splits: number, bias: boolean, relu: boolean): string {
  return elementwiseWgsl(`
const N = ${rows * columns}u; const C = ${columns}u;
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
${bias ? '@group(0) @binding(2) var<storage, read> bias: array<f32>;' : ''}`, `
  var v = 0.0;
  for (var s = 0u; s < ${splits}u; s++) { v += partial[s * N + i]; }
  ${bias ? 'v += bias[i % C];' : ''}
  ${relu ? 'v = max(v, 0.0);' : ''}
  y[i] = v;`);
}

/**
 * How a forward product splits its reduction: where its output has too few tiles to fill the GPU
 * (a dense layer on a small batch: Conv-2's 12,544 × 256 on 60 rows is 4 workgroups), into chunks
 * of at least 256 reduction indices; null when one pass fills it.
 */
export function forwardSplits(g: ConvGeometry, targetGroups = 256): { chunk: number; splits: number } | null {
  const [gx, gy] = productGrid('forward', g);
  const KD = g.kernel * g.kernel * g.inChannels;
  const wanted = Math.min(Math.floor(targetGroups / (gx * gy)), Math.floor(KD / 256));
  if (wanted < 2) return null;
  const chunk = Math.ceil(KD / wanted / K_TILE) * K_TILE;
  return { chunk, splits: Math.ceil(KD / chunk) };
}

/** WGSL of a kernel with one invocation per element i < N (dispatched over flatGrid(N, 256)): `header` declares N and the bindings. */
function elementwiseWgsl(header: string, body: string): string {
  return `${header}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = ${FLAT(256)};
  if (i >= N) { return; }
${body}
}`;
}

/** WGSL: element i of an NHWC tensor as its image, row, column and channel (img, iy, ix, c). */
function nhwcIndexWgsl(height: number, width: number, channels: number): string {
  return `  let c = i % ${channels}u;
  let pixel = i / ${channels}u;
  let img = pixel / ${height * width}u;
  let rem = pixel % ${height * width}u;
  let iy = rem / ${width}u;
  let ix = rem % ${width}u;`;
}

/** Workgroups of a product: [column tiles, row tiles, splits]. */
export function productGrid(product: ConvProduct, g: ConvGeometry, splits = 1): [number, number, number] {
  const columns = product === 'inputGrad' ? g.inChannels : g.outChannels;
  const rows =
    product === 'forward' ? g.batch * g.outHeight * g.outWidth : product === 'inputGrad' ? g.batch * g.height * g.width : g.kernel * g.kernel * g.inChannels;
  const { tm, tn } = gemmTile(columns);
  return [Math.ceil(columns / tn), Math.ceil(rows / tm), splits];
}

/**
 * How filterGrad splits its reduction: enough splits that the GPU has a few hundred workgroups, each
 * at least a few K-steps long. Returns the chunk (a multiple of the K-step) and the split count.
 */
export function filterGradSplits(g: ConvGeometry, targetGroups = 512): { chunk: number; splits: number } {
  const P = g.batch * g.outHeight * g.outWidth;
  const [gx, gy] = productGrid('filterGrad', g);
  const wanted = Math.max(1, Math.min(Math.ceil(targetGroups / (gx * gy)), Math.ceil(P / (4 * K_TILE))));
  const chunk = Math.ceil(P / wanted / K_TILE) * K_TILE;
  return { chunk, splits: Math.ceil(P / chunk) };
}

/** Rows per workgroup of the per-channel reductions. */
export const CHANNEL_CHUNK = 512;

/** Lanes of a channel reduction's workgroup: each channel gets floor(256 / C) threads. */
function lanes(channels: number): { groups: number } {
  if (channels > THREADS) throw new Error(`per-channel reductions take at most ${THREADS} channels, not ${channels}`);
  return { groups: Math.floor(THREADS / channels) };
}

/**
 * BatchNorm's batch statistics, pass 1: for each chunk of rows, the count, mean and sum of squared
 * deviations of each channel (two passes over the chunk, so no large sums cancel). Grid: chunks.
 */
export function channelMomentsWgsl(rows: number, channels: number): string {
  const { groups } = lanes(channels);
  return `
const R = ${rows}u; const C = ${channels}u; const G = ${groups}u; const CH = ${CHANNEL_CHUNK}u;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
var<workgroup> sh: array<f32, ${THREADS}>;
var<workgroup> chunkMean: array<f32, ${channels}>;
@compute @workgroup_size(${THREADS})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = lid.x;
  let c = t % C;
  let g = t / C;
  let r0 = wid.x * CH;
  let r1 = min(r0 + CH, R);
  let n = f32(r1 - r0);
  var sum = 0.0;
  if (g < G) { for (var r = r0 + g; r < r1; r += G) { sum += x[r * C + c]; } }
  sh[t] = sum;
  workgroupBarrier();
  if (g == 0u) {
    var total = 0.0;
    for (var k = 0u; k < G; k++) { total += sh[k * C + c]; }
    chunkMean[c] = total / n;
  }
  workgroupBarrier();
  let mean = chunkMean[c];
  var m2 = 0.0;
  if (g < G) { for (var r = r0 + g; r < r1; r += G) { let d = x[r * C + c] - mean; m2 += d * d; } }
  workgroupBarrier();
  sh[t] = m2;
  workgroupBarrier();
  if (g == 0u) {
    var total = 0.0;
    for (var k = 0u; k < G; k++) { total += sh[k * C + c]; }
    let at = (wid.x * C + c) * 3u;
    partial[at] = n;
    partial[at + 1u] = mean;
    partial[at + 2u] = total;
  }
}`;
}

/**
 * BatchNorm's batch statistics, pass 2, one thread per channel: merges the chunks (Chan et al.'s
 * pairwise update), writes (mean, 1/√(σ² + ε)) and updates the running statistics as PyTorch does
 * (momentum 0.1, unbiased variance).
 */
export function batchNormStatsWgsl(chunks: number, channels: number, epsilon: number, momentum: number): string {
  return `
const C = ${channels}u; const PARTS = ${chunks}u;
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> runningMean: array<f32>;
@group(0) @binding(3) var<storage, read_write> runningVar: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= C) { return; }
  var n = 0.0;
  var mean = 0.0;
  var m2 = 0.0;
  for (var s = 0u; s < PARTS; s++) {
    let at = (s * C + c) * 3u;
    let nb = partial[at];
    let delta = partial[at + 1u] - mean;
    let total = n + nb;
    mean += delta * nb / total;
    m2 += partial[at + 2u] + delta * delta * n * nb / total;
    n = total;
  }
  let variance = m2 / n;
  stats[2u * c] = mean;
  stats[2u * c + 1u] = inverseSqrt(variance + ${epsilon});
  runningMean[c] = ${1 - momentum} * runningMean[c] + ${momentum} * mean;
  runningVar[c] = ${1 - momentum} * runningVar[c] + ${momentum} * variance * n / max(n - 1.0, 1.0);
}`;
}

/** How a BatchNorm output takes its residual: none, a tensor of its own shape, or He et al.'s option A from the block input. */
export type Residual = { kind: 'none' } | { kind: 'add' } | { kind: 'subsample'; height: number; width: number; channels: number; stride: number };

/**
 * y = γ·(x − μ)·rstd + β, plus the residual, then ReLU if asked; elementwise over [rows, C].
 * Option A reads the block input at (n, oy·s, ox·s, c − before), zero outside its channels.
 */
export function batchNormApplyWgsl(rows: number, channels: number, outHeight: number, outWidth: number, residual: Residual, relu: boolean): string {
  let residualCode = '';
  let residualDecl = '';
  if (residual.kind === 'add') {
    residualDecl = '@group(0) @binding(5) var<storage, read> res: array<f32>;';
    residualCode = 'v += res[i];';
  } else if (residual.kind === 'subsample') {
    const before = Math.floor((channels - residual.channels) / 2);
    residualDecl = '@group(0) @binding(5) var<storage, read> res: array<f32>;';
    residualCode = `
  let r = i / C;
  let img = r / ${outHeight * outWidth}u;
  let rem = r % ${outHeight * outWidth}u;
  let sc = i32(c) - ${before};
  if (sc >= 0 && sc < ${residual.channels}) {
    let sy = (rem / ${outWidth}u) * ${residual.stride}u;
    let sx = (rem % ${outWidth}u) * ${residual.stride}u;
    v += res[((img * ${residual.height}u + sy) * ${residual.width}u + sx) * ${residual.channels}u + u32(sc)];
  }`;
  }
  return elementwiseWgsl(`
const N = ${rows * channels}u; const C = ${channels}u;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> stats: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
${residualDecl}`, `
  let c = i % C;
  var v = (x[i] - stats[2u * c]) * stats[2u * c + 1u] * gamma[c] + beta[c];
  ${residualCode}
  ${relu ? 'v = max(v, 0.0);' : ''}
  y[i] = v;`);
}

/**
 * Per-chunk sums for a layer's backward: Σ dy and, with BatchNorm, Σ dy·x̂ per channel, where dy is
 * zeroed wherever the gating output (the ReLU's) is not positive. `writeGated` stores the gated dy
 * back in place (a conv bias layer: the products that follow read it). Grid: chunks.
 */
export function channelGradSumsWgsl(rows: number, channels: number, options: { gate: boolean; batchNorm: boolean; writeGated: boolean }): string {
  const { groups } = lanes(channels);
  let binding = 0;
  const decl = [`@group(0) @binding(${binding++}) var<storage, ${options.writeGated ? 'read_write' : 'read'}> dy: array<f32>;`];
  if (options.gate) decl.push(`@group(0) @binding(${binding++}) var<storage, read> gate: array<f32>;`);
  if (options.batchNorm) {
    decl.push(`@group(0) @binding(${binding++}) var<storage, read> x: array<f32>;`);
    decl.push(`@group(0) @binding(${binding++}) var<storage, read> stats: array<f32>;`);
  }
  decl.push(`@group(0) @binding(${binding++}) var<storage, read_write> partial: array<f32>;`);
  const parts = options.batchNorm ? 2 : 1;
  return `
const R = ${rows}u; const C = ${channels}u; const G = ${groups}u; const CH = ${CHANNEL_CHUNK}u;
${decl.join('\n')}
var<workgroup> shDy: array<f32, ${THREADS}>;
var<workgroup> shXh: array<f32, ${THREADS}>;
@compute @workgroup_size(${THREADS})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = lid.x;
  let c = t % C;
  let g = t / C;
  let r0 = wid.x * CH;
  let r1 = min(r0 + CH, R);
  var sumDy = 0.0;
  var sumXh = 0.0;
  if (g < G) {
    ${options.batchNorm ? 'let mean = stats[2u * c]; let rstd = stats[2u * c + 1u];' : ''}
    for (var r = r0 + g; r < r1; r += G) {
      let i = r * C + c;
      var d = dy[i];
      ${options.gate ? `if (!(gate[i] > 0.0)) { d = 0.0;${options.writeGated ? ' dy[i] = 0.0;' : ''} }` : ''}
      sumDy += d;
      ${options.batchNorm ? 'sumXh += d * (x[i] - mean) * rstd;' : ''}
    }
  }
  shDy[t] = sumDy;
  shXh[t] = sumXh;
  workgroupBarrier();
  if (g == 0u) {
    var a = 0.0;
    var b = 0.0;
    for (var k = 0u; k < G; k++) { a += shDy[k * C + c]; b += shXh[k * C + c]; }
    let at = (wid.x * C + c) * ${parts}u;
    partial[at] = a;
    ${options.batchNorm ? 'partial[at + 1u] = b;' : ''}
  }
}`;
}

/**
 * Sums the chunks of channelGradSums, one thread per channel: the bias gradient Σ dy, or BatchNorm's
 * dβ = Σ dy and dγ = Σ dy·x̂ (which its backward reads again, from the gradients).
 */
export function channelGradFinishWgsl(chunks: number, channels: number, batchNorm: boolean): string {
  return `
const C = ${channels}u; const PARTS = ${chunks}u;
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> gradBeta: array<f32>;
${batchNorm ? '@group(0) @binding(2) var<storage, read_write> gradGamma: array<f32>;' : ''}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= C) { return; }
  var a = 0.0;
  var b = 0.0;
  for (var s = 0u; s < PARTS; s++) {
    ${batchNorm ? 'a += partial[(s * C + c) * 2u]; b += partial[(s * C + c) * 2u + 1u];' : 'a += partial[s * C + c];'}
  }
  gradBeta[c] = a;
  ${batchNorm ? 'gradGamma[c] = b;' : ''}
}`;
}

/** BatchNorm's input gradient: dx = γ·rstd·(dy − Σdy/R − x̂·Σdy·x̂/R), dy gated by the ReLU's output if asked. */
export function batchNormBackwardWgsl(rows: number, channels: number, gate: boolean): string {
  return elementwiseWgsl(`
const N = ${rows * channels}u; const C = ${channels}u; const R = ${rows}.0;
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> gradBeta: array<f32>;
@group(0) @binding(5) var<storage, read> gradGamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
${gate ? '@group(0) @binding(7) var<storage, read> gate: array<f32>;' : ''}`, `
  let c = i % C;
  var d = dy[i];
  ${gate ? 'if (!(gate[i] > 0.0)) { d = 0.0; }' : ''}
  let rstd = stats[2u * c + 1u];
  let xh = (x[i] - stats[2u * c]) * rstd;
  dx[i] = gamma[c] * rstd * (d - gradBeta[c] / R - xh * gradGamma[c] / R);`);
}

/**
 * The gradient a residual block's shortcut carries back to the block input: dy gated by the block's
 * ReLU output, as is (identity) or from the option-A sampled positions and channels (zero elsewhere).
 * Written, not added: the body's input gradient is added after.
 */
export function shortcutGradWgsl(
  input: { height: number; width: number; channels: number; batch: number },
  output: { height: number; width: number; channels: number },
  stride: number,
): string {
  const before = Math.floor((output.channels - input.channels) / 2);
  return elementwiseWgsl(`
const N = ${input.batch * input.height * input.width * input.channels}u;
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;`, `
${nhwcIndexWgsl(input.height, input.width, input.channels)}
  var v = 0.0;
  if (iy % ${stride}u == 0u && ix % ${stride}u == 0u) {
    let o = ((img * ${output.height}u + iy / ${stride}u) * ${output.width}u + ix / ${stride}u) * ${output.channels}u + c + ${before}u;
    if (gate[o] > 0.0) { v = dy[o]; }
  }
  dx[i] = v;`);
}

/** size×size max pooling, 'valid': y = the window's max. */
export function maxPoolWgsl(batch: number, height: number, width: number, channels: number, size: number): string {
  const oh = Math.floor(height / size);
  const ow = Math.floor(width / size);
  return elementwiseWgsl(`
const N = ${batch * oh * ow * channels}u;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;`, `
${nhwcIndexWgsl(oh, ow, channels)}
  let y0 = iy * ${size}u;
  let x0 = ix * ${size}u;
  var m = -3.4e38;
  for (var a = 0u; a < ${size}u; a++) {
    for (var b = 0u; b < ${size}u; b++) {
      m = max(m, x[((img * ${height}u + y0 + a) * ${width}u + x0 + b) * ${channels}u + c]);
    }
  }
  y[i] = m;`);
}

/** Max pooling's gradient: each window's dy goes to its first maximal input, the rest get 0. One thread per input. */
export function maxPoolGradWgsl(batch: number, height: number, width: number, channels: number, size: number): string {
  const oh = Math.floor(height / size);
  const ow = Math.floor(width / size);
  return elementwiseWgsl(`
const N = ${batch * height * width * channels}u;
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;`, `
${nhwcIndexWgsl(height, width, channels)}
  let oy = iy / ${size}u;
  let ox = ix / ${size}u;
  var v = 0.0;
  if (oy < ${oh}u && ox < ${ow}u) {
    // The first position of the window (row-major) holding its maximum takes the gradient.
    var best = 0u;
    var m = -3.4e38;
    for (var a = 0u; a < ${size}u; a++) {
      for (var b = 0u; b < ${size}u; b++) {
        let value = x[((img * ${height}u + oy * ${size}u + a) * ${width}u + ox * ${size}u + b) * ${channels}u + c];
        if (value > m) { m = value; best = a * ${size}u + b; }
      }
    }
    if (best == (iy - oy * ${size}u) * ${size}u + (ix - ox * ${size}u)) { v = dy[((img * ${oh}u + oy) * ${ow}u + ox) * ${channels}u + c]; }
  }
  dx[i] = v;`);
}

/** Mean over height and width, [n, h, w, c] → [n, c]: one thread per output. */
export function globalAvgPoolWgsl(batch: number, pixels: number, channels: number): string {
  return `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= ${batch * channels}u) { return; }
  let img = i / ${channels}u;
  let c = i % ${channels}u;
  var s = 0.0;
  for (var p = 0u; p < ${pixels}u; p++) { s += x[(img * ${pixels}u + p) * ${channels}u + c]; }
  y[i] = s / ${pixels}.0;
}`;
}

/** Global average pooling's gradient: dy[n, c]/(h·w) at every pixel (the block's ReLU gates it where it is read). */
export function globalAvgPoolGradWgsl(batch: number, pixels: number, channels: number): string {
  return elementwiseWgsl(`
const N = ${batch * pixels * channels}u;
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;`, `
  let c = i % ${channels}u;
  let img = i / ${pixels * channels}u;
  dx[i] = dy[img * ${channels}u + c] / ${pixels}.0;`);
}

/**
 * The masked update of one parameter from a gradient held as `parts` partial sums (the filter
 * gradient's splits), summed here: SGD with momentum and weight decay (PyTorch's convention) or Adam,
 * as the fully connected engine's updates. Pruned entries stay exactly 0 and their state untouched.
 */
export function maskedUpdateWgsl(size: number, parts: number, optimizer: 'sgd' | 'adam', masked: boolean, momentum: boolean): string {
  let binding = 0;
  const decl = [`@group(0) @binding(${binding++}) var<storage, read_write> w: array<f32>;`, `@group(0) @binding(${binding++}) var<storage, read> g: array<f32>;`];
  if (optimizer === 'adam') {
    decl.push(`@group(0) @binding(${binding++}) var<storage, read_write> m: array<f32>;`, `@group(0) @binding(${binding++}) var<storage, read_write> v: array<f32>;`);
  } else if (momentum) {
    decl.push(`@group(0) @binding(${binding++}) var<storage, read_write> buf: array<f32>;`);
  }
  if (masked) decl.push(`@group(0) @binding(${binding++}) var<storage, read> mask: array<f32>;`);
  decl.push(`@group(0) @binding(${binding++}) var<uniform> s: Step;`);
  const update =
    optimizer === 'adam'
      ? `let mi = s.a2 * m[i] + s.a3 * gi;
  let vi = s.a4 * v[i] + s.a5 * (gi * gi);
  m[i] = mi;
  v[i] = vi;
  w[i] = select(0.0, wi - s.a0 * (mi / (sqrt(vi) * s.a1 + s.a6)), keep);`
      : `${momentum ? 'gi = s.a1 * buf[i] + gi;\n  buf[i] = gi;' : ''}
  w[i] = select(0.0, wi - s.a0 * gi, keep);`;
  return elementwiseWgsl(`
const N = ${size}u;
// Adam: [stepSize, 1/√bc2, β1, 1−β1, β2, 1−β2, ε, wd]; SGD: [lr, momentum, wd].
struct Step { a0: f32, a1: f32, a2: f32, a3: f32, a4: f32, a5: f32, a6: f32, wd: f32 }
${decl.join('\n')}`, `
  var sum = 0.0;
  for (var p = 0u; p < ${parts}u; p++) { sum += g[p * N + i]; }
  let wi = w[i];
  let keep = ${masked ? 'mask[i] != 0.0' : 'true'};
  var gi = select(0.0, sum + s.${optimizer === 'adam' ? 'wd' : 'a2'} * wi, keep);
  ${update}`);
}
