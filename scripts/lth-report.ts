// Prints the markdown tables of docs/results/lth-lenet.md, from a stored IMP run or from the JSON
// summary of a multi-seed search (`search imp --seeds 0,1 --json`, e.g. one run on the GPU machine):
//   node dist/scripts/lth-report.js --db lth.db [--run RUN]
//   node dist/scripts/lth-report.js --summary search.json
// Remaining weights, test accuracy at the early-stop iteration (minimum validation loss) and at the
// end, the early-stop iteration, and each control beside its ticket, all relative to the dense level.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { SearchSummary, TicketSummary } from '../core/api/schemas';
import { LabService } from '../core/service/lab-service';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { db: { type: 'string' }, run: { type: 'string' }, summary: { type: 'string' } } });
  if (values.summary) return seedsTable(JSON.parse(readFileSync(values.summary, 'utf8')) as SearchSummary);
  if (!values.db) throw new Error('usage: lth-report --db PATH [--run RUN] | --summary SEARCH.json');
  const service = new LabService({ dbPath: values.db });
  const runs = await service.listRuns({});
  const run = values.run ? runs.find((r) => r.id.startsWith(values.run!)) : runs.filter((r) => r.method === 'imp').at(-1);
  if (!run) throw new Error('no IMP run found');
  const all = await service.listTickets({ run: run.id });
  const finalAccuracy = async (t: TicketSummary) => {
    const d = await service.showTicket({ ticket: t.id });
    return (d.metrics as { final: { testAccuracy: number } }).final.testAccuracy;
  };
  const tickets = all.filter((t) => t.role === 'ticket').sort((a, b) => a.level - b.level);
  const dense = tickets[0]!;
  const p = (x: number) => (100 * x).toFixed(2);
  const signed = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}`;
  console.log(`Run ${run.id}: ${run.model} on ${run.dataset}, seed ${run.seed}, status ${run.status}, backend ${String(run.backend.tfBackend)}; hyper-parameters ${JSON.stringify(run.hparams.optimizer)}, ${String(run.hparams.iterations)} iterations per level, batch ${String(run.hparams.batchSize)}.\n`);
  console.log('| level | remaining weights | test acc. at early stop | vs dense (points) | early-stop iteration | vs dense | test acc. at end | random re-init control: test acc. at early stop | control vs ticket (points) | control early-stop iteration |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const t of tickets) {
    const control = all.find((c) => c.role === 'control' && c.parentId === t.id);
    const earlier = 1 - t.earlyStopIteration! / dense.earlyStopIteration!;
    console.log(
      `| ${t.level} | ${(100 * (1 - t.sparsity)).toFixed(1)}% | ${p(t.testAccuracy!)}% | ${t === dense ? '—' : signed(t.testAccuracy! - dense.testAccuracy!)} | ${t.earlyStopIteration} | ${
        t === dense ? "—" : earlier === 0 ? "same" : earlier > 0 ? `${(100 * earlier).toFixed(0)}% sooner` : `${(-100 * earlier).toFixed(0)}% later`
      } | ${p(await finalAccuracy(t))}% | ${control ? `${p(control.testAccuracy!)}%` : ''} | ${control ? signed(control.testAccuracy! - t.testAccuracy!) : ''} | ${control ? control.earlyStopIteration : ''} |`,
    );
  }
  service.close();
}

/** One row per level: the mean over seeds, with the range, of tickets and controls. */
function seedsTable(summary: SearchSummary): void {
  const runs = summary.seedRuns ?? [{ runId: summary.runId, seed: Number.NaN, status: summary.status, tickets: summary.tickets }];
  const levels = [...new Set(runs.flatMap((r) => r.tickets.map((t) => t.level)))].sort((a, b) => a - b);
  const pick = (level: number, role: string) => runs.map((r) => r.tickets.find((t) => t.level === level && t.role === role));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const accuracy = (ts: Array<TicketSummary | undefined>) => {
    const xs = ts.map((t) => 100 * t!.testAccuracy!);
    return `${mean(xs).toFixed(2)}% (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
  };
  const stops = (ts: Array<TicketSummary | undefined>) => ts.map((t) => t!.earlyStopIteration).join(', ');
  const denseAccuracy = mean(pick(0, 'ticket').map((t) => t!.testAccuracy!));
  console.log(`Runs ${runs.map((r) => `${r.runId} (seed ${r.seed}, ${r.status})`).join(', ')}; backend ${String(summary.backendInfo.tfBackend)}${summary.backendInfo.adapter ? ` on ${summary.backendInfo.adapter.device}` : ''}. Mean over ${runs.length} seeds, range in brackets; early-stop iterations per seed.\n`);
  console.log('| level | remaining weights | ticket: test acc. at early stop | vs dense (points) | ticket early-stop iterations | random re-init control: test acc. | control vs ticket (points) | control early-stop iterations |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const level of levels) {
    const tickets = pick(level, 'ticket');
    if (tickets.some((t) => !t)) continue;
    const controls = pick(level, 'control');
    const hasControl = controls.every((c) => c);
    const ticketMean = mean(tickets.map((t) => t!.testAccuracy!));
    const signed = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}`;
    console.log(
      `| ${level} | ${((100 * tickets[0]!.kept) / tickets[0]!.total).toFixed(1)}% | ${accuracy(tickets)} | ${level === 0 ? '—' : signed(ticketMean - denseAccuracy)} | ${stops(tickets)} | ${
        hasControl ? accuracy(controls) : ''
      } | ${hasControl ? signed(mean(controls.map((c) => c!.testAccuracy!)) - ticketMean) : ''} | ${hasControl ? stops(controls) : ''} |`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(`error: ${(error as Error).message}`);
  process.exitCode = 1;
});
