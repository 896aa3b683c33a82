// The LabApi contract: request schemas (runtime validators with defaults) and response types.
// Everything here is plain data, so it crosses IPC, HTTP and worker boundaries unchanged.
// This module imports nothing from the rest of core: the renderer may use it.
import { z } from 'zod';

const Fraction = z.number().gt(0, 'must be greater than 0').lt(1, 'must be less than 1');
const PositiveInt = z.number().int('must be a whole number').positive('must be at least 1');
const NonNegativeInt = z.number().int('must be a whole number').min(0, 'must be 0 or more');
const Name = z.string().min(1).max(200);
const Id = z.string().min(1).max(64);

export const BackendChoice = z.enum(['auto', 'tfjs-node-gpu', 'tfjs-node', 'webgpu', 'wasm', 'cpu']);

/** Training settings shared by every search that trains. Unset ones take the model's LTH defaults. */
const TrainingOptions = {
  iterations: PositiveInt.optional(),
  epochs: z.number().positive('must be positive').optional(),
  batchSize: PositiveInt.max(65_536).optional(),
  optimizer: z.enum(['adam', 'sgd']).optional(),
  learningRate: z.number().positive('must be positive').max(100).optional(),
  /** Unset: the model's (ResNet-20: SGD momentum 0.9, weight decay 1e-4; the LTH nets: 0). */
  momentum: z.number().min(0).lt(1).optional(),
  weightDecay: z.number().min(0).max(1).optional(),
  /** Fractions of the training length at which the learning rate is multiplied by lrDropFactor. Unset: the model's. */
  lrDrops: z.array(Fraction).max(16).optional(),
  /** Unset: the model's (0.1). */
  lrDropFactor: Fraction.optional(),
  /** Random crop with 4-pixel zero padding and left-right flip, seeded. Unset: the model's (on for ResNets). */
  augment: z.boolean().optional(),
  /** Validation every this many iterations; the early-stop iteration is one of these points. */
  evalEvery: PositiveInt.default(100),
  /** Held out of the training set for early stopping (the LTH paper: 5,000). */
  validationSize: NonNegativeInt.default(5000),
  rewindIteration: NonNegativeInt.default(0),
  seed: NonNegativeInt.max(2 ** 31 - 1).default(0),
  backend: BackendChoice.default('auto'),
  dataDir: z.string().min(1).optional(),
};

function exclusiveBudget<T extends { iterations?: number | undefined; epochs?: number | undefined }>(value: T, ctx: z.RefinementCtx): void {
  if (value.iterations !== undefined && value.epochs !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['epochs'], message: 'give either iterations or epochs, not both' });
  }
}

export const SearchImpRequest = z
  .object({
    model: Name,
    dataset: Name,
    levels: PositiveInt.max(100).default(15),
    /** Per-level rate of the fully connected layers (the LTH paper: 0.2); global scope: the one rate. */
    rate: Fraction.optional(),
    convRate: Fraction.optional(),
    outputRate: Fraction.optional(),
    /** Unset: the model's (layer-wise for the LTH nets, global for the ResNets, as open_lth). */
    scope: z.enum(['layer', 'global']).optional(),
    control: z.enum(['reinit', 'random-mask']).optional(),
    /** Levels that also train the control; default: every pruned level. */
    controlLevels: z.array(PositiveInt).max(100).optional(),
    /** Several seeds searched together (one run each, trained as one stack); replaces `seed`. */
    seeds: z.array(NonNegativeInt.max(2 ** 31 - 1)).min(1).max(256).optional(),
    /**
     * What each level restarts: 'weights' rewinds the kept weights to θk (LTH); 'learning-rate'
     * keeps the previous level's trained weights and restarts only the schedule at k, with a fresh
     * optimiser (Renda et al., ICLR 2020).
     */
    rewindTo: z.enum(['weights', 'learning-rate']).default('weights'),
    ...TrainingOptions,
  })
  .strict()
  .superRefine(exclusiveBudget);
export type SearchImpRequest = z.input<typeof SearchImpRequest>;
export type SearchImpParams = z.output<typeof SearchImpRequest>;

export const SearchOneShotRequest = z
  .object({
    model: Name.optional(),
    dataset: Name.optional(),
    sparsity: Fraction,
    /** Default: per layer for magnitude (LTH); the jackpot is global (its per-layer counts come from one magnitude threshold). */
    scope: z.enum(['layer', 'global']).optional(),
    /** Prune a stored ticket's trained weights instead of training a dense network first. */
    fromTicket: Id.optional(),
    retrain: z.boolean().default(true),
    /** Which weights to keep: the largest (magnitude), or a mask searched on the frozen trained weights (lottery jackpot, ALGORITHMS.md §7). */
    criterion: z.enum(['magnitude', 'jackpot']).default('magnitude'),
    /** The jackpot's score training: steps, batch and learning rate (defaults 2,000, 256, 0.1). */
    searchIterations: PositiveInt.max(1_000_000).optional(),
    searchBatchSize: PositiveInt.max(65_536).optional(),
    searchLearningRate: z.number().positive('must be positive').max(100).optional(),
    ...TrainingOptions,
  })
  .strict()
  .superRefine(exclusiveBudget)
  .superRefine((value, ctx) => {
    if (value.criterion === 'jackpot') {
      if (value.scope === 'layer') ctx.addIssue({ code: 'custom', path: ['scope'], message: 'the jackpot takes its per-layer counts from one global magnitude threshold; leave scope out' });
      return;
    }
    for (const field of ['searchIterations', 'searchBatchSize', 'searchLearningRate'] as const) {
      if (value[field] !== undefined) ctx.addIssue({ code: 'custom', path: [field], message: 'an option of the jackpot search (criterion jackpot)' });
    }
  })
  .superRefine((value, ctx) => {
    if (!value.fromTicket && (!value.model || !value.dataset)) {
      ctx.addIssue({ code: 'custom', path: ['model'], message: 'give a model and a dataset, or a ticket to start from' });
    }
  });
