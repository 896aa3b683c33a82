import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../../core/data/datasets';
import { architecture, paramSpecs } from '../../../core/models/architectures';
import { initWeights } from '../../../core/models/weights';
import { ceilFraction } from '../../../core/pruning/budget';
import { countKept } from '../../../core/pruning/mask';
import { LabService } from '../../../core/service/lab-service';
import { LabStore } from '../../../core/store/lab-store';
import { DEFAULT_OPTIMIZER } from '../../../core/train/optimizers';
import { trainMasked } from '../../../core/train/train';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder();
const arch = architecture('lenet-300-100');
const small = { model: 'lenet-300-100', dataset: 'mnist', iterations: 20, evalEvery: 10, validationSize: 500, backend: 'wasm' as const };

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

describe('IMP driver', () => {
  it('prunes each layer by exactly ceil(rate · remaining) per level (LTH: 20% hidden, 10% output)', async () => {
    const dbPath = join(temp(), 'rates.db');
    const service = new LabService({ dbPath });
    const summary = await service.searchImp({ ...small, levels: 4 });
    service.close();
    const store = LabStore.open(dbPath, { create: false })!;
    const tickets = summary.tickets.filter((t) => t.role === 'ticket');
    expect(tickets.map((t) => t.level)).toEqual([0, 1, 2, 3, 4]);
    const rates: Record<string, number> = { 'fc1.kernel': 0.2, 'fc2.kernel': 0.2, 'fc3.kernel': 0.1 };
    let previous = store.getMasks(tickets[0]!.id);
    expect(previous.every((m) => countKept(m.bits) === m.bits.length)).toBe(true);
    for (const ticket of tickets.slice(1)) {
      const masks = store.getMasks(ticket.id);
      for (const m of masks) {
        const before = previous.find((p) => p.name === m.name)!;
        const remaining = countKept(before.bits);
        expect(countKept(m.bits)).toBe(remaining - ceilFraction(rates[m.name]!, remaining));
        // Pruned stays pruned.
        for (let i = 0; i < m.bits.length; i++) if (!before.bits[i]) expect(m.bits[i]).toBe(0);
      }
      expect(ticket.parentId).toBe(tickets[ticket.level - 1]!.id);
      previous = masks;
    }
    store.close();
  });

  it('with global scope, prunes ceil(rate · remaining) over all layers together', async () => {
    const dbPath = join(temp(), 'global.db');
    const service = new LabService({ dbPath });
    const summary = await service.searchImp({ ...small, levels: 2, scope: 'global', rate: 0.3 });
    service.close();
    let remaining = summary.tickets[0]!.kept;
    for (const t of summary.tickets.slice(1)) {
      remaining -= ceilFraction(0.3, remaining);
      expect(t.kept).toBe(remaining);
    }
  });

  it('rewinds kept weights to exactly θ0, and a level retrained from its stored start reproduces its stored result', async () => {
    const dbPath = join(temp(), 'rewind0.db');
    const service = new LabService({ dbPath });
    const summary = await service.searchImp({ ...small, levels: 2, seed: 4 });
    service.close();
    const store = LabStore.open(dbPath, { create: false })!;
    const run = store.getRun(summary.runId);
    const dataset = loadDataset('mnist', { validationSize: 500 });
    const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
    const theta0 = initWeights(specs, 4);
    const stored0 = store.getWeights(run.initWeights!);
    theta0.forEach((t, i) => expect(bitsEqual(t.values, stored0[i]!.values)).toBe(true));

    const level2 = store.getTicket(summary.tickets.find((t) => t.level === 2)!.id);
    expect(level2.startWeights).toBe(run.rewindWeights);
    expect(run.rewindWeights).toBe(run.initWeights);
    const masks = store.getMasks(level2.id);
    const again = await trainMasked({
      arch, specs, dataset, weights: store.getWeights(level2.startWeights!), masks, dataSeed: 4,
      schedule: { iterations: 20, batchSize: 60, evalEvery: 10, optimizer: { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 1.2e-3 } },
    });
    const storedFinal = store.getWeights(level2.finalWeights!);
    again.finalWeights.forEach((t, i) => expect(bitsEqual(t.values, storedFinal[i]!.values)).toBe(true));
    store.close();
  });

  it('rewinding only the learning rate: each level starts from the previous level\'s trained weights, restarted at k', async () => {
    const dbPath = join(temp(), 'lr-rewind.db');
    const service = new LabService({ dbPath });
    const summary = await service.searchImp({ ...small, levels: 2, rewindIteration: 5, rewindTo: 'learning-rate' });
    service.close();
    const store = LabStore.open(dbPath, { create: false })!;
    const [dense, first, second] = summary.tickets.map((t) => store.getTicket(t.id));
    expect([first!.method, second!.method]).toEqual(['imp-lr-rewind', 'imp-lr-rewind']);
    // Weights are stored once per digest: the same id is the same tensor, bit for bit.
    expect(first!.startWeights).toBe(dense!.finalWeights);
    expect(second!.startWeights).toBe(first!.finalWeights);
    expect(first!.startWeights).not.toBe(store.getRun(summary.runId).rewindWeights);
    expect((second!.curve[0] as { iteration: number }).iteration).toBe(5);
    expect(store.getRun(summary.runId).hparams.rewindTo).toBe('learning-rate');
    store.close();
  });

  it('rewinds to iteration k: θk is the dense network after k steps, and later levels restart there', async () => {
    const dbPath = join(temp(), 'rewindk.db');
    const service = new LabService({ dbPath });
    const summary = await service.searchImp({ ...small, levels: 1, seed: 2, rewindIteration: 5 });
    service.close();
    const store = LabStore.open(dbPath, { create: false })!;
    const run = store.getRun(summary.runId);
    const dataset = loadDataset('mnist', { validationSize: 500 });
    const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
    const optimizer = { ...DEFAULT_OPTIMIZER, name: 'adam' as const, learningRate: 1.2e-3 };
    const dense = store.getMasks(summary.tickets[0]!.id);
    const fiveSteps = await trainMasked({ arch, specs, dataset, weights: initWeights(specs, 2), masks: dense, dataSeed: 2, schedule: { iterations: 5, batchSize: 60, evalEvery: 10, optimizer } });
    const thetaK = store.getWeights(run.rewindWeights!);
    fiveSteps.finalWeights.forEach((t, i) => expect(bitsEqual(t.values, thetaK[i]!.values)).toBe(true));

    const level1 = store.getTicket(summary.tickets[1]!.id);
    expect(level1.startWeights).toBe(run.rewindWeights);
    expect((level1.curve[0] as { iteration: number }).iteration).toBe(5);
    const again = await trainMasked({
      arch, specs, dataset, weights: thetaK, masks: store.getMasks(level1.id), dataSeed: 2, startIteration: 5,
      schedule: { iterations: 20, batchSize: 60, evalEvery: 10, optimizer },
    });
    const storedFinal = store.getWeights(level1.finalWeights!);
    again.finalWeights.forEach((t, i) => expect(bitsEqual(t.values, storedFinal[i]!.values)).toBe(true));
    store.close();
  });

  it('trains the re-init and random-mask controls beside their tickets', async () => {
    for (const control of ['reinit', 'random-mask'] as const) {
      const dbPath = join(temp(), `control-${control}.db`);
      const service = new LabService({ dbPath });
      const summary = await service.searchImp({ ...small, levels: 2, control, controlLevels: [2] });
      service.close();
      const store = LabStore.open(dbPath, { create: false })!;
      const controls = summary.tickets.filter((t) => t.role === 'control');
      expect(controls.map((c) => [c.level, c.method])).toEqual([[2, `${control}-control`]]);
      const ticket = store.getTicket(controls[0]!.parentId!);
      expect(ticket.level).toBe(2);
      const ticketMasks = store.getMasks(ticket.id);
      const controlMasks = store.getMasks(controls[0]!.id);
      const controlRecord = store.getTicket(controls[0]!.id);
      controlMasks.forEach((m, i) => {
        expect(countKept(m.bits)).toBe(countKept(ticketMasks[i]!.bits));
        const same = Buffer.from(m.bits).equals(Buffer.from(ticketMasks[i]!.bits));
        expect(same).toBe(control === 'reinit');
      });
      if (control === 'reinit') expect(controlRecord.startWeights).not.toBe(ticket.startWeights);
      else expect(controlRecord.startWeights).toBe(ticket.startWeights);
      store.close();
    }
  });

  it('one-shot prunes to round((1 − s)·n) per layer, from scratch or from a stored ticket', async () => {
    const dbPath = join(temp(), 'oneshot.db');
    const service = new LabService({ dbPath });
    const scratch = await service.searchOneShot({ ...small, sparsity: 0.9, retrain: false });
    expect(scratch.tickets.map((t) => t.method)).toEqual(['dense', 'oneshot-magnitude']);
    const pruned = scratch.tickets[1]!;
    expect(pruned.kept).toBe(Math.round(0.1 * 784 * 300) + Math.round(0.1 * 300 * 100) + Math.round(0.1 * 100 * 10));
    expect(pruned.parentId).toBe(scratch.tickets[0]!.id);
    // No validation size given: the source run's split (500) is kept, so no image it trained on validates here.
    const fromTicket = await service.searchOneShot({ fromTicket: pruned.id, sparsity: 0.95, scope: 'global', iterations: 20, evalEvery: 10, backend: 'wasm' });
    const run = (await service.listRuns({})).find((r) => r.id === fromTicket.runId)!;
    expect(run.hparams.validationSize).toBe(500);
    expect(fromTicket.tickets).toHaveLength(1);
    expect(fromTicket.tickets[0]!.parentId).toBe(pruned.id);
    expect(fromTicket.tickets[0]!.level).toBe(2);
    expect(fromTicket.tickets[0]!.kept).toBe(Math.round(0.05 * pruned.total));
    service.close();
  });

  it('keys runs by the hyper-parameters that differ from the defaults', async () => {
    const service = new LabService({ dbPath: join(temp(), 'keys.db') });
    const quick = { ...small, iterations: 10, levels: 1 };
    await service.searchImp(quick);
    await service.searchImp({ ...quick, optimizer: 'adam', learningRate: 1.2e-3, rate: 0.2, outputRate: 0.1, seed: 0 });
    await service.searchImp({ ...quick, iterations: 12 });
    await service.searchImp({ ...quick, learningRate: 1e-3 });
    const keys = (await service.listRuns({})).map((r) => r.runKey);
    service.close();
    expect(keys[1]).toBe(keys[0]);
    expect(new Set([keys[0], keys[2], keys[3]]).size).toBe(3);
  });

  it('searches several seeds together: one run each, each the run that seed gives searched alone', async () => {
    const together = new LabService({ dbPath: join(temp(), 'seeds.db') });
    const summary = await together.searchImp({ ...small, levels: 2, control: 'reinit', controlLevels: [2], seeds: [3, 4] });
    const stacked = await together.listRuns({});
    expect(summary.seedRuns!.map((r) => r.seed)).toEqual([3, 4]);
    expect(stacked.map((r) => r.status)).toEqual(['completed', 'completed']);
    const storeTogether = LabStore.open(join(temp(), 'seeds.db'), { create: false })!;
    for (const run of summary.seedRuns!) {
      const alone = new LabService({ dbPath: join(temp(), `seed-${run.seed}.db`) });
      const single = await alone.searchImp({ ...small, levels: 2, control: 'reinit', controlLevels: [2], seed: run.seed });
      const aloneRunKey = (await alone.listRuns({}))[0]!.runKey;
      alone.close();
      // Same run key: a seed searched in company is the same experiment as that seed alone.
      expect(stacked.find((r) => r.id === run.runId)!.runKey).toBe(aloneRunKey);
      const storeAlone = LabStore.open(join(temp(), `seed-${run.seed}.db`), { create: false })!;
      expect(run.tickets.map((t) => [t.level, t.role])).toEqual(single.tickets.map((t) => [t.level, t.role]));
      run.tickets.forEach((t, i) => {
        const u = single.tickets[i]!;
        expect(t.testAccuracy).toBeCloseTo(u.testAccuracy!, 6);
        expect(t.earlyStopIteration).toBe(u.earlyStopIteration);
        const a = storeTogether.getMasks(t.id);
        const b = storeAlone.getMasks(u.id);
        a.forEach((m, j) => expect(Buffer.from(m.bits).equals(Buffer.from(b[j]!.bits))).toBe(true));
      });
      storeAlone.close();
    }
    storeTogether.close();
    together.close();
    // The two seeds are different lineages.
    expect(summary.seedRuns![0]!.tickets[2]!.testAccuracy).not.toBe(summary.seedRuns![1]!.tickets[2]!.testAccuracy);
  });
});
