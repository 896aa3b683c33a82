// Files written by a current PyTorch (2.11) and by the `safetensors` package itself on the device
// machine (tests/fixtures/interop-torch2/make_torch2_fixtures.py): torch.save's zip, the package's
// safetensors (its header sorted by name, so the module order comes from the names), and the ONNX of
// PyTorch 2's default exporter, whose weights sit in an external `mlp.onnx.data`. Sums and logits as
// PyTorch computed them.
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelFileError } from '../../../core/formats/model-format';
import { modelInput, predictLogits } from '../../../core/formats/predict';
import { readModelFile, tensorSums } from '../../../core/formats/registry';
import { layoutOf, matchZooArchitecture } from '../../../core/formats/zoo-match';
import { useBackend } from '../../support/backends';
import { useTempFolder } from '../../support/temp-folder';

const FIXTURES = join(__dirname, '..', '..', 'fixtures', 'interop-torch2');
const temp = useTempFolder();
const expected = JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8')) as {
  tensors: Record<string, { shape: number[]; dtype: string; sum: number; absSum: number }>;
  logits: number[][];
};

describe('files written by PyTorch 2.11 and the safetensors package', () => {
  it.each(['mlp.pt', 'mlp.safetensors', 'mlp.onnx'])('%s: the tensors PyTorch saved, fitted to lenet-16-8, and its logits (|error| < 1e-4)', async (file) => {
    await useBackend('cpu');
    const contents = readModelFile(join(FIXTURES, file));
    expect(Object.fromEntries(contents.tensors.map((t) => [t.name, t.shape]))).toEqual(Object.fromEntries(Object.entries(expected.tensors).map(([name, t]) => [name, t.shape])));
    for (const t of contents.tensors) {
      const sums = tensorSums(t);
      expect(Math.abs(sums.sum - expected.tensors[t.name]!.sum), t.name).toBeLessThan(1e-4);
      expect(Math.abs(sums.absSum - expected.tensors[t.name]!.absSum), t.name).toBeLessThan(1e-4);
    }
    const match = matchZooArchitecture(contents.tensors, layoutOf(contents.format))!;
    expect(match.arch.id).toBe('lenet-16-8');
    expect(match.sourceNames['fc1.kernel']).toBe('0.weight');
    expect(match.sourceNames['fc3.bias']).toBe('4.bias');
    const input = readModelFile(join(FIXTURES, 'input.npy')).tensors[0]!;
    const logits = predictLogits(match, modelInput(input, match.inputShape, 'pytorch', 'input.npy'));
    const error = Math.max(...logits.flatMap((row, i) => row.map((v, j) => Math.abs(v - expected.logits[i]![j]!))));
    expect(error).toBeLessThan(1e-4);
  });

  it('refuses the ONNX file by name when its external data file is missing', () => {
    const folder = temp();
    cpSync(join(FIXTURES, 'mlp.onnx'), join(folder, 'moved.onnx'));
    rmSync(join(folder, 'mlp.onnx.data'), { force: true });
    expect(() => readModelFile(join(folder, 'moved.onnx'))).toThrow(ModelFileError);
    expect(() => readModelFile(join(folder, 'moved.onnx'))).toThrow(/moved\.onnx: .*"mlp\.onnx\.data", which cannot be read \(ENOENT\)/);
  });
});
