// The fully connected LeNets of any widths (`lenet-<w1>-<w2>…`, open_lth's mnist_lenet_<plan>), and
// state dicts of such nets matched to them.
import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import { matchZooArchitecture } from '../../../core/formats/zoo-match';
import { architecture, paramSpecs } from '../../../core/models/architectures';

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
    // TF.js [in, out]: entry (i, o) is PyTorch's (o, i) = o·12 + i.
    const fc1 = match.weights.find((w) => w.name === 'fc1.kernel')!.values;
    expect(fc1[5 * 6 + 4]).toBe(4 * 12 + 5);
    // Layers that do not chain are no LeNet.
    expect(matchZooArchitecture([tensor('a.weight', [6, 12]), tensor('a.bias', [6]), tensor('b.weight', [3, 5]), tensor('b.bias', [3])], 'pytorch')).toBeNull();
  });
});
