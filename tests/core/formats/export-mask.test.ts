// `ticket-lab export-mask`: a stored ticket's masks and trained weights under PyTorch's names and
// layouts. Read back through the format readers and converted to the zoo's layouts, they must be
// the stored masks and weights exactly, with every pruned weight zero.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { initWeights } from '../../../core/models/weights';
import { readModelFile } from '../../../core/formats/registry';
import { matchZooArchitecture, toPytorchTensors } from '../../../core/formats/zoo-match';
import { runCliProcess } from '../../support/cli-process';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder();

describe('export-mask', () => {
  it('writes PyTorch layouts that read back to the zoo tensors exactly (Conv-2: conv kernels, and the dense layer after the flatten)', () => {
    const specs = paramSpecs(architecture('conv-2'), [8, 8, 1], 10);
    const weights = initWeights(specs, 3);
    const back = matchZooArchitecture(toPytorchTensors(specs, weights, { inputChannels: 1 }).map((t) => ({ ...t, dtype: 'float32' as const })), 'pytorch')!;
    expect(back.arch.id).toBe('conv-2');
    expect(back.matchedBy).toBe('names');
    for (const [i, w] of weights.entries()) expect(back.weights[i]!.values).toEqual(w.values);
    const kernels = weights.filter((w) => specs.find((s) => s.name === w.name)!.prunable);
    const names = toPytorchTensors(specs, kernels, { inputChannels: 1, maskSuffix: true }).map((t) => [t.name, t.shape]);
    expect(names).toEqual([['conv1.weight_mask', [64, 1, 3, 3]], ['conv2.weight_mask', [64, 64, 3, 3]], ['fc1.weight_mask', [256, 1024]], ['fc2.weight_mask', [256, 256]], ['fc3.weight_mask', [10, 256]]]);
  });

  it('exports a stored ticket as safetensors, npz and a PyTorch state dict: weight masks, masked trained weights; refuses what it cannot write', async () => {
    const db = join(temp(), 'lab.db');
    const search = await runCliProcess(['search', 'oneshot', '--model', 'lenet-300-100', '--dataset', 'mnist', '--sparsity', '0.9', '--iterations', '20', '--eval-every', '10', '--validation-size', '500', '--json', '--backend', 'wasm'], { TICKET_LAB_DB: db });
    expect(search.code).toBe(0);
    const ticket = (JSON.parse(search.stdout) as { tickets: Array<{ id: string; level: number }> }).tickets.find((t) => t.level === 1)!.id;
    for (const format of ['safetensors', 'npz', 'pt-state-dict']) await checkExport(db, ticket, format);
  }, 120_000);
});

async function checkExport(db: string, ticket: string, format: string): Promise<void> {
    const out = join(temp(), `ticket.${format}`);
    const exported = await runCliProcess(['export-mask', ticket, '--format', format, '-o', out, '--json'], { TICKET_LAB_DB: db });
    expect(exported.stderr).toBe('');
    const report = JSON.parse(exported.stdout) as { tensors: Array<{ name: string; shape: number[] }>; sparsity: number };
    expect(report.tensors.map((t) => t.name)).toEqual(['fc1.weight_mask', 'fc2.weight_mask', 'fc3.weight_mask', 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias', 'fc3.weight', 'fc3.bias']);

    const read = readModelFile(out);
    const tensor = (name: string) => read.tensors.find((t) => t.name === name)!;
    expect(tensor('fc1.weight_mask').shape).toEqual([300, 784]);
    const kept = ['fc1', 'fc2', 'fc3'].reduce((n, l) => n + tensor(`${l}.weight_mask`).values.reduce((a, b) => a + b, 0), 0);
    expect(1 - kept / (784 * 300 + 300 * 100 + 100 * 10)).toBeCloseTo(report.sparsity, 6);
    for (const layer of ['fc1', 'fc2', 'fc3']) {
      const mask = tensor(`${layer}.weight_mask`).values;
      const weight = tensor(`${layer}.weight`).values;
      expect(mask.every((m) => m === 0 || m === 1)).toBe(true);
      expect(weight.every((w, i) => mask[i] === 1 || w === 0)).toBe(true);
    }
    // The export is a LeNet state dict again (its masks beside already-masked weights are not parameters).
    const match = matchZooArchitecture(read.tensors, 'pytorch')!;
    expect([match.arch.id, match.matchedBy]).toEqual(['lenet-300-100', 'names']);

    const masksOnly = await runCliProcess(['export-mask', ticket, '--format', format, '-o', out, '--no-weights', '--json'], { TICKET_LAB_DB: db });
    expect((JSON.parse(masksOnly.stdout) as { tensors: unknown[] }).tensors).toHaveLength(3);
    const unwritable = await runCliProcess(['export-mask', ticket, '--format', format, '-o', join(temp(), 'no', 'such', 'dir', 'x')], { TICKET_LAB_DB: db });
    expect(unwritable.code).not.toBe(0);
    expect(unwritable.stderr).toMatch(/Cannot write .*ENOENT/);
    const badFormat = await runCliProcess(['export-mask', ticket, '--format', 'onnx', '-o', out], { TICKET_LAB_DB: db });
    expect(badFormat.code).toBe(2);
}
