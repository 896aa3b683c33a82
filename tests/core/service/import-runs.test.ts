// `ticket-lab import-runs`: an open_lth experiment folder written by real PyTorch
// (tests/fixtures/open-lth) becomes one IMP run per replicate, its levels a lineage of tickets whose
// masks and weights are the files' own; the run's model is the level-0 network as `import` stores
// it; exports go back out under open_lth's names; a broken folder stores nothing.
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fillBatch, loadDataset } from '../../../core/data/datasets';
import { DEFAULT_READ_LIMITS, ModelFileError } from '../../../core/formats/model-format';
import { pytorchFormat } from '../../../core/formats/pytorch';
import { LabService } from '../../../core/service/lab-service';
import { LabStore } from '../../../core/store/lab-store';
import { untar } from '../../support/tar';
import { useTempFolder } from '../../support/temp-folder';

const FIXTURES = join(__dirname, '..', '..', 'fixtures', 'open-lth');
const temp = useTempFolder('ticket-lab-import-runs-');
const expected = JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8')) as {
  experiment: string;
  replicate: number;
  finalStep: { epoch: number; iteration: number };
  levels: Array<{ level: number; sparsity: number; finalTestAccuracy: number }>;
};

let copies = 0;
function fixtureRoot(): { root: string; main: (level: number) => string } {
  const root = join(temp(), `root${copies++}`);
  untar(readFileSync(join(FIXTURES, 'open_lth_root.tar.gz')), root);
  return { root, main: (level) => join(root, expected.experiment, `replicate_${expected.replicate}`, `level_${level}`, 'main') };
}

const read = (path: string) => new Map(pytorchFormat.read(path, DEFAULT_READ_LIMITS).tensors.map((t) => [t.name, t.values]));
const finalFile = (main: string) => join(main, `model_ep${expected.finalStep.epoch}_it${expected.finalStep.iteration}.pth`);

