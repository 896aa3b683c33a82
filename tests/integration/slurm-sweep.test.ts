// A sweep as a real Slurm job array: scripts/slurm-local.sh starts a one-node cluster (munged,
// slurmctld, slurmd from Debian's slurm-wlm) in a temporary folder; the built CLI plans a sweep,
// submits it with sbatch, follows it with squeue, resubmits it (finished tasks are skipped), and the
// task databases are merged (`ticket-lab merge`) into one catalogue whose tickets, lineage and metrics
// are checked.
//
// Starting the cluster is the probe: where the daemons cannot run (not installed, not root, a sandbox
// that forbids them), the test is skipped with the daemons' own reason printed, unless
// TICKET_LAB_REQUIRE_SLURM=1, which turns that into a failure. By hand: `npm run build`, then
// `npx vitest run tests/integration/slurm-sweep.test.ts` as root (scripts/system-deps.sh installs slurm-wlm and munge).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SweepPlanReport, SweepStatusReport, SweepSubmitReport } from '../../core/api/sweep-schemas';
import type { MergeReport } from '../../core/api/merge-schemas';
import type { TicketDetail, TicketSummary } from '../../core/api/schemas';
import { runCliProcess } from '../support/cli-process';
import { useTempFolder } from '../support/temp-folder';

const SCRIPT = join(__dirname, '..', '..', 'scripts', 'slurm-local.sh');
const temp = useTempFolder('ticket-lab-slurm-sweep-');

/** Starts the cluster; the reason in the daemons' words when it cannot. */
function startCluster(): { env: NodeJS.ProcessEnv; stop: () => void } | { reason: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ticket-lab-slurm-'));
  const stop = () => void spawnSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore', timeout: 30_000 });
  const started = spawnSync('bash', [SCRIPT, 'start', dir], { encoding: 'utf8', timeout: 90_000 });
  const conf = /^export SLURM_CONF=(.+)$/m.exec(started.stdout ?? '')?.[1];
  if (started.status === 0 && conf) return { env: { SLURM_CONF: conf }, stop };
  stop();
  return { reason: (started.stderr ?? '').trim() || started.error?.message || `slurm-local.sh exited with ${started.status ?? started.signal}` };
}

const cluster = startCluster();
afterAll(() => {
  if ('stop' in cluster) cluster.stop();
});

const BUDGET = ['--iterations', '20', '--eval-every', '10', '--validation-size', '500', '--backend', 'wasm'];

async function cli(args: string[]): Promise<string> {
  const env = 'env' in cluster ? cluster.env : {};
  const result = await runCliProcess(args, env);
  expect(result.code, `ticket-lab ${args.join(' ')}\n${result.stderr}`).toBe(0);
  return result.stdout;
}

async function status(dir: string): Promise<SweepStatusReport> {
  return JSON.parse(await cli(['--json', 'sweep', 'status', dir])) as SweepStatusReport;
}

