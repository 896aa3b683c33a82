// The contract of sweeps on a Slurm cluster (DESIGN.md, "Beyond one machine"): the requests of
// `ticket-lab sweep plan|submit|status` and the status report the UI can show. Plain data only, as
// schemas.ts: this module imports nothing from the rest of core.
import { z } from 'zod';
import { BackendChoice } from './schemas';

/** Methods a sweep runs, each a headless `ticket-lab search <method>`. */
export const SWEEP_METHODS = ['imp', 'oneshot', 'jackpot', 'random', 'erk', 'snip', 'grasp', 'synflow', 'granet', 'gmp'] as const;
export type SweepMethod = (typeof SWEEP_METHODS)[number];

const PositiveInt = z.number().int('must be a whole number').positive('must be at least 1');
const Fraction = z.number().gt(0, 'must be greater than 0').lt(1, 'must be less than 1');
const Seed = z.number().int('must be a whole number').min(0, 'must be 0 or more').max(2 ** 31 - 1);
const Folder = z.string().min(1, 'a sweep folder is required');
/** An sbatch value lands in a `#SBATCH` line: one line, no quotes or shell characters. */
const SbatchValue = z.string().min(1).max(200).regex(/^[A-Za-z0-9_.:,=+@/-]+$/, 'letters, digits and _ . : , = + @ / - only');

function distinct<T>(name: string) {
  return (values: readonly T[], ctx: z.RefinementCtx) => {
    const seen = new Set<T>();
    for (const v of values) {
      if (seen.has(v)) ctx.addIssue({ code: 'custom', message: `${name} ${String(v)} is given twice` });
      seen.add(v);
    }
  };
}

export const SweepPlanRequest = z
  .object({
    /** The sweep folder to write (made if missing; an existing sweep there must be the same one). */
    dir: Folder,
    methods: z.array(z.enum(SWEEP_METHODS)).min(1).max(SWEEP_METHODS.length).superRefine(distinct('method')),
    /** Target sparsities; IMP makes one task per seed whose lineage passes every one of them. */
    sparsities: z.array(Fraction).min(1).max(100).superRefine(distinct('sparsity')),
    seeds: z.array(Seed).min(1).max(10_000).superRefine(distinct('seed')),
    model: z.string().min(1).max(200),
    dataset: z.string().min(1).max(200),
    /** IMP levels; default: the first level whose sparsity reaches the highest target at the model's rates. */
    levels: PositiveInt.max(100).optional(),
    // The budget, passed to every task's search as its own flags.
    iterations: PositiveInt.optional(),
    epochs: z.number().positive('must be positive').optional(),
    batchSize: PositiveInt.max(65_536).optional(),
    evalEvery: PositiveInt.optional(),
    validationSize: z.number().int().min(0).optional(),
    backend: BackendChoice.optional(),
    /** The dataset's folder as the cluster's nodes see it. */
    dataDir: z.string().min(1).optional(),
    /** The command that runs ticket-lab on the nodes (default: this node and this CLI's absolute path). */
    cli: z.string().min(1).max(1000).optional(),
    // Slurm requests, written into sweep.sbatch.
    jobName: SbatchValue.optional(),
    /** Wall time per task, in Slurm's forms (MM, HH:MM:SS, D-HH:MM). */
    time: z.string().regex(/^(\d+-)?\d+(:\d{1,2}){0,2}$/, "a Slurm time: minutes, 'HH:MM:SS' or 'D-HH:MM'").optional(),
    /** GPUs per task (--gres=gpu:N). */
    gpus: z.number().int().min(0).max(64).optional(),
    cpusPerTask: PositiveInt.max(1024).optional(),
    mem: z.string().regex(/^\d+[KMGT]?$/, "a Slurm memory size such as 8G or 16000M").optional(),
    partition: SbatchValue.optional(),
    account: SbatchValue.optional(),
    qos: SbatchValue.optional(),
    /** At most this many tasks at once (the array's %K). */
    parallel: PositiveInt.max(100_000).optional(),
  })
  .strict()
  .superRefine((value, ctx) => {
    if (value.iterations !== undefined && value.epochs !== undefined) ctx.addIssue({ code: 'custom', path: ['epochs'], message: 'give either iterations or epochs, not both' });
    if (value.levels !== undefined && !value.methods.includes('imp')) ctx.addIssue({ code: 'custom', path: ['levels'], message: 'levels are for imp tasks; the sweep has none' });
  });
export type SweepPlanRequest = z.input<typeof SweepPlanRequest>;

export interface SweepPlanReport {
  dir: string;
  tasks: number;
  /** Tasks per method: IMP's count is per seed. */
  byMethod: Record<string, number>;
  /** False when the folder already held this plan (kept as it was, finished tasks included). */
  created: boolean;
  done: number;
  sbatch: string;
  /** IMP's levels and the sparsity its last level reaches, when the sweep has IMP tasks. */
  imp: { levels: number; sparsity: number } | null;
}

export const SweepSubmitRequest = z
  .object({
    dir: Folder,
    /** Only the tasks without a result (default: the whole array; finished tasks are skipped by the tasks themselves). */
    unfinished: z.boolean().default(false),
  })
  .strict();
export type SweepSubmitRequest = z.input<typeof SweepSubmitRequest>;

export interface SweepSubmitReport {
  dir: string;
  /** Slurm's job id of the array; null when nothing was left to submit. */
  jobId: string | null;
  /** The array's indices as sbatch took them (`0-3%2`). */
  array: string | null;
  tasks: number;
}

export const SweepStatusRequest = z.object({ dir: Folder }).strict();
export type SweepStatusRequest = z.input<typeof SweepStatusRequest>;

export const SWEEP_TASK_STATES = ['done', 'running', 'pending', 'failed', 'unsubmitted', 'unknown'] as const;
export type SweepTaskState = (typeof SWEEP_TASK_STATES)[number];

export interface SweepTaskStatus {
  index: number;
  method: SweepMethod;
  sparsity: number;
  seed: number;
  /** The task's database, relative to the sweep folder. */
  db: string;
  state: SweepTaskState;
  /** Slurm's id of the array task that ran or runs it last (`12_3`), when known. */
  jobId: string | null;
  /** What Slurm says: RUNNING, PENDING (JobArrayTaskLimit), TIMEOUT, ...; null when Slurm was not asked or has forgotten it. */
  slurmState: string | null;
  /** A failed task's last error: its .error marker, else Slurm's state and the last line of its log. */
  error: string | null;
  /** A finished task's run, tickets, wall time and the test accuracy of its sparsest ticket. */
  runId: string | null;
  tickets: number | null;
  seconds: number | null;
  testAccuracy: number | null;
}

export interface SweepStatusReport {
  dir: string;
  model: string;
  dataset: string;
  tasks: SweepTaskStatus[];
  totals: Record<SweepTaskState, number>;
  /** Submissions of the array, oldest first. */
  jobIds: string[];
  slurm: {
    /** squeue answered. */
    queue: boolean;
    /** sacct answered (a cluster with accounting storage). */
    accounting: boolean;
    /** Why the report rests on fewer sources, in words; null when both answered or nothing was submitted. */
    note: string | null;
  };
  /** Mean wall time of the finished tasks, per method: what a larger sweep will cost. */
  timing: Array<{ method: SweepMethod; tasks: number; meanSeconds: number }>;
}
