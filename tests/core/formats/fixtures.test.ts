// The format readers against files written by the tools researchers use (NumPy, safetensors'
// layout, PyTorch; tests/fixtures/interop/make_fixtures.py made them and recorded each tensor's
// sums): what `ticket-lab inspect` prints must agree with what the writing framework computes.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { detectFormat, readModelFile, tensorSums } from '../../../core/formats/registry';
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

describe('model files written by NumPy and in safetensors layout', () => {
  it.each([
    ['lenet.safetensors', 'safetensors'],
    ['lenet.npz', 'npz'],
  ])('%s: format, names, shapes and sums as the writer computed them', (fixture, format) => {
    const contents = readModelFile(unpack(fixture));
    expect(contents.format).toBe(format);
    const want = expected.models.lenet!.tensors;
    expect(contents.tensors.map((t) => t.name)).toEqual(want.map((t) => t.name));
    for (const [i, t] of contents.tensors.entries()) {
      expect(t.shape).toEqual(want[i]!.shape);
      expect(t.dtype).toBe(want[i]!.dtype);
      const sums = tensorSums(t);
      expect(Math.abs(sums.sum - want[i]!.sum)).toBeLessThan(1e-4);
      expect(Math.abs(sums.absSum - want[i]!.absSum)).toBeLessThan(1e-4);
    }
  });

  it('detects the format by content, not by the file name', () => {
    expect(detectFormat(unpack('lenet.safetensors', 'weights.bin')).id).toBe('safetensors');
    expect(detectFormat(unpack('lenet.npz', 'weights.zip')).id).toBe('npz');
    expect(detectFormat(join(FIXTURES, 'input.npy')).id).toBe('npy');
    const text = join(temp(), 'notes.safetensors');
    writeFileSync(text, 'not a model at all');
    expect(() => detectFormat(text)).toThrow(/notes\.safetensors: is not a model file Ticket Lab reads \(safetensors, NumPy \.npz, NumPy \.npy\)/);
    expect(() => detectFormat(join(temp(), 'missing.npz'))).toThrow(/missing\.npz: cannot be read \(ENOENT\)/);
  });

  it('`ticket-lab inspect FILE --json` prints the format and every tensor with its sums, and stores nothing', async () => {
    const path = unpack('lenet.safetensors');
    const db = join(temp(), 'never.db');
    const result = await runCliProcess(['inspect', path, '--json'], { TICKET_LAB_DB: db });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { format: string; elements: number; tensors: Array<{ name: string; sum: number }> };
    expect(report.format).toBe('safetensors');
    expect(report.elements).toBe(784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10);
    expect(report.tensors.map((t) => t.name)).toEqual(expected.models.lenet!.tensors.map((t) => t.name));
    const text = await runCliProcess(['inspect', path], { TICKET_LAB_DB: db });
    expect(text.stdout).toMatch(/safetensors, 6 tensors, 266,610 values/);
    expect(text.stdout).toMatch(/fc1\.weight\s+\[300, 784\]\s+float32/);
    const bad = await runCliProcess(['inspect', join(temp(), 'nothing.npz')], { TICKET_LAB_DB: db });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: .*nothing\.npz: cannot be read \(ENOENT\)/);
    expect(() => readFileSync(db)).toThrow(/ENOENT/);
  });
});