export type SearchOneShotRequest = z.input<typeof SearchOneShotRequest>;
export type SearchOneShotParams = z.output<typeof SearchOneShotRequest>;

/** Pruning at initialisation (ALGORITHMS.md §3–6): the mask is chosen at θ0, then the ticket trains from θ0. */
export const PRUNE_AT_INIT_METHODS = ['random', 'erk', 'snip', 'grasp', 'synflow'] as const;
export type PruneAtInitMethod = (typeof PRUNE_AT_INIT_METHODS)[number];

/** The method options of each method (request field → the strategy's parameter). */
export const PRUNE_AT_INIT_OPTIONS: Record<PruneAtInitMethod, Record<string, string>> = {
  random: {},
  erk: { kernelAware: 'kernelAware' },
  snip: { examplesPerClass: 'examplesPerClass' },
  grasp: { examplesPerClass: 'examplesPerClass', temperature: 'temperature', hessian: 'hessian' },
  synflow: { rounds: 'rounds', roundSchedule: 'schedule' },
};

export const SearchAtInitRequest = z
  .object({
    method: z.enum(PRUNE_AT_INIT_METHODS),
    model: Name,
    dataset: Name,
    sparsity: Fraction,
    /** Default: per layer for random (uniform), global for SNIP, GraSP and SynFlow; ERK sets its own layer densities. */
    scope: z.enum(['layer', 'global']).optional(),
    /** Train the pruned network from θ0 (default), or only evaluate it at initialisation. */
    train: z.boolean().default(true),
    kernelAware: z.boolean().optional(),
    examplesPerClass: PositiveInt.max(1000).optional(),
    temperature: z.number().positive('must be positive').max(1e6).optional(),
    hessian: z.enum(['auto', 'exact', 'finite-difference']).optional(),
    rounds: PositiveInt.max(1000).optional(),
    roundSchedule: z.enum(['exponential', 'linear']).optional(),
    ...TrainingOptions,
  })
  .strict()
  .superRefine(exclusiveBudget)
  .superRefine((value, ctx) => {
    const own = PRUNE_AT_INIT_OPTIONS[value.method];
    for (const field of new Set(Object.values(PRUNE_AT_INIT_OPTIONS).flatMap((o) => Object.keys(o)))) {
      if ((value as Record<string, unknown>)[field] !== undefined && !(field in own)) {
        ctx.addIssue({ code: 'custom', path: [field], message: `not an option of ${value.method}` });
      }
    }
    if (value.method === 'erk' && value.scope !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['scope'], message: 'ERK sets its own per-layer densities; leave scope out' });
    }
    if (value.rewindIteration !== 0) ctx.addIssue({ code: 'custom', path: ['rewindIteration'], message: 'pruning at initialisation trains from iteration 0' });
  });
export type SearchAtInitRequest = z.input<typeof SearchAtInitRequest>;
export type SearchAtInitParams = z.output<typeof SearchAtInitRequest>;

/**
 * Gradual magnitude pruning during training (Zhu & Gupta's cubic schedule), with GraNet's zero-cost
 * neuroregeneration unless `regrow` is false (plain GMP). ALGORITHMS.md §8.
 */
export const SearchGradualRequest = z
  .object({
    model: Name,
    dataset: Name,
    /** Sparsity at the end of pruning, over the prunable kernels: 1 − d_f. */
    sparsity: Fraction,
    /** d_i: 1 = dense-to-sparse (default); below 1 = sparse-to-sparse from an ERK random mask at this density (GraNet: 0.5). */
    initialDensity: z.number().gt(0, 'must be greater than 0').max(1, 'must be at most 1').default(1),
    /** false: plain gradual magnitude pruning, no regrowth. */
    regrow: z.boolean().default(true),
    regrowthRate: z.number().min(0).max(1).optional(),
    finalRegrowthRate: z.number().min(0).max(1).optional(),
    /** Δt, iterations between mask updates. Default: about 1/64 of training, at most 1,000 (GraNet's CIFAR run: 1,000 of 62,560). */
    updateEvery: PositiveInt.optional(),
    /** The pruning window, as fractions of training (GraNet: 0 to 0.5). */
    pruneStart: z.number().min(0).lt(1).optional(),
    pruneEnd: z.number().gt(0).max(1).optional(),
    ...TrainingOptions,
  })
  .strict()
  .superRefine(exclusiveBudget)
  .superRefine((value, ctx) => {
    if (1 - value.sparsity >= value.initialDensity) ctx.addIssue({ code: 'custom', path: ['sparsity'], message: `must leave fewer weights than the initial density ${value.initialDensity} keeps` });
    if (value.rewindIteration !== 0) ctx.addIssue({ code: 'custom', path: ['rewindIteration'], message: 'gradual pruning trains from iteration 0' });
    if (!value.regrow && (value.regrowthRate !== undefined || value.finalRegrowthRate !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['regrowthRate'], message: 'not an option without regrowth' });
    }
  });
export type SearchGradualRequest = z.input<typeof SearchGradualRequest>;
export type SearchGradualParams = z.output<typeof SearchGradualRequest>;

