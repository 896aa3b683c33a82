// Ticket Lab's WebGPU conv gradients against TF.js's cpu reference kernels (which accumulate in
// float64), on odd shapes, every padding form, strides 1 to 3 and the zoo's real layer shapes.
// Outputs land in NaN-poisoned buffers, every case runs twice and must repeat bit for bit.
// Without a GPU this runs on SwiftShader: big shapes are kept few, at small batch sizes.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../core/compute/rng';
import {
  CONV_BACKPROP_KERNELS,
  isOurConvBackpropKernel,
  registerConvBackpropKernels,
  stockConvBackpropKernels,
} from '../../../core/compute/kernels/conv-backprop-webgpu';
import { useBackend } from '../../support/backends';

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

interface ConvCase {
  name: string;
  x: Shape4;
  /** [kh, kw, co]: the filter's input channels are x's. */
  filter: [number, number, number];
  strides: number | [number, number];
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

const ODD_CASES: ConvCase[] = [
  { name: '5×7, 3→13, 3×3, stride 1, same, batch 1', x: [1, 5, 7, 3], filter: [3, 3, 13], strides: 1, pad: 'same' },
  { name: '5×7, 3→13, 3×3, stride 2, same, batch 3', x: [3, 5, 7, 3], filter: [3, 3, 13], strides: 2, pad: 'same' },
  { name: '7×5, 13→3, 1×1, stride 1, valid', x: [3, 7, 5, 13], filter: [1, 1, 3], strides: 1, pad: 'valid' },
  { name: '9×8, 3→4, 5×5, stride 2, valid', x: [2, 9, 8, 3], filter: [5, 5, 4], strides: 2, pad: 'valid' },
  { name: '6×7, 13→5, 3×3, stride 1, pad 1', x: [3, 6, 7, 13], filter: [3, 3, 5], strides: 1, pad: 1 },
  { name: '8×9, 4→3, 5×5, strides [2, 1], explicit padding', x: [1, 8, 9, 4], filter: [5, 5, 3], strides: [2, 1], pad: [[0, 0], [2, 1], [0, 3], [0, 0]] },
  { name: '7×7, 5→6, 3×3, stride 3, same', x: [2, 7, 7, 5], filter: [3, 3, 6], strides: 3, pad: 'same' },
  { name: '3×3 image, 2→3, 5×5 filter, same', x: [1, 3, 3, 2], filter: [5, 5, 3], strides: 1, pad: 'same' },
  { name: '6×6, 3→4, 3×3, stride 2, pad 1, dimRoundingMode ceil', x: [2, 6, 6, 3], filter: [3, 3, 4], strides: 2, pad: 1, dimRoundingMode: 'ceil' },
  { name: '5×7, 13→13, 5×5, stride 1, same, batch 3', x: [3, 5, 7, 13], filter: [5, 5, 13], strides: 1, pad: 'same' },
  { name: '21×19, 17→33, 3×3: several tiles and chunks, ragged ends', x: [3, 21, 19, 17], filter: [3, 3, 33], strides: 1, pad: 'same' },
  // Enough pixels for the input gradient's 64- and 32-pixel tiles.
  { name: '64×64, 2→3, 3×3, batch 8: many pixels, few channels', x: [8, 64, 64, 2], filter: [3, 3, 3], strides: 1, pad: 'same' },
  { name: '64×64, 1→2, 3×3, batch 4, valid', x: [4, 64, 64, 1], filter: [3, 3, 2], strides: 1, pad: 'valid' },
];

/**
 * The zoo's layers (Conv-2/4/6 on MNIST and CIFAR, ResNet-20) at their real sizes and channels.
 * Batches are cut to keep the file near a minute on SwiftShader (~150 M multiply-adds per second
 * here); the batch only lengthens the filter gradient's reduction, which the cases with several
 * chunks cover.
 */
const ZOO_CASES: ConvCase[] = [
  { name: 'Conv-2 MNIST 28×28 1→64, batch 4', x: [4, 28, 28, 1], filter: [3, 3, 64], strides: 1, pad: 'same' },
  { name: 'Conv-2 MNIST 28×28 64→64', x: [1, 28, 28, 64], filter: [3, 3, 64], strides: 1, pad: 'same' },
  { name: 'Conv CIFAR 32×32 3→64, batch 2', x: [2, 32, 32, 3], filter: [3, 3, 64], strides: 1, pad: 'same' },
  { name: 'Conv CIFAR 32×32 64→64', x: [1, 32, 32, 64], filter: [3, 3, 64], strides: 1, pad: 'same' },
  { name: 'Conv-4 16×16 64→128', x: [1, 16, 16, 64], filter: [3, 3, 128], strides: 1, pad: 'same' },
  { name: 'Conv-4 16×16 128→128', x: [1, 16, 16, 128], filter: [3, 3, 128], strides: 1, pad: 'same' },
  { name: 'Conv-6 8×8 128→256, batch 2', x: [2, 8, 8, 128], filter: [3, 3, 256], strides: 1, pad: 'same' },
  { name: 'Conv-6 8×8 256→256, batch 2', x: [2, 8, 8, 256], filter: [3, 3, 256], strides: 1, pad: 'same' },
  { name: 'ResNet-20 32×32 16→16, batch 4', x: [4, 32, 32, 16], filter: [3, 3, 16], strides: 1, pad: 'same' },
  { name: 'ResNet-20 16×16 32→32, batch 4', x: [4, 16, 16, 32], filter: [3, 3, 32], strides: 1, pad: 'same' },
  { name: 'ResNet-20 8×8 64→64, batch 8', x: [8, 8, 8, 64], filter: [3, 3, 64], strides: 1, pad: 'same' },
];

function normals(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal());
}

