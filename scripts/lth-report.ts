// Prints the markdown table of docs/results/lth-lenet.md from a stored IMP run:
//   node dist/scripts/lth-report.js --db lth.db [--run RUN]
// Remaining weights, test accuracy at the early-stop iteration (minimum validation loss) and at the
// end, the early-stop iteration, and each control beside its ticket, all relative to the dense level.
import { parseArgs } from 'node:util';
import type { TicketSummary } from '../core/api/schemas';
import { LabService } from '../core/service/lab-service';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { db: { type: 'string' }, run: { type: 'string' } } });
  if (!values.db) throw new Error('usage: lth-report --db PATH [--run RUN]');
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

main().catch((error: unknown) => {
  console.error(`error: ${(error as Error).message}`);
  process.exitCode = 1;
});
