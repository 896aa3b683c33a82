// Runs every ticket-search method on one model and dataset at the given sparsities and seeds, with
// the same training of the final ticket (T iterations from its starting weights), and prints the
// markdown table of docs/results/methods.md: test accuracy at early stop, mean ± spread (half the
// range) over seeds, and the wall time of each search. Every run goes into one database, so any
// row can be looked at again with `ticket-lab show`.
//
//   node dist/scripts/methods-table.js --db methods.db [--model lenet-300-100] [--dataset mnist]
//     [--sparsities 0.9,0.98] [--seeds 0,1,2] [--iterations 5000] [--backend wasm] [--methods a,b]
//     [--imp-rate 0.2 --imp-scope global] [--json results.json]
//
// Methods: the pruning-at-initialisation ones (random, erk, snip, grasp, synflow: prune θ0, train T),
// gradual pruning during the same T iterations (granet, gmp: dense-to-sparse, reported at the end),
// one-shot magnitude (train dense T, prune globally, retrain T from θ0), without weight training
// after the dense network (omp-no-retrain: its magnitude mask; jackpot: the lottery jackpot's
// searched mask, default search), and IMP (LTH layer-wise
// rates, T per level; the level whose sparsity is nearest each target is reported, with its
// sparsity). IMP's seeds are searched together, one stack per level.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { SearchSummary, TicketSummary } from '../core/api/schemas';
import { PRUNE_AT_INIT_METHODS } from '../core/api/schemas';
import { LabService } from '../core/service/lab-service';

interface Row {
  method: string;
  target: number;
  seed: number;
  sparsity: number;
  testAccuracy: number;
  seconds: number;
  runId: string;
  ticketId: string;
}