interface Prepared {
  xShape: Shape4;
  filterShape: Shape4;
  dyShape: Shape4;
  x: Float32Array;
  filter: Float32Array;
  dy: Float32Array;
  filterAttrs: tf.NamedAttrMap;
  inputAttrs: tf.NamedAttrMap;
}

function prepare(c: ConvCase): Prepared {
  const filterShape: Shape4 = [c.filter[0], c.filter[1], c.x[3], c.filter[2]];
  const info = tf.backend_util.computeConv2DInfo(c.x, filterShape, c.strides, 1, c.pad, c.dimRoundingMode);
  const rng = Rng.stream(2024, 'conv-backprop-test', c.name);
  const common = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', ...(c.dimRoundingMode ? { dimRoundingMode: c.dimRoundingMode } : {}) };
  return {
    xShape: c.x,
    filterShape,
    dyShape: info.outShape,
    x: normals(rng, tf.util.sizeFromShape(c.x)),
    filter: normals(rng, tf.util.sizeFromShape(filterShape)),
    dy: normals(rng, tf.util.sizeFromShape(info.outShape)),
    filterAttrs: { ...common, filterShape } as unknown as tf.NamedAttrMap,
    inputAttrs: { ...common, inputShape: c.x } as unknown as tf.NamedAttrMap,
  };
}

type Gradients = { dw: Float32Array; dx: Float32Array };

/**
 * Leaves a NaN-filled buffer of `shape`'s size in TF.js's WebGPU buffer pool, where the next output
 * of that size is taken from: an element a kernel forgets to write then reads back as NaN.
 */
async function poisonBufferPool(shape: number[]): Promise<object> {
  const poison = tf.fill(shape, Number.NaN);
  await poison.data(); // submitted: on dispose the buffer goes straight back to the pool
  const buffer = webGpuBufferOf(poison);
  poison.dispose();
  return buffer;
}

/** The GPU buffer behind a tensor (a TF.js WebGPU backend internal). */
function webGpuBufferOf(t: tf.Tensor): object {
  return (tf.backend() as unknown as { tensorMap: { get(dataId: object): { resource: object } } }).tensorMap.get(t.dataId).resource;
}

/** One gradient through the kernel registry of the current backend (on webgpu, into a poisoned buffer). */
async function runKernel(p: Prepared, name: 'Conv2DBackpropFilter' | 'Conv2DBackpropInput'): Promise<Float32Array> {
  if (tf.getBackend() === 'webgpu') await poisonBufferPool(name === 'Conv2DBackpropFilter' ? p.filterShape : p.xShape);
  const out = tf.tidy(() => {
    const dy = tf.tensor4d(p.dy, p.dyShape);
    return name === 'Conv2DBackpropFilter'
      ? (tf.engine().runKernel(name, { x: tf.tensor4d(p.x, p.xShape), dy }, p.filterAttrs) as tf.Tensor)
      : (tf.engine().runKernel(name, { dy, filter: tf.tensor4d(p.filter, p.filterShape) }, p.inputAttrs) as tf.Tensor);
  });
  return readAndDispose(out);
}

