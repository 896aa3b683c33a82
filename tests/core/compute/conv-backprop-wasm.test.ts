import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { selectBackend } from '../../../core/compute/backend';
import { CONV2D_BACKPROP_FILTER, CONV2D_BACKPROP_INPUT } from '../../../core/compute/kernels/conv-backprop-wasm';
import { hasKernel } from '../../../core/compute/kernels/custom-kernel';
import { Rng } from '../../../core/compute/rng';
import { variableFrom } from '../../../core/models/network';
import { useBackend } from '../../support/backends';

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;

interface Conv {
  x: Shape4;
  filter: Shape4;
  strides: number | [number, number];
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function draw(seed: number, label: string, size: number): Float32Array {
  const rng = Rng.stream(seed, 'conv-backprop-wasm-test', label);
  return Float32Array.from({ length: size }, () => rng.normal());
}

function outShape(c: Conv): Shape4 {
  return tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad, c.dimRoundingMode).outShape as Shape4;
}

/** Random x and dy for a convolution, the same on every backend. */
function inputsFor(c: Conv, seed: number) {
  const dy = outShape(c);
  return { x: draw(seed, 'x', tf.util.sizeFromShape(c.x)), dy: draw(seed, 'dy', tf.util.sizeFromShape(dy)), dyShape: dy };
}

/** dW through TF.js's kernel registry on the current backend. */
function filterGrad(c: Conv, x: Float32Array, dy: Float32Array): Float32Array {
  return tf.tidy(() => {
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: c.dimRoundingMode, filterShape: c.filter };
    const dw = tf.engine().runKernel(CONV2D_BACKPROP_FILTER, { x: tf.tensor4d(x, c.x), dy: tf.tensor4d(dy, outShape(c)) }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    expect(dw.shape).toEqual(c.filter);
    return dw.dataSync() as Float32Array;
  });
}

/**
 * dW from the cpu backend's forward convolution, for shapes where its own Conv2DBackpropFilter
 * (a scalar loop through TensorBuffer.get, about 3 M multiply-adds/s) would take minutes: the same
 * sum with the batch as channels, X as [ci, h, w, n] convolved with dY as a [oh, ow, n, co] filter.
 * Stride 1 only; checked against the cpu kernel below.
 */
function filterGradByForwardConv(c: Conv, x: Float32Array, dy: Float32Array): Float32Array {
  const info = tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad, c.dimRoundingMode);
  const p = info.padInfo;
  return tf.tidy(() => {
    const xT = tf.transpose(tf.tensor4d(x, c.x), [3, 1, 2, 0]);
    const dyT = tf.transpose(tf.tensor4d(dy, info.outShape as Shape4), [1, 2, 0, 3]);
    const dwT = tf.conv2d(xT as tf.Tensor4D, dyT as tf.Tensor4D, 1, [[0, 0], [p.top, p.bottom], [p.left, p.right], [0, 0]]);
    return tf.transpose(dwT, [1, 2, 0, 3]).dataSync() as Float32Array;
  });
}

async function onCpu<T>(run: () => T): Promise<T> {
  await tf.setBackend('cpu');
  return run();
}

async function onWasm<T>(run: () => T): Promise<T> {
  await useBackend('wasm');
  return run();
}

/** ‖out − ref‖ / ‖ref‖ and max |out − ref| / max |ref|, both under 1e-5. */
function expectClose(out: Float32Array, ref: Float32Array) {
  expect(out.length).toBe(ref.length);
  let diff2 = 0;
  let ref2 = 0;
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i]! - ref[i]!;
    diff2 += d * d;
    ref2 += ref[i]! * ref[i]!;
    maxDiff = Math.max(maxDiff, Math.abs(d));
    maxRef = Math.max(maxRef, Math.abs(ref[i]!));
  }
  expect(ref2).toBeGreaterThan(0);
  expect(Math.sqrt(diff2 / ref2)).toBeLessThan(1e-5);
  expect(maxDiff / maxRef).toBeLessThan(1e-5);
}

/** Runs `run` twice on wasm (the first warms the backend's caches): the second leaves as many tensors, buffers and bytes as it found. */
async function expectNoLeaks(run: () => void) {
  await useBackend('wasm');
  run();
  const before = tf.memory();
  run();
  const after = tf.memory();
  expect(after.numTensors).toBe(before.numTensors);
  expect(after.numDataBuffers).toBe(before.numDataBuffers);
  expect(after.numBytes).toBe(before.numBytes);
}

