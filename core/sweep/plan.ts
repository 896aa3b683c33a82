// A sweep's plan: methods × sparsities × seeds become tasks, each one headless search into its own
// SQLite file. Pure: no files, no processes; sweep-folder.ts writes what this computes.
import type { z } from 'zod';
import { InvalidRequestError } from '../api/errors';
import { parseRequest } from '../api/parse-request';
import { SearchAtInitRequest, SearchGradualRequest, SearchImpRequest, SearchOneShotRequest } from '../api/schemas';
import { type SweepMethod, SweepPlanRequest } from '../api/sweep-schemas';
import { datasetSpec } from '../data/datasets';
import { architecture, paramSpecs } from '../models/architectures';
import { ceilFraction } from '../pruning/budget';

export const SWEEP_FORMAT = 'ticket-lab-sweep/1';

export type SweepPlanParams = z.output<typeof SweepPlanRequest>;

/** The LabApi search a task calls. */
export type TaskCall = 'searchImp' | 'searchOneShot' | 'searchAtInit' | 'searchGradual';

export interface SweepTask {
  index: number;
  method: SweepMethod;
  /** The target sparsity; an IMP task's is the highest of the sweep (its lineage passes the others). */
  sparsity: number;
  seed: number;
  /** Relative to the sweep folder. */
  db: string;
  call: TaskCall;
  /** The call's request, as the CLI would build it from `argv`. */
  request: Record<string, unknown>;
  /** ticket-lab's arguments that run the same search by hand, from the sweep folder. */
  argv: string[];
}

export interface SlurmRequests {
  jobName: string;
  time: string | null;
  gpus: number;
  cpusPerTask: number | null;
  mem: string | null;
  partition: string | null;
  account: string | null;
  qos: string | null;
  /** At most this many tasks at once (%K); null: as many as Slurm gives. */
  parallel: number | null;
}

/** sweep.json: what was asked, what runs the tasks, and what Slurm is asked for. */
export interface SweepFile {
  format: typeof SWEEP_FORMAT;
  model: string;
  dataset: string;
  methods: SweepMethod[];
  sparsities: number[];
  seeds: number[];
  /** The budget every task's search gets. */
  budget: Partial<Record<(typeof BUDGET_FLAGS)[number][0] | 'backend', number | string>>;
  /** IMP's levels and the sparsity of its last level, when the sweep has IMP. */
  imp: { levels: number; sparsity: number } | null;
  /** The command that runs ticket-lab on the nodes: an executable and its first arguments. */
  cli: string[];
  slurm: SlurmRequests;
  tasks: number;
}

export interface PlannedSweep {
  sweep: SweepFile;
  tasks: SweepTask[];
}

/** Budget fields every search takes, with their flags (the search commands' own names). */
const BUDGET_FLAGS = [
  ['iterations', 'iterations'],
  ['epochs', 'epochs'],
  ['batchSize', 'batch'],
  ['evalEvery', 'eval-every'],
  ['validationSize', 'validation-size'],
  ['dataDir', 'data-dir'],
] as const;

const AT_INIT = new Set<SweepMethod>(['random', 'erk', 'snip', 'grasp', 'synflow']);

export function taskDbPath(index: number): string {
  return `tasks/task-${index}.db`;
}

/** The sweep's tasks and its sweep.json contents; every task's request is checked here, not on the cluster. */
export function planSweep(request: SweepPlanRequest, defaultCli: readonly string[]): PlannedSweep {
  const params = parseRequest(SweepPlanRequest, request);
  if (params.model.startsWith('md_')) {
    throw new InvalidRequestError(`A sweep starts from a zoo model, not ${params.model}: each task's database is new and holds no imported model.`);
  }
  architecture(params.model);
  datasetSpec(params.dataset);
  const highest = Math.max(...params.sparsities);
  const imp = params.methods.includes('imp')
    ? params.levels !== undefined
      ? { levels: params.levels, sparsity: impSparsityAt(params.model, params.dataset, params.levels) }
      : impLevelsFor(params.model, params.dataset, highest)
    : null;
  const budget: SweepFile['budget'] = {};
  for (const [field] of BUDGET_FLAGS) if (params[field] !== undefined) budget[field] = params[field];
  if (params.backend !== undefined) budget.backend = params.backend;

  const tasks: SweepTask[] = [];
  for (const method of params.methods) {
    // IMP prunes level by level: one lineage per seed passes every target on its way to the highest.
    const sparsities = method === 'imp' ? [highest] : params.sparsities;
    for (const sparsity of sparsities) {
      for (const seed of params.seeds) {
        tasks.push(buildTask(tasks.length, method, sparsity, seed, params, budget, imp?.levels));
      }
    }
  }
  const cli = params.cli !== undefined ? params.cli.trim().split(/\s+/) : [...defaultCli];
  return {
    sweep: {
      format: SWEEP_FORMAT,
      model: params.model,
      dataset: params.dataset,
      methods: params.methods,
      sparsities: params.sparsities,
      seeds: params.seeds,
      budget,
      imp,
      cli,
      slurm: {
        jobName: params.jobName ?? 'ticket-lab-sweep',
        time: params.time ?? null,
        gpus: params.gpus ?? 0,
        cpusPerTask: params.cpusPerTask ?? null,
        mem: params.mem ?? null,
        partition: params.partition ?? null,
        account: params.account ?? null,
        qos: params.qos ?? null,
        parallel: params.parallel ?? null,
      },
      tasks: tasks.length,
    },
    tasks,
  };
}

