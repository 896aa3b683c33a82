// Section "methods": the wall time of each ticket-search method to a 90 % LeNet-300-100 ticket on
// MNIST, through LabService as the CLI runs it (request to stored ticket, in a temp database), on
// the backend a search picks here. Every method trains its final ticket `iterations` steps (GraNet
// and GMP prune during those steps, on autodiff since their masks change); IMP
// needs 10 levels of them to pass 89 % with the LTH rates, one-shot a dense training first; the
// jackpot row is its score search alone, on one-shot's dense network. The accuracy column is the ticket's test
// accuracy at early stop (at this short schedule, a sanity check, not a result: methods.md has those).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SearchSummary } from '../core/api/schemas';
import { LabService } from '../core/service/lab-service';
import { seconds } from './stopwatch';
import { type Table, fixed, percent } from './text-table';
import { MODEL_ID } from './lenet-ticket';

export interface MethodsPlan {
  iterations: number;
  /** Steps of the jackpot's score search. */
  jackpotIterations: number;
}

export interface MethodTiming {
  method: string;
  seconds: number;
  sparsity: number;
  testAccuracy: number | null;
  backend: string;
  /** Training steps of the whole search (all levels and phases; the jackpot: score steps), the work the time buys. */
  trainingSteps: number;
}

const TARGET = 0.9;
/** LTH layer-wise rates pass 89 % at level 10 (fc 0.8^10 = 10.7 % kept, output 0.9^10 = 35 %). */
const IMP_LEVELS = 10;

export async function measureMethods(plan: MethodsPlan, seed: number, log: (line: string) => void): Promise<MethodTiming[]> {
  const folder = mkdtempSync(join(tmpdir(), 'ticket-lab-bench-methods-'));
  const service = new LabService({ dbPath: join(folder, 'lab.db') });
  const common = { model: MODEL_ID, dataset: 'mnist', iterations: plan.iterations, evalEvery: plan.iterations, seed };
  const rows: MethodTiming[] = [];
  const time = async (method: string, steps: number, run: () => Promise<SearchSummary>) => {
    log(`methods: ${method} to a ${percent(TARGET, 0)} ticket`);
    const began = performance.now();
    const summary = await run();
    const ticket = summary.tickets.filter((t) => t.role === 'ticket').at(-1)!;
    rows.push({ method, seconds: seconds(began), sparsity: ticket.sparsity, testAccuracy: ticket.testAccuracy, backend: summary.backend, trainingSteps: steps });
    return summary;
  };
  try {
    for (const method of ['random', 'erk', 'snip', 'grasp', 'synflow'] as const) {
      await time(method, plan.iterations, () => service.searchAtInit({ ...common, method, sparsity: TARGET }));
    }
    // Gradual pruning during one training run; the quick plan's short runs need a Δt that fits two updates in the window.
    const updateEvery = Math.max(1, Math.floor(plan.iterations / 64));
    await time('GraNet (dense-to-sparse)', plan.iterations, () => service.searchGradual({ ...common, sparsity: TARGET, updateEvery }));
    await time('GMP (no regrowth)', plan.iterations, () => service.searchGradual({ ...common, sparsity: TARGET, regrow: false, updateEvery }));
    const oneShot = await time('one-shot magnitude', 2 * plan.iterations, () => service.searchOneShot({ ...common, sparsity: TARGET, scope: 'global' }));
    // On the dense network one-shot trained: the row is the jackpot's own search, no retraining.
    await time('lottery jackpot (search only)', plan.jackpotIterations, () =>
      service.searchOneShot({ fromTicket: oneShot.tickets[0]!.id, sparsity: TARGET, criterion: 'jackpot', retrain: false, searchIterations: plan.jackpotIterations }),
    );
    await time('IMP (LTH rates)', (IMP_LEVELS + 1) * plan.iterations, () => service.searchImp({ ...common, levels: IMP_LEVELS }));
  } finally {
    service.close();
    rmSync(folder, { recursive: true, force: true });
  }
  return rows;
}

export function methodsTable(rows: MethodTiming[], plan: MethodsPlan): Table {
  return {
    title: `Methods: wall time to a ${percent(TARGET, 0)} LeNet-300-100 ticket on MNIST, ${plan.iterations} training iterations per trained network`,
    measures: [
      'Timed: LabService from request to stored ticket (data, set-up, scoring, every training, evaluation, SQLite), as',
      '`ticket-lab search <method>` runs it, in a temp database. IMP: 10 levels; one-shot: dense + retraining; the',
      `jackpot: ${plan.jackpotIterations} steps of score search on one-shot's dense network (not counted), no retraining.`,
    ],
    columns: [
      { header: 'method' },
      { header: 'backend' },
      { header: 'wall s', align: 'right' },
      { header: 'training steps', align: 'right' },
      { header: 'sparsity', align: 'right' },
      { header: 'test acc', align: 'right' },
    ],
    rows: rows.map((r) => [r.method, r.backend, fixed(r.seconds, 1), String(r.trainingSteps), percent(r.sparsity, 2), r.testAccuracy === null ? '—' : percent(r.testAccuracy, 2)]),
    notes: ['test acc: at early stop of the final training (the jackpot: its mask on the dense weights, not retrained); at this schedule a sanity check only.'],
  };
}
