// `ticket-lab sweep plan|submit|status|run-task`: sweeps as Slurm job arrays (DESIGN.md, "Beyond one
// machine"; docs/scale-out.md). Each array task runs `sweep run-task`, a headless search into its own
// SQLite file; `ticket-lab merge` folds the files into one catalogue afterwards.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidRequestError } from '../api/errors';
import type { SweepPlanReport, SweepPlanRequest, SweepStatusReport } from '../api/sweep-schemas';
import { planSweep } from '../sweep/plan';
import { sweepStatus } from '../sweep/status';
import { submitSweep } from '../sweep/submit';
import { runTask } from '../sweep/task';
import { SWEEP_SBATCH, readDone, writeSweep } from '../sweep/sweep-folder';
import type { CommandDef, OptionDef } from './commands';
import { duration, pct, table } from './format';

/** This CLI as the nodes will run it: this Node and this build's absolute path, or `ticket-lab` on PATH when not run from a build. */
function defaultCli(): string[] {
  const script = join(__dirname, 'ticket-lab.js');
  return existsSync(script) ? [process.execPath, script] : ['ticket-lab'];
}

const PLAN_OPTIONS: OptionDef[] = [
  { flag: 'methods', kind: 'string-list', help: 'imp, oneshot, jackpot, random, erk, snip, grasp, synflow, granet, gmp (comma-separated)' },
  { flag: 'sparsities', kind: 'number-list', help: 'target sparsities, e.g. 0.9,0.98 (IMP: one lineage per seed passes them all)' },
  { flag: 'seeds', kind: 'int-list', help: 'seeds, e.g. 0,1,2' },
  { flag: 'model', kind: 'string', help: 'a zoo model: lenet-300-100 | conv-2 | conv-4 | conv-6 | resnet-20 | ...' },
  { flag: 'dataset', kind: 'string', help: 'mnist | fashion-mnist | cifar10' },
  { flag: 'output', short: 'o', field: 'dir', kind: 'string', help: 'the sweep folder to write (new or empty; the same sweep again keeps its results)' },
  { flag: 'levels', kind: 'int', help: 'IMP levels (default: the first whose sparsity reaches the highest target at the model\'s rates)' },
  { flag: 'iterations', kind: 'int', help: 'training iterations of each search (default: the model\'s LTH schedule)' },
  { flag: 'epochs', kind: 'number', help: 'or: training length in epochs' },
  { flag: 'batch', field: 'batchSize', kind: 'int', help: 'batch size (default: the model\'s)' },
  { flag: 'eval-every', kind: 'int', help: 'validate every N iterations (default 100)' },
  { flag: 'validation-size', kind: 'int', help: 'training examples held out for validation (default 5000)' },
  { flag: 'data-dir', kind: 'string', help: 'the dataset\'s folder as the cluster\'s nodes see it' },
  { flag: 'cli', kind: 'string', help: 'the command that runs ticket-lab on the nodes (default: this node binary and this CLI\'s absolute path), e.g. ticket-lab' },
  { flag: 'job-name', kind: 'string', help: 'Slurm job name (default ticket-lab-sweep)' },
  { flag: 'time', kind: 'string', help: 'wall time per task, e.g. 30 or 02:00:00 (default: the partition\'s)' },
  { flag: 'gpus', kind: 'int', help: 'GPUs per task: --gres=gpu:N (default none)' },
  { flag: 'cpus-per-task', kind: 'int', help: 'CPUs per task; also the training threads on wasm (default: Slurm\'s, 1)' },
  { flag: 'mem', kind: 'string', help: 'memory per node, e.g. 8G' },
  { flag: 'partition', kind: 'string', help: 'Slurm partition' },
  { flag: 'account', kind: 'string', help: 'Slurm account' },
  { flag: 'qos', kind: 'string', help: 'Slurm quality of service' },
  { flag: 'parallel', kind: 'int', help: 'at most K tasks at once: --array=0-(N-1)%K' },
];

function planText(r: SweepPlanReport): string {
  const byMethod = Object.entries(r.byMethod).map(([m, n]) => `${m} ${n}`).join(', ');
  const imp = r.imp ? `\nIMP: ${r.imp.levels} levels per seed, the last at ${pct(r.imp.sparsity)} sparsity.` : '';
  const head = r.created
    ? `Planned ${r.tasks} tasks in ${r.dir} (${byMethod}).`
    : `${r.dir} already holds this sweep: ${r.tasks} tasks, ${r.done} done, kept; sweep.json and sweep.sbatch rewritten.`;
  return `${head}${imp}\n  sweep.json    the plan\n  tasks.jsonl   one task per line (its search and ticket-lab arguments)\n  sweep.sbatch  the job array\nSubmit:  ticket-lab sweep submit ${r.dir}\nFollow:  ticket-lab sweep status ${r.dir}`;
}

