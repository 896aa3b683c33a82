// The commands of `ticket-lab`: each turns its options into one LabApi request and prints the answer.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidRequestError } from '../api/errors';
import type { CallOptions, LabApi } from '../api/lab-api';
import { startLabServer } from '../server/lab-server';
import { MERGE_COMMAND } from './merge-command';
import { SWEEP_COMMANDS } from './sweep-commands';

/** Where `npm run build` puts the renderer: dist/renderer, beside this file's dist/core/cli. */
const BUILT_RENDERER = join(__dirname, '..', '..', 'renderer');
import type { ListClaimsRequest, CriteriaOverlapRequest, EssentialSparsityRequest, EvaluateRequest, ExportMaskRequest, ImportModelRequest, ImportRunsRequest, InstabilityRequest, KeysRequest, ClaimRequest, VerifyRequest, AttackRequest, ExportTriggersRequest, ExportBundleRequest, ResumeRunRequest, SubmitJobRequest, VerifyBundleRequest, ImportBundleRequest, PredictRequest, PruneAtInitMethod, SearchAtInitRequest, SearchGradualRequest, SearchImpRequest, SearchOneShotRequest, SearchProgress, SearchSummary } from '../api/schemas';
import { claimsTable, compareTable, criteriaOverlapText, dbInfoText, doctorText, essentialSparsityText, evaluateText, importRunsText, instabilityText, keysText, jobsTable, exportBundleText, verifyBundleText, importBundleText, claimText, verifyText, attackText, modelFileText, predictText, runsTable, searchTable, ticketDetail, ticketTable } from './format';

