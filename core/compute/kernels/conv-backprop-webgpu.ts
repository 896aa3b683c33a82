// Conv2D gradients for TF.js's WebGPU backend, replacing its stock Conv2DBackpropFilter and
// Conv2DBackpropInput under the same names, so tf.grad of tf.conv2d / tf.fused.conv2d uses them.
// The stock filter gradient runs one invocation per filter element over the whole batch: it took
// 279 of 299 ms per step of a small conv net on an H100. For the zoo's eleven layer shapes on an
// H100, both gradients took 119 ms stock and 6 ms here (bench/conv-backprop-webgpu.ts).
//
// Both are implicit GEMMs over NHWC tensors, 256 invocations per workgroup, each computing an
// rm×rn block of a (16·rm)×(16·rn) output tile from 16-deep shared-memory tiles:
// - filter: dW[(kh,kw,ci), co] = Σ_k X-patch[k, (kh,kw,ci)] · dY[k, co] over k = (n, y, x), a long
//   reduction for few outputs. The k range is split into chunks, one workgroup per (tile, chunk),
//   each writing its partial sums to a scratch tensor; a second pass adds the chunks in a fixed
//   order (WGSL has no float atomics, and a fixed order keeps results independent of scheduling).
// - input: dX[(n,y,x), ci] = Σ_k dY-patch[(n,y,x), k] · W[k, ci] over k = (kh, kw, co): the
//   convolution of dY with the flipped filter, one pass.
import * as tf from '@tensorflow/tfjs';
import type { KernelArgs } from './custom-kernel';
import { type WgslKernel, MAX_WORKGROUPS_PER_DIMENSION, disposeWebGpuTensor, dispatchWgsl, flatGrid, makeWebGpuOutput } from './webgpu-dispatch';

export const CONV_BACKPROP_KERNELS = ['Conv2DBackpropFilter', 'Conv2DBackpropInput'] as const;
export type ConvBackpropKernel = (typeof CONV_BACKPROP_KERNELS)[number];

/** Depth of a shared-memory tile along the reduction. */
const TILE_K = 16;
/** Workgroups the filter gradient aims for: enough to fill a large GPU (132 SMs × 8). */
const FILTER_TARGET_WORKGROUPS = 1024;
/** Below this many workgroups the input gradient uses smaller tiles. */
const INPUT_TARGET_WORKGROUPS = 512;
/** A chunk of the filter reduction spans at least this many k tiles, so its partial sums are worth writing. */
const MIN_K_TILES_PER_CHUNK = 16;
/** Scratch for the filter gradient's partial sums is kept under 64 MB. */
const MAX_SCRATCH_FLOATS = 16 * 1024 * 1024;

type Regs = 1 | 2 | 4;

