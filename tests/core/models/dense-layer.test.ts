import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { selectBackend } from '../../../core/compute/backend';
import { Rng } from '../../../core/compute/rng';
import { dense } from '../../../core/models/dense-layer';

function randomTensor(shape: number[], stream: string): tf.Tensor {
  const rng = Rng.stream(3, stream);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => rng.normal()), shape);
}

describe.each(['wasm', 'cpu'] as const)('dense layer with its hand-written gradient (%s)', (backend) => {
  it.each(['relu', 'linear'] as const)('matches TF.js autodiff of matMul + bias + %s', async (activation) => {
    await selectBackend(backend);
    const x = randomTensor([7, 13], 'x') as tf.Tensor2D;
    const w = randomTensor([13, 5], 'w') as tf.Tensor2D;
    const b = randomTensor([5], 'b') as tf.Tensor1D;
    const dy = randomTensor([7, 5], 'dy');
    const reference = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => {
      const z = tf.add(tf.matMul(xi as tf.Tensor2D, wi as tf.Tensor2D), bi);
      return tf.sum(tf.mul(activation === 'relu' ? tf.relu(z) : z, dy));
    };
    const ours = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(dense(xi as tf.Tensor2D, wi as tf.Tensor2D, bi as tf.Tensor1D, activation), dy));
    const expected = tf.grads(reference)([x, w, b]);
    const actual = tf.grads(ours)([x, w, b]);
    expect(Math.abs((await reference(x, w, b).data())[0]! - (await ours(x, w, b).data())[0]!)).toBeLessThan(1e-4);
    for (let i = 0; i < 3; i++) {
      const e = await expected[i]!.data();
      const a = await actual[i]!.data();
      expect(a.length).toBe(e.length);
      for (let j = 0; j < e.length; j++) expect(a[j]!).toBeCloseTo(e[j]!, 4);
    }
  });
});
