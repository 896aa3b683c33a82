// `ticket-lab merge FILE.db...`: folds task databases (a Slurm array's, one per task) into the
// catalogue, printing per file what was new, already there, remapped or refused.
import { basename } from 'node:path';
import { type ErrorCode, LabError } from '../api/errors';
import type { MergeCounts, MergeDatabasesRequest, MergeReport } from '../api/merge-schemas';
import type { CommandDef } from './commands';
import { table } from './format';

/** Some files were refused (the others merged): exits non-zero with the first refusal's code, after the report is out. */
class MergeRefusedError extends LabError {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const counts = (c: MergeCounts) => `${c.new} / ${c.skipped} / ${c.remapped}`;

export function mergeText(report: MergeReport): string {
  const rows = report.files.map((f) =>
    f.merged
      ? [basename(f.file), report.dryRun ? 'would merge' : 'merged', counts(f.counts.runs), counts(f.counts.tickets), counts(f.counts.claims), String(f.counts.weights.new)]
      : [basename(f.file), `refused (${f.refused!.code})`, '—', '—', '—', '—'],
  );
  const lines = [
    `${report.dryRun ? 'dry run, nothing written: ' : ''}${report.files.length} task database(s) into ${report.catalog}`,
    '',
    table(['file', 'result', 'runs', 'tickets', 'claims', 'new weights'], rows, [2, 3, 4, 5]),
    '',
    'runs, tickets, claims: new / skipped (already here) / remapped (their id was taken here by another row)',
  ];
  for (const f of report.files) {
    if (f.runsUpdated > 0) lines.push(`${basename(f.file)}: ${f.runsUpdated} run(s) already here finished in their task since: status and rewind point filled in`);
    if (f.remapped.length > 0) lines.push('', `remapped from ${basename(f.file)}:`, ...f.remapped.map((r) => `  ${r.table.padEnd(13)} ${r.from} → ${r.to}`));
  }
  const refused = report.files.filter((f) => f.refused);
  if (refused.length > 0) lines.push('', 'refused (nothing of these was written):', ...refused.map((f) => `  ${f.refused!.message}`));
  return lines.join('\n');
}

export const MERGE_COMMAND: CommandDef = {
  name: 'merge',
  summary: 'folds task databases (a Slurm sweep\'s, one per task) into this database, each in one transaction; tickets, runs, lineage and checkpoints keep their ids (again: a no-op)',
  positionals: ['FILE.db...'],
  options: [{ flag: 'dry-run', kind: 'boolean', sets: true, help: 'check every file and say what would be merged, writing nothing' }],
  async run(ctx, request, files) {
    const report = await ctx.api.mergeDatabases({ ...request, files } as MergeDatabasesRequest);
    ctx.out(ctx.json ? JSON.stringify(report, null, 2) : mergeText(report));
    const refused = report.files.filter((f) => f.refused);
    if (refused.length > 0) {
      const names = refused.map((f) => `${basename(f.file)} (${f.refused!.code})`).join(', ');
      throw new MergeRefusedError(refused[0]!.refused!.code, `${refused.length} of ${report.files.length} task database(s) refused: ${names}; the others were ${report.dryRun ? 'checked' : 'merged'}.`);
    }
  },
};
