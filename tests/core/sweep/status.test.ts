// `sweep status` and `sweep submit` against Slurm's answers (a fake squeue, sacct and sbatch here; the
// real ones in tests/integration/slurm-sweep.test.ts): a .done marker wins, Slurm's live states come
// next, a failure is told by its .error marker or by Slurm's state and the task's log.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planSweep } from '../../../core/sweep/plan';
import { type CommandResult, type RunProgram, SlurmCommandError, SlurmUnavailableError, expandIndices, parseSacct, parseSqueue, runProgram } from '../../../core/sweep/slurm';
import { sweepStatus } from '../../../core/sweep/status';
import { submitSweep } from '../../../core/sweep/submit';
import { type DoneMarker, addSubmission, logPath, markerPath, writeDone, writeError, writeSweep } from '../../../core/sweep/sweep-folder';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-sweep-status-');

let folders = 0;
/** A planned sweep of 6 tasks: oneshot, snip, random × seeds 0, 1. */
function sweepFolder(): string {
  const dir = join(temp(), `sweep-${folders++}`);
  writeSweep(dir, planSweep({ dir, methods: ['oneshot', 'snip', 'random'], sparsities: [0.9], seeds: [0, 1], model: 'lenet-300-100', dataset: 'mnist', parallel: 2 }, ['ticket-lab']));
  return dir;
}

function done(index: number, seconds: number, method: DoneMarker['method'] = 'oneshot'): DoneMarker {
  return {
    index, method, sparsity: 0.9, seed: index % 2, runId: `run_${index}`, status: 'completed', seconds, how: 'searched', backend: 'wasm', host: 'node1', slurmJobId: `10_${index}`, finishedAt: '2026-11-30T00:00:00Z',
    tickets: [
      { id: `tk_d${index}`, parentId: null, level: 0, role: 'ticket', method: 'dense', sparsity: 0, testAccuracy: 0.97 },
      { id: `tk_p${index}`, parentId: `tk_d${index}`, level: 1, role: 'ticket', method: 'oneshot', sparsity: 0.9, testAccuracy: 0.95 },
    ],
  };
}