async function readAndDispose(t: tf.Tensor): Promise<Float32Array> {
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

async function onWebGpu(p: Prepared): Promise<Gradients> {
  await useBackend('webgpu');
  return { dw: await runKernel(p, 'Conv2DBackpropFilter'), dx: await runKernel(p, 'Conv2DBackpropInput') };
}

/**
 * The filter gradient by its definition, summed in float64 like TF.js's cpu kernel but without
 * that kernel's per-element TensorBuffer calls, which make it run at ~6 M multiply-adds per second
 * here: too slow for the zoo's 64- to 256-channel layers. Checked against the cpu kernel on every odd case.
 */
function filterGradientFloat64(p: Prepared): Float32Array {
  const c = tf.backend_util.computeConv2DInfo(p.xShape, p.filterShape, p.filterAttrs.strides as number | [number, number], 1, p.filterAttrs.pad as Pad, p.filterAttrs.dimRoundingMode as 'ceil' | undefined);
  const [ci, co] = [c.inChannels, c.outChannels];
  const sums = new Float64Array(c.filterHeight * c.filterWidth * ci * co);
  for (let n = 0; n < c.batchSize; n++) {
    for (let oy = 0; oy < c.outHeight; oy++) {
      for (let ox = 0; ox < c.outWidth; ox++) {
        const dyAt = ((n * c.outHeight + oy) * c.outWidth + ox) * co;
        for (let kh = 0; kh < c.filterHeight; kh++) {
          const iy = oy * c.strideHeight + kh - c.padInfo.top;
          if (iy < 0 || iy >= c.inHeight) continue;
          for (let kw = 0; kw < c.filterWidth; kw++) {
            const ix = ox * c.strideWidth + kw - c.padInfo.left;
            if (ix < 0 || ix >= c.inWidth) continue;
            const xAt = ((n * c.inHeight + iy) * c.inWidth + ix) * ci;
            for (let i = 0; i < ci; i++) {
              const xv = p.x[xAt + i]!;
              const row = ((kh * c.filterWidth + kw) * ci + i) * co;
              for (let o = 0; o < co; o++) sums[row + o]! += xv * p.dy[dyAt + o]!;
            }
          }
        }
      }
    }
  }
  return Float32Array.from(sums);
}

/** The reference: TF.js's cpu kernels (the filter gradient by its float64 definition where asked). */
async function reference(p: Prepared, filter: 'cpu kernel' | 'float64'): Promise<Gradients> {
  await useBackend('cpu');
  const dx = await runKernel(p, 'Conv2DBackpropInput');
  if (filter === 'float64') return { dw: filterGradientFloat64(p), dx };
  const dw = await runKernel(p, 'Conv2DBackpropFilter');
  // Vouches for the float64 definition used on the zoo's layers.
  expectMatches('float64 filter gradient vs the cpu kernel', filterGradientFloat64(p), dw, 1e-7);
  return { dw, dx };
}

/** ‖out − ref‖ / ‖ref‖ and max |out − ref| / max |ref| both under `tolerance`, and no NaN anywhere. */
function expectMatches(what: string, actual: Float32Array, expected: Float32Array, tolerance = 1e-5): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let diff2 = 0;
  let ref2 = 0;
  let maxDiff = 0;
  let maxRef = 0;
  let nans = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(a)) nans++;
    diff2 += (a - e) ** 2;
    ref2 += e * e;
    maxDiff = Math.max(maxDiff, Math.abs(a - e));
    maxRef = Math.max(maxRef, Math.abs(e));
  }
  expect(nans, `${what}: NaNs`).toBe(0);
  expect(maxRef, `${what}: the reference is all zeros`).toBeGreaterThan(0);
  expect(Math.sqrt(diff2 / ref2), `${what}: relative norm error`).toBeLessThan(tolerance);
  expect(maxDiff / maxRef, `${what}: max error relative to max |ref|`).toBeLessThan(tolerance);
}

function expectIdentical(what: string, a: Float32Array, b: Float32Array): void {
  const differing = a.findIndex((v, i) => !Object.is(v, b[i]));
  expect(differing, `${what}: runs differ first at element ${differing}`).toBe(-1);
}

async function compareWithReference(c: ConvCase, filterReference: 'cpu kernel' | 'float64'): Promise<void> {
  const p = prepare(c);
  const ref = await reference(p, filterReference);
  const first = await onWebGpu(p);
  const second = await onWebGpu(p);
  expectMatches(`${c.name}, filter gradient`, first.dw, ref.dw);
  expectMatches(`${c.name}, input gradient`, first.dx, ref.dx);
  expectIdentical(`${c.name}, filter gradient`, first.dw, second.dw);
  expectIdentical(`${c.name}, input gradient`, first.dx, second.dx);
}