function statusText(r: SweepStatusReport, all: boolean): string {
  const shown = all || r.tasks.length <= 40 ? r.tasks : r.tasks.filter((t) => t.state !== 'done');
  const rows = shown.map((t) => [
    String(t.index),
    t.method,
    String(t.sparsity),
    String(t.seed),
    t.state,
    t.jobId ?? '—',
    t.state === 'done'
      ? `${t.runId}, ${t.tickets} tickets, ${pct(t.testAccuracy)} test, ${duration(t.seconds ?? NaN)}`
      : (t.error ?? t.slurmState ?? ''),
  ]);
  const lines = [table(['task', 'method', 'sparsity', 'seed', 'state', 'slurm job', 'result / last error'], rows, [0, 2, 3])];
  if (shown.length < r.tasks.length) lines.push(`(${r.tasks.length - shown.length} done tasks not shown: --all shows them)`);
  const totals = Object.entries(r.totals).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`).join(', ');
  lines.push('', `${r.tasks.length} tasks: ${totals}.`);
  if (r.timing.length > 0) lines.push(`Mean wall time per task: ${r.timing.map((t) => `${t.method} ${t.meanSeconds.toFixed(1)} s (${t.tasks})`).join(', ')}.`);
  if (r.slurm.note) lines.push(`Note: ${r.slurm.note}.`);
  if (r.totals.done === r.tasks.length) lines.push(`All done: ticket-lab --db LAB.db merge ${r.dir}/tasks/task-*.db`);
  return lines.join('\n');
}

export const SWEEP_COMMANDS: CommandDef[] = [
  {
    name: 'sweep plan',
    summary: 'writes a sweep (methods × sparsities × seeds, one search each into its own SQLite file) and its Slurm job array',
    positionals: [],
    usesBackend: true,
    options: PLAN_OPTIONS,
    async run(ctx, request) {
      if (typeof request.dir !== 'string') throw new InvalidRequestError('sweep plan needs -o DIR, the sweep folder to write.');
      const dir = resolve(request.dir);
      const planned = planSweep({ ...request, dir } as SweepPlanRequest, defaultCli());
      const { created } = writeSweep(dir, planned);
      const byMethod: Record<string, number> = {};
      for (const t of planned.tasks) byMethod[t.method] = (byMethod[t.method] ?? 0) + 1;
      const report: SweepPlanReport = {
        dir,
        tasks: planned.tasks.length,
        byMethod,
        created,
        done: planned.tasks.filter((t) => readDone(dir, t.index)).length,
        sbatch: join(dir, SWEEP_SBATCH),
        imp: planned.sweep.imp,
      };
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : planText(report));
    },
  },
  {
    name: 'sweep submit',
    summary: 'submits a sweep\'s job array with sbatch (tasks already done exit at once, so submitting again resumes)',
    positionals: ['DIR'],
    options: [{ flag: 'unfinished', kind: 'boolean', sets: true, help: 'ask only for the tasks without a result (default: the whole array)' }],
    async run(ctx, request, [dir]) {
      const report = await submitSweep(resolve(dir!), { unfinished: request.unfinished === true });
      if (ctx.json) ctx.out(JSON.stringify(report, null, 2));
      else if (report.jobId === null) ctx.out(`Every task of ${report.dir} is done: nothing to submit.`);
      else ctx.out(`Submitted job ${report.jobId}: array ${report.array} (${report.tasks} tasks).\nFollow: ticket-lab sweep status ${report.dir}`);
    },
  },
  {
    name: 'sweep status',
    summary: 'a sweep\'s tasks: done, running, pending or failed with the last error, from the task files, squeue and sacct',
    positionals: ['DIR'],
    options: [{ flag: 'all', kind: 'boolean', sets: true, help: 'list done tasks too when there are more than 40' }],
    async run(ctx, request, [dir]) {
      const report = await sweepStatus(resolve(dir!));
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : statusText(report, request.all === true));
    },
  },
  {
    name: 'sweep run-task',
    summary: 'runs one task of a sweep (what each array task does); a task whose result exists is skipped, a stopped IMP task resumes',
    positionals: ['DIR', 'INDEX'],
    long: true,
    stopping: 'stopping the task at its next safe point (an IMP task keeps its finished levels and resumes when run again)',
    options: [],
    async run(ctx, _request, [dir, index]) {
      if (!/^\d+$/.test(index!)) throw new InvalidRequestError(`sweep run-task: INDEX is a task number (0, 1, ...), got '${index}'.`);
      const report = await runTask(resolve(dir!), Number(index), {
        signal: ctx.signal,
        ...(ctx.progress ? { onProgress: ctx.progress } : {}),
        onWarning: (message) => ctx.err(`warning: ${message}`),
        log: (line) => ctx.err(line),
      });
      if (ctx.json) ctx.out(JSON.stringify(report, null, 2));
    },
  },
];