export const EssentialSparsityRequest = z
  .object({
    /** A stored ticket, or an imported model (md_...), whose weights are swept. */
    ticket: Id,
    /** For an imported model: the dataset it is evaluated on (a ticket's run fixes its own). */
    dataset: Name.optional(),
    /** Accuracy drop allowed at the essential sparsity, as a fraction (default 0.01: one point). */
    tolerance: z.number().gt(0).lt(1).default(0.01),
    /** Evaluate on the first this many test examples (default: all). */
    examples: PositiveInt.optional(),
    /** Where the ticket's dataset is, if it was read with --data-dir. */
    dataDir: z.string().min(1).optional(),
  })
  .strict();
export type EssentialSparsityRequest = z.input<typeof EssentialSparsityRequest>;

export interface EssentialSparsityReport {
  /** The ticket swept, or null for an imported model. */
  ticket: TicketSummary | null;
  /** The imported model swept (md_...), or null for a ticket. */
  model: string | null;
  /** One-shot global magnitude pruning of the ticket's trained weights, no retraining. */
  curve: Array<{ target: number; sparsity: number; accuracy: number; loss: number }>;
  denseAccuracy: number;
  essentialSparsity: number | null;
  knee: { sparsity: number; secondDifference: number } | null;
  examples: number;
}

/** A ticket's trained weights under its mask, or an imported model's weights, measured on a dataset; nothing stored. */
export const EvaluateRequest = z
  .object({
    /** A stored ticket, or an imported model (md_...). */
    target: Id,
    /** For an imported model: the dataset (a ticket's run fixes its own). */
    dataset: Name.optional(),
    /** For an imported model: training images held out as the validation split (a ticket keeps its run's). */
    validationSize: z.number().int().min(0).max(1_000_000).default(5000),
    dataDir: z.string().min(1).optional(),
    backend: BackendChoice.default('auto'),
  })
  .strict();
export type EvaluateRequest = z.input<typeof EvaluateRequest>;

export interface EvaluateReport {
  ticket: TicketSummary | null;
  model: string | null;
  dataset: string;
  sparsity: number;
  validation: { loss: number; accuracy: number; examples: number };
  test: { loss: number; accuracy: number; examples: number };
  /** The test accuracy stored with the ticket when it was made (by open_lth, for imported runs); null for a model. */
  recordedTestAccuracy: number | null;
  backend: BackendReport;
}

export const InstabilityRequest = z
  .object({
    ticket: Id,
    /** α = i/(points − 1); default 31 points (α = i/30). */
    points: PositiveInt.min(2).max(1001).default(31),
    testExamples: PositiveInt.optional(),
    /** Both copies see the same data order: the control whose barrier must be 0. */
    sameDataOrder: z.boolean().default(false),
    backend: BackendChoice.default('auto'),
    dataDir: z.string().min(1).optional(),
  })
  .strict();
export type InstabilityRequest = z.input<typeof InstabilityRequest>;

export interface InstabilityReport {
  ticket: TicketSummary;
  /** The step both copies started from (the run's rewind point k) and where they ended. */
  startIteration: number;
  endIteration: number;
  curve: Array<{ alpha: number; error: number; loss: number }>;
  e0: number;
  e1: number;
  barrier: number;
  stable: boolean;
  testExamples: number;
  dataSeeds: [number, number] | null;
}

export const CriteriaOverlapRequest = z
  .object({
    ticket: Id,
    /** Default: magnitude, snip, grasp, synflow, random (synflow only with the global scope). */
    criteria: z.array(z.enum(['magnitude', 'snip', 'grasp', 'synflow', 'random'])).min(1).max(5).optional(),
    scope: z.enum(['layer', 'global']).default('global'),
    /** SynFlow's rounds (default 100). */
    synflowRounds: PositiveInt.max(1000).optional(),
    dataDir: z.string().min(1).optional(),
  })
  .strict();
export type CriteriaOverlapRequest = z.input<typeof CriteriaOverlapRequest>;

export interface CriteriaOverlapReport {
  ticket: TicketSummary;
  scope: 'global' | 'layer';
  kept: number;
  sparsity: number;
  /** What magnitude scored: the weights the ticket was pruned from (its parent's trained weights), or its own when it has no parent. */
  trainedFrom: 'parent' | 'own';
  criteria: Array<{ criterion: string; scored: 'trained' | 'start' | 'none'; total: MaskOverlap; layers: MaskOverlap[] }>;
  /** A criterion whose scored weights are zero wherever the ticket prunes sees its mask: its overlap is inflated. */
  warnings: string[];
}

/** What selects tickets: the CLI's `tickets` and the UI's table filters. */
const TicketFilterFields = {
  model: Name.optional(),
  dataset: Name.optional(),
  method: Name.optional(),
  run: Id.optional(),
  minSparsity: z.number().min(0).max(1).optional(),
  maxSparsity: z.number().min(0).max(1).optional(),
  /** Test accuracy range, as fractions. */
  minAccuracy: z.number().min(0).max(1).optional(),
  maxAccuracy: z.number().min(0).max(1).optional(),
  role: z.enum(['ticket', 'control']).optional(),
  /** Only claimed (true) or unclaimed (false) tickets. */
  claimed: z.boolean().optional(),
  /** Only tickets claimed with a key whose fingerprint starts with these hex digits. */
  owner: z.string().regex(/^[0-9a-f]{1,64}$/, 'a key fingerprint (hex) or its start').optional(),
};