function buildTask(index: number, method: SweepMethod, sparsity: number, seed: number, params: SweepPlanParams, budget: SweepFile['budget'], impLevels: number | undefined): SweepTask {
  const db = taskDbPath(index);
  const common: Record<string, unknown> = { model: params.model, dataset: params.dataset, seed };
  const budgetArgs: string[] = [];
  for (const [field, flag] of BUDGET_FLAGS) {
    const value = budget[field];
    if (value === undefined) continue;
    common[field] = value;
    budgetArgs.push(`--${flag}`, String(value));
  }
  if (budget.backend !== undefined) common.backend = budget.backend;
  const head = ['--db', db, ...(budget.backend !== undefined ? ['--backend', String(budget.backend)] : [])];
  const target = ['--sparsity', String(sparsity)];
  const tail = ['--model', params.model, '--dataset', params.dataset, '--seed', String(seed)];

  let call: TaskCall;
  let request: Record<string, unknown>;
  let words: string[];
  if (method === 'imp') {
    call = 'searchImp';
    request = { ...common, levels: impLevels! };
    words = ['search', 'imp', ...tail, '--levels', String(impLevels), ...budgetArgs];
  } else if (method === 'oneshot' || method === 'jackpot') {
    call = 'searchOneShot';
    // As `search jackpot` asks: the mask searched on frozen trained weights, not retrained.
    request = method === 'jackpot' ? { ...common, sparsity, criterion: 'jackpot', retrain: false } : { ...common, sparsity };
    words = ['search', method, ...tail, ...target, ...budgetArgs];
  } else if (AT_INIT.has(method)) {
    call = 'searchAtInit';
    request = { ...common, method, sparsity };
    words = ['search', method, ...tail, ...target, ...budgetArgs];
  } else {
    call = 'searchGradual';
    request = { ...common, sparsity, regrow: method === 'granet' };
    words = ['search', method, ...tail, ...target, ...budgetArgs];
  }
  checkTaskRequest(call, request, index, method);
  return { index, method, sparsity, seed, db, call, request, argv: [...head, ...words] };
}

const CALL_SCHEMAS = { searchImp: SearchImpRequest, searchOneShot: SearchOneShotRequest, searchAtInit: SearchAtInitRequest, searchGradual: SearchGradualRequest } as const;

/** The task's request through its search's own schema, so a bad budget fails at plan time, not on the cluster. */
function checkTaskRequest(call: TaskCall, request: Record<string, unknown>, index: number, method: SweepMethod): void {
  try {
    parseRequest(CALL_SCHEMAS[call], request);
  } catch (error) {
    if (error instanceof InvalidRequestError) throw new InvalidRequestError(`Task ${index} (${method}): ${error.message}`, { cause: error });
    throw error;
  }
}

/** Kept weights of each prunable tensor after `levels` IMP levels at the model's LTH rates (the same ceil as the IMP driver). */
function impKeptAfter(model: string, dataset: string, levels: number): { kept: number; total: number } {
  const arch = architecture(model);
  const spec = datasetSpec(dataset);
  const prunable = paramSpecs(arch, spec.imageShape, spec.numClasses).filter((s) => s.prunable);
  const sizes = prunable.map((s) => s.shape.reduce((a, b) => a * b, 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  if (arch.lthScope === 'global') {
    let kept = total;
    for (let l = 0; l < levels; l++) kept -= ceilFraction(arch.lthRates.fc, kept);
    return { kept, total };
  }
  const kept = sizes.slice();
  prunable.forEach((s, i) => {
    const rate = arch.lthRates[s.role];
    if (rate <= 0) return;
    for (let l = 0; l < levels; l++) kept[i]! -= ceilFraction(rate, kept[i]!);
  });
  return { kept: kept.reduce((a, b) => a + b, 0), total };
}

/** The sparsity of IMP's ticket at `levels`, over the prunable weights, at the model's default rates. */
export function impSparsityAt(model: string, dataset: string, levels: number): number {
  const { kept, total } = impKeptAfter(model, dataset, levels);
  return 1 - kept / total;
}

/** The first IMP level whose ticket is at least `target` sparse, at the model's default rates. */
export function impLevelsFor(model: string, dataset: string, target: number): { levels: number; sparsity: number } {
  for (let levels = 1; levels <= 100; levels++) {
    const sparsity = impSparsityAt(model, dataset, levels);
    if (sparsity >= target) return { levels, sparsity };
  }
  throw new InvalidRequestError(`IMP at ${model}'s default rates does not reach ${target} sparsity in 100 levels; give --levels.`);
}