const describeConv = (c: Conv) =>
  `x [${c.x.join('×')}], filter [${c.filter.join('×')}], strides ${JSON.stringify(c.strides)}, pad ${JSON.stringify(c.pad)}${c.dimRoundingMode ? ` (${c.dimRoundingMode})` : ''}`;

// Odd sizes: 5×7 images, channel counts that fill neither a 4-row nor an 8-column tile, batch 1
// and 3, every padding kind TF.js has.
const PADS: Pad[] = [
  'same',
  'valid',
  1,
  [
    [0, 0],
    [2, 1],
    [0, 2],
    [0, 0],
  ],
];
const ODD_CASES: Conv[] = [1, 3].flatMap((batch) =>
  [
    [3, 13],
    [13, 3],
  ].flatMap(([ci, co]) =>
    [1, 3, 5].flatMap((k) => [1, 2].flatMap((s) => PADS.map((pad): Conv => ({ x: [batch, 5, 7, ci!], filter: [k, k, ci!, co!], strides: s, pad })))),
  ),
);
const OTHER_CASES: Conv[] = [
  // Aligned channels: dW written in place, dY read in place.
  { x: [2, 6, 5, 4], filter: [3, 3, 4, 16], strides: 1, pad: 'same' },
  { x: [3, 9, 8, 8], filter: [3, 3, 8, 8], strides: 2, pad: 'valid' },
  // Unequal strides, non-square filter, rounding of explicit padding.
  { x: [2, 9, 11, 5], filter: [3, 2, 5, 6], strides: [2, 3], pad: 'same' },
  { x: [2, 6, 7, 3], filter: [3, 3, 3, 9], strides: 2, pad: 0, dimRoundingMode: 'ceil' },
  { x: [2, 6, 7, 3], filter: [3, 3, 3, 9], strides: 2, pad: 0, dimRoundingMode: 'round' },
  { x: [2, 6, 7, 3], filter: [3, 3, 3, 9], strides: 2, pad: 0, dimRoundingMode: 'floor' },
  // Enough rows for several blocks of output positions, crossing from one image into the next.
  { x: [3, 27, 13, 5], filter: [3, 3, 5, 12], strides: 1, pad: 'same' },
];

/** The zoo's conv layers (Conv-2/4/6 on MNIST and CIFAR), batch 2, or 5 where one block of positions spans several images. */
const ZOO_CASES: Conv[] = (
  [
    [28, 1, 64, 2],
    [28, 64, 64, 2],
    [14, 64, 128, 2],
    [14, 128, 128, 2],
    [7, 128, 256, 5],
    [7, 256, 256, 5],
    [32, 3, 64, 2],
    [32, 64, 64, 2],
    [16, 64, 128, 2],
    [16, 128, 128, 2],
    [8, 128, 256, 5],
    [8, 256, 256, 5],
  ] as const
).map(([size, ci, co, batch]) => ({ x: [batch, size, size, ci], filter: [3, 3, ci, co], strides: 1, pad: 'same' }));