export const ListTicketsRequest = z.object(TicketFilterFields).strict();
export type ListTicketsRequest = z.input<typeof ListTicketsRequest>;

/** One sorted page of the tickets a filter selects, with the total: the UI's table of thousands of tickets. */
export const BrowseTicketsRequest = z
  .object({
    ...TicketFilterFields,
    sort: z.enum(['created', 'sparsity', 'accuracy', 'level', 'method', 'model']).default('created'),
    order: z.enum(['asc', 'desc']).default('asc'),
    limit: z.number().int().min(1).max(1000).default(100),
    offset: z.number().int().min(0).default(0),
  })
  .strict();
export type BrowseTicketsRequest = z.input<typeof BrowseTicketsRequest>;

export interface TicketPageReport {
  total: number;
  offset: number;
  tickets: TicketSummary[];
}

export const ShowTicketRequest = z.object({ ticket: Id }).strict();
export type ShowTicketRequest = z.input<typeof ShowTicketRequest>;

/** A ticket's masks as pictures (the detail screen's heat-maps); all layers unless named. */
export const TicketMasksRequest = z.object({ ticket: Id, layers: z.array(Name).max(1000).optional() }).strict();
export type TicketMasksRequest = z.input<typeof TicketMasksRequest>;

export const CompareTicketsRequest = z.object({ a: Id, b: Id }).strict();
export type CompareTicketsRequest = z.input<typeof CompareTicketsRequest>;

/** A stored run's tickets and controls: its accuracy-vs-sparsity curve. */
export const ShowRunRequest = z.object({ run: Id }).strict();
export type ShowRunRequest = z.input<typeof ShowRunRequest>;

/** Continues an interrupted or cancelled IMP run after its last stored level, as if it had never stopped. */
export const ResumeRunRequest = z
  .object({
    run: Id,
    dataDir: z.string().min(1).optional(),
    backend: BackendChoice.default('auto'),
  })
  .strict();
export type ResumeRunRequest = z.input<typeof ResumeRunRequest>;

export const ListRunsRequest = z.object({}).strict();
export type ListRunsRequest = z.input<typeof ListRunsRequest>;

export const DbInfoRequest = z.object({}).strict();
export type DbInfoRequest = z.input<typeof DbInfoRequest>;

export const DoctorRequest = z.object({ backend: BackendChoice.default('auto') }).strict();
export type DoctorRequest = z.input<typeof DoctorRequest>;

/** A model file to read (safetensors, NumPy .npy/.npz, ...): a path on the machine that runs the service. */
export const InspectModelFileRequest = z.object({ path: z.string().min(1, 'a file path is required') }).strict();
export type InspectModelFileRequest = z.input<typeof InspectModelFileRequest>;

/** A model file into the store: a model id that searches can start from. */
export const ImportModelRequest = z
  .object({
    path: z.string().min(1, 'a model file path is required'),
    /** A name to show (default: the file's name). */
    name: z.string().min(1).max(200).optional(),
  })
  .strict();
export type ImportModelRequest = z.input<typeof ImportModelRequest>;

export interface ImportModelReport {
  /** md_ and the first 12 hex digits of the file's SHA-256: the same bytes give the same model. */
  id: string;
  name: string;
  /** False when the same file was imported before (nothing written). */
  created: boolean;
  format: string;
  sourceDigest: string;
  architecture: MatchedArchitecture;
  parameters: number;
}

/** Claims a stored ticket: the owner's signature in its mask topology and/or a trigger set trained into it. */
export const ClaimRequest = z
  .object({
    ticket: Id,
    /** The white-box graph signature (default on). */
    graph: z.boolean().default(true),
    /** The black-box trigger set (default off: it needs retraining). */
    trigger: z.boolean().default(false),
    /** Retrain the claimed ticket from its run's rewind point, as the paper does (default on; triggers need it). */
    retrain: z.boolean().default(true),
    /** Training steps of the retraining (default: the run's). */
    iterations: PositiveInt.optional(),
    falsePositiveRate: z.number().gt(0).lt(1).default(1e-6),
    dataDir: z.string().min(1).optional(),
    backend: BackendChoice.default('auto'),
  })
  .strict()
  .refine((v) => v.graph || v.trigger, { message: 'a claim embeds a graph signature, a trigger set, or both', path: ['graph'] })
  .refine((v) => v.retrain || !v.trigger, { message: 'a trigger set is trained in: it needs retraining (leave --no-retrain out)', path: ['retrain'] });
export type ClaimRequest = z.input<typeof ClaimRequest>;

/** One scheme's verdict: never a bare yes or no. */
export interface VerdictReport {
  claim: string;
  scheme: 'graph-signature' | 'trigger-set';
  verdict: 'verified' | 'not verified' | 'not comparable';
  /** Bits or trigger labels matched; null when not comparable. */
  score: number | null;
  /** Of how many. */
  n: number | null;
  /** The fewest matches that verify at the false-positive rate. */
  threshold: number | null;
  falsePositiveRate: number;
  /** The chance of at least this score by a suspect not derived from the claim. */
  pValue: number | null;
  evidence: Record<string, unknown>;
  /** The stored verification's id. */
  id: string;
}

export interface ClaimReport {
  original: TicketSummary;
  /** The claimed ticket: a child of the original carrying the claim. */
  ticket: TicketSummary;
  keyFingerprint: string;
  claims: Array<{ id: string; kind: 'graph-signature' | 'trigger-set'; commitment: string }>;
  /** Mask entries the signature changed (every layer keeps its count), or null without one. */
  edits: { layer: string; changed: number; bitOn: number; bitOff: number; repair: Record<string, number> } | null;
  testAccuracy: { before: number | null; after: number | null };
  /** The claims checked on the claimed ticket itself. */
  verdicts: VerdictReport[];
  backend: BackendReport;
}