const list = (value: string, parse: (x: string) => number = Number) => value.split(',').map((x) => parse(x.trim()));

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      db: { type: 'string' },
      model: { type: 'string', default: 'lenet-300-100' },
      dataset: { type: 'string', default: 'mnist' },
      sparsities: { type: 'string', default: '0.9,0.98' },
      seeds: { type: 'string', default: '0,1,2' },
      iterations: { type: 'string', default: '5000' },
      backend: { type: 'string', default: 'auto' },
      methods: { type: 'string', default: [...PRUNE_AT_INIT_METHODS, 'oneshot-magnitude', 'granet', 'gmp', 'imp'].join(',') },
      'imp-rate': { type: 'string' },
      'imp-scope': { type: 'string', default: 'layer' },
      json: { type: 'string' },
    },
  });
  if (!values.db) throw new Error('usage: methods-table --db PATH [options]');
  const targets = list(values.sparsities);
  const seeds = list(values.seeds);
  const iterations = Number(values.iterations);
  const methods = values.methods.split(',');
  const common = { model: values.model, dataset: values.dataset, iterations, backend: values.backend as 'auto' };
  const service = new LabService({ dbPath: values.db });
  const rows: Row[] = [];
  const timed = async (run: () => Promise<SearchSummary>) => {
    const began = performance.now();
    const summary = await run();
    return { summary, seconds: (performance.now() - began) / 1000 };
  };
  const row = (method: string, target: number, seed: number, t: TicketSummary, seconds: number, runId: string): Row => ({
    method, target, seed, sparsity: t.sparsity, testAccuracy: t.testAccuracy!, seconds, runId, ticketId: t.id,
  });
  const say = (r: Row) => process.stderr.write(`${r.method} s=${r.target} seed ${r.seed}: ${(100 * r.testAccuracy).toFixed(2)}% at ${(100 * r.sparsity).toFixed(2)}% sparsity, ${r.seconds.toFixed(1)} s\n`);

  for (const target of targets) {
    for (const seed of seeds) {
      for (const method of methods.filter((m) => (PRUNE_AT_INIT_METHODS as readonly string[]).includes(m))) {
        const { summary, seconds } = await timed(() => service.searchAtInit({ ...common, method: method as (typeof PRUNE_AT_INIT_METHODS)[number], sparsity: target, seed }));
        rows.push(row(method, target, seed, summary.tickets[0]!, seconds, summary.runId));
        say(rows.at(-1)!);
      }
      for (const method of methods.filter((m) => m === 'granet' || m === 'gmp')) {
        // Dense-to-sparse, pruning over the first half of the same T iterations (GraNet's default window).
        const { summary, seconds } = await timed(() => service.searchGradual({ ...common, sparsity: target, regrow: method === 'granet', seed }));
        rows.push(row(method, target, seed, summary.tickets[0]!, seconds, summary.runId));
        say(rows.at(-1)!);
      }
      if (methods.includes('oneshot-magnitude')) {
        const { summary, seconds } = await timed(() => service.searchOneShot({ ...common, sparsity: target, scope: 'global', seed }));
        rows.push(row('oneshot-magnitude', target, seed, summary.tickets.at(-1)!, seconds, summary.runId));
        say(rows.at(-1)!);
      }
    }
  }
  if (methods.includes('jackpot') || methods.includes('omp-no-retrain')) {
    // Without weight training: one dense network per seed (T iterations), then at each sparsity its
    // one-shot global magnitude mask and the lottery jackpot's searched mask, neither retrained.
    for (const seed of seeds) {
      let denseId: string | undefined;
      let denseSeconds = 0;
      for (const target of targets) {
        const { summary, seconds } = await timed(() =>
          denseId ? service.searchOneShot({ fromTicket: denseId, sparsity: target, scope: 'global', retrain: false, backend: common.backend }) : service.searchOneShot({ ...common, sparsity: target, scope: 'global', seed, retrain: false }),
        );
        // The first call trains the dense network too: every row's cost includes that training.
        const cost = denseId ? seconds + denseSeconds : seconds;
        if (!denseId) {
          denseId = summary.tickets[0]!.id;
          denseSeconds = seconds;
        }
        if (methods.includes('omp-no-retrain')) {
          rows.push(row('omp-no-retrain', target, seed, summary.tickets.at(-1)!, cost, summary.runId));
          say(rows.at(-1)!);
        }
        if (methods.includes('jackpot')) {
          const jackpot = await timed(() => service.searchOneShot({ fromTicket: denseId!, sparsity: target, criterion: 'jackpot', retrain: false, backend: common.backend }));
          // The search's cost includes the dense training it starts from.
          rows.push(row('jackpot', target, seed, jackpot.summary.tickets[0]!, jackpot.seconds + denseSeconds, jackpot.summary.runId));
          say(rows.at(-1)!);
        }
      }
    }
  }
  if (methods.includes('imp')) {
    // Enough levels to pass the sparsest target: by default fc layers lose 20 % per level, the output 10 %.
    const impRate = values['imp-rate'] !== undefined ? Number(values['imp-rate']) : undefined;
    const scope = values['imp-scope'] === 'global' ? 'global' : 'layer';
    const densest = Math.min(...targets.map((s) => 1 - s));
    const levels = Math.ceil(Math.log(densest) / Math.log(1 - (impRate ?? 0.2))) + 1;
    const { summary, seconds } = await timed(() => service.searchImp({ ...common, levels, seeds, scope, ...(impRate !== undefined ? { rate: impRate } : {}) }));
    const runs = summary.seedRuns ?? [{ runId: summary.runId, seed: seeds[0]!, status: summary.status, tickets: summary.tickets }];
    for (const target of targets) {
      for (const run of runs) {
        const nearest = run.tickets.filter((t) => t.role === 'ticket').reduce((a, b) => (Math.abs(b.sparsity - target) < Math.abs(a.sparsity - target) ? b : a));
        // The whole lineage up to that level is the search's cost: its share of the stacked run's time.
        rows.push(row('imp', target, run.seed, nearest, (seconds * (nearest.level + 1)) / (levels + 1) / runs.length, run.runId));
        say(rows.at(-1)!);
      }
    }
  }
  service.close();
  if (values.json) writeFileSync(values.json, `${JSON.stringify({ ...common, seeds, targets, rows }, null, 2)}\n`);
  printTable(rows, targets);
}

function printTable(rows: Row[], targets: number[]): void {
  const methods = [...new Set(rows.map((r) => r.method))];
  const stat = (xs: number[]) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    return { mean, spread: (Math.max(...xs) - Math.min(...xs)) / 2 };
  };
  console.log(`| method | ${targets.map((s) => `${(100 * s).toFixed(0)} %: test acc. (mean ± half-range) | sparsity | search s`).join(' | ')} |`);
  console.log(`|---|${targets.map(() => '---:|---:|---:').join('|')}|`);
  for (const method of methods) {
    const cells = targets.map((target) => {
      const mine = rows.filter((r) => r.method === method && r.target === target);
      if (mine.length === 0) return '— | — | —';
      const acc = stat(mine.map((r) => 100 * r.testAccuracy));
      const sparsity = stat(mine.map((r) => 100 * r.sparsity));
      const seconds = stat(mine.map((r) => r.seconds));
      return `${acc.mean.toFixed(2)} ± ${acc.spread.toFixed(2)} (n=${mine.length}) | ${sparsity.mean.toFixed(2)} % | ${seconds.mean.toFixed(0)}`;
    });
    console.log(`| ${method} | ${cells.join(' | ')} |`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
