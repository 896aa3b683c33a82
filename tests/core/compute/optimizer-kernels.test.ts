import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../core/compute/rng';
import { hasKernel } from '../../../core/compute/kernels/custom-kernel';
import { ADAM_KERNEL, SGD_KERNEL, type AdamStep, type SgdStep, adamUpdate, sgdUpdate } from '../../../core/compute/kernels/optimizer-kernels';
import { KERNEL_BACKENDS, useBackend } from '../../support/backends';

/** Random values with exact zeros where the mask prunes, as in a masked network. */
function draw(seed: number, n: number) {
  const rng = Rng.stream(seed, 'optimizer-kernel-test');
  const mask = Float32Array.from({ length: n }, () => (rng.next() < 0.6 ? 1 : 0));
  const values = (scale: number, masked: boolean) => Float32Array.from({ length: n }, (_, i) => (masked && !mask[i] ? 0 : rng.normal() * scale));
  return { mask, w: values(0.1, true), g: values(1, false), m: values(0.01, true), v: Float32Array.from(values(0.01, true), (x) => x * x), buffer: values(0.1, true) };
}

/** The update written with stock TF.js ops on the cpu backend: the reference every kernel must match. */
async function reference<T>(run: () => T): Promise<T> {
  await tf.setBackend('cpu');
  return run();
}

async function read(t: tf.Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}

function expectClose(actual: Float32Array, expected: Float32Array, mask?: Float32Array) {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    if (mask && !mask[i]) expect(Object.is(actual[i], 0), `pruned entry ${i} is ${actual[i]}`).toBe(true);
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / Math.max(1e-6, Math.abs(expected[i]!)));
  }
  expect(worst).toBeLessThan(1e-5);
}

const sizes = [1, 7, 64, 1001, 70_003];
const adamSteps: AdamStep[] = [
  { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, stepSize: 1.2e-3 / (1 - 0.9), invSqrtBc2: 1 / Math.sqrt(1 - 0.999) },
  { beta1: 0.8, beta2: 0.99, epsilon: 1e-6, weightDecay: 1e-3, stepSize: 0.01, invSqrtBc2: 3 },
];
const sgdSteps: SgdStep[] = [
  { learningRate: 0.1, momentum: 0, weightDecay: 0 },
  { learningRate: 0.05, momentum: 0.9, weightDecay: 5e-4 },
];

/** Runs the fused kernel on `backend` and the stock-op composite on cpu, from the same values. */
async function compareAdam(backend: (typeof KERNEL_BACKENDS)[number], n: number, step: AdamStep, masked: boolean) {
  const d = draw(n, n);
  const run = () => {
    const slot = { w: tf.variable(tf.tensor1d(d.w)), m: tf.variable(tf.tensor1d(d.m)), v: tf.variable(tf.tensor1d(d.v)), mask: masked ? tf.tensor1d(d.mask) : undefined };
    const g = tf.tensor1d(d.g);
    adamUpdate(slot, g, step);
    return slot;
  };
  const ref = await reference(() => {
    const slot = { w: tf.variable(tf.tensor1d(d.w)), m: tf.variable(tf.tensor1d(d.m)), v: tf.variable(tf.tensor1d(d.v)), mask: masked ? tf.tensor1d(d.mask) : undefined };
    const a = { ...step, oneMinusBeta1: 1 - step.beta1, oneMinusBeta2: 1 - step.beta2 };
    return tf.tidy(() => {
      let g = tf.add(tf.tensor1d(d.g), tf.mul(a.weightDecay, slot.w));
      if (slot.mask) g = tf.mul(g, slot.mask);
      const m = tf.add(tf.mul(a.beta1, slot.m), tf.mul(a.oneMinusBeta1, g));
      const v = tf.add(tf.mul(a.beta2, slot.v), tf.mul(a.oneMinusBeta2, tf.square(g)));
      let w = tf.sub(slot.w, tf.mul(a.stepSize, tf.div(m, tf.add(tf.mul(tf.sqrt(v), a.invSqrtBc2), a.epsilon))));
      if (slot.mask) w = tf.mul(w, slot.mask);
      return { w: w.dataSync() as Float32Array, m: m.dataSync() as Float32Array, v: v.dataSync() as Float32Array };
    });
  });
  await useBackend(backend);
  const slot = run();
  expectClose(await read(slot.w), ref.w, masked ? d.mask : undefined);
  expectClose(await read(slot.m), ref.m, masked ? d.mask : undefined);
  expectClose(await read(slot.v), ref.v, masked ? d.mask : undefined);
  tf.dispose([slot.w, slot.m, slot.v, ...(slot.mask ? [slot.mask] : [])]);
}

describe.each(KERNEL_BACKENDS)('fused optimiser kernels on %s', (backend) => {
  it('are registered for this backend (no silent composite fallback)', async () => {
    await useBackend(backend);
    expect(hasKernel(ADAM_KERNEL)).toBe(true);
    expect(hasKernel(SGD_KERNEL)).toBe(true);
  });

  it.each(sizes.flatMap((n) => adamSteps.map((step, s) => [n, s, step] as const)))('Adam matches the stock-op update (n = %i, setting %i)', async (n, _s, step) => {
    await compareAdam(backend, n, step, true);
    await compareAdam(backend, n, step, false);
  });

  it.each(sizes.flatMap((n) => sgdSteps.map((step, s) => [n, s, step] as const)))('SGD matches the stock-op update (n = %i, setting %i)', async (n, _s, step) => {
    const d = draw(n + 1, n);
    const ref = await reference(() =>
      tf.tidy(() => {
        const w = tf.tensor1d(d.w);
        const mask = tf.tensor1d(d.mask);
        let g = tf.mul(tf.add(tf.tensor1d(d.g), tf.mul(step.weightDecay, w)), mask);
        let buffer: tf.Tensor | undefined;
        if (step.momentum > 0) g = buffer = tf.add(tf.mul(step.momentum, tf.tensor1d(d.buffer)), g);
        return { w: tf.mul(tf.sub(w, tf.mul(step.learningRate, g)), mask).dataSync() as Float32Array, buffer: buffer?.dataSync() as Float32Array | undefined };
      }),
    );
    await useBackend(backend);
    const slot = { w: tf.variable(tf.tensor1d(d.w)), buffer: step.momentum > 0 ? tf.variable(tf.tensor1d(d.buffer)) : undefined, mask: tf.tensor1d(d.mask) };
    sgdUpdate(slot, tf.tensor1d(d.g), step);
    expectClose(await read(slot.w), ref.w, d.mask);
    if (slot.buffer) expectClose(await read(slot.buffer), ref.buffer!, d.mask);
  });

  it('keeps updating in place across steps and reads back fresh values each time', async () => {
    await useBackend(backend);
    const d = draw(3, 300);
    const slot = { w: tf.variable(tf.tensor1d(d.w)), m: tf.variable(tf.zeros([300])), v: tf.variable(tf.zeros([300])), mask: tf.tensor1d(d.mask) };
    const g = tf.tensor1d(d.g);
    const seen: number[] = [];
    for (let t = 1; t <= 3; t++) {
      adamUpdate(slot, g, { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, stepSize: 0.01 / (1 - 0.9 ** t), invSqrtBc2: 1 / Math.sqrt(1 - 0.999 ** t) });
      seen.push((await read(slot.w))[d.mask.indexOf(1)]!);
    }
    // A stale CPU copy after the first read would repeat the same value.
    expect(new Set(seen).size).toBe(3);
    tf.dispose([slot.w, slot.m, slot.v, slot.mask, g]);
  });
});