/** A fake Slurm: answers by program name; records each call. */
function fakeSlurm(answers: Partial<Record<string, CommandResult | Error>>): { run: RunProgram; calls: string[][] } {
  const calls: string[][] = [];
  const run: RunProgram = async (program, args) => {
    calls.push([program, ...args]);
    const answer = answers[program];
    if (answer === undefined) throw new Error(`unexpected call: ${program} ${args.join(' ')}`);
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { run, calls };
}

const ok = (stdout: string): CommandResult => ({ code: 0, stdout, stderr: '' });
const NO_ACCOUNTING: CommandResult = { code: 1, stdout: '', stderr: 'Slurm accounting storage is disabled\n' };

describe('sweepStatus', () => {
  it('tells done, running, pending and failed tasks apart, with the failing task\'s last error', async () => {
    const dir = sweepFolder();
    addSubmission(dir, { jobId: '10', array: '0-4%2', tasks: [0, 1, 2, 3, 4], submittedAt: '2026-11-30T00:00:00Z' });
    writeDone(dir, done(0, 4));
    writeError(dir, { index: 1, message: 'Dataset mnist is not available: no IDX files in /data/mnist.', code: 'DATASET_UNAVAILABLE', host: 'node1', slurmJobId: '10_1', at: 'x' });
    // An earlier attempt of task 2 failed; it runs again now: running, not failed.
    writeError(dir, { index: 2, message: 'old failure', code: 'INTERNAL', host: 'node1', slurmJobId: '9_2', at: 'x' });
    mkdirSync(join(dir, 'logs'), { recursive: true });
    writeFileSync(logPath(dir, 4), 'task 4: random at sparsity 0.9, seed 0\nlevel 0/1 ticket ...\nslurmstepd: error: *** JOB 10 ON node1 CANCELLED AT 2026-11-30T01:00:00 DUE TO TIME LIMIT ***\n');
    const slurm = fakeSlurm({
      squeue: ok('10|0|COMPLETED|None\n10|1|FAILED|NonZeroExitCode\n10|2|RUNNING|None\n10|3|PENDING|JobArrayTaskLimit\n10|4|TIMEOUT|TimeLimit\n'),
      sacct: NO_ACCOUNTING,
    });
    const report = await sweepStatus(dir, { run: slurm.run });
    const by = (i: number) => report.tasks[i]!;
    expect(report.tasks.map((t) => t.state)).toEqual(['done', 'failed', 'running', 'pending', 'failed', 'unsubmitted']);
    expect(by(0)).toMatchObject({ runId: 'run_0', tickets: 2, seconds: 4, testAccuracy: 0.95, error: null, jobId: '10_0' });
    expect(by(1).error).toBe('Dataset mnist is not available: no IDX files in /data/mnist.');
    expect(by(2)).toMatchObject({ error: null, slurmState: 'RUNNING' });
    expect(by(3).slurmState).toBe('PENDING (JobArrayTaskLimit)');
    expect(by(4).error).toBe('Slurm: TIMEOUT (TimeLimit); its log ends: slurmstepd: error: *** JOB 10 ON node1 CANCELLED AT 2026-11-30T01:00:00 DUE TO TIME LIMIT ***');
    expect(by(5)).toMatchObject({ jobId: null, slurmState: null });
    expect(report.totals).toEqual({ done: 1, running: 1, pending: 1, failed: 2, unsubmitted: 1, unknown: 0 });
    expect(report.slurm).toMatchObject({ queue: true, accounting: false });
    expect(report.slurm.note).toMatch(/accounting storage is disabled; states come from squeue/);
    expect(report.timing).toEqual([{ method: 'oneshot', tasks: 1, meanSeconds: 4 }]);
    expect(slurm.calls[0]).toEqual(['squeue', '-h', '-r', '-t', 'all', '-j', '10', '-o', '%F|%K|%T|%r']);
  });

  it('reads ended tasks from sacct once squeue has forgotten the job, each task from its latest submission', async () => {
    const dir = sweepFolder();
    addSubmission(dir, { jobId: '10', array: '0-5', tasks: [0, 1, 2, 3, 4, 5], submittedAt: 'a' });
    addSubmission(dir, { jobId: '11', array: '4-5', tasks: [4, 5], submittedAt: 'b' });
    const squeue = { code: 1, stdout: '', stderr: 'slurm_load_jobs error: Invalid job id specified\n' };
    const slurm = fakeSlurm({ squeue, sacct: ok('') });
    slurm.run = async (program, args) => {
      slurm.calls.push([program, ...args]);
      if (program === 'squeue') return squeue;
      const job = args[args.indexOf('-j') + 1];
      // sacct prints pending array ranges folded.
      return ok(job === '10' ? '10_0|COMPLETED|0:0\n10_1|OUT_OF_MEMORY|0:125\n10_2|CANCELLED by 0|0:0\n10_3|COMPLETED|0:0\n10_4|FAILED|1:0\n' : '11_4|RUNNING|0:0\n11_[5]|PENDING|0:0\n');
    };
    writeDone(dir, done(0, 2));
    const report = await sweepStatus(dir, { run: slurm.run });
    expect(report.tasks.map((t) => [t.state, t.jobId])).toEqual([['done', '10_0'], ['failed', '10_1'], ['failed', '10_2'], ['failed', '10_3'], ['running', '11_4'], ['pending', '11_5']]);
    expect(report.tasks[1]!.error).toBe('Slurm: OUT_OF_MEMORY (exit code 0:125)');
    expect(report.tasks[2]!.error).toBe('Slurm: CANCELLED');
    expect(report.tasks[3]!.error).toBe('Slurm says COMPLETED but the task left no result');
    expect(report.slurm).toEqual({ queue: true, accounting: true, note: null });
    expect(report.jobIds).toEqual(['10', '11']);
  });

  it('says unknown, and why, where Slurm cannot be asked; asks nothing once every task is done', async () => {
    const dir = sweepFolder();
    addSubmission(dir, { jobId: '10', array: '0-5', tasks: [0, 1, 2, 3, 4, 5], submittedAt: 'a' });
    const gone = new SlurmUnavailableError('squeue is not installed here (not on PATH): run this on a node of the Slurm cluster (the login node), where Slurm\'s commands are.');
    const report = await sweepStatus(dir, { run: fakeSlurm({ squeue: gone, sacct: new SlurmUnavailableError('sacct is not installed here') }).run });
    expect(report.totals.unknown).toBe(6);
    expect(report.slurm.queue).toBe(false);
    expect(report.slurm.note).toMatch(/squeue is not installed here/);

    for (let i = 0; i < 6; i++) writeDone(dir, done(i, i + 1, i < 2 ? 'oneshot' : i < 4 ? 'snip' : 'random'));
    const finished = await sweepStatus(dir, { run: fakeSlurm({}).run });
    expect(finished.totals.done).toBe(6);
    expect(finished.timing).toEqual([
      { method: 'oneshot', tasks: 2, meanSeconds: 1.5 },
      { method: 'snip', tasks: 2, meanSeconds: 3.5 },
      { method: 'random', tasks: 2, meanSeconds: 5.5 },
    ]);
  });
});

describe('submitSweep', () => {
  it('submits the whole array, or only the unfinished tasks, and keeps each job id', async () => {
    const dir = sweepFolder();
    const slurm = fakeSlurm({ sbatch: ok('4242\n') });
    expect(await submitSweep(dir, { run: slurm.run })).toEqual({ dir, jobId: '4242', array: '0-5%2', tasks: 6 });
    expect(slurm.calls[0]).toEqual(['sbatch', '--parsable', `--chdir=${dir}`, join(dir, 'sweep.sbatch')]);
    writeDone(dir, done(0, 1));
    writeDone(dir, done(2, 1));
    const again = fakeSlurm({ sbatch: ok('4243;cluster\n') });
    expect(await submitSweep(dir, { unfinished: true, run: again.run })).toMatchObject({ jobId: '4243', array: '1,3-5%2', tasks: 4 });
    expect(again.calls[0]).toContain('--array=1,3-5%2');
    expect(JSON.parse(readFileSync(join(dir, 'submitted.json'), 'utf8')).submissions.map((s: { jobId: string; tasks: number[] }) => [s.jobId, s.tasks])).toEqual([
      ['4242', [0, 1, 2, 3, 4, 5]],
      ['4243', [1, 3, 4, 5]],
    ]);
    for (const i of [1, 3, 4, 5]) writeDone(dir, done(i, 1));
    expect(await submitSweep(dir, { unfinished: true, run: fakeSlurm({}).run })).toMatchObject({ jobId: null, tasks: 0 });
  });

  it("passes sbatch's refusal on in its words, and says where Slurm is missing", async () => {
    const dir = sweepFolder();
    const refusal = fakeSlurm({ sbatch: { code: 1, stdout: '', stderr: 'sbatch: error: invalid partition specified: gpu\nsbatch: error: Batch job submission failed\n' } });
    await expect(submitSweep(dir, { run: refusal.run })).rejects.toThrow(SlurmCommandError);
    await expect(submitSweep(dir, { run: refusal.run })).rejects.toThrow('sbatch refused the sweep: error: invalid partition specified: gpu; error: Batch job submission failed.');
    const nowhere = fakeSlurm({ sbatch: { code: 1, stdout: '', stderr: 'sbatch: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host\nsbatch: error: fetch_config: DNS SRV lookup failed\nsbatch: fatal: Could not establish a configuration source\n' } });
    await expect(submitSweep(dir, { run: nowhere.run })).rejects.toThrow(SlurmUnavailableError);
    await expect(submitSweep(dir, { run: nowhere.run })).rejects.toThrow(/finds no Slurm cluster here .*login node/);
    await expect(runProgram('ticket-lab-no-such-sbatch', [], { timeoutMs: 5000 })).rejects.toThrow(/not installed here .*login node/);
    expect(() => readFileSync(markerPath(dir, 0, 'done'))).toThrow();
  });
});

describe("Slurm's answers", () => {
  it('expands array task ranges as squeue and sacct print them', () => {
    expect(expandIndices('3')).toEqual([3]);
    expect(expandIndices('[4-7%2]')).toEqual([4, 5, 6, 7]);
    expect(expandIndices('[1,3-5]')).toEqual([1, 3, 4, 5]);
    expect(expandIndices('[0-6:3]')).toEqual([0, 3, 6]);
    expect(parseSqueue('12|3|RUNNING|None\n12|N/A|PENDING|None\n\n')).toEqual([{ jobId: '12_3', index: 3, state: 'RUNNING', detail: null }]);
    expect(parseSacct('12_[4-5%1]|PENDING|0:0\n12_1|CANCELLED by 1000|0:15\n12|COMPLETED|0:0\n')).toEqual([
      { jobId: '12_4', index: 4, state: 'PENDING', detail: null },
      { jobId: '12_5', index: 5, state: 'PENDING', detail: null },
      { jobId: '12_1', index: 1, state: 'CANCELLED', detail: 'exit code 0:15' },
    ]);
  });
});