describe('Conv2DBackpropFilter on wasm', () => {
  it('is registered, so selectBackend takes wasm for conv training', async () => {
    const info = await selectBackend('wasm', { trainsConv: true });
    expect(info.provider).toBe('wasm');
    expect(info.notes.join('; ')).not.toContain('cannot train conv');
    expect(hasKernel(CONV2D_BACKPROP_FILTER)).toBe(true);
    expect(hasKernel('Conv2DBackpropInput')).toBe(true);
  });

  it.each([...ODD_CASES, ...OTHER_CASES].map((c, i) => [describeConv(c), i, c] as const))('matches the cpu kernel: %s', async (_name, i, c) => {
    const { x, dy } = inputsFor(c, i);
    const ref = await onCpu(() => filterGrad(c, x, dy));
    expectClose(await onWasm(() => filterGrad(c, x, dy)), ref);
  });

  it('the forward-conv reference agrees with the cpu kernel', async () => {
    const c: Conv = { x: [3, 7, 6, 5], filter: [3, 3, 5, 7], strides: 1, pad: 'same' };
    const { x, dy } = inputsFor(c, 99);
    const [kernel, viaForward] = await onCpu(() => [filterGrad(c, x, dy), filterGradByForwardConv(c, x, dy)]);
    expectClose(viaForward!, kernel!);
  });

  it.each(ZOO_CASES.map((c, i) => [describeConv(c), i, c] as const))('matches the cpu backend on the zoo shape %s', async (_name, i, c) => {
    const { x, dy } = inputsFor(c, 1000 + i);
    const ref = await onCpu(() => filterGradByForwardConv(c, x, dy));
    expectClose(await onWasm(() => filterGrad(c, x, dy)), ref);
  });

  it('gives zeros for an empty batch', async () => {
    const c: Conv = { x: [0, 5, 7, 3], filter: [3, 3, 3, 5], strides: 1, pad: 'same' };
    const out = await onWasm(() => filterGrad(c, new Float32Array(0), new Float32Array(0)));
    expect(Array.from(out)).toEqual(new Array(3 * 3 * 3 * 5).fill(0));
  });

  it('leaks no tensors and no scratch buffers', async () => {
    const cases = [OTHER_CASES[0]!, ODD_CASES[5]!].map((c, i) => ({ c, ...inputsFor(c, i) }));
    await expectNoLeaks(() => cases.forEach(({ c, x, dy }) => filterGrad(c, x, dy)));
  });

  it('refuses NCHW and dilations', async () => {
    await useBackend('wasm');
    const x = tf.zeros([1, 5, 5, 2]);
    const dy = tf.zeros([1, 5, 5, 3]);
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 2, 3] };
    const run = (extra: object) => () => tf.engine().runKernel(CONV2D_BACKPROP_FILTER, { x, dy }, { ...attrs, ...extra } as unknown as tf.NamedAttrMap);
    expect(run({ dataFormat: 'NCHW' })).toThrow(/NHWC/);
    expect(run({ dilations: 2 })).toThrow(/dilations/);
    tf.dispose([x, dy]);
  });
});

/** dX through TF.js's kernel registry on the current backend. */
function inputGrad(c: Conv, dy: Float32Array, filter: Float32Array): Float32Array {
  return tf.tidy(() => {
    const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: c.dimRoundingMode, inputShape: c.x };
    const dx = tf.engine().runKernel(CONV2D_BACKPROP_INPUT, { dy: tf.tensor4d(dy, outShape(c)), filter: tf.tensor4d(filter, c.filter) }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
    expect(dx.shape).toEqual(c.x);
    return dx.dataSync() as Float32Array;
  });
}

/**
 * dX from the cpu backend's forward convolution, for the zoo's shapes (stride 1, 'same', odd
 * kernels), where its own Conv2DBackpropInput is a scalar loop too slow to wait for: dY convolved
 * with W flipped in space and transposed in channels. Checked against the cpu kernel below.
 */
function inputGradByForwardConv(c: Conv, dy: Float32Array, filter: Float32Array): Float32Array {
  return tf.tidy(() => {
    const flipped = tf.reverse(tf.transpose(tf.tensor4d(filter, c.filter), [0, 1, 3, 2]), [0, 1]);
    return tf.conv2d(tf.tensor4d(dy, outShape(c)), flipped as tf.Tensor4D, 1, 'same').dataSync() as Float32Array;
  });
}

