// A lab database filled by real, tiny searches (nothing typed by hand): the e2e suite and the
// screenshots browse it. LeNet-300-100 on the bundled MNIST, on WASM, a few seconds each.
import { join } from 'node:path';
import { LabService } from '../../../core/service/lab-service';

export interface SeededLab {
  dbPath: string;
  ownerKeyPath: string;
  /** The IMP run: 4 levels of tickets, each with its random re-initialisation control. */
  impRunId: string;
  impTickets: string[];
  oneShotTicket: string;
  snipTicket: string;
  /** A claimed ticket (graph signature) and its claim. */
  claimedTicket: string;
  claimId: string;
}

export const TINY = { model: 'lenet-300-100', dataset: 'mnist', iterations: 120, evalEvery: 40, validationSize: 500, backend: 'wasm' as const };

export async function seedLab(folder: string): Promise<SeededLab> {
  const dbPath = join(folder, 'lab.db');
  const ownerKeyPath = join(folder, 'owner-key.pem');
  const service = new LabService({ dbPath, ownerKeyPath });
  try {
    const imp = await service.searchImp({ ...TINY, levels: 4, control: 'reinit', seed: 1 });
    const impTickets = imp.tickets.filter((t) => t.role === 'ticket').map((t) => t.id);
    const oneShot = await service.searchOneShot({ ...TINY, sparsity: 0.9, seed: 2 });
    const snip = await service.searchAtInit({ ...TINY, method: 'snip', sparsity: 0.9, seed: 3 });
    const claim = await service.claim({ ticket: impTickets[2]!, iterations: 120, backend: 'wasm' });
    return {
      dbPath, ownerKeyPath, impRunId: imp.runId, impTickets,
      oneShotTicket: oneShot.tickets.at(-1)!.id, snipTicket: snip.tickets.at(-1)!.id,
      claimedTicket: claim.ticket.id, claimId: claim.claims[0]!.id,
    };
  } finally {
    service.close();
  }
}