/** Polls `sweep status` until no task is pending or running. */
async function settle(dir: string, timeoutMs: number): Promise<SweepStatusReport> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const report = await status(dir);
    if (report.totals.pending + report.totals.running === 0) return report;
    if (Date.now() > deadline) throw new Error(`sweep ${dir} still busy after ${timeoutMs / 1000} s: ${JSON.stringify(report.totals)}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Polls squeue until every task of a job has ended (COMPLETED, FAILED, ...). */
async function jobEnded(jobId: string, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const env = { ...process.env, ...('env' in cluster ? cluster.env : {}) };
    const states = spawnSync('squeue', ['-h', '-r', '-t', 'all', '-j', jobId, '-o', '%T'], { encoding: 'utf8', env }).stdout.split('\n').filter(Boolean);
    if (states.length > 0 && states.every((s) => !/PENDING|RUNNING|CONFIGURING|COMPLETING/.test(s))) return states;
    if (Date.now() > deadline) throw new Error(`job ${jobId} still busy after ${timeoutMs / 1000} s: ${states.join(', ')}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('a sweep on a real Slurm cluster', () => {
  it('runs as a job array, resumes by skipping finished tasks, reports a failed task with its error, and merges into one catalogue', async (ctx) => {
    if ('reason' in cluster) {
      const why = `the Slurm daemons cannot run here: ${cluster.reason}`;
      if (process.env.TICKET_LAB_REQUIRE_SLURM === '1') throw new Error(why);
      console.warn(`slurm-sweep.test.ts skipped: ${why}`);
      ctx.skip(why);
    }
    const folder = temp();
    const dir = join(folder, 'sweep');
    const broken = join(folder, 'broken');

    // Plan: 2 methods × 1 sparsity × 2 seeds; the same plan again keeps the folder.
    const planArgs = ['sweep', 'plan', '--methods', 'oneshot,snip', '--sparsities', '0.9', '--seeds', '0,1', '--model', 'lenet-300-100', '--dataset', 'mnist', ...BUDGET, '--parallel', '2', '--time', '10', '-o', dir];
    const plan = JSON.parse(await cli(['--json', ...planArgs])) as SweepPlanReport;
    expect(plan).toMatchObject({ tasks: 4, created: true, byMethod: { oneshot: 2, snip: 2 } });
    expect(readFileSync(join(dir, 'sweep.sbatch'), 'utf8')).toMatch(/^#SBATCH --array=0-3%2$/m);
    // A one-task sweep whose data is missing: its task fails, and status must say why.
    await cli(['sweep', 'plan', '--methods', 'random', '--sparsities', '0.5', '--seeds', '0', '--model', 'lenet-300-100', '--dataset', 'mnist', ...BUDGET, '--data-dir', join(folder, 'no-such-mnist'), '-o', broken]);

    const submitted = JSON.parse(await cli(['--json', 'sweep', 'submit', dir])) as SweepSubmitReport;
    expect(submitted.jobId).toMatch(/^\d+$/);
    expect(submitted.array).toBe('0-3%2');
    await cli(['sweep', 'submit', broken]);

    const t0 = Date.now();
    const first = await settle(dir, 300_000);
    const seconds = (Date.now() - t0) / 1000;
    expect(first.tasks.map((t) => [t.state, t.error]), JSON.stringify(first.tasks, null, 2)).toEqual(Array(4).fill(['done', null]));
    expect(first.tasks.map((t) => t.jobId)).toEqual([0, 1, 2, 3].map((i) => `${submitted.jobId}_${i}`));
    // This cluster keeps no accounting: status says it rests on squeue and the files.
    expect(first.timing.map((t) => t.method).sort()).toEqual(['oneshot', 'snip']);
    console.log(`slurm-sweep: 4 tasks done ${seconds.toFixed(1)} s after submission; mean per task ${first.timing.map((t) => `${t.method} ${t.meanSeconds} s`).join(', ')}`);

    const failed = await settle(broken, 120_000);
    expect(failed.tasks[0]).toMatchObject({ state: 'failed' });
    expect(failed.tasks[0]!.error).toMatch(/no-such-mnist|MNIST/i);
    const text = (await runCliProcess(['sweep', 'status', broken], 'env' in cluster ? cluster.env : {})).stdout;
    expect(text).toMatch(/failed/);

    // Resubmitting the whole array: every task finds its result and exits at once; nothing is redone.
    const markers = [0, 1, 2, 3].map((i) => readFileSync(join(dir, 'tasks', `task-${i}.done`), 'utf8'));
    const again = JSON.parse(await cli(['--json', 'sweep', 'submit', dir])) as SweepSubmitReport;
    expect(again.jobId).not.toBe(submitted.jobId);
    expect(await jobEnded(again.jobId!, 120_000)).toEqual(Array(4).fill('COMPLETED'));
    for (let i = 0; i < 4; i++) {
      expect(readFileSync(join(dir, 'tasks', `task-${i}.done`), 'utf8')).toBe(markers[i]);
      expect(readFileSync(join(dir, 'logs', `task-${i}.out`), 'utf8')).toMatch(/is already done: .*; skipped\./);
    }
    const second = await status(dir);
    expect(second.totals.done).toBe(4);
    expect(second.jobIds).toEqual([submitted.jobId, again.jobId]);
    expect(JSON.parse(await cli(['--json', 'sweep', 'submit', dir, '--unfinished']))).toMatchObject({ jobId: null, tasks: 0 });
    // Planning the same sweep again keeps its results.
    expect(JSON.parse(await cli(['--json', ...planArgs]))).toMatchObject({ created: false, done: 4 });

    // Merge the four task databases into one catalogue.
    const catalog = join(folder, 'lab.db');
    const files = [0, 1, 2, 3].map((i) => join(dir, 'tasks', `task-${i}.db`));
    const merged = JSON.parse(await cli(['--db', catalog, '--json', 'merge', ...files])) as MergeReport;
    expect(merged.files.map((f) => [f.merged, f.counts.runs.new, f.counts.tickets.remapped])).toEqual(files.map(() => [true, 1, 0]));
    expect(existsSync(catalog)).toBe(true);
    const remerged = JSON.parse(await cli(['--db', catalog, '--json', 'merge', ...files])) as MergeReport;
    expect(remerged.files.map((f) => [f.counts.runs.new, f.counts.runs.skipped, f.counts.tickets.new])).toEqual(files.map(() => [0, 1, 0]));

    const tickets = JSON.parse(await cli(['--db', catalog, '--json', 'tickets'])) as TicketSummary[];
    const fromMarkers = first.tasks.map((t) => JSON.parse(readFileSync(join(dir, 'tasks', `task-${t.index}.done`), 'utf8')) as { runId: string; tickets: Array<{ id: string }> });
    // Every ticket of every task, under its own id: one-shot's dense parent and pruned ticket, SNIP's pruned ticket.
    expect(tickets.map((t) => t.id).sort()).toEqual(fromMarkers.flatMap((m) => m.tickets.map((t) => t.id)).sort());
    expect(new Set(tickets.map((t) => t.runId))).toEqual(new Set(fromMarkers.map((m) => m.runId)));
    const pruned = tickets.filter((t) => t.sparsity > 0);
    expect(pruned).toHaveLength(4);
    for (const t of pruned) {
      expect(t.sparsity).toBeCloseTo(0.9, 3);
      expect(t.testAccuracy).toBeGreaterThan(0.1);
      expect(t.testAccuracy).toBeLessThanOrEqual(1);
    }
    const dense = tickets.filter((t) => t.sparsity === 0);
    expect(dense).toHaveLength(2);
    for (const t of dense) expect(t.testAccuracy).toBeGreaterThan(0.1);

    // Lineage: each one-shot ticket descends from its own run's dense network.
    const oneShot = pruned.filter((t) => t.parentId !== null);
    expect(oneShot).toHaveLength(2);
    for (const t of oneShot) {
      const detail = JSON.parse(await cli(['--db', catalog, '--json', 'show', t.id])) as TicketDetail;
      const parent = dense.find((d) => d.id === t.parentId)!;
      expect(parent.runId).toBe(t.runId);
      expect(detail.lineage.ancestors.map((a) => a.id)).toEqual([parent.id]);
      expect(detail.run.status).toBe('completed');
      expect(detail.curve.length).toBeGreaterThan(0);
      expect(detail.layers.length).toBeGreaterThan(0);
    }
    // The runs kept their seeds: two per method, seeds 0 and 1.
    const runs = JSON.parse(await cli(['--db', catalog, '--json', 'runs'])) as Array<{ method: string; seed: number; status: string }>;
    expect(runs.map((r) => `${r.method}:${r.seed}:${r.status}`).sort()).toEqual(['oneshot:0:completed', 'oneshot:1:completed', 'snip:0:completed', 'snip:1:completed']);
  }, 420_000);
});