/** A JSON object from a file the user named (a job's request); a clear error when it is none. */
function readJsonFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new InvalidRequestError(`Cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InvalidRequestError(`${path} is not JSON: ${(error as Error).message}.`, { cause: error });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InvalidRequestError(`${path} holds ${Array.isArray(value) ? 'an array' : String(value)}; a request is a JSON object.`);
  return value as Record<string, unknown>;
}

export type OptionKind = 'string' | 'int' | 'number' | 'boolean' | 'int-list' | 'number-list' | 'string-list';

export interface OptionDef {
  flag: string;
  /** The request field it fills (defaults to the flag in camelCase). */
  field?: string;
  kind: OptionKind;
  help: string;
  /** For a boolean flag: the value it puts in the request (`--no-retrain` sets retrain: false). */
  sets?: unknown;
  /** A one-letter alias (`-o`). */
  short?: string;
}

export interface CommandContext {
  api: LabApi;
  json: boolean;
  out(text: string): void;
  err(text: string): void;
  /** For long commands: cancel on Ctrl-C and a live progress line. */
  signal: AbortSignal;
  progress: ((p: SearchProgress) => void) | undefined;
}

export interface CommandDef {
  name: string;
  summary: string;
  positionals: string[];
  options: OptionDef[];
  /** Long-running: gets Ctrl-C handling and the progress line. */
  long?: boolean;
  /** What Ctrl-C does, said when it comes (default: a search stopping at its next safe point). */
  stopping?: string;
  /** Accepts --backend. */
  usesBackend?: boolean;
  run(ctx: CommandContext, request: Record<string, unknown>, positionals: string[]): Promise<void>;
}

const TRAINING_OPTIONS: OptionDef[] = [
  { flag: 'iterations', kind: 'int', help: 'training iterations per level (default: the model\'s LTH schedule, 50,000 for LeNet)' },
  { flag: 'epochs', kind: 'number', help: 'or: training length in epochs of the training split' },
  { flag: 'batch', field: 'batchSize', kind: 'int', help: 'batch size (default 60, as the LTH paper)' },
  { flag: 'optimizer', kind: 'string', help: 'adam | sgd (default adam)' },
  { flag: 'lr', field: 'learningRate', kind: 'number', help: 'learning rate (default: the model\'s LTH value, 1.2e-3 for LeNet; 0.1 for sgd)' },
  { flag: 'momentum', kind: 'number', help: 'SGD momentum (default: the model\'s, 0.9 for ResNet-20, else 0)' },
  { flag: 'weight-decay', kind: 'number', help: 'L2 weight decay (default: the model\'s, 1e-4 for ResNet-20, else 0)' },
  { flag: 'lr-drops', kind: 'number-list', help: 'fractions of training where the learning rate drops, e.g. 0.5,0.75 (default: the model\'s; ResNet-20: epochs 80 and 120 of 160)' },
  { flag: 'lr-drop-factor', kind: 'number', help: 'what each drop multiplies the learning rate by (default 0.1)' },
  { flag: 'augment', kind: 'boolean', sets: true, help: 'random crop (4 px zero padding) and left-right flip of training images, seeded (default: on for ResNets)' },
  { flag: 'no-augment', field: 'augment', kind: 'boolean', sets: false, help: 'no augmentation' },
  { flag: 'rewind', field: 'rewindIteration', kind: 'int', help: 'rewind kept weights to iteration k (default 0: the initialisation)' },
  { flag: 'eval-every', kind: 'int', help: 'validate every N iterations; early stop is the one with least validation loss (default 100)' },
  { flag: 'validation-size', kind: 'int', help: 'training examples held out for validation (default 5000)' },
  { flag: 'seed', kind: 'int', help: 'seed of the initialisation, data order and random choices (default 0)' },
  { flag: 'data-dir', kind: 'string', help: 'the dataset\'s files: MNIST-like IDX files (raw or .gz); CIFAR-10 binary batches, an image folder or a zip of one' },
];

/** For measures on a stored ticket: its run's dataset, checked by digest. */
const TICKET_DATA_DIR_OPTION: OptionDef = { flag: 'data-dir', kind: 'string', help: 'where the ticket\'s dataset is, if it was read from a folder' };
const MODEL_OPTION: OptionDef = { flag: 'model', kind: 'string', help: 'lenet-300-100 | lenet-<widths> (lenet-8-4) | conv-2 | conv-4 | conv-6 | resnet-20 | resnet-20-openlth | md_… (imported)' };
const DATASET_OPTION: OptionDef = { flag: 'dataset', kind: 'string', help: 'mnist | fashion-mnist | cifar10' };

/** Cancel on Ctrl-C and the progress line, for the long calls. */
function callOptions(ctx: CommandContext): CallOptions {
  return { signal: ctx.signal, ...(ctx.progress ? { onProgress: ctx.progress } : {}), onWarning: (message) => ctx.err(`warning: ${message}`) };
}

function printSearch(ctx: CommandContext, summary: SearchSummary): void {
  if (ctx.json) {
    ctx.out(JSON.stringify(summary, null, 2));
    return;
  }
  for (const run of summary.seedRuns?.slice(1) ?? []) {
    ctx.out(`run ${run.runId} (seed ${run.seed}, ${run.status}) on ${summary.backend}\n`);
    ctx.out(`${searchTable({ ...summary, ...run })}\n`);
  }
  ctx.out(`run ${summary.runId}${summary.seedRuns ? ` (seed ${summary.seedRuns[0]!.seed}, ${summary.status})` : ` (${summary.status})`} on ${summary.backend}\n`);
  ctx.out(searchTable(summary));
  const tickets = summary.tickets.filter((t) => t.role === 'ticket');
  const last = tickets[tickets.length - 1];
  const first = tickets[0];
  ctx.out('\nlook further:');
  ctx.out(`  ticket-lab tickets --run ${summary.runId}`);
  if (last) ctx.out(`  ticket-lab show ${last.id}`);
  if (first && last && first !== last) ctx.out(`  ticket-lab compare ${first.id} ${last.id}`);
  const control = summary.tickets.find((t) => t.role === 'control');
  if (control && control.parentId) ctx.out(`  ticket-lab compare ${control.parentId} ${control.id}`);
}

/** The demo's schedule: IMP on LeNet-300-100/MNIST, sized to finish in about 10 minutes on 2 CPU cores. */
export const DEMO_REQUEST: SearchImpRequest = {
  model: 'lenet-300-100',
  dataset: 'mnist',
  levels: 8,
  iterations: 1500,
  evalEvery: 100,
  control: 'reinit',
  controlLevels: [4, 8],
  seed: 0,
};

/** Each pruning-at-initialisation method: what it does and its own options (ALGORITHMS.md §3–6). */
const AT_INIT_METHODS: Record<PruneAtInitMethod, { summary: string; options: OptionDef[] }> = {
  random: { summary: 'random pruning at initialisation (uniform per layer, exact counts), then training', options: [] },
  erk: {
    summary: 'random pruning at initialisation with Erdős–Rényi-Kernel layer densities, then training',
    options: [{ flag: 'no-kernel', field: 'kernelAware', kind: 'boolean', sets: false, help: 'plain Erdős–Rényi densities (in+out)/(in·out), without the kernel dimensions' }],
  },
  snip: {
    summary: 'SNIP: prune by |gradient × weight| at initialisation, then train',
    options: [{ flag: 'examples-per-class', kind: 'int', help: 'scoring examples per class, one batch (default 10)' }],
  },
  grasp: {
    summary: 'GraSP: prune to preserve gradient flow (Hessian-gradient product) at initialisation, then train',
    options: [
      { flag: 'examples-per-class', kind: 'int', help: 'scoring examples per class, one batch (default 10)' },
      { flag: 'temperature', kind: 'number', help: 'logits divided by this while scoring (default 200)' },
      { flag: 'hessian', kind: 'string', help: 'auto (default) | exact | finite-difference' },
    ],
  },
  synflow: {
    summary: 'SynFlow: data-free iterative synaptic-flow pruning at initialisation, then train',
    options: [
      { flag: 'rounds', kind: 'int', help: 'pruning rounds (default 100)' },
      { flag: 'round-schedule', kind: 'string', help: 'exponential (default) | linear' },
    ],
  },
};

/** A `search <method>` command: long (progress line, Ctrl-C), on a backend, model and dataset first. */
function searchCommand(command: Pick<CommandDef, 'name' | 'summary' | 'options' | 'run'>): CommandDef {
  return { ...command, positionals: [], long: true, usesBackend: true, options: [MODEL_OPTION, DATASET_OPTION, ...command.options] };
}

/** A measure on one stored ticket (`overlap`, `essential-sparsity`, `instability`): long, the ticket's data folder last among its options. */
function ticketMeasureCommand<R>(command: Pick<CommandDef, 'name' | 'summary' | 'options' | 'usesBackend'> & {
  measure: (api: LabApi, request: Record<string, unknown>, options: CallOptions) => Promise<R>;
  text: (report: R) => string;
}): CommandDef {
  const { measure, text, ...rest } = command;
  return {
    ...rest,
    positionals: ['TICKET'],
    long: true,
    options: [...command.options, TICKET_DATA_DIR_OPTION],
    async run(ctx, request, [ticket]) {
      const report = await measure(ctx.api, { ...request, ticket: ticket! }, callOptions(ctx));
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : text(report));
    },
  };
}

function atInitCommand(method: PruneAtInitMethod): CommandDef {
  const { summary, options } = AT_INIT_METHODS[method];
  return searchCommand({
    name: `search ${method}`,
    summary,
    options: [
      { flag: 'sparsity', kind: 'number', help: 'fraction of prunable weights to remove, in (0, 1)' },
      ...(method === 'erk' ? [] : [{ flag: 'scope', kind: 'string', help: `layer | global (default ${method === 'random' ? 'layer' : 'global'})` } satisfies OptionDef]),
      ...options,
      { flag: 'no-train', field: 'train', kind: 'boolean', sets: false, help: 'evaluate the pruned initial network without training it' },
      ...TRAINING_OPTIONS.filter((o) => o.flag !== 'rewind'),
    ],
    async run(ctx, request) {
      printSearch(ctx, await ctx.api.searchAtInit({ ...request, method } as SearchAtInitRequest, callOptions(ctx)));
    },
  });
}

/** Gradual magnitude pruning while training: GraNet (with regrowth) or plain GMP (ALGORITHMS.md §8). */
function gradualCommand(regrow: boolean): CommandDef {
  return searchCommand({
    name: regrow ? 'search granet' : 'search gmp',
    summary: regrow
      ? 'GraNet: gradual magnitude pruning during training (cubic schedule) with zero-cost neuroregeneration by gradient'
      : 'gradual magnitude pruning during training on the cubic schedule of Zhu & Gupta, without regrowth',
    options: [
      { flag: 'sparsity', kind: 'number', help: 'sparsity at the end of pruning, in (0, 1)' },
      { flag: 'initial-density', kind: 'number', help: 'density to start from: 1 = dense-to-sparse (default); below 1 = sparse-to-sparse from an ERK random mask (GraNet: 0.5)' },
      ...(regrow
        ? [
            { flag: 'regrowth-rate', kind: 'number', help: 'fraction of each layer\'s weights swapped at the start, decaying on a cosine (default 0.5)' },
            { flag: 'final-regrowth-rate', kind: 'number', help: 'the fraction at the end (default 0.005)' },
          ] satisfies OptionDef[]
        : []),
      { flag: 'update-every', kind: 'int', help: 'iterations between mask updates (default: 1/64 of training, at most 1000)' },
      { flag: 'prune-start', kind: 'number', help: 'start of pruning, as a fraction of training (default 0)' },
      { flag: 'prune-end', kind: 'number', help: 'end of pruning, as a fraction of training (default 0.5)' },
      ...TRAINING_OPTIONS.filter((o) => o.flag !== 'rewind'),
    ],
    async run(ctx, request) {
      printSearch(ctx, await ctx.api.searchGradual({ ...request, regrow } as SearchGradualRequest, callOptions(ctx)));
    },
  });
}

export const COMMANDS: CommandDef[] = [
  searchCommand({
    name: 'search imp',
    summary: 'iterative magnitude pruning with rewinding: a ticket per level',
    options: [
      { flag: 'levels', kind: 'int', help: 'pruning levels after the dense one (default 15)' },
      { flag: 'rate', kind: 'number', help: 'fraction of remaining fc weights pruned per level (default 0.2); with --scope global, the one rate' },
      { flag: 'conv-rate', kind: 'number', help: 'per-level rate of conv layers (default 0.1; conv-6: 0.15)' },
      { flag: 'output-rate', kind: 'number', help: 'per-level rate of the output layer (default 0.1)' },
      { flag: 'scope', kind: 'string', help: 'layer (LTH paper; default for LeNet and Conv-2/4/6) | global (open_lth; default for the ResNets)' },
      { flag: 'control', kind: 'string', help: 'also train a control: reinit (same mask, new weights) | random-mask (same per-layer sparsity)' },
      { flag: 'control-levels', kind: 'int-list', help: 'levels that train the control, e.g. 3,6,9 (default: all)' },
      { flag: 'seeds', kind: 'int-list', help: 'several seeds searched together, one run each, trained as one stack (e.g. 0,1,2); replaces --seed' },
      { flag: 'rewind-to', kind: 'string', help: 'weights (LTH, default) | learning-rate (keep the trained weights, restart the schedule at --rewind)' },
      ...TRAINING_OPTIONS,
    ],
    async run(ctx, request) {
      printSearch(ctx, await ctx.api.searchImp(request as SearchImpRequest, callOptions(ctx)));
    },
  }),
  searchCommand({
    name: 'search oneshot',
    summary: 'one-shot magnitude pruning to a target sparsity',
    options: [
      { flag: 'sparsity', kind: 'number', help: 'fraction of prunable weights to remove, in (0, 1)' },
      { flag: 'scope', kind: 'string', help: 'layer (default) | global' },
      { flag: 'from', field: 'fromTicket', kind: 'string', help: 'prune this ticket\'s trained weights instead of training a dense network first' },
      { flag: 'no-retrain', field: 'retrain', kind: 'boolean', sets: false, help: 'evaluate the pruned weights without retraining from the rewind point' },
      ...TRAINING_OPTIONS,
    ],
    async run(ctx, request) {
      printSearch(ctx, await ctx.api.searchOneShot(request as SearchOneShotRequest, callOptions(ctx)));
    },
  }),
  searchCommand({
    name: 'search jackpot',
    summary: 'lottery jackpot: search a mask on frozen trained weights (a stored ticket\'s, or a dense network trained first)',
    options: [
      { flag: 'sparsity', kind: 'number', help: 'fraction of prunable weights to remove, in (0, 1); the classifier stays dense' },
      { flag: 'from', field: 'fromTicket', kind: 'string', help: 'search on this ticket\'s trained weights instead of training a dense network first' },
      { flag: 'search-iterations', kind: 'int', help: 'steps of score training (default 2000)' },
      { flag: 'search-batch', field: 'searchBatchSize', kind: 'int', help: 'batch of score training (default 256)' },
      { flag: 'search-lr', field: 'searchLearningRate', kind: 'number', help: 'learning rate of score training, SGD with momentum 0.9, cosine (default 0.1)' },
      { flag: 'retrain', kind: 'boolean', sets: true, help: 'also retrain the found ticket from the rewind point (default: no weight training, as the paper)' },
      ...TRAINING_OPTIONS,
    ],
    async run(ctx, request) {
      printSearch(ctx, await ctx.api.searchOneShot({ retrain: false, ...request, criterion: 'jackpot' } as SearchOneShotRequest, callOptions(ctx)));
    },
  }),
  ...(['random', 'erk', 'snip', 'grasp', 'synflow'] as const).map(atInitCommand),
  gradualCommand(true),
  gradualCommand(false),
  {
    name: 'tickets',
    summary: 'list tickets, filtered',
    positionals: [],
    options: [
      { flag: 'model', kind: 'string', help: 'only this architecture' },
      { flag: 'dataset', kind: 'string', help: 'only this dataset' },
      { flag: 'method', kind: 'string', help: 'imp | oneshot-magnitude | dense | reinit-control | random-mask-control' },
      { flag: 'run', kind: 'string', help: 'only this run (id or unique prefix)' },
      { flag: 'min-sparsity', kind: 'number', help: 'only tickets at least this sparse, in [0, 1]' },
      { flag: 'max-sparsity', kind: 'number', help: 'only tickets at most this sparse, in [0, 1]' },
      { flag: 'min-accuracy', kind: 'number', help: 'only tickets with at least this test accuracy, in [0, 1]' },
      { flag: 'max-accuracy', kind: 'number', help: 'only tickets with at most this test accuracy, in [0, 1]' },
      { flag: 'role', kind: 'string', help: 'ticket | control' },
      { flag: 'claimed', kind: 'boolean', sets: true, help: 'only tickets with an ownership claim' },
      { flag: 'unclaimed', field: 'claimed', kind: 'boolean', sets: false, help: 'only tickets without one' },
      { flag: 'owner', kind: 'string', help: 'only tickets claimed with this key (fingerprint or its start)' },
    ],
    async run(ctx, request) {
      const tickets = await ctx.api.listTickets(request);
      if (ctx.json) ctx.out(JSON.stringify(tickets, null, 2));
      else ctx.out(tickets.length ? ticketTable(tickets) : 'no tickets match (start one with `ticket-lab demo` or `ticket-lab search imp`)');
    },
  },
  {
    name: 'show',
    summary: 'a ticket: metrics, per-layer sparsity, lineage',
    positionals: ['TICKET'],
    options: [],
    async run(ctx, _request, [ticket]) {
      const detail = await ctx.api.showTicket({ ticket: ticket! });
      ctx.out(ctx.json ? JSON.stringify(detail, null, 2) : ticketDetail(detail));
    },
  },
  {
    name: 'compare',
    summary: 'per-layer and total IoU and Hamming distance of two tickets\' masks',
    positionals: ['A', 'B'],
    options: [],
    async run(ctx, _request, [a, b]) {
      const result = await ctx.api.compareTickets({ a: a!, b: b! });
      ctx.out(ctx.json ? JSON.stringify(result, null, 2) : compareTable(result));
    },
  },
  ticketMeasureCommand({
    name: 'overlap',
    summary: 'overlap of a ticket\'s mask with what magnitude, SNIP, GraSP, SynFlow and random keep at its sparsity',
    options: [
      { flag: 'criteria', kind: 'string-list', help: 'some of magnitude,snip,grasp,synflow,random (default all)' },
      { flag: 'scope', kind: 'string', help: 'global (default: the ticket\'s total count) | layer (its count per tensor)' },
      { flag: 'synflow-rounds', kind: 'int', help: 'SynFlow rounds (default 100)' },
    ],
    measure: (api, request, options) => api.criteriaOverlap(request as CriteriaOverlapRequest, options),
    text: criteriaOverlapText,
  }),
  ticketMeasureCommand({
    name: 'essential-sparsity',
    summary: 'one-shot magnitude sweep of a ticket\'s trained weights or an imported model\'s (md_..., with --dataset), no retraining: where accuracy starts to fall',
    options: [
      { flag: 'dataset', kind: 'string', help: 'for an imported model: the dataset to measure it on' },
      { flag: 'tolerance', kind: 'number', help: 'accuracy drop allowed, as a fraction (default 0.01: one point)' },
      { flag: 'examples', kind: 'int', help: 'evaluate on the first N test examples (default: all)' },
    ],
    measure: (api, request, options) => api.essentialSparsity(request as EssentialSparsityRequest, options),
    text: essentialSparsityText,
  }),
  {
    name: 'evaluate',
    summary: "a ticket's trained weights under its mask, or an imported model (md_..., with --dataset), on the validation and test splits; nothing stored",
    positionals: ['TICKET|MODEL'],
    usesBackend: true,
    options: [
      { flag: 'dataset', kind: 'string', help: 'for an imported model: the dataset to measure it on' },
      { flag: 'validation-size', kind: 'int', help: 'for an imported model: training images held out for validation (default 5000)' },
      TICKET_DATA_DIR_OPTION,
    ],
    async run(ctx, request, [target]) {
      const report = await ctx.api.evaluate({ ...request, target: target! } as EvaluateRequest);
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : evaluateText(report));
    },
  },
  ticketMeasureCommand({
    name: 'instability',
    summary: 'linear mode connectivity: train two copies from the ticket\'s start, the error barrier between them',
    usesBackend: true,
    options: [
      { flag: 'points', kind: 'int', help: 'points on the line, α = i/(N−1) (default 31)' },
      { flag: 'test-examples', kind: 'int', help: 'evaluate on the first N test examples (default: all)' },
      { flag: 'same-data-order', kind: 'boolean', sets: true, help: 'both copies see the same batches: the control, whose barrier must be 0' },
    ],
    measure: (api, request, options) => api.instability(request as InstabilityRequest, options),
    text: instabilityText,
  }),
  {
    name: 'resume',
    summary: 'continues an interrupted or cancelled IMP run after its last stored level (on its backend: the result of an uninterrupted run)',
    positionals: ['RUN'],
    long: true,
    usesBackend: true,
    options: [{ flag: 'data-dir', kind: 'string', help: 'where the run\'s dataset is, if it was read from a folder' }],
    async run(ctx, request, [run]) {
      printSearch(ctx, await ctx.api.resumeRun({ ...request, run: run! } as ResumeRunRequest, callOptions(ctx)));
    },
  },
  {
    name: 'serve',
    summary: 'the LabApi over HTTP and job events over a WebSocket, for a browser or a laptop (loopback only unless --host; a per-session token)',
    positionals: [],
    long: true,
    stopping: 'stopping the server; a running job stops at its next safe point and keeps its finished levels',
    options: [
      { flag: 'port', kind: 'int', help: 'the port (default: any free one)' },
      { flag: 'host', kind: 'string', help: 'the address to listen on (default 127.0.0.1; another one lets this network in, with the token as the only lock)' },
      { flag: 'renderer', kind: 'string', help: 'the built renderer to serve (default: the one `npm run build` put in dist/renderer)' },
    ],
    async run(ctx, request) {
      const { port, host, renderer } = request as { port?: number; host?: string; renderer?: string };
      if (port !== undefined && (port < 0 || port > 65535)) throw new InvalidRequestError(`--port must be 0..65535, got ${port}.`);
      const staticDir = renderer ?? BUILT_RENDERER;
      const built = existsSync(join(staticDir, 'index.html'));
      if (!built && renderer) throw new InvalidRequestError(`--renderer: ${renderer} holds no index.html; build it with \`npm run build\`.`);
      if (!built) ctx.err('No built renderer (dist/renderer): serving the API only. `npm run build` builds it.');
      const server = await startLabServer({ service: ctx.api, ...(built ? { staticDir } : {}), ...(port !== undefined ? { port } : {}), ...(host ? { host } : {}) });
      ctx.out(ctx.json ? JSON.stringify({ url: server.url, host: server.host, port: server.port }) : `Ticket Lab serves at ${server.url}\n(open it once: the token then stays in a cookie; Ctrl-C stops)`);
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      await server.close();
    },
  },
  {
    name: 'jobs',
    summary: 'the jobs (searches, attacks, resumes run in worker threads by `serve` and the app, or by `jobs run`): state, progress, run',
    positionals: [],
    options: [],
    async run(ctx) {
      const jobs = await ctx.api.listJobs({});
      ctx.out(ctx.json ? JSON.stringify(jobs, null, 2) : jobs.length ? jobsTable(jobs) : 'no jobs yet');
    },
  },
  {
    name: 'jobs run',
    summary: 'runs a long call as a job in a worker thread and follows it (Ctrl-C cancels it at a safe point; killed, `jobs resume` continues it)',
    positionals: ['METHOD'],
    long: true,
    options: [{ flag: 'request', kind: 'string', help: 'a JSON file with the method\'s request, e.g. {"model": "lenet-300-100", "dataset": "mnist", "levels": 3} for searchImp' }],
    async run(ctx, request, [method]) {
      const { request: path } = request as { request?: string };
      if (!path) throw new InvalidRequestError('jobs run needs --request FILE.json with the method\'s request.');
      const report = await ctx.api.submitJob({ method, request: readJsonFile(path), wait: true } as SubmitJobRequest, callOptions(ctx));
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : jobsTable([report]));
    },
  },
  {
    name: 'jobs cancel',
    summary: 'cancels a queued job now, a running one (in whichever process runs it) at its next safe point',
    positionals: ['JOB'],
    options: [],
    async run(ctx, request, [job]) {
      const report = await ctx.api.cancelJob({ job: job! });
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : report.state === 'cancelled' ? `job ${report.id} cancelled` : `job ${report.id}: cancel asked for; it stops at its next safe point`);
    },
  },
  {
    name: 'jobs resume',
    summary: 'continues an interrupted, cancelled or failed job here (an IMP job after its last stored level) and follows it',
    positionals: ['JOB'],
    long: true,
    options: [],
    async run(ctx, request, [job]) {
      const report = await ctx.api.resumeJob({ job: job!, wait: true }, callOptions(ctx));
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : jobsTable([report]));
    },
  },
  {
    name: 'runs',
    summary: 'list runs with their status',
    positionals: [],
    options: [],
    async run(ctx) {
      const runs = await ctx.api.listRuns({});
      if (ctx.json) ctx.out(JSON.stringify(runs, null, 2));
      else ctx.out(runs.length ? runsTable(runs) : 'no runs yet');
    },
  },
  {
    name: 'curve',
    summary: 'a run\'s accuracy against remaining weights, level by level, with its controls',
    positionals: ['RUN'],
    options: [],
    async run(ctx, _request, [run]) {
      const summary = await ctx.api.showRun({ run: run! });
      ctx.out(ctx.json ? JSON.stringify(summary, null, 2) : searchTable(summary));
    },
  },
  {
    name: 'db info',
    summary: 'database path, schema version and counts',
    positionals: [],
    options: [],
    async run(ctx) {
      const info = await ctx.api.dbInfo({});
      ctx.out(ctx.json ? JSON.stringify(info, null, 2) : dbInfoText(info));
    },
  },
  {
    name: 'doctor',
    summary: 'compute backends: which run here (GPU adapter included), which a search would use, and why',
    positionals: [],
    usesBackend: true,
    options: [],
    async run(ctx, request) {
      const report = await ctx.api.doctor(request);
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : doctorText(report));
    },
  },
  {
    name: 'inspect',
    summary: 'a model file (safetensors, NumPy .npy/.npz): its format and tensors with their sums, nothing stored',
    positionals: ['FILE'],
    options: [],
    async run(ctx, _request, [path]) {
      const report = await ctx.api.inspectModelFile({ path: path! });
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : modelFileText(report));
    },
  },
  {
    name: 'predict',
    summary: "a model file's logits for the inputs in a .npy file, to check an import against the framework that wrote it",
    positionals: ['FILE'],
    usesBackend: true,
    options: [{ flag: 'input', kind: 'string', help: '.npy of inputs: [n, c, h, w] for PyTorch files, [n, h, w, c] for TF.js files, or [n, features]' }],
    async run(ctx, request, [path]) {
      const report = await ctx.api.predict({ ...request, path: path! } as PredictRequest);
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : predictText(report));
    },
  },
  {
    name: 'import',
    summary: 'a model file (safetensors, .npz, ONNX, ...) into the database: its zoo network, weights in TF.js layouts, a model id',
    positionals: ['FILE'],
    options: [{ flag: 'name', kind: 'string', help: 'a name to show (default: the file name)' }],
    async run(ctx, request, [path]) {
      const report = await ctx.api.importModel({ ...request, path: path! } as ImportModelRequest);
      const a = report.architecture;
      ctx.out(
        ctx.json
          ? JSON.stringify(report, null, 2)
          : `${report.id}  ${report.name}: ${a.model} on ${a.inputShape.join('×')} inputs, ${a.numClasses} classes, ${report.parameters.toLocaleString('en-US')} parameters (${report.created ? 'imported' : 'already imported: the same bytes'})`,
      );
    },
  },
  {
    name: 'import-runs',
    summary: 'an open_lth experiment folder (its root or one lottery_<hash>): per replicate, one IMP run whose levels become a lineage of tickets',
    positionals: ['DIR'],
    options: [],
    async run(ctx, request, [path]) {
      const report = await ctx.api.importRuns({ ...request, path: path! } as ImportRunsRequest);
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : importRunsText(report));
    },
  },
  {
    name: 'claim',
    summary: "claims a ticket with the owner's key: a graph signature in its mask topology and/or a trigger set, retrained from its rewind point; the claimed ticket is a child of it",
    positionals: ['TICKET'],
    long: true,
    usesBackend: true,
    options: [
      { flag: 'graph', kind: 'boolean', sets: true, help: 'embed the graph signature (the default)' },
      { flag: 'no-graph', field: 'graph', kind: 'boolean', sets: false, help: 'no graph signature (then give --trigger)' },
      { flag: 'trigger', kind: 'boolean', sets: true, help: 'also train a keyed trigger set into it (black-box verification)' },
      { flag: 'no-retrain', field: 'retrain', kind: 'boolean', sets: false, help: 'keep the trained weights under the signed mask (no trigger set then)' },
      { flag: 'iterations', kind: 'int', help: "retraining steps (default: the run's)" },
      { flag: 'false-positive-rate', kind: 'number', help: 'the verdicts\' false-positive rate (default 1e-6)' },
      TICKET_DATA_DIR_OPTION,
    ],
    async run(ctx, request, [ticket]) {
      const report = await ctx.api.claim({ ...request, ticket: ticket! } as ClaimRequest, callOptions(ctx));
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : claimText(report));
    },
  },
  {
    name: 'verify',
    summary: 'a suspect (a ticket id, or a model file: its mask where its weights are non-zero) against a claim, or every claim: a verdict per scheme with score, threshold and p-value, stored',
    positionals: ['SUSPECT'],
    usesBackend: true,
    options: [
      { flag: 'claim', kind: 'string', help: 'the claim (cl_…; default: every claim in the database)' },
      { flag: 'logits', kind: 'boolean', sets: true, help: "SUSPECT is a .npy of a model's logits [triggers, classes] for a claim's trigger images (ticket-lab triggers)" },
      { flag: 'false-positive-rate', kind: 'number', help: "the verdicts' false-positive rate (default: the claim's)" },
    ],
    async run(ctx, request, [suspect]) {
      const report = await ctx.api.verify({ ...request, suspect: suspect! } as VerifyRequest);
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : verifyText(report));
    },
  },
  {
    name: 'attack',
    summary: "attacks one's own claim and checks every attacked network against the claimed ticket's claims: finetune, prune, retrain, ambiguity, permute or paths",
    positionals: ['CLAIM'],
    long: true,
    usesBackend: true,
    options: [
      { flag: 'kind', kind: 'string', help: 'finetune | prune | retrain | ambiguity | permute | paths' },
      { flag: 'iterations', kind: 'int', help: 'fine-tuning and re-training steps (default: 20 epochs of fine-tuning; the run\'s length for re-training; one epoch after path removal)' },
      { flag: 'paths', kind: 'int-list', help: 'paths: how many channel paths through the hidden masked layers to remove, each a run (default 10,100,1000)' },
      { flag: 'fractions', kind: 'number-list', help: 'prune: further fractions of the remaining weights (default 0.1,0.2,0.3,0.4,0.5); ambiguity: fractions revived (default 0.1)' },
      { flag: 'seed', kind: 'int', help: 'seeds the attacks\' random choices (default 0)' },
      TICKET_DATA_DIR_OPTION,
    ],
    async run(ctx, request, [claim]) {
      const report = await ctx.api.attack({ ...request, claim: claim! } as AttackRequest, callOptions(ctx));
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : attackText(report));
    },
  },
  {
    name: 'triggers',
    summary: "a trigger-set claim's images (the owner key draws them again), normalised as the ticket's inputs, as a .npy to query a suspect with in another framework",
    positionals: ['CLAIM'],
    options: [
      { flag: 'output', short: 'o', kind: 'string', help: 'the .npy to write' },
      { flag: 'layout', kind: 'string', help: 'nchw (PyTorch, default) | nhwc (TF.js)' },
    ],
    async run(ctx, request, [claim]) {
      const report = await ctx.api.exportTriggers({ ...request, claim: claim! } as ExportTriggersRequest);
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : `${report.path}: ${report.shape.join('×')} float32 trigger images of claim ${report.claim} (mean ${report.normalization.mean}, std ${report.normalization.std}); query the suspect, save its logits [${report.shape[0]}, classes] as .npy, then \`ticket-lab verify LOGITS.npy --logits --claim ${report.claim}\``);
    },
  },
  {
    name: 'keys',
    summary: "the owner's signing key (ECDSA P-256; its private half in a 0600 file, never in the database) and the public keys the store knows",
    positionals: [],
    options: [{ flag: 'create', kind: 'boolean', sets: true, help: 'make the owner key now if there is none (a first claim makes it too)' }],
    async run(ctx, request) {
      const report = await ctx.api.keys(request as KeysRequest);
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : keysText(report));
    },
  },
  {
    name: 'claims',
    summary: 'the claims the store knows: kind, claimed ticket, whose key, and the latest stored verdict',
    positionals: [],
    options: [{ flag: 'ticket', kind: 'string', help: 'only the claims on this ticket' }],
    async run(ctx, request) {
      const claims = await ctx.api.listClaims(request as ListClaimsRequest);
      ctx.out(ctx.json ? JSON.stringify(claims, null, 2) : claims.length === 0 ? 'No claims yet: `ticket-lab claim TICKET` makes one.' : claimsTable(claims));
    },
  },
  {
    name: 'export-mask',
    summary: "a ticket's masks (<layer>.weight_mask) and trained weights under PyTorch's names and layouts, for load_state_dict and prune.custom_from_mask",
    positionals: ['TICKET'],
    options: [
      { flag: 'format', kind: 'string', help: 'safetensors | npz | pt-state-dict (torch.load, weights_only=True)' },
      { flag: 'output', short: 'o', kind: 'string', help: 'the file to write (replaced whole, never half-written)' },
      { flag: 'no-weights', field: 'weights', kind: 'boolean', sets: false, help: 'the masks only, without the trained weights' },
    ],
    async run(ctx, request, [ticket]) {
      const report = await ctx.api.exportMask({ ...request, ticket: ticket! } as ExportMaskRequest);
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : `${report.path}: ${report.format}, ${report.tensors.length} tensors of ticket ${report.ticket.id} (${(100 * report.sparsity).toFixed(2)} % pruned), ${report.bytes.toLocaleString('en-US')} bytes`);
    },
  },
  {
    name: 'export',
    summary: 'a ticket as a signed bundle (.tlb): manifest, masks, optional weights and lineage, and an OMS v1.0 model.sig by the owner\'s key',
    positionals: ['TICKET'],
    options: [
      { flag: 'output', short: 'o', kind: 'string', help: 'the .tlb to write (replaced whole, never half-written)' },
      { flag: 'with-weights', kind: 'boolean', sets: true, help: 'also the ticket\'s start and final weights (safetensors)' },
      { flag: 'with-lineage', kind: 'boolean', sets: true, help: 'also its ancestors, root first, with their masks and claims' },
    ],
    async run(ctx, request, [ticket]) {
      const report = await ctx.api.exportBundle({ ...request, ticket: ticket! } as ExportBundleRequest);
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : exportBundleText(report));
    },
  },
  {
    name: 'verify-bundle',
    summary: 'checks a bundle, or a folder signed by OMS: the signature, every file\'s digest, no unlisted file; says who signed it; stores nothing',
    positionals: ['FILE|DIR'],
    options: [
      { flag: 'key', kind: 'string', help: 'a PEM public key to verify with (default: the key the signature carries)' },
      { flag: 'signature', kind: 'string', help: 'folder: the signature file (default DIR/model.sig)' },
      { flag: 'ignore-paths', kind: 'string-list', help: 'folder: paths left out of signing, e.g. ignore-me,.git' },
    ],
    async run(ctx, request, [path]) {
      const report = await ctx.api.verifyBundle({ ...request, path: path! } as VerifyBundleRequest);
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : verifyBundleText(report));
    },
  },
  {
    name: 'import-bundle',
    summary: 'verifies a bundle, then stores its ticket, lineage, claims and keys in one transaction (again: a no-op)',
    positionals: ['FILE'],
    options: [
      { flag: 'key', kind: 'string', help: 'the signer\'s PEM public key, when it is not a key this lab knows' },
      { flag: 'trust', kind: 'boolean', sets: true, help: 'accept an unknown signer\'s key as the bundle carries it (check its fingerprint first)' },
    ],
    async run(ctx, request, [path]) {
      const report = await ctx.api.importBundle({ ...request, path: path! } as ImportBundleRequest);
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : importBundleText(report));
    },
  },
  {
    name: 'demo',
    summary: 'IMP on LeNet-300-100 / MNIST with a short schedule (about 10 minutes on 2 CPU cores)',
    positionals: [],
    long: true,
    usesBackend: true,
    options: [],
    async run(ctx, request) {
      if (!ctx.json) {
        ctx.err(
          'demo: iterative magnitude pruning of LeNet-300-100 on MNIST (the LTH paper\'s Adam 1.2e-3, batch 60, 20%/10% per level),\n' +
            `      ${DEMO_REQUEST.levels} levels × ${DEMO_REQUEST.iterations} iterations, rewinding to the initialisation, with the random re-initialisation control at levels ${DEMO_REQUEST.controlLevels!.join(' and ')}.\n` +
            '      The paper trains 50,000 iterations per level: see docs/results/lth-lenet.md for that experiment.\n',
        );
      }
      printSearch(ctx, await ctx.api.searchImp({ ...DEMO_REQUEST, ...request }, callOptions(ctx)));
    },
  },
  ...SWEEP_COMMANDS,
  MERGE_COMMAND,
];
