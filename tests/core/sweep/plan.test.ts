// A sweep's plan: one task per method × sparsity × seed (IMP: per seed), each task's request what its
// own `ticket-lab search ...` arguments make, IMP's levels those the driver's pruning reaches, the
// sbatch script a valid job array, and planning again on a folder keeps its results or refuses.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../core/api/errors';
import type { SweepPlanRequest } from '../../../core/api/sweep-schemas';
import { COMMANDS } from '../../../core/cli/commands';
import { impLevelsFor, impSparsityAt, planSweep } from '../../../core/sweep/plan';
import { arraySpec, sbatchScript, shellQuote } from '../../../core/sweep/sbatch';
import { markerPath, readSweep, writeSweep } from '../../../core/sweep/sweep-folder';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-sweep-plan-');
const CLI = ['/usr/bin/node', '/opt/ticket-lab/dist/core/cli/ticket-lab.js'];
const base: SweepPlanRequest = { dir: '/x', methods: ['oneshot', 'snip'], sparsities: [0.9, 0.98], seeds: [0, 1, 2], model: 'lenet-300-100', dataset: 'mnist', iterations: 20, evalEvery: 10, validationSize: 500, backend: 'wasm' };

/** The request `ticket-lab` builds from a task's argv, through the command's own option table. */
function requestFromArgv(argv: string[]): { command: string; db: string; request: Record<string, unknown> } {
  const rest = [...argv];
  const take = (flag: string) => {
    const i = rest.indexOf(flag);
    const value = rest[i + 1]!;
    rest.splice(i, 2);
    return value;
  };
  const db = take('--db');
  const backend = rest.includes('--backend') ? take('--backend') : undefined;
  const command = COMMANDS.find((c) => c.name === `${rest[0]} ${rest[1]}`)!;
  expect(command, rest.slice(0, 2).join(' ')).toBeDefined();
  const request: Record<string, unknown> = backend ? { backend } : {};
  for (let i = 2; i < rest.length; i += 2) {
    const def = command.options.find((o) => `--${o.flag}` === rest[i]);
    expect(def, `${command.name} has no ${rest[i]}`).toBeDefined();
    const field = def!.field ?? def!.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    request[field] = def!.kind === 'string' ? rest[i + 1] : Number(rest[i + 1]);
  }
  return { command: command.name, db, request };
}