export const ATTACK_KINDS = ['finetune', 'prune', 'retrain', 'ambiguity', 'permute', 'paths'] as const;

/** Runs an attack family against one's own claim (ALGORITHMS.md 9.6): each attacked network checked against the claimed ticket's claims. */
export const AttackRequest = z
  .object({
    claim: Id,
    kind: z.enum(ATTACK_KINDS),
    /** Training steps of fine-tuning and re-training (default: 20 epochs of fine-tuning, the run's length for re-training, one epoch after path removal). */
    iterations: PositiveInt.optional(),
    /** Path removal: paths removed through the hidden masked layers (default 10, 100 and 1000; the paper's `--num-paths 1000`). */
    paths: z.array(z.number().int().min(1).max(1_000_000)).min(1).max(10).optional(),
    /** Pruning: further fractions of the remaining weights (default 0.1, 0.2, 0.3, 0.4, 0.5). */
    fractions: z.array(z.number().gt(0).max(0.9)).min(1).max(20).optional(),
    seed: z.number().int().min(0).default(0),
    dataDir: z.string().min(1).optional(),
    backend: BackendChoice.default('auto'),
  })
  .strict();
export type AttackRequest = z.input<typeof AttackRequest>;

export interface AttackRow {
  /** The attack and its strength, in words (`prune 30 % by magnitude`). */
  attack: string;
  description: Record<string, unknown>;
  testAccuracy: number;
  verdicts: VerdictReport[];
  /** 9.6's rule: some verdict flipped to "not verified" while test accuracy stayed within 3 points of the claimed ticket's. */
  succeeded: boolean;
}

export interface AttackReport {
  /** The claims on the attacked ticket, each checked on every attacked network. */
  claims: string[];
  ticket: TicketSummary;
  kind: (typeof ATTACK_KINDS)[number];
  /** The claimed ticket itself, unattacked. */
  baseline: { testAccuracy: number; verdicts: VerdictReport[] };
  rows: AttackRow[];
}

/** What a search can be asked for here: the zoo's models with their paper defaults, and the datasets found. */
export const CatalogRequest = z.object({}).strict();
export type CatalogRequest = z.input<typeof CatalogRequest>;

export interface CatalogReport {
  models: Array<{
    id: string;
    title: string;
    /** The paper's training and pruning settings a search uses when none are given. */
    defaults: { optimizer: 'sgd' | 'adam'; learningRate: number; batchSize: number; iterations: number; scope: 'global' | 'layer'; rates: { conv: number; fc: number; output: number } };
  }>;
  /** Any fully connected LeNet by its widths (lenet-<w1>-<w2>…), besides the listed models. */
  modelPattern: string;
  datasets: Array<{ id: string; title: string; imageShape: number[]; numClasses: number; available: boolean; source: string | null; reason: string | null }>;
  pruneAtInitMethods: string[];
}

/** The claims the store knows (the verify screen's list): all, or those on one ticket. */
export const ListClaimsRequest = z.object({ ticket: Id.optional() }).strict();
export type ListClaimsRequest = z.input<typeof ListClaimsRequest>;

export interface ClaimSummary {
  id: string;
  kind: 'graph-signature' | 'trigger-set';
  /** The claimed ticket. */
  ticket: TicketSummary;
  keyFingerprint: string | null;
  /** Whether this lab holds the claim's private key (the owner's own claim: only then can triggers be redrawn). */
  own: boolean;
  commitment: string;
  createdAt: string;
  /** The verdicts stored for it (verify, attack), newest first, at most 20. */
  verifications: Array<{ id: string; subject: string; verdict: VerdictReport['verdict']; score: number | null; threshold: number | null; pValue: number | null; createdAt: string }>;
}

/** Checks a suspect (a stored ticket, or a model file) against one claim or every claim in the store. */
export const VerifyRequest = z
  .object({
    /** A ticket id, or a model file (its mask is where its weights are non-zero). */
    suspect: z.string().min(1, 'a suspect ticket id or model file is required'),
    /** The suspect is a .npy of logits [triggers, classes] for a claim's trigger set (from `ticket-lab triggers`): a model queried elsewhere. */
    logits: z.boolean().default(false),
    claim: Id.optional(),
    falsePositiveRate: z.number().gt(0).lt(1).optional(),
    backend: BackendChoice.default('auto'),
  })
  .strict();
export type VerifyRequest = z.input<typeof VerifyRequest>;

export interface VerifyReport {
  /** `ticket tk_…` or the file's path and SHA-256. */
  suspect: { kind: 'ticket' | 'file' | 'attack' | 'logits'; id: string; digest: string | null; model: string };
  verdicts: VerdictReport[];
}

/** A trigger-set claim's images, drawn again with the owner's key, as a .npy to query a suspect with elsewhere. */
export const ExportTriggersRequest = z
  .object({
    claim: Id,
    output: z.string().min(1, 'an output file (-o FILE) is required'),
    /** PyTorch's [n, c, h, w] (default) or TF.js's [n, h, w, c]. */
    layout: z.enum(['nchw', 'nhwc']).default('nchw'),
  })
  .strict();
export type ExportTriggersRequest = z.input<typeof ExportTriggersRequest>;

