// An ONNX file whose network is in no zoo (LeNet-5 with unpadded 5×5 convs, exported by PyTorch)
// runs as the network its graph computes: imported with its layers kept, measured, pruned, fine-
// tuned and exported under the file's own initializer names.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { readModelFile } from '../../../core/formats/registry';
import { LabService } from '../../../core/service/lab-service';
import { useTempFolder } from '../../support/temp-folder';

const FIXTURES = join(__dirname, '..', '..', 'fixtures', 'onnx-graph');
const temp = useTempFolder();

describe('a model built from its ONNX graph', () => {
  it('imports, evaluates, prunes, fine-tunes and exports like a zoo model', async () => {
    const path = join(temp(), 'lenet5.onnx');
    writeFileSync(path, gunzipSync(readFileSync(join(FIXTURES, 'lenet5.onnx.gz'))));
    const service = new LabService({ dbPath: join(temp(), 'lab.db') });
    try {
      const inspected = await service.inspectModelFile({ path });
      expect(inspected.architecture).toMatchObject({ matchedBy: 'graph', inputShape: [28, 28, 1], numClasses: 10 });
      const model = await service.importModel({ path });
      expect(model.architecture.matchedBy).toBe('graph');

      const dense = await service.evaluate({ target: model.id, dataset: 'mnist', validationSize: 500, backend: 'wasm' });
      expect(dense.sparsity).toBe(0);
      expect(dense.test.examples).toBe(10_000);

      const small = { model: model.id, dataset: 'mnist', validationSize: 500, iterations: 10, evalEvery: 10, backend: 'wasm' as const };
      const pruned = await service.searchOneShot({ ...small, sparsity: 0.8, retrain: false });
      const [level0, level1] = pruned.tickets;
      expect([level0!.method, level1!.method]).toEqual(['imported', 'oneshot-magnitude']);
      // Level 0 is the imported network, measured on the run's own split: evaluate found the same.
      expect(level0!.testAccuracy).toBe(dense.test.accuracy);
      expect(level1!.sparsity).toBeCloseTo(0.8, 2);
      const tuned = await service.searchOneShot({ ...small, sparsity: 0.8 });
      expect(tuned.tickets.at(-1)!.sparsity).toBeCloseTo(0.8, 2);

      // The masks go out under the file's initializer names, in its [out, in, kh, kw] layout.
      const output = join(temp(), 'mask.safetensors');
      await service.exportMask({ ticket: level1!.id, format: 'safetensors', output, weights: false });
      const masks = new Map(readModelFile(output).tensors.map((t) => [t.name, t]));
      const original = new Map(readModelFile(path).tensors.map((t) => [t.name, t]));
      expect(masks.size).toBeGreaterThan(0);
      for (const [name, mask] of masks) {
        expect(name.endsWith('_mask')).toBe(true);
        const weight = original.get(name.slice(0, -'_mask'.length));
        expect(weight, name).toBeDefined();
        expect(mask.shape).toEqual(weight!.shape);
      }
    } finally {
      service.close();
    }
  }, 120_000);
});