describe('import-runs (open_lth experiments)', () => {
  it('stores each level as a ticket of one lineage, with the files’ masks, weights and accuracies, and exports them back under open_lth’s names', async () => {
    const { root, main } = fixtureRoot();
    const dbPath = join(temp(), `lab${copies}.db`);
    const service = new LabService({ dbPath });
    try {
      const report = await service.importRuns({ path: root });
      expect(report.runs).toHaveLength(1);
      const [run] = report.runs;
      expect(run).toMatchObject({ experiment: expected.experiment, replicate: expected.replicate, created: true });
      expect(run!.architecture).toMatchObject({ model: 'lenet-8-4', inputShape: [28, 28, 1], numClasses: 10 });
      const tickets = run!.run.tickets;
      expect(tickets.map((t) => t.level)).toEqual(expected.levels.map((l) => l.level));
      expect(tickets.map((t) => t.parentId)).toEqual([null, ...tickets.slice(0, -1).map((t) => t.id)]);
      for (const [i, level] of expected.levels.entries()) {
        expect(tickets[i]!.sparsity).toBeCloseTo(level.sparsity, 12);
        expect(tickets[i]!.testAccuracy).toBe(level.finalTestAccuracy);
      }

      // The run's model is the level-0 trained network: importing that file finds it.
      const again = await service.importModel({ path: finalFile(main(0)) });
      expect(again).toMatchObject({ id: run!.model, created: false });
      const store = LabStore.open(dbPath, { create: false })!;
      try {
        const stored = store.getRun(run!.run.runId);
        expect(stored).toMatchObject({ method: 'imp', status: 'completed', modelId: run!.model, seed: expected.replicate });
        expect(stored.hparams).toMatchObject({ source: 'open_lth', optimizer: 'sgd', learningRate: 0.1, batchSize: 128, pruneFraction: 0.5 });
        expect(store.getDataset(stored.datasetId)).toMatchObject({ name: 'mnist', source: 'open_lth' });
      } finally {
        store.close();
      }

      // Each level exported as a torch.save state dict: open_lth's own mask and final weights, tensor for tensor.
      for (const [i, ticket] of tickets.entries()) {
        const output = join(temp(), `level${i}.pt`);
        await service.exportMask({ ticket: ticket.id, format: 'pt-state-dict', output });
        const exported = read(output);
        const mask = existsSync(join(main(i), 'mask.pth')) ? read(join(main(i), 'mask.pth')) : new Map<string, Float32Array>();
        for (const [name, values] of read(finalFile(main(i)))) {
          expect(exported.get(name), name).toEqual(values);
          if (name.endsWith('.weight')) expect(exported.get(`${name}_mask`), `${name}_mask`).toEqual(mask.get(name) ?? new Float32Array(values.length).fill(1));
        }
      }

      // A second import of the same folder writes nothing.
      const before = (await service.dbInfo({})).counts;
      const second = await service.importRuns({ path: join(root, expected.experiment) });
      expect(second.runs.map((r) => [r.run.runId, r.created])).toEqual([[run!.run.runId, false]]);
      expect((await service.dbInfo({})).counts).toEqual(before);
    } finally {
      service.close();
    }
  });

  it('searches from the imported network: one-shot magnitude prunes its level-0 weights', async () => {
    const { root } = fixtureRoot();
    const service = new LabService({ dbPath: join(temp(), `lab${copies}.db`) });
    try {
      const { runs } = await service.importRuns({ path: root });
      const summary = await service.searchOneShot({ model: runs[0]!.model, dataset: 'mnist', sparsity: 0.5, retrain: false, validationSize: 500, backend: 'wasm' });
      expect(summary.tickets.at(-1)!.sparsity).toBeCloseTo(0.5, 2);
      expect(summary.tickets.at(-1)!.model).toBe('lenet-8-4');
    } finally {
      service.close();
    }
  });

  it('evaluates an imported ticket on this machine’s MNIST as a plain forward pass of open_lth’s own files does', async () => {
    const { root, main } = fixtureRoot();
    const service = new LabService({ dbPath: join(temp(), `lab${copies}.db`) });
    try {
      const { runs } = await service.importRuns({ path: root });
      const ticket = runs[0]!.run.tickets[2]!;
      const report = await service.evaluate({ target: ticket.id, backend: 'wasm' });
      expect(report).toMatchObject({ dataset: 'mnist', recordedTestAccuracy: expected.levels[2]!.finalTestAccuracy });
      expect(report.sparsity).toBeCloseTo(expected.levels[2]!.sparsity, 12);

      // The same network computed here from the .pth files: relu(W·x + b) with W masked, PyTorch's [out, in] layout.
      const weights = read(finalFile(main(2)));
      const mask = read(join(main(2), 'mask.pth'));
      const layers = ['fc_layers.0', 'fc_layers.1', 'fc'].map((name) => {
        const w = weights.get(`${name}.weight`)!;
        const m = mask.get(`${name}.weight`);
        return { w: m ? w.map((v, i) => v * m[i]!) : w, b: weights.get(`${name}.bias`)!, relu: name !== 'fc' };
      });
      const dataset = loadDataset('mnist', { validationSize: 5000 });
      const x = new Float32Array(dataset.test.count * 784);
      const y = new Int32Array(dataset.test.count);
      fillBatch(dataset.test, Array.from({ length: dataset.test.count }, (_, i) => i), dataset.normalization, x, y);
      let correct = 0;
      for (let n = 0; n < dataset.test.count; n++) {
        let h: Float32Array = x.subarray(n * 784, (n + 1) * 784);
        for (const { w, b, relu } of layers) {
          const out = new Float32Array(b.length);
          for (let o = 0; o < b.length; o++) {
            let sum = b[o]!;
            for (let i = 0; i < h.length; i++) sum += w[o * h.length + i]! * h[i]!;
            out[o] = relu ? Math.max(0, sum) : sum;
          }
          h = out;
        }
        if (h.indexOf(Math.max(...h)) === y[n]) correct++;
      }
      expect(report.test.examples).toBe(dataset.test.count);
      expect(report.test.accuracy).toBeCloseTo(correct / dataset.test.count, 3);
    } finally {
      service.close();
    }
  });

  it('imports the levels before a missing mask, saying why it stopped', async () => {
    const { root, main } = fixtureRoot();
    rmSync(join(main(2), 'mask.pth'));
    const service = new LabService({ dbPath: join(temp(), `lab${copies}.db`) });
    try {
      const report = await service.importRuns({ path: root });
      expect(report.runs[0]!.run.tickets.map((t) => t.level)).toEqual([0, 1]);
      expect(report.warnings.join('\n')).toMatch(/level_2\/main: level 2 has no mask\.pth/);
    } finally {
      service.close();
    }
  });

  it('refuses a folder with a hostile checkpoint by name and stores nothing', async () => {
    const { root, main } = fixtureRoot();
    cpSync(join(__dirname, '..', '..', 'fixtures', 'pytorch', 'os_system.pt'), join(main(1), 'mask.pth'));
    const dbPath = join(temp(), `lab${copies}.db`);
    const service = new LabService({ dbPath });
    try {
      const error = await service.importRuns({ path: root }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ModelFileError);
      expect(String((error as Error).message)).toMatch(/mask\.pth.*(posix|os)\.system/s);
      expect(existsSync(dbPath)).toBe(false);
    } finally {
      service.close();
    }
  });
});
