import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LabService } from '../../../core/service/lab-service';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-catalog-');

describe('the catalog (what the search form offers)', () => {
  it('lists the zoo with the paper defaults a search uses, and which datasets are here', async () => {
    const service = new LabService({ dbPath: join(temp(), 'lab.db') });
    try {
      const report = await service.catalog({});
      expect(report.models.map((m) => m.id)).toEqual(expect.arrayContaining(['lenet-300-100', 'conv-2', 'resnet-20']));
      // LeNet-300-100 as the LTH paper trains it: Adam 1.2e-3, batch 60, 50,000 steps, per-layer rates 20 % and 10 % at the output.
      expect(report.models.find((m) => m.id === 'lenet-300-100')!.defaults).toEqual({
        optimizer: 'adam', learningRate: 1.2e-3, batchSize: 60, iterations: 50_000, scope: 'layer', rates: { conv: 0, fc: 0.2, output: 0.1 },
      });
      const mnist = report.datasets.find((d) => d.id === 'mnist')!;
      expect(mnist).toMatchObject({ available: true, imageShape: [28, 28, 1], numClasses: 10, reason: null });
      for (const d of report.datasets) expect(d.available ? d.source : d.reason, d.id).toBeTruthy();
      expect(report.pruneAtInitMethods).toEqual(['random', 'erk', 'snip', 'grasp', 'synflow']);
      await expect(service.catalog({ extra: 1 } as never)).rejects.toThrow(/extra/);
    } finally {
      service.close();
    }
  });
});