describe('planSweep', () => {
  it('makes one task per method, sparsity and seed, each with its own database, in a fixed order', () => {
    const { tasks, sweep } = planSweep(base, CLI);
    expect(tasks).toHaveLength(2 * 2 * 3);
    expect(sweep.tasks).toBe(12);
    expect(tasks.map((t) => t.index)).toEqual([...Array(12).keys()]);
    expect(new Set(tasks.map((t) => t.db)).size).toBe(12);
    expect(tasks.map((t) => t.db)).toEqual(tasks.map((t) => `tasks/task-${t.index}.db`));
    expect(tasks.map((t) => `${t.method}/${t.sparsity}/${t.seed}`).slice(0, 7)).toEqual(['oneshot/0.9/0', 'oneshot/0.9/1', 'oneshot/0.9/2', 'oneshot/0.98/0', 'oneshot/0.98/1', 'oneshot/0.98/2', 'snip/0.9/0']);
    expect(sweep.cli).toEqual(CLI);
    expect(planSweep({ ...base, cli: 'ticket-lab' }, CLI).sweep.cli).toEqual(['ticket-lab']);
  });

  it("gives each task the request its own ticket-lab arguments make, on every method's command", () => {
    const methods = ['imp', 'oneshot', 'jackpot', 'random', 'erk', 'snip', 'grasp', 'synflow', 'granet', 'gmp'] as const;
    const { tasks } = planSweep({ ...base, methods: [...methods], seeds: [3], dataDir: '/data/mnist', batchSize: 30 }, CLI);
    expect(tasks.map((t) => t.method)).toEqual(['imp', ...methods.slice(1).flatMap((m) => [m, m])]);
    // What each search command adds on its own (the method it is, jackpot's no-retraining).
    const fixed: Record<string, Record<string, unknown>> = {
      'search jackpot': { criterion: 'jackpot', retrain: false },
      'search granet': { regrow: true },
      'search gmp': { regrow: false },
      ...Object.fromEntries(['random', 'erk', 'snip', 'grasp', 'synflow'].map((m) => [`search ${m}`, { method: m }])),
    };
    for (const task of tasks) {
      const { command, db, request } = requestFromArgv(task.argv);
      expect(command).toBe(`search ${task.method}`);
      expect(db).toBe(task.db);
      expect({ ...request, ...fixed[command] }).toEqual(task.request);
      expect(task.request).toMatchObject({ model: 'lenet-300-100', dataset: 'mnist', seed: 3, iterations: 20, evalEvery: 10, validationSize: 500, backend: 'wasm', dataDir: '/data/mnist', batchSize: 30 });
    }
  });

  it("runs IMP once per seed, to the first level at the highest target, as the IMP driver's per-layer ceil prunes", () => {
    const { tasks, sweep } = planSweep({ ...base, methods: ['imp', 'snip'], sparsities: [0.5, 0.98, 0.9] }, CLI);
    const imp = tasks.filter((t) => t.method === 'imp');
    expect(imp.map((t) => t.seed)).toEqual([0, 1, 2]);
    expect(imp.every((t) => t.sparsity === 0.98 && t.request.levels === 18)).toBe(true);
    // docs/results/methods.md: the LTH LeNet lineage is at 98.15 % at level 18 and 89.17 % at level 10.
    expect(sweep.imp!.levels).toBe(18);
    expect(sweep.imp!.sparsity).toBeCloseTo(0.9815, 4);
    expect(impSparsityAt('lenet-300-100', 'mnist', 10)).toBeCloseTo(0.8917, 4);
    // First level at or past the target: one level fewer falls short.
    for (const target of [0.2, 0.5, 0.9, 0.99]) {
      const { levels, sparsity } = impLevelsFor('lenet-300-100', 'mnist', target);
      expect(sparsity).toBeGreaterThanOrEqual(target);
      if (levels > 1) expect(impSparsityAt('lenet-300-100', 'mnist', levels - 1)).toBeLessThan(target);
    }
    // Sparsity is monotone in the levels; ResNet-20 prunes 20 % of the rest globally: 0.8^L remains.
    expect(impSparsityAt('resnet-20', 'cifar10', 5)).toBeCloseTo(1 - 0.8 ** 5, 3);
    expect(planSweep({ ...base, methods: ['imp'], levels: 3 }, CLI).tasks[0]!.request.levels).toBe(3);
  });

  it('refuses what would fail on the cluster, before anything is written', () => {
    const refused = (request: Partial<SweepPlanRequest>, pattern: RegExp) => {
      expect(() => planSweep({ ...base, ...request }, CLI)).toThrow(InvalidRequestError);
      expect(() => planSweep({ ...base, ...request }, CLI)).toThrow(pattern);
    };
    refused({ model: 'md_0123456789ab' }, /zoo model/);
    refused({ model: 'lenet-x' }, /Unknown model/);
    refused({ dataset: 'imagenet' }, /Unknown dataset/);
    refused({ seeds: [0, 0] }, /seed 0 is given twice/);
    refused({ sparsities: [1] }, /sparsities/);
    refused({ methods: ['magic' as never] }, /methods/);
    refused({ epochs: 2 }, /either iterations or epochs/);
    refused({ levels: 3 }, /levels are for imp tasks/);
    refused({ time: 'soon' }, /Slurm time/);
    refused({ partition: 'gpu; rm -rf /' }, /partition/);
    refused({ validationSize: -1 }, /validationSize/);
  });
});