/** Outputs per invocation along one side of a tile: tiles no wider than the extent needs. */
function regsFor(extent: number): Regs {
  return extent <= 16 ? 1 : extent <= 32 ? 2 : 4;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Accumulators c{i}{j}: rows ty + 16i, columns tx + 16j of the tile. */
function accumulate(rm: number, rn: number, a: (i: string) => string, b: (j: string) => string): string {
  return [
    ...range(rm).map((i) => `let a${i} = ${a(`ty + ${16 * i}`)};`),
    ...range(rn).map((j) => `let b${j} = ${b(`tx + ${16 * j}`)};`),
    ...range(rm).flatMap((i) => range(rn).map((j) => `c${i}${j} = fma(a${i}, b${j}, c${i}${j});`)),
  ].join('\n      ');
}

function declareAccumulators(rm: number, rn: number): string {
  return range(rm).flatMap((i) => range(rn).map((j) => `var c${i}${j} = 0.0;`)).join(' ');
}

const CONV_FIELDS = 'inH: i32, inW: i32, inC: i32, outH: i32, outW: i32, outC: i32, strideH: i32, strideW: i32, padTop: i32, padLeft: i32, filterW: i32';

function filterGradWgsl(rm: Regs, rn: Regs): WgslKernel {
  const tm = 16 * rm;
  const tn = 16 * rn;
  return {
    key: `ticket-lab-conv2d-filter-grad-${rm}x${rn}`,
    code: `
struct Params { ${CONV_FIELDS}, m: i32, k: i32, chunkLen: i32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
var<workgroup> tileA: array<f32, ${TILE_K * tm}>;
var<workgroup> tileB: array<f32, ${TILE_K * tn}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = i32(lid);
  let tx = t % 16;
  let ty = t / 16;
  let m0 = i32(wid.y) * ${tm};
  let n0 = i32(wid.x) * ${tn};
  let chunk = i32(wid.z);
  let kBegin = chunk * p.chunkLen;
  let kEnd = min(kBegin + p.chunkLen, p.k);
  // The filter tap and input channel this invocation loads, the same over the whole chunk.
  let aCol = t % ${tm};
  let aRow = t / ${tm};
  let am = m0 + aCol;
  let aIn = am < p.m;
  let tap = am / p.inC;
  let ci = am - tap * p.inC;
  let kh = tap / p.filterW;
  let offY = kh - p.padTop;
  let offX = tap - kh * p.filterW - p.padLeft;
  let bCol = t % ${tn};
  let bRow = t / ${tn};
  let co = n0 + bCol;
  let bIn = co < p.outC;
  let outHW = p.outH * p.outW;
  ${declareAccumulators(rm, rn)}
  for (var k0 = kBegin; k0 < kEnd; k0 += ${TILE_K}) {
    ${range(rm)
      .map(
        (r) => `{
      let kk = aRow + ${r * (256 / tm)};
      let k = k0 + kk;
      var v = 0.0;
      if (aIn && k < kEnd) {
        let n = k / outHW;
        let rest = k - n * outHW;
        let oy = rest / p.outW;
        let iy = oy * p.strideH + offY;
        let ix = (rest - oy * p.outW) * p.strideW + offX;
        if (iy >= 0 && iy < p.inH && ix >= 0 && ix < p.inW) {
          v = x[((n * p.inH + iy) * p.inW + ix) * p.inC + ci];
        }
      }
      tileA[kk * ${tm} + aCol] = v;
    }`,
      )
      .join('\n    ')}
    ${range(rn)
      .map(
        (r) => `{
      let kk = bRow + ${r * (256 / tn)};
      let k = k0 + kk;
      var v = 0.0;
      if (bIn && k < kEnd) { v = dy[k * p.outC + co]; }
      tileB[kk * ${tn} + bCol] = v;
    }`,
      )
      .join('\n    ')}
    workgroupBarrier();
    for (var kk = 0; kk < ${TILE_K}; kk++) {
      ${accumulate(rm, rn, (i) => `tileA[kk * ${tm} + ${i}]`, (j) => `tileB[kk * ${tn} + ${j}]`)}
    }
    workgroupBarrier();
  }
  ${range(rm)
    .flatMap((i) =>
      range(rn).map((j) => `if (m0 + ty + ${16 * i} < p.m && n0 + tx + ${16 * j} < p.outC) { partial[(chunk * p.m + m0 + ty + ${16 * i}) * p.outC + n0 + tx + ${16 * j}] = c${i}${j}; }`),
    )
    .join('\n  ')}
}`,
  };
}

const REDUCE_WORKGROUP = 256;

/** Sums the chunks' partial filter gradients, chunk 0 first: the same order on every run. */
const SUM_CHUNKS: WgslKernel = {
  key: 'ticket-lab-conv2d-filter-grad-sum-chunks',
  code: `
struct Params { size: u32, chunks: u32 }
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> dw: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(${REDUCE_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${REDUCE_WORKGROUP}u;
  if (i >= p.size) { return; }
  var s = 0.0;
  for (var c = 0u; c < p.chunks; c++) { s += partial[c * p.size + i]; }
  dw[i] = s;
}`,
};

function inputGradWgsl(rm: Regs, rn: Regs, unitStride: boolean): WgslKernel {
  const tm = 16 * rm;
  const tn = 16 * rn;
  // Rows padded by one: the loads write a column of the tile at a time.
  const sa = tm + 1;
  const sb = tn + 1;
  // dY[n, oy, ox, co] feeds input pixel (y, x) through tap (kh, kw) where oy·s + kh = y + padTop.
  const readDy = (r: number) =>
    unitStride
      ? `if (kIn && pIn${r} && sy >= 0 && sy < p.outH && sx >= 0 && sx < p.outW) {
          v = dy[((nb${r} + sy) * p.outW + sx) * p.outC + co];
        }`
      : `if (kIn && pIn${r} && sy >= 0 && sx >= 0) {
          let oy = sy / p.strideH;
          let ox = sx / p.strideW;
          if (oy * p.strideH == sy && ox * p.strideW == sx && oy < p.outH && ox < p.outW) {
            v = dy[((nb${r} + oy) * p.outW + ox) * p.outC + co];
          }
        }`;
  return {
    key: `ticket-lab-conv2d-input-grad-${rm}x${rn}-${unitStride ? 'unit' : 'strided'}`,
    code: `
struct Params { ${CONV_FIELDS}, pixels: i32, k: i32, tilesM: i32 }
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
var<workgroup> tileA: array<f32, ${TILE_K * sa}>;
var<workgroup> tileB: array<f32, ${TILE_K * sb}>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tileM = i32(wid.y + wid.z * nwg.y);
  if (tileM >= p.tilesM) { return; }
  let t = i32(lid);
  let tx = t % 16;
  let ty = t / 16;
  let m0 = tileM * ${tm};
  let n0 = i32(wid.x) * ${tn};
  // Each invocation loads one k column of the tiles, for rows row + 16r: fixed pixels and channels.
  let kk = t % ${TILE_K};
  let row = t / ${TILE_K};
  let inHW = p.inH * p.inW;
  ${range(rm)
    .map(
      (r) => `let px${r} = m0 + row + ${16 * r};
  let pIn${r} = px${r} < p.pixels;
  let img${r} = px${r} / inHW;
  let iy${r} = (px${r} - img${r} * inHW) / p.inW;
  let y${r} = iy${r} + p.padTop;
  let x${r} = px${r} - img${r} * inHW - iy${r} * p.inW + p.padLeft;
  let nb${r} = img${r} * p.outH;`,
    )
    .join('\n  ')}
  ${range(rn).map((r) => `let ci${r} = n0 + row + ${16 * r};`).join('\n  ')}
  ${declareAccumulators(rm, rn)}
  for (var k0 = 0; k0 < p.k; k0 += ${TILE_K}) {
    let k = k0 + kk;
    let kIn = k < p.k;
    let tap = k / p.outC;
    let co = k - tap * p.outC;
    let kh = tap / p.filterW;
    let kw = tap - kh * p.filterW;
    ${range(rm)
      .map(
        (r) => `{
      var v = 0.0;
      let sy = y${r} - kh;
      let sx = x${r} - kw;
      ${readDy(r)}
      tileA[kk * ${sa} + row + ${16 * r}] = v;
    }`,
      )
      .join('\n    ')}
    ${range(rn)
      .map(
        (r) => `{
      var v = 0.0;
      if (kIn && ci${r} < p.inC) { v = w[(tap * p.inC + ci${r}) * p.outC + co]; }
      tileB[kk * ${sb} + row + ${16 * r}] = v;
    }`,
      )
      .join('\n    ')}
    workgroupBarrier();
    for (var q = 0; q < ${TILE_K}; q++) {
      ${accumulate(rm, rn, (i) => `tileA[q * ${sa} + ${i}]`, (j) => `tileB[q * ${sb} + ${j}]`)}
    }
    workgroupBarrier();
  }
  ${range(rm)
    .flatMap((i) =>
      range(rn).map((j) => `if (m0 + ty + ${16 * i} < p.pixels && n0 + tx + ${16 * j} < p.inC) { dx[(m0 + ty + ${16 * i}) * p.inC + n0 + tx + ${16 * j}] = c${i}${j}; }`),
    )
    .join('\n  ')}
}`,
  };
}

// ---- attributes, exactly as TF.js passes them ----

type Shape4 = [number, number, number, number];

/** Resolves strides and padding the way TF.js's own kernels do; refuses what these kernels do not cover. */
function convInfoFor(kernel: ConvBackpropKernel, inShape: number[], filterShape: number[], attrs: KernelArgs['attrs']): tf.backend_util.Conv2DInfo {
  const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs & { dilations?: number | [number, number] };
  if (a.dataFormat !== undefined && a.dataFormat !== 'NHWC') {
    throw new Error(`${kernel} on webgpu (Ticket Lab's kernel) supports dataFormat 'NHWC' only, got '${a.dataFormat}'.`);
  }
  const dilations = a.dilations === undefined ? [1, 1] : typeof a.dilations === 'number' ? [a.dilations, a.dilations] : a.dilations;
  if (dilations.some((d) => d !== 1)) {
    throw new Error(`${kernel} on webgpu (Ticket Lab's kernel) supports dilations 1 only, got [${dilations.join(', ')}].`);
  }
  if (inShape.length !== 4 || filterShape.length !== 4 || inShape[3] !== filterShape[2]) {
    throw new Error(`${kernel} needs a 4-D NHWC input and a filter over its channels, got [${inShape.join(', ')}] and [${filterShape.join(', ')}].`);
  }
  return tf.backend_util.computeConv2DInfo(inShape as Shape4, filterShape as Shape4, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
}

function expectShape(kernel: ConvBackpropKernel, what: string, actual: readonly number[], expected: readonly number[]): void {
  if (actual.length !== expected.length || actual.some((d, i) => d !== expected[i])) {
    throw new Error(`${kernel}: ${what} has shape [${actual.join(', ')}], the convolution needs [${expected.join(', ')}].`);
  }
}

function convUniforms(c: tf.backend_util.Conv2DInfo) {
  return [c.inHeight, c.inWidth, c.inChannels, c.outHeight, c.outWidth, c.outChannels, c.strideHeight, c.strideWidth, c.padInfo.top, c.padInfo.left, c.filterWidth].map((value) => ({
    type: 'int32' as const,
    value,
  }));
}

const int32 = (value: number) => ({ type: 'int32' as const, value });

// ---- kernels ----

function filterGradWebGpu({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { filterShape } = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const c = convInfoFor('Conv2DBackpropFilter', x.shape, filterShape, attrs);
  expectShape('Conv2DBackpropFilter', 'dy', dy.shape, c.outShape);
  const out = makeWebGpuOutput(backend, [...c.filterShape]);
  const m = c.filterHeight * c.filterWidth * c.inChannels;
  const size = m * c.outChannels;
  if (size === 0) return out;
  const k = c.batchSize * c.outHeight * c.outWidth;
  const rm = regsFor(m);
  const rn = regsFor(c.outChannels);
  const tilesM = Math.ceil(m / (16 * rm));
  const tilesN = Math.ceil(c.outChannels / (16 * rn));
  if (tilesM > MAX_WORKGROUPS_PER_DIMENSION || tilesN > MAX_WORKGROUPS_PER_DIMENSION) {
    throw new Error(`Conv2DBackpropFilter: filter [${c.filterShape.join(', ')}] is too large for one dispatch.`);
  }
  const kTiles = Math.ceil(k / TILE_K);
  const wanted = Math.ceil(FILTER_TARGET_WORKGROUPS / (tilesM * tilesN));
  const chunkLimit = Math.min(Math.ceil(kTiles / MIN_K_TILES_PER_CHUNK), Math.floor(MAX_SCRATCH_FLOATS / size));
  const tilesPerChunk = Math.max(1, Math.ceil(kTiles / Math.max(1, Math.min(wanted, chunkLimit))));
  const chunks = Math.max(1, Math.ceil(kTiles / tilesPerChunk));
  const partial = chunks === 1 ? out : makeWebGpuOutput(backend, [chunks * size]);
  dispatchWgsl(
    backend,
    filterGradWgsl(rm, rn),
    [
      { tensor: x, access: 'read' },
      { tensor: dy, access: 'read' },
      { tensor: partial, access: 'read_write' },
    ],
    [...convUniforms(c), int32(m), int32(k), int32(tilesPerChunk * TILE_K)],
    [tilesN, tilesM, chunks],
  );
  if (chunks > 1) {
    dispatchWgsl(
      backend,
      SUM_CHUNKS,
      [
        { tensor: partial, access: 'read' },
        { tensor: out, access: 'read_write' },
      ],
      [
        { type: 'uint32', value: size },
        { type: 'uint32', value: chunks },
      ],
      flatGrid(size, REDUCE_WORKGROUP),
    );
    disposeWebGpuTensor(backend, partial);
  }
  return out;
}

function inputGradWebGpu({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const { inputShape } = attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const c = convInfoFor('Conv2DBackpropInput', inputShape, filter.shape, attrs);
  expectShape('Conv2DBackpropInput', 'dy', dy.shape, c.outShape);
  const out = makeWebGpuOutput(backend, [...c.inShape]);
  const pixels = c.batchSize * c.inHeight * c.inWidth;
  if (pixels * c.inChannels === 0) return out;
  const k = c.filterHeight * c.filterWidth * c.outChannels;
  const rn = regsFor(c.inChannels);
  const tilesN = Math.ceil(c.inChannels / (16 * rn));
  let rm: Regs = 4;
  while (rm > 1 && Math.ceil(pixels / (16 * rm)) * tilesN < INPUT_TARGET_WORKGROUPS) rm = (rm / 2) as Regs;
  const tilesM = Math.ceil(pixels / (16 * rm));
  const gridY = Math.min(tilesM, MAX_WORKGROUPS_PER_DIMENSION);
  const gridZ = Math.ceil(tilesM / gridY);
  if (tilesN > MAX_WORKGROUPS_PER_DIMENSION || gridZ > MAX_WORKGROUPS_PER_DIMENSION) {
    throw new Error(`Conv2DBackpropInput: input [${c.inShape.join(', ')}] is too large for one dispatch.`);
  }
  dispatchWgsl(
    backend,
    inputGradWgsl(rm, rn, c.strideHeight === 1 && c.strideWidth === 1),
    [
      { tensor: dy, access: 'read' },
      { tensor: filter, access: 'read' },
      { tensor: out, access: 'read_write' },
    ],
    [...convUniforms(c), int32(pixels), int32(k), int32(tilesM)],
    [tilesN, gridY, gridZ],
  );
  return out;
}

// ---- registration ----

/** Marks our configs, so a second copy of this module (or a second call) recognises them. */
const OURS = Symbol.for('ticket-lab.conv-backprop-webgpu');
/** The stock configs this module replaced, kept process-wide for benchmarks and tests. */
const STOCK = Symbol.for('ticket-lab.conv-backprop-webgpu.stock');

type MarkedConfig = tf.KernelConfig & { [OURS]?: true };
const globalSlot = globalThis as { [STOCK]?: Partial<Record<ConvBackpropKernel, tf.KernelConfig>> };
const stock = (globalSlot[STOCK] ??= {});

const OUR_KERNELS: Record<ConvBackpropKernel, tf.KernelFunc> = {
  Conv2DBackpropFilter: filterGradWebGpu as tf.KernelFunc,
  Conv2DBackpropInput: inputGradWebGpu as tf.KernelFunc,
};

/** Whether the kernel registered under `name` for 'webgpu' is this module's. */
export function isOurConvBackpropKernel(name: ConvBackpropKernel): boolean {
  return (tf.getKernel(name, 'webgpu') as MarkedConfig | undefined)?.[OURS] === true;
}

/** Puts our kernels in place of whatever is registered for 'webgpu' (the stock ones are kept); idempotent. */
export function registerConvBackpropKernels(): void {
  for (const name of CONV_BACKPROP_KERNELS) {
    const current = tf.getKernel(name, 'webgpu') as MarkedConfig | undefined;
    if (current?.[OURS]) continue;
    if (current) {
      stock[name] = current;
      tf.unregisterKernel(name, 'webgpu');
    }
    const config: MarkedConfig = { kernelName: name, backendName: 'webgpu', kernelFunc: OUR_KERNELS[name], [OURS]: true };
    tf.registerKernel(config);
  }
}

/** The stock TF.js kernel functions ours replaced (absent until the WebGPU backend has been loaded and set). */
export function stockConvBackpropKernels(): Partial<Record<ConvBackpropKernel, tf.KernelFunc>> {
  return Object.fromEntries(Object.entries(stock).map(([name, config]) => [name, config.kernelFunc]));
}

/**
 * The WebGPU backend package is loaded lazily (core/compute/webgpu.ts), after this module, and
 * registers its stock kernels over anything already there. A kernel of our own with a setupFunc,
 * which TF.js calls each time the 'webgpu' backend is set, swaps ours in after that.
 */
const INSTALLER = 'TicketLabConvBackpropInstaller';
if (tf.getKernel(INSTALLER, 'webgpu') === undefined) {
  tf.registerKernel({
    kernelName: INSTALLER,
    backendName: 'webgpu',
    kernelFunc: () => {
      throw new Error(`${INSTALLER} is not a kernel: it only installs Ticket Lab's conv gradients on webgpu.`);
    },
    setupFunc: () => registerConvBackpropKernels(),
  });
}
// Already loaded (a later import of this module): replace now.
if (tf.getKernel(CONV_BACKPROP_KERNELS[0], 'webgpu') !== undefined) registerConvBackpropKernels();