export interface ExportTriggersReport {
  claim: string;
  path: string;
  /** The array written: float32, normalised as the claimed ticket's inputs were. */
  shape: number[];
  normalization: { mean: number; std: number };
  commitment: string;
}

/** The owner's signing key and the public keys the store knows; `create` makes the owner key if there is none. */
export const KeysRequest = z.object({ create: z.boolean().default(false) }).strict();
export type KeysRequest = z.input<typeof KeysRequest>;

export interface KeyReport {
  /** Hex SHA-256 of the public key (SubjectPublicKeyInfo DER). */
  fingerprint: string;
  algorithm: string;
  publicKeyPem: string;
  label: string | null;
  own: boolean;
  /** Bundles it signs are imported without asking (the owner's, or a signer named with --key or accepted with --trust). */
  trusted: boolean;
}

export interface KeysReport {
  /** This user's key: its private half in `path` (mode 0600), never in the database; null when none was made yet. */
  owner: (KeyReport & { path: string; created: boolean }) | null;
  /** Where the owner key is or will be. */
  ownerKeyPath: string;
  /** Every public key in the store, the owner's included. */
  keys: KeyReport[];
}

/** An open_lth experiment folder (its root, or one lottery_<hash> folder) into the store, one run per replicate. */
export const ImportRunsRequest = z.object({ path: z.string().min(1, 'an open_lth experiment folder is required') }).strict();
export type ImportRunsRequest = z.input<typeof ImportRunsRequest>;

export interface ImportedRunReport {
  /** lottery_<hash of open_lth's hyperparameters>. */
  experiment: string;
  replicate: number;
  /** The replicate's folder. */
  path: string;
  /** False when this replicate, as read now, was imported before (nothing written). */
  created: boolean;
  /** The level-0 trained weights as an imported model (the id `ticket-lab import` gives that .pth). */
  model: string;
  architecture: MatchedArchitecture;
  run: SearchSummary;
}

export interface ImportRunsReport {
  /** The folder read, links resolved. */
  root: string;
  runs: ImportedRunReport[];
  /** Files missing or skipped, replicates or levels not imported, each saying why. */
  warnings: string[];
}

/** A ticket's masks (and its trained weights) in a file PyTorch loads, under PyTorch's names and layouts. */
export const ExportMaskRequest = z
  .object({
    ticket: Id,
    format: z.enum(['safetensors', 'npz', 'pt-state-dict']),
    output: z.string().min(1, 'an output file (-o FILE) is required'),
    /** Also the ticket's trained weights, masked (default true where the ticket has them). */
    weights: z.boolean().default(true),
  })
  .strict();
export type ExportMaskRequest = z.input<typeof ExportMaskRequest>;

export interface ExportMaskReport {
  ticket: TicketSummary;
  path: string;
  format: string;
  bytes: number;
  /** `<layer>.weight_mask` for each pruned tensor, then the state dict's tensors when weights were written. */
  tensors: Array<{ name: string; shape: number[] }>;
  sparsity: number;
}

/** The logits of a model file for a batch of inputs in a .npy file: to check an import against the framework that wrote it. */
export const PredictRequest = z
  .object({
    path: z.string().min(1, 'a model file path is required'),
    /** A .npy of float inputs: [n, c, h, w] (PyTorch's layout), [n, h, w, c] for TF.js files, or [n, features]. */
    input: z.string().min(1, 'an input .npy file is required'),
    backend: BackendChoice.default('auto'),
  })
  .strict();
export type PredictRequest = z.input<typeof PredictRequest>;

// ---- responses ----

export interface GpuAdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  /** A CPU implementation of the GPU API (SwiftShader): correct, slow. */
  software: boolean;
  limits: Record<string, number>;
}

export interface BackendReport {
  requested: string;
  provider: string;
  tfBackend: string;
  versions: Record<string, string>;
  features: { simd?: boolean; threads?: boolean };
  adapter?: GpuAdapterReport;
  notes: string[];
  /** Said to the user: a GPU that is there but unusable, a software adapter in use. */
  warnings: string[];
}

/** One backend provider as `ticket-lab doctor` finds it. */
export interface BackendProbeReport {
  provider: string;
  usable: boolean;
  /** Why not, or what it runs on. */
  detail: string;
  adapter?: GpuAdapterReport;
  /** Has the kernels conv-net training needs. */
  trainsConv: boolean | null;
}

export interface InspectedTensor {
  name: string;
  shape: number[];
  /** As stored in the file (float16, bfloat16, int64, ...); values are read as float32. */
  dtype: string;
  /** Σx and Σ|x| over the float32 values, in float64: to compare with what the writing framework computes. */
  sum: number;
  absSum: number;
}

/** The zoo network a file's tensors fit. */
export interface MatchedArchitecture {
  model: string;
  /** [h, w, c] the tensors imply. */
  inputShape: number[];
  numClasses: number;
  /** By the file's tensor names, or by their order when the names are not the zoo's; 'graph': built from an ONNX file's graph. */
  matchedBy: 'names' | 'order' | 'graph';
}

export interface ModelFileReport {
  path: string;
  format: string;
  /** The format in words ("NumPy .npz"). */
  formatTitle: string;
  bytes: number;
  /** Elements over all tensors. */
  elements: number;
  tensors: InspectedTensor[];
  /** The zoo network the tensors fit, null if none (the file can still be inspected, not run). */
  architecture: MatchedArchitecture | null;
}

export interface PredictReport {
  path: string;
  architecture: MatchedArchitecture;
  /** [n, classes], float32 values. */
  logits: number[][];
  backend: BackendReport;
}

