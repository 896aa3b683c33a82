// The format readers against files written by the tools researchers use (NumPy, safetensors'
// layout, PyTorch; tests/fixtures/interop/make_fixtures.py made them and recorded each tensor's
// sums): what `ticket-lab inspect` prints must agree with what the writing framework computes.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { predictLogits, modelInput } from '../../../core/formats/predict';
import { detectFormat, readModelFile, tensorSums } from '../../../core/formats/registry';
import { layoutOf, matchZooArchitecture } from '../../../core/formats/zoo-match';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../support/backends';
import { saveTfjsModel } from '../../support/tfjs-files';
import { runCliProcess } from '../../support/cli-process';
import { useTempFolder } from '../../support/temp-folder';

const FIXTURES = join(__dirname, '..', '..', 'fixtures', 'interop');
const temp = useTempFolder();

interface Expected {
  files: Record<string, string>;
  models: Record<string, { tensors: Array<{ name: string; dtype: string; shape: number[]; sum: number; absSum: number }>; logits: number[][] }>;
}
const expected = JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8')) as Expected;

/** The fixture's bytes as the tool wrote them, in a file named as given (any name: detection reads content). */
function unpack(fixture: string, as = fixture): string {
  const path = join(temp(), as);
  writeFileSync(path, gunzipSync(readFileSync(join(FIXTURES, `${fixture}.gz`))));
  return path;
}

const WRITTEN = [
  ['lenet', 'safetensors'],
  ['lenet', 'npz'],
  ['lenet', 'pt'],
  ['lenet', 'onnx'],
  ['conv2', 'safetensors'],
  ['conv2', 'npz'],
  ['conv2', 'pt'],
  ['conv2', 'onnx'],
] as const;
const FORMAT_IDS = { safetensors: 'safetensors', npz: 'npz', pt: 'pytorch', onnx: 'onnx' } as const;