describe('sweep.sbatch', () => {
  it('is a job array over the tasks with the requested resources, each array task running its own line', () => {
    const { sweep } = planSweep({ ...base, parallel: 4, time: '02:00:00', gpus: 1, cpusPerTask: 2, mem: '8G', partition: 'gpu', account: 'lab', qos: 'normal', jobName: 'lth' }, CLI);
    const text = sbatchScript(sweep, '/scratch/me/sweep');
    const directives = text.split('\n').filter((l) => l.startsWith('#SBATCH')).map((l) => l.slice('#SBATCH '.length));
    expect(directives).toEqual([
      '--job-name=lth',
      '--array=0-11%4',
      '--chdir=/scratch/me/sweep',
      '--output=logs/task-%a.out',
      '--open-mode=append',
      '--requeue',
      '--ntasks=1',
      '--time=02:00:00',
      '--gres=gpu:1',
      '--cpus-per-task=2',
      '--mem=8G',
      '--partition=gpu',
      '--account=lab',
      '--qos=normal',
    ]);
    // sbatch reads #SBATCH lines only before the first command.
    const lines = text.split('\n');
    const firstCommand = lines.findIndex((l) => l.trim() !== '' && !l.startsWith('#'));
    expect(lines.slice(firstCommand).some((l) => l.startsWith('#SBATCH'))).toBe(false);
    expect(text).toMatch(/^exec \/usr\/bin\/node \/opt\/ticket-lab\/dist\/core\/cli\/ticket-lab\.js sweep run-task \/scratch\/me\/sweep "\$SLURM_ARRAY_TASK_ID"$/m);
    expect(spawnSync('bash', ['-n'], { input: text }).status).toBe(0);

    const plain = sbatchScript(planSweep(base, CLI).sweep, '/s');
    expect(plain).toMatch(/^#SBATCH --array=0-11$/m);
    expect(plain).not.toMatch(/^#SBATCH --(gres|time|partition|mem|cpus-per-task|account|qos)/m);
  });

  it('folds indices into ranges and quotes what bash would split', () => {
    expect(arraySpec([0, 1, 2, 3], 2)).toBe('0-3%2');
    expect(arraySpec([5, 1, 2, 3, 9, 10, 7], null)).toBe('1-3,5,7,9-10');
    expect(arraySpec([4], null)).toBe('4');
    expect(shellQuote('/opt/ticket lab/x.js')).toBe(`'/opt/ticket lab/x.js'`);
    expect(shellQuote(`it's`)).toBe(`'it'\\''s'`);
    expect(shellQuote('/usr/bin/node')).toBe('/usr/bin/node');
  });
});

describe('writeSweep', () => {
  it('writes the folder once; the same plan again keeps results and takes new Slurm requests; another plan is refused', () => {
    const dir = join(temp(), 'sweep');
    const planned = planSweep({ ...base, dir }, CLI);
    expect(writeSweep(dir, planned)).toEqual({ created: true });
    const { sweep, tasks } = readSweep(dir);
    expect(sweep).toEqual(planned.sweep);
    expect(tasks).toEqual(planned.tasks);
    const tasksText = readFileSync(join(dir, 'tasks.jsonl'), 'utf8');
    expect(tasksText.trim().split('\n')).toHaveLength(12);
    writeFileSync(markerPath(dir, 3, 'done'), '{"runId": "run_x"}');

    // Again, with a longer time limit (say, after tasks hit it): same tasks, results kept.
    expect(writeSweep(dir, planSweep({ ...base, dir, time: '04:00:00' }, CLI))).toEqual({ created: false });
    expect(readFileSync(join(dir, 'tasks.jsonl'), 'utf8')).toBe(tasksText);
    expect(readFileSync(markerPath(dir, 3, 'done'), 'utf8')).toBe('{"runId": "run_x"}');
    expect(readFileSync(join(dir, 'sweep.sbatch'), 'utf8')).toMatch(/^#SBATCH --time=04:00:00$/m);

    expect(() => writeSweep(dir, planSweep({ ...base, dir, seeds: [0, 1, 7] }, CLI))).toThrow(/holds another sweep \(task 2 there is oneshot at 0.9, seed 2/);
    expect(() => writeSweep(dir, planSweep({ ...base, dir, seeds: [0] }, CLI))).toThrow(/12 tasks there, 4 now/);
    expect(() => writeSweep(dir, planSweep({ ...base, dir, iterations: 40 }, CLI))).toThrow(/holds another sweep/);

    const other = join(temp(), 'busy');
    mkdirSync(other);
    writeFileSync(join(other, 'notes.txt'), 'mine');
    expect(() => writeSweep(other, planSweep({ ...base, dir: other }, CLI))).toThrow(/not empty and holds no sweep.json/);
    expect(() => writeSweep('/tmp/my sweep', planSweep(base, CLI))).toThrow(/space or quote/);
    expect(() => readSweep(join(temp(), 'nowhere'))).toThrow(/not a sweep folder/);
  });
});