export interface DoctorReport {
  /** What a search with the requested backend would run on; null when nothing can. */
  chosen: BackendReport | null;
  error: string | null;
  providers: BackendProbeReport[];
  versions: Record<string, string>;
}

export interface TicketSummary {
  id: string;
  runId: string;
  parentId: string | null;
  level: number;
  method: string;
  role: 'ticket' | 'control';
  model: string;
  dataset: string;
  /** Global sparsity over the prunable set (zeros / entries). */
  sparsity: number;
  kept: number;
  total: number;
  /** Test accuracy at the early-stop iteration (minimum validation loss), as the LTH paper reports. */
  testAccuracy: number | null;
  earlyStopIteration: number | null;
  createdAt: string;
}

export interface LayerSparsityReport {
  name: string;
  shape: number[];
  kept: number;
  total: number;
  sparsity: number;
}

export interface CurvePointReport {
  iteration: number;
  trainLoss: number | null;
  valLoss: number;
  valAccuracy: number;
}

export interface RunReport {
  id: string;
  /** Hash of method, model, dataset and the hyper-parameters that differ from the defaults: equal keys, same experiment. */
  runKey: string;
  method: string;
  model: string;
  dataset: string;
  seed: number;
  status: 'running' | 'completed' | 'cancelled' | 'failed' | 'interrupted';
  error: string | null;
  hparams: Record<string, unknown>;
  backend: Record<string, unknown>;
  versions: Record<string, string>;
  tickets: number;
  createdAt: string;
  finishedAt: string | null;
}

export interface TicketDetail extends TicketSummary {
  metrics: Record<string, unknown>;
  layers: LayerSparsityReport[];
  curve: CurvePointReport[];
  run: RunReport;
  lineage: { ancestors: TicketSummary[]; children: TicketSummary[] };
}

export interface MaskPictureReport {
  name: string;
  /** The mask's shape in TF.js layout ([in, out], [kh, kw, in, out]). */
  shape: number[];
  /** Output units: one picture row each. */
  rows: number;
  /** Inputs per output unit (in·kh·kw for a convolution, PyTorch's order). */
  cols: number;
  kept: number;
  total: number;
  /** rows·cols bits, row-major, kept = 1, packed MSB first (numpy.packbits), base64. */
  bits: string;
}

export interface TicketMasksReport {
  ticket: string;
  layers: MaskPictureReport[];
}

export interface SearchSummary {
  runId: string;
  status: RunReport['status'];
  /** The TF.js backend the run trained on. */
  backend: string;
  backendInfo: BackendReport;
  tickets: TicketSummary[];
  /** A search of several seeds: one run each, the first also above. */
  seedRuns?: Array<{ runId: string; seed: number; status: RunReport['status']; tickets: TicketSummary[] }>;
}

export interface MaskOverlap {
  name: string;
  total: number;
  keptA: number;
  keptB: number;
  /** |A∩B| / |A∪B| over kept entries. */
  iou: number;
  /** IoU two independent random masks of these densities would have: d_a·d_b / (d_a + d_b − d_a·d_b). */
  chanceIou: number;
  /** Number of entries where the masks differ. */
  hamming: number;
  /** Hamming distance / entries. */
  hammingFraction: number;
  /** |A∩B|, entries kept in both. */
  both: number;
  /** |A∩B| / |A| (the lottery-jackpots paper's overlap): the share of A's kept entries that B keeps too; 1 when A keeps nothing. */
  overlap: number;
  /** The overlap an independent B would have: its density d_b, since E|A∩B| = |A|·d_b. */
  chanceOverlap: number;
}

export interface CompareResult {
  a: TicketSummary;
  b: TicketSummary;
  layers: MaskOverlap[];
  total: MaskOverlap;
  /** Tensors present in only one of the two. */
  unmatched: string[];
}

export interface DbInfo {
  path: string;
  exists: boolean;
  schemaVersion: number | null;
  latestSchemaVersion: number;
  bytes: number | null;
  counts: Record<'models' | 'datasets' | 'runs' | 'tickets' | 'masks' | 'weights', number>;
}

/** Live progress of a search, for the CLI's progress line and (later) the UI's progress bars. */
export interface SearchProgress {
  runId: string;
  /** Level being trained; 0 = dense. */
  level: number;
  levels: number;
  /** Which piece of the level: the ticket itself, a control, or one-shot's phases. */
  piece: string;
  iteration: number;
  startIteration: number;
  endIteration: number;
  loss: number | null;
  valAccuracy: number | null;
  /** Fraction of the whole search done, in [0, 1]. */
  fraction: number;
  elapsedSeconds: number;
  etaSeconds: number | null;
}

// ---- signed ticket bundles (step 6) ----

/** Exports a ticket as a signed bundle (.tlb): manifest, masks, optional weights and lineage, and an OMS v1.0 model.sig by the owner's key. */
export const ExportBundleRequest = z
  .object({
    ticket: Id,
    output: z.string().min(1, 'an output file (-o FILE.tlb) is required'),
    /** The ticket's start and final weights (safetensors), and its ancestors' with withLineage. */
    withWeights: z.boolean().default(false),
    /** Its ancestors, root first, with their masks and claims. */
    withLineage: z.boolean().default(false),
  })
  .strict();
export type ExportBundleRequest = z.input<typeof ExportBundleRequest>;

export interface BundleFileReport {
  name: string;
  bytes: number;
  /** Hex SHA-256, as model.sig lists it. */
  sha256: string;
}