describe('model files written by NumPy, PyTorch (torch.save, torch.onnx.export) and in safetensors layout', () => {
  it.each(WRITTEN)('%s.%s: format, names, shapes and sums as the writer computed them', (model, format) => {
    const contents = readModelFile(unpack(`${model}.${format}`));
    expect(contents.format).toBe(FORMAT_IDS[format]);
    const want = expected.models[model]!.tensors;
    expect(contents.tensors.map((t) => t.name)).toEqual(want.map((t) => t.name));
    for (const [i, t] of contents.tensors.entries()) {
      expect(t.shape).toEqual(want[i]!.shape);
      expect(t.dtype).toBe(want[i]!.dtype);
      const sums = tensorSums(t);
      expect(Math.abs(sums.sum - want[i]!.sum)).toBeLessThan(1e-4);
      expect(Math.abs(sums.absSum - want[i]!.absSum)).toBeLessThan(1e-4);
    }
  });

  it.each(WRITTEN)('%s.%s: fits its zoo network by name and gives the logits PyTorch computes (|error| < 1e-4)', async (model, format) => {
    await useBackend('cpu');
    const contents = readModelFile(unpack(`${model}.${format}`));
    const match = matchZooArchitecture(contents.tensors, layoutOf(contents.format))!;
    expect(match.arch.id).toBe(model === 'lenet' ? 'lenet-300-100' : 'conv-2');
    expect(match.inputShape).toEqual(model === 'lenet' ? [28, 28, 1] : [8, 8, 1]);
    expect(match.matchedBy).toBe('names');
    expect(match.sourceNames['fc1.kernel']).toBe('fc1.weight');
    const input = readModelFile(join(FIXTURES, model === 'lenet' ? 'input.npy' : 'input_conv2.npy')).tensors[0]!;
    const logits = predictLogits(match, modelInput(input, match.inputShape, 'pytorch', 'input'));
    expect(maxAbsError(logits, expected.models[model]!.logits)).toBeLessThan(1e-4);
  });

  it.each(['lenet', 'conv2'] as const)('%s saved by TF.js itself (model.json and a shard) fits by order and gives PyTorch\'s logits', async (model) => {
    await useBackend('cpu');
    const match = matchZooArchitecture(readModelFile(unpack(`${model}.safetensors`)).tensors, 'pytorch')!;
    const layers = tf.sequential();
    if (model === 'lenet') {
      layers.add(tf.layers.dense({ inputShape: [784], units: 300, activation: 'relu' }));
    } else {
      layers.add(tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 64, kernelSize: 3, padding: 'same', activation: 'relu' }));
      layers.add(tf.layers.conv2d({ filters: 64, kernelSize: 3, padding: 'same', activation: 'relu' }));
      layers.add(tf.layers.maxPooling2d({ poolSize: 2 }));
      layers.add(tf.layers.flatten());
      layers.add(tf.layers.dense({ units: 256, activation: 'relu' }));
    }
    layers.add(tf.layers.dense({ units: model === 'lenet' ? 100 : 256, activation: 'relu' }));
    layers.add(tf.layers.dense({ units: 10 }));
    layers.setWeights(match.weights.map((w) => tf.tensor(w.values, w.shape)));
    const folder = join(temp(), `tfjs-${model}`);
    mkdirSync(folder);
    const saved = await saveTfjsModel(layers, folder);
    const contents = readModelFile(saved.path);
    expect(contents.format).toBe('tfjs');
    const fromTfjs = matchZooArchitecture(contents.tensors, layoutOf(contents.format))!;
    expect([fromTfjs.arch.id, fromTfjs.matchedBy]).toEqual([match.arch.id, 'order']);
    const input = readModelFile(join(FIXTURES, model === 'lenet' ? 'input.npy' : 'input_conv2.npy')).tensors[0]!;
    const logits = predictLogits(fromTfjs, modelInput(input, fromTfjs.inputShape, 'tfjs', 'input'));
    expect(maxAbsError(logits, expected.models[model]!.logits)).toBeLessThan(1e-4);
  });

  it('matches by order when the names are not the zoo\'s, and under a common prefix by name', async () => {
    const contents = readModelFile(unpack('conv2.npz'));
    const renamed = contents.tensors.map((t, i) => ({ ...t, name: `layer${i}.param` }));
    const byOrder = matchZooArchitecture(renamed, 'pytorch')!;
    expect([byOrder.arch.id, byOrder.matchedBy]).toEqual(['conv-2', 'order']);
    const prefixed = contents.tensors.map((t) => ({ ...t, name: `module.net.${t.name}` }));
    expect(matchZooArchitecture(prefixed, 'pytorch')!.matchedBy).toBe('names');
    // A module pruned with torch.nn.utils.prune saves weight_orig and weight_mask: the weight is their product.
    const fc1 = contents.tensors.find((t) => t.name === 'fc1.weight')!;
    const mask = Float32Array.from(fc1.values, (_, i) => i % 2);
    const reparametrized = contents.tensors.flatMap((t) => (t === fc1 ? [{ ...t, name: 'fc1.weight_orig' }, { ...t, name: 'fc1.weight_mask', values: mask }] : [t]));
    const pruned = matchZooArchitecture(reparametrized, 'pytorch')!;
    expect(pruned.matchedBy).toBe('names');
    const kernel = pruned.weights.find((w) => w.name === 'fc1.kernel')!.values;
    expect(kernel.filter((v) => v !== 0).length).toBe(fc1.values.filter((v, i) => v !== 0 && i % 2 === 1).length);
    expect(matchZooArchitecture(contents.tensors, 'pytorch')!.weights.find((w) => w.name === 'fc1.kernel')!.values.filter((v) => v !== 0).length).toBe(fc1.values.filter((v) => v !== 0).length);
    // A tensor too many, or one of the wrong shape, fits nothing.
    expect(matchZooArchitecture([...contents.tensors, contents.tensors[0]!], 'pytorch')).toBeNull();
    expect(matchZooArchitecture(contents.tensors.map((t, i) => (i === 0 ? { ...t, shape: [64, 1, 5, 5] } : t)), 'pytorch')).toBeNull();
  });

  it('detects the format by content, not by the file name', () => {
    expect(detectFormat(unpack('lenet.safetensors', 'weights.bin')).id).toBe('safetensors');
    expect(detectFormat(unpack('lenet.npz', 'weights.zip')).id).toBe('npz');
    expect(detectFormat(unpack('lenet.pt', 'weights.ckpt')).id).toBe('pytorch');
    expect(detectFormat(join(FIXTURES, 'input.npy')).id).toBe('npy');
    const text = join(temp(), 'notes.safetensors');
    writeFileSync(text, 'not a model at all');
    expect(() => detectFormat(text)).toThrow(/notes\.safetensors: is not a model file Ticket Lab reads \(safetensors, NumPy \.npz, PyTorch state dict, NumPy \.npy, ONNX, TensorFlow\.js model\.json\)/);
    expect(() => detectFormat(join(temp(), 'missing.npz'))).toThrow(/missing\.npz: cannot be read \(ENOENT\)/);
  });

  it('`ticket-lab inspect FILE --json` prints the format and every tensor with its sums, and stores nothing', async () => {
    const path = unpack('lenet.safetensors');
    const db = join(temp(), 'never.db');
    const result = await runCliProcess(['inspect', path, '--json'], { TICKET_LAB_DB: db });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { format: string; elements: number; tensors: Array<{ name: string; sum: number }>; architecture: unknown };
    expect(report.format).toBe('safetensors');
    expect(report.elements).toBe(784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10);
    expect(report.tensors.map((t) => t.name)).toEqual(expected.models.lenet!.tensors.map((t) => t.name));
    expect(report.architecture).toEqual({ model: 'lenet-300-100', inputShape: [28, 28, 1], numClasses: 10, matchedBy: 'names' });
    const text = await runCliProcess(['inspect', path], { TICKET_LAB_DB: db });
    expect(text.stdout).toMatch(/safetensors, 6 tensors, 266,610 values/);
    expect(text.stdout).toMatch(/fits lenet-300-100 on 28×28×1 inputs, 10 classes \(matched by tensor names\)/);
    expect(text.stdout).toMatch(/fc1\.weight\s+\[300, 784\]\s+float32/);
    const bad = await runCliProcess(['inspect', join(temp(), 'nothing.npz')], { TICKET_LAB_DB: db });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: .*nothing\.npz: cannot be read \(ENOENT\)/);
    expect(() => readFileSync(db)).toThrow(/ENOENT/);
  });

  it('`ticket-lab predict FILE --input X.npy --json` prints the logits PyTorch computes', async () => {
    const result = await runCliProcess(['predict', unpack('conv2.safetensors'), '--input', join(FIXTURES, 'input_conv2.npy'), '--json', '--backend', 'cpu'], { TICKET_LAB_DB: join(temp(), 'never.db') });
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { architecture: { model: string }; logits: number[][] };
    expect(report.architecture.model).toBe('conv-2');
    expect(maxAbsError(report.logits, expected.models.conv2!.logits)).toBeLessThan(1e-4);
    const wrongInput = await runCliProcess(['predict', unpack('conv2.safetensors'), '--input', join(FIXTURES, 'input.npy'), '--backend', 'cpu'], { TICKET_LAB_DB: join(temp(), 'never.db') });
    expect(wrongInput.code).toBe(2);
    expect(wrongInput.stderr).toMatch(/inputs of shape \[4, 784\] do not fit the network's \[n, 1, 8, 8\]/);
  });
});