describe('Conv2DBackpropInput on wasm (ours, replacing the stock scalar loop)', () => {
  const filterOf = (c: Conv, seed: number) => draw(seed, 'filter', tf.util.sizeFromShape(c.filter));

  it('is the registered kernel once the backend is set', async () => {
    await useBackend('wasm');
    expect(tf.getKernel(CONV2D_BACKPROP_INPUT, 'wasm')?.kernelFunc.name).toBe('conv2DBackpropInputWasm');
  });

  it.each([...ODD_CASES, ...OTHER_CASES].map((c, i) => [describeConv(c), i, c] as const))('matches the cpu kernel: %s', async (_name, i, c) => {
    const { dy } = inputsFor(c, i);
    const filter = filterOf(c, i);
    const ref = await onCpu(() => inputGrad(c, dy, filter));
    expectClose(await onWasm(() => inputGrad(c, dy, filter)), ref);
  });

  it('the forward-conv reference agrees with the cpu kernel', async () => {
    const c: Conv = { x: [3, 7, 6, 5], filter: [3, 3, 5, 7], strides: 1, pad: 'same' };
    const { dy } = inputsFor(c, 98);
    const filter = filterOf(c, 98);
    const [kernel, viaForward] = await onCpu(() => [inputGrad(c, dy, filter), inputGradByForwardConv(c, dy, filter)]);
    expectClose(viaForward!, kernel!);
  });

  it.each(ZOO_CASES.map((c, i) => [describeConv(c), i, c] as const))('matches the cpu backend on the zoo shape %s', async (_name, i, c) => {
    const { dy } = inputsFor(c, 2000 + i);
    const filter = filterOf(c, 2000 + i);
    const ref = await onCpu(() => inputGradByForwardConv(c, dy, filter));
    expectClose(await onWasm(() => inputGrad(c, dy, filter)), ref);
  });

  it('gives an empty dX for an empty batch, and leaks no tensors or scratch', async () => {
    const empty: Conv = { x: [0, 5, 7, 3], filter: [3, 3, 3, 5], strides: 1, pad: 'same' };
    expect(await onWasm(() => inputGrad(empty, new Float32Array(0), filterOf(empty, 1)))).toHaveLength(0);
    const cases = [OTHER_CASES[0]!, ODD_CASES[5]!].map((c, i) => ({ c, dy: inputsFor(c, i).dy, filter: filterOf(c, i) }));
    await expectNoLeaks(() => cases.forEach(({ c, dy, filter }) => inputGrad(c, dy, filter)));
  });

  it('refuses NCHW and dilations', async () => {
    await useBackend('wasm');
    const dy = tf.zeros([1, 5, 5, 3]);
    const filter = tf.zeros([3, 3, 2, 3]);
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [1, 5, 5, 2] };
    const run = (extra: object) => () => tf.engine().runKernel(CONV2D_BACKPROP_INPUT, { dy, filter }, { ...attrs, ...extra } as unknown as tf.NamedAttrMap);
    expect(run({ dataFormat: 'NCHW' })).toThrow(/NHWC/);
    expect(run({ dilations: 2 })).toThrow(/dilations/);
    tf.dispose([dy, filter]);
  });
});

/**
 * A tiny conv net (conv 3×3 + bias → relu → maxpool 2 → flatten → dense), trained a few SGD steps
 * with tf.variableGrads: the training step every zoo model takes, on whichever backend is current.
 */
function trainTinyConvNet(steps: number): number[] {
  const batch = 6;
  const rng = Rng.stream(7, 'conv-backprop-wasm-e2e');
  const values = (n: number, scale: number) => Float32Array.from({ length: n }, () => rng.normal() * scale);
  const images = tf.tensor4d(values(batch * 10 * 10 * 3, 1), [batch, 10, 10, 3]);
  const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 0], 'int32'), 5));
  // tf.variable keeps its initial tensor as a separate handle: variableFrom releases it.
  const kernel = variableFrom(tf.tensor4d(values(3 * 3 * 3 * 8, 0.2), [3, 3, 3, 8]), true);
  const bias = variableFrom(tf.tensor1d(values(8, 0.1)), true);
  const dense = variableFrom(tf.tensor2d(values(5 * 5 * 8 * 5, 0.05), [5 * 5 * 8, 5]), true);
  const denseBias = variableFrom(tf.zeros([5]), true);
  const params = [kernel, bias, dense, denseBias];
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const { value, grads } = tf.variableGrads(() => {
      const h = tf.fused.conv2d({ x: images, filter: kernel as tf.Tensor4D, strides: 1, pad: 'same', bias, activation: 'relu' });
      const pooled = tf.maxPool(h, 2, 2, 'valid');
      const logits = tf.add(tf.matMul(tf.reshape(pooled, [batch, -1]), dense as tf.Tensor2D), denseBias);
      return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
    }, params);
    losses.push(value.dataSync()[0]!);
    tf.tidy(() => {
      for (const p of params) p.assign(tf.sub(p, tf.mul(0.05, grads[p.name]!)));
    });
    tf.dispose([value, ...Object.values(grads)]);
  }
  tf.dispose([images, labels, ...params]);
  return losses;
}

describe('conv net training on wasm', () => {
  it('gives the losses the cpu backend gives', async () => {
    const steps = 5;
    const ref = await onCpu(() => trainTinyConvNet(steps));
    const before = await onWasm(() => tf.memory().numTensors);
    const losses = await onWasm(() => trainTinyConvNet(steps));
    expect(tf.memory().numTensors).toBe(before);
    expect(losses[steps - 1]!).toBeLessThan(losses[0]!);
    losses.forEach((loss, i) => expect(Math.abs(loss - ref[i]!) / Math.abs(ref[i]!), `step ${i}: ${loss} vs ${ref[i]}`).toBeLessThan(1e-4));
  });
});