export interface ExportBundleReport {
  ticket: TicketSummary;
  path: string;
  bytes: number;
  /** The signed files (model.sig excluded). */
  files: BundleFileReport[];
  signer: { fingerprint: string; curve: string };
  lineage: number;
  claims: number;
}

/**
 * Verifies a bundle, or a plain folder signed by OMS (the reference implementation's output):
 * signature, statement, every digest, no unlisted file. Nothing is stored.
 */
export const VerifyBundleRequest = z
  .object({
    path: z.string().min(1),
    /** A PEM public key to verify with; without it, the key the signature carries (reported as known or not). */
    key: z.string().min(1).optional(),
    /** Folder only: the signature file (default: model.sig in the folder). */
    signature: z.string().min(1).optional(),
    /** Folder only: paths left out of signing, relative to the folder. */
    ignorePaths: z.array(z.string().min(1)).max(1000).optional(),
  })
  .strict();
export type VerifyBundleRequest = z.input<typeof VerifyBundleRequest>;

export interface BundleSignerReport {
  fingerprint: string;
  curve: string;
  /** The key is in this store's keys table (or is the owner's); `own` when it is this user's. */
  known: boolean;
  /** Bundles it signs import without --key or --trust: the owner's, or a signer the user named or accepted. */
  trusted: boolean;
  own: boolean;
  label: string | null;
}

export interface VerifyBundleReport {
  path: string;
  kind: 'bundle' | 'folder';
  verified: true;
  signer: BundleSignerReport;
  files: BundleFileReport[];
  /** Bundles only: what the manifest says the ticket is. */
  ticket: { id: string; model: string; dataset: string; method: string; sparsity: number; testAccuracy: number | null; lineage: number; claims: number } | null;
}

/** Verifies a bundle, then stores its ticket, lineage, claims and keys in one transaction (a no-op the second time). */
export const ImportBundleRequest = z
  .object({
    path: z.string().min(1),
    /** The signer's PEM public key; needed when the signer is not a key this store knows, unless `trust`. */
    key: z.string().min(1).optional(),
    /** Accept an unknown signer's key as the signature carries it (and remember it). */
    trust: z.boolean().default(false),
  })
  .strict();
export type ImportBundleRequest = z.input<typeof ImportBundleRequest>;

export interface ImportBundleReport {
  path: string;
  ticket: TicketSummary;
  signer: BundleSignerReport;
  /** Tickets written now, and those already here (importing twice writes nothing). */
  created: string[];
  present: string[];
  claims: string[];
}

// ---- jobs (step 7) ----

/** The long LabApi calls, run as jobs (core/jobs/job-messages.ts JOB_METHODS). */
// mergeDatabases has no progress, but a large merge would hold the app's main thread (or the server's) for long.
export const JOB_METHOD_NAMES = ['searchImp', 'searchOneShot', 'searchAtInit', 'searchGradual', 'resumeRun', 'claim', 'attack', 'instability', 'essentialSparsity', 'criteriaOverlap', 'mergeDatabases'] as const;

/** Queues a long call as a job; with `wait`, returns when it has finished (its progress streamed meanwhile). */
export const SubmitJobRequest = z
  .object({
    method: z.enum(JOB_METHOD_NAMES),
    /** The method's own request, validated as the method validates it. */
    request: z.record(z.string(), z.unknown()),
    wait: z.boolean().default(false),
  })
  .strict();
export type SubmitJobRequest = z.input<typeof SubmitJobRequest>;

export const ListJobsRequest = z.object({}).strict();
export type ListJobsRequest = z.input<typeof ListJobsRequest>;

export const CancelJobRequest = z.object({ job: Id }).strict();
export type CancelJobRequest = z.input<typeof CancelJobRequest>;

/** Puts an interrupted, cancelled or failed job back in the queue: an IMP job continues its run after its last stored level. */
export const ResumeJobRequest = z.object({ job: Id, wait: z.boolean().default(false) }).strict();
export type ResumeJobRequest = z.input<typeof ResumeJobRequest>;

export interface JobReport {
  id: string;
  method: string;
  /** The method's request, as validated when the job was submitted (which ticket, which claim, which budget). */
  request: Record<string, unknown>;
  state: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'interrupted';
  /** The last progress the job reported (searches: level, iteration, loss, accuracy, ETA). */
  progress: SearchProgress | null;
  error: string | null;
  /** The run the job writes, once it has one. */
  runId: string | null;
  /** A completed job's answer: what its method returns (SearchSummary, AttackReport, ...); null before. */
  result: unknown;
  cancelRequested: boolean;
  createdAt: string;
  updatedAt: string;
}

/** What a job runner reports as it goes: streamed to the UI (WebSocket, IPC) and the CLI's progress line. */
export type JobEvent =
  | { type: 'progress'; job: string; progress: SearchProgress }
  | { type: 'warning'; job: string; message: string }
  | { type: 'state'; job: JobReport };

// ---- the local server's file endpoints (ticket-lab serve; the renderer's HTTP transport reads these) ----

/** What a browser needs to know to hand files to the service, which reads and writes paths. */
export interface ServerSession {
  /** Where exports the browser downloads afterwards are written (GET /api/download?path=...). */
  exportDir: string;
  separator: string;
  maxBodyBytes: number;
  maxUploadBytes: number;
}

/** An uploaded file: its path on the server, for requests that take a path. */
export interface UploadReport {
  path: string;
  /** The folder of its upload group: a dropped folder's files share one (an open_lth experiment). */
  root: string;
  group: string;
  bytes: number;
}