describe('conv gradient kernels on webgpu', () => {
  beforeAll(async () => {
    await useBackend('webgpu');
  });

  it('replace the stock kernels in the registry, and registering again changes nothing', async () => {
    await useBackend('webgpu');
    const stock = stockConvBackpropKernels();
    for (const name of CONV_BACKPROP_KERNELS) {
      expect(isOurConvBackpropKernel(name), name).toBe(true);
      expect(typeof stock[name], `stock ${name} kept`).toBe('function');
      expect(stock[name]).not.toBe(tf.getKernel(name, 'webgpu')!.kernelFunc);
    }
    expect(() => registerConvBackpropKernels()).not.toThrow();
    expect(() => registerConvBackpropKernels()).not.toThrow();
    // Switching away and back (TF.js reruns setup then) keeps ours and the same stock kernels.
    await useBackend('cpu');
    await useBackend('webgpu');
    for (const name of CONV_BACKPROP_KERNELS) {
      expect(isOurConvBackpropKernel(name), name).toBe(true);
      expect(stockConvBackpropKernels()[name]).toBe(stock[name]);
    }
  });

  it.each(ODD_CASES.map((c) => [c.name, c] as const))('match the cpu reference: %s', async (_name, c) => {
    await compareWithReference(c, 'cpu kernel');
  });

  it.each(ZOO_CASES.map((c) => [c.name, c] as const))('match the cpu reference on the zoo layer %s', async (_name, c) => {
    await compareWithReference(c, 'float64');
  });

  it('give tf.grad of tf.conv2d and tf.fused.conv2d the cpu gradients', async () => {
    const rng = Rng.stream(7, 'conv-backprop-test', 'grad');
    const xs = normals(rng, 2 * 9 * 8 * 3);
    const ws = normals(rng, 3 * 3 * 3 * 5);
    const bias = normals(rng, 5);
    const weights = normals(rng, 2 * 5 * 4 * 5);
    const gradients = () =>
      tf.tidy(() => {
        const x = tf.tensor4d(xs, [2, 9, 8, 3]);
        const w = tf.tensor4d(ws, [3, 3, 3, 5]);
        const plain = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'), tf.tensor4d(weights, [2, 5, 4, 5]))))([x, w]);
        const fused = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.fused.conv2d({ x: a as tf.Tensor4D, filter: b as tf.Tensor4D, strides: 2, pad: 'same', bias: tf.tensor1d(bias), activation: 'relu' }), tf.tensor4d(weights, [2, 5, 4, 5]))),
        )([x, w]);
        return [...plain, ...fused];
      });
    await useBackend('cpu');
    const ref = await Promise.all(gradients().map(readAndDispose));
    await useBackend('webgpu');
    const ours = await Promise.all(gradients().map(readAndDispose));
    ['conv2d dx', 'conv2d dw', 'fused dx', 'fused dw'].forEach((what, i) => expectMatches(what, ours[i]!, ref[i]!));
  });

  it('write their outputs into the poisoned buffers the other tests leave in the pool', async () => {
    await useBackend('webgpu');
    const p = prepare(ODD_CASES[0]!);
    const x = tf.tensor4d(p.x, p.xShape);
    const dy = tf.tensor4d(p.dy, p.dyShape);
    const poisoned = await poisonBufferPool(p.filterShape);
    const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, p.filterAttrs) as tf.Tensor;
    // Otherwise the NaN checks above prove nothing about unwritten elements.
    expect(webGpuBufferOf(dw)).toBe(poisoned);
    tf.dispose([x, dy, dw]);
  });

  it('leak no tensors and no backend buffers', async () => {
    const p = prepare(ODD_CASES[10]!);
    await onWebGpu(p); // warm-up: pipelines, buffer pool
    const backend = tf.backend();
    const tensors = tf.memory().numTensors;
    const dataIds = backend.numDataIds();
    await onWebGpu(p);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(dataIds);
  });

  it('refuse NCHW, dilations above 1 and mismatched shapes with a clear error', async () => {
    await useBackend('webgpu');
    const p = prepare(ODD_CASES[0]!);
    const run = (name: string, attrs: Record<string, unknown>) => () =>
      tf.tidy(() => {
        const x = tf.tensor4d(p.x, p.xShape);
        const dy = tf.tensor4d(p.dy, p.dyShape);
        const filter = tf.tensor4d(p.filter, p.filterShape);
        const inputs: tf.NamedTensorMap = name === 'Conv2DBackpropFilter' ? { x, dy } : { dy, filter };
        const base = name === 'Conv2DBackpropFilter' ? p.filterAttrs : p.inputAttrs;
        tf.engine().runKernel(name, inputs, { ...base, ...attrs } as unknown as tf.NamedAttrMap);
      });
    for (const name of CONV_BACKPROP_KERNELS) {
      expect(run(name, { dataFormat: 'NCHW' }), name).toThrow(/NHWC/);
      expect(run(name, { dilations: 2 }), name).toThrow(/dilations 1/);
      expect(run(name, { dilations: [1, 2] }), name).toThrow(/dilations 1/);
      expect(run(name, { strides: 2 }), name).toThrow(/dy has shape/);
    }
    expect(run('Conv2DBackpropFilter', { filterShape: [3, 3, 4, 13] })).toThrow(/filter over its channels/);
    expect(run('Conv2DBackpropInput', { inputShape: [1, 5, 7, 4] })).toThrow(/filter over its channels/);
  });
});