describe('ticket-lab import', () => {
  it('stores a model file once per content, whatever its name, and writes nothing for a file it cannot run', async () => {
    const db = join(temp(), 'import.db');
    const first = await runCliProcess(['import', unpack('conv2.pt'), '--json'], { TICKET_LAB_DB: db });
    expect(first.stderr).toBe('');
    const a = JSON.parse(first.stdout) as { id: string; created: boolean; name: string; format: string; architecture: { model: string }; parameters: number };
    expect(a).toMatchObject({ created: true, name: 'conv2.pt', format: 'pytorch', architecture: { model: 'conv-2' }, parameters: 368_330 });
    expect(a.id).toMatch(/^md_[0-9a-f]{12}$/);
    const again = JSON.parse((await runCliProcess(['import', unpack('conv2.pt', 'renamed.bin'), '--name', 'x', '--json'], { TICKET_LAB_DB: db })).stdout) as typeof a;
    expect(again).toMatchObject({ id: a.id, created: false, name: 'conv2.pt' });
    const other = JSON.parse((await runCliProcess(['import', unpack('conv2.safetensors'), '--json'], { TICKET_LAB_DB: db })).stdout) as typeof a;
    expect(other.id).not.toBe(a.id);

    const fresh = join(temp(), 'fresh.db');
    const unrunnable = await runCliProcess(['import', join(FIXTURES, 'input.npy')], { TICKET_LAB_DB: fresh });
    expect(unrunnable.code).toBe(2);
    expect(unrunnable.stderr).toMatch(/input\.npy: its tensors fit no network Ticket Lab runs/);
    expect(() => readFileSync(fresh)).toThrow(/ENOENT/);
  }, 60_000);
});

function maxAbsError(a: number[][], b: number[][]): number {
  expect(a.length).toBe(b.length);
  return Math.max(...a.flatMap((row, i) => row.map((v, j) => Math.abs(v - b[i]![j]!))));
}
