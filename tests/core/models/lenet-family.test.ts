// The fully connected LeNets of any widths (`lenet-<w1>-<w2>…`, open_lth's mnist_lenet_<plan>), and
// state dicts of such nets matched to them.
import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { Rng } from '../../../core/compute/rng';
import { modelInput, predictLogits } from '../../../core/formats/predict';
import { matchZooArchitecture, toPytorchTensors } from '../../../core/formats/zoo-match';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { useBackend } from '../../support/backends';

describe('lenet-<widths>', () => {
  it('builds the LeNet of the given hidden widths, and lenet-300-100 is the zoo one', () => {
    const specs = paramSpecs(architecture('lenet-8-4'), [28, 28, 1], 10);
    expect(specs.map((s) => [s.name, s.shape, s.role])).toEqual([
      ['fc1.kernel', [784, 8], 'fc'], ['fc1.bias', [8], 'fc'],
      ['fc2.kernel', [8, 4], 'fc'], ['fc2.bias', [4], 'fc'],
      ['fc3.kernel', [4, 10], 'output'], ['fc3.bias', [10], 'output'],
    ]);
    expect(architecture('lenet-300-100').title).toBe('LeNet-300-100 (fully connected 300-100-10)');
    expect(paramSpecs(architecture('lenet-5'), [4, 4, 3], 2).map((s) => s.shape)).toEqual([[48, 5], [5], [5, 2], [2]]);
  });

  it('gives the logits of the PyTorch net it was matched from, on a flattened colour image', async () => {
    await useBackend('cpu');
    const rng = Rng.stream(5, 'lenet-family');
    const tensor = (name: string, shape: number[]) => ({ name, shape, dtype: 'float32' as const, values: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()) });
    const [w1, b1, w2, b2] = [tensor('0.weight', [5, 12]), tensor('0.bias', [5]), tensor('2.weight', [4, 5]), tensor('2.bias', [4])];
    const match = matchZooArchitecture([w1, b1, w2, b2], 'pytorch')!;
    const x = tensor('x', [3, 12]); // [n, c·h·w] as PyTorch flattens a 3×2×2 image
    // PyTorch's forward: relu(x·W1ᵀ + b1)·W2ᵀ + b2.
    const expected = Array.from({ length: 3 }, (_, n) => {
      const h = Array.from({ length: 5 }, (_, o) => Math.max(0, b1.values[o]! + Array.from({ length: 12 }, (_, i) => w1.values[o * 12 + i]! * x.values[n * 12 + i]!).reduce((a, b) => a + b)));
      return Array.from({ length: 4 }, (_, o) => b2.values[o]! + h.reduce((sum, v, i) => sum + w2.values[o * 5 + i]! * v, 0));
    });
    const logits = predictLogits(match, modelInput(x, match.inputShape, 'pytorch', 'x'));
    for (const [n, row] of logits.entries()) for (const [o, v] of row.entries()) expect(v).toBeCloseTo(expected[n]![o]!, 4);
    // And back out in PyTorch's layout, as export-mask writes it.
    const back = toPytorchTensors(match.specs, match.weights, { inputChannels: match.inputShape[2], sourceNames: match.sourceNames });
    expect(back.find((t) => t.name === '0.weight')!.values).toEqual(w1.values);
  });

  it('refuses ids outside the family', () => {
    for (const id of ['lenet', 'lenet-', 'lenet-0', 'lenet-08', 'lenet-8-', 'lenet-99999', 'lenet-1-1-1-1-1-1-1-1-1', 'lenet-8x4']) {
      expect(() => architecture(id), id).toThrow(InvalidRequestError);
    }
  });

  it('matches a PyTorch MLP of other widths by order, converting [out, in] weights', () => {
    const tensor = (name: string, shape: number[]) => {
      const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i);
      return { name, shape, dtype: 'float32' as const, values };
    };
    const tensors = [tensor('net.0.weight', [6, 12]), tensor('net.0.bias', [6]), tensor('net.2.weight', [3, 6]), tensor('net.2.bias', [3])];
    const match = matchZooArchitecture(tensors, 'pytorch')!;
    expect(match.arch.id).toBe('lenet-6');
    expect(match.inputShape).toEqual([2, 2, 3]);
    expect(match.numClasses).toBe(3);
    expect(match.sourceNames['fc1.kernel']).toBe('net.0.weight');
    // TF.js [in, out] over the image's (h, w, c) where PyTorch flattens (c, h, w): TF.js row 5 is
    // pixel 1, channel 2, PyTorch's input 2·4 + 1 = 9; entry (5, 4) is PyTorch's (4, 9) = 4·12 + 9.
    const fc1 = match.weights.find((w) => w.name === 'fc1.kernel')!.values;
    expect(fc1[5 * 6 + 4]).toBe(4 * 12 + 9);
    // Layers that do not chain are no LeNet.
    expect(matchZooArchitecture([tensor('a.weight', [6, 12]), tensor('a.bias', [6]), tensor('b.weight', [3, 5]), tensor('b.bias', [3])], 'pytorch')).toBeNull();
  });
});
