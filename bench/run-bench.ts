// `npm run bench`: how fast Ticket Lab trains, searches and stores, on this machine, today.
//
//   node dist/bench/run-bench.js            tables on stdout, progress on stderr (a few minutes)
//   node dist/bench/run-bench.js --quick    fewer steps and repetitions (under a minute or so)
//   node dist/bench/run-bench.js --json     the same numbers as one JSON document on stdout
//   --torch-threads N                       PyTorch's thread count (default 1, like TF.js wasm in Node)
//   --sections a,b                          only these: stack, conv, resnet, throughput, imp, methods, masks, store, import, ownership, bundle, server, heatmap (default all)
//   --backends webgpu,wasm --stacks 1,64,256 --torch-device cuda|cpu|none
//                                           the stacked-training and conv sections: backends, stack sizes K
//                                           (stack only), PyTorch's device
//
// Numbers move with whatever else the machine is doing; the header prints the load average so a
// reader can tell a slow machine from a busy one.
import { cpus, loadavg, totalmem } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { loadDataset } from '../core/data/datasets';
import { type ImpTimingPlan, impTable, measureImp } from './imp-timing';
import { type MethodsPlan, measureMethods, methodsTable } from './methods-timing';
import { lenetTicket } from './lenet-ticket';
import { IMPORT_PLANS, importTable, measureImport } from './import-timing';
import { measureOwnership, ownershipTable } from './ownership-timing';
import { type BundlePlan, bundleTable, measureBundle } from './bundle-timing';
import { type ServerLoadPlan, measureServerLoad, serverTable } from './server-load';
import { heatmapTable, measureHeatmaps } from './heatmap-render';
import { maskStorageTable, measureMaskStorage } from './mask-storage';
import { seconds } from './stopwatch';
import { measureStore, storeTable } from './store-timing';
import { type Table, fixed, renderTable } from './text-table';
import { type StepPlan, measureThroughput, throughputTable } from './training-throughput';
import { type TorchPlan, measureTorch, torchTable } from './torch-reference';
import { type StackPlan, measureStacks, stackTable } from './stack-throughput';
import { type ConvPlan, RESNET20_BENCH, convTable, measureConv, randomCifarShaped } from './conv-throughput';
import { type BackendProvider, PROVIDER_ORDER } from '../core/compute/backend';

const SEED = 0;

interface BenchPlan {
  stack: { warmup: number; steps: number };
  conv: Pick<ConvPlan, 'steps' | 'torchSteps'>;
  resnet: Pick<ConvPlan, 'steps' | 'torchSteps'>;
  backends: { 'tfjs-node': StepPlan; wasm: StepPlan; cpu: StepPlan };
  torch: Omit<TorchPlan, 'threads'>;
  imp: ImpTimingPlan;
  methods: MethodsPlan;
  maskRepetitions: number;
  storeRepetitions: number;
  bundle: BundlePlan;
  server: ServerLoadPlan;
}

const PLANS: Record<'full' | 'quick', BenchPlan> = {
  full: {
    stack: { warmup: 30, steps: 500 },
    conv: {
      steps: { webgpu: { warmup: 20, steps: 300 }, 'tfjs-node-gpu': { warmup: 20, steps: 300 }, 'tfjs-node': { warmup: 10, steps: 30 }, wasm: { warmup: 10, steps: 30 }, cpu: { warmup: 10, steps: 10 } },
      torchSteps: { cuda: { warmup: 20, steps: 300 }, cpu: { warmup: 10, steps: 30 } },
    },
    // On the 2-core machine a ResNet-20 step at batch 128 takes seconds on WASM.
    resnet: {
      steps: { webgpu: { warmup: 20, steps: 200 }, 'tfjs-node-gpu': { warmup: 20, steps: 200 }, 'tfjs-node': { warmup: 10, steps: 10 }, wasm: { warmup: 10, steps: 10 }, cpu: { warmup: 10, steps: 10 } },
      torchSteps: { cuda: { warmup: 20, steps: 300 }, cpu: { warmup: 10, steps: 10 } },
    },
    // The pure-JS cpu backend does about 4 steps/s: 30 timed steps are enough to see it.
    backends: { 'tfjs-node': { warmup: 20, steps: 200 }, wasm: { warmup: 20, steps: 200 }, cpu: { warmup: 10, steps: 30 } },
    torch: { warmup: 50, steps: 1000 },
    imp: { levels: 2, iterations: 300, evalEvery: 100 },
    methods: { iterations: 500, jackpotIterations: 500 },
    maskRepetitions: 5,
    storeRepetitions: 9,
    bundle: { repetitions: 7, hashRepetitions: 21 },
    // Issue 9's acceptance: 50 concurrent clients for 30 s.
    server: { filterRequests: 500, allRequests: 100, clients: 50, loadSeconds: 30 },
  },
  quick: {
    stack: { warmup: 20, steps: 100 },
    conv: {
      steps: { webgpu: { warmup: 10, steps: 50 }, 'tfjs-node-gpu': { warmup: 10, steps: 50 }, 'tfjs-node': { warmup: 10, steps: 10 }, wasm: { warmup: 10, steps: 10 }, cpu: { warmup: 10, steps: 10 } },
      torchSteps: { cuda: { warmup: 10, steps: 50 }, cpu: { warmup: 10, steps: 10 } },
    },
    resnet: {
      steps: { webgpu: { warmup: 10, steps: 50 }, 'tfjs-node-gpu': { warmup: 10, steps: 50 }, 'tfjs-node': { warmup: 10, steps: 10 }, wasm: { warmup: 10, steps: 10 }, cpu: { warmup: 10, steps: 10 } },
      torchSteps: { cuda: { warmup: 10, steps: 50 }, cpu: { warmup: 10, steps: 10 } },
    },
    backends: { 'tfjs-node': { warmup: 10, steps: 50 }, wasm: { warmup: 10, steps: 50 }, cpu: { warmup: 10, steps: 10 } },
    torch: { warmup: 20, steps: 200 },
    imp: { levels: 1, iterations: 100, evalEvery: 100 },
    methods: { iterations: 50, jackpotIterations: 50 },
    maskRepetitions: 1,
    storeRepetitions: 3,
    bundle: { repetitions: 3, hashRepetitions: 7 },
    server: { filterRequests: 200, allRequests: 20, clients: 50, loadSeconds: 5 },
  },
};

const SECTIONS = ['stack', 'conv', 'resnet', 'throughput', 'imp', 'methods', 'masks', 'store', 'import', 'ownership', 'bundle', 'server', 'heatmap'] as const;
type Section = (typeof SECTIONS)[number];

interface Options {
  json: boolean;
  quick: boolean;
  torchThreads: number;
  sections: Section[];
  backends: BackendProvider[];
  stacks: number[];
  torchDevice: string | null;
}

const USAGE = 'usage: run-bench [--quick] [--json] [--torch-threads N] [--sections stack,conv,resnet,throughput,imp,methods,masks,store,import,ownership,bundle,server,heatmap] [--backends wasm,cpu] [--stacks 1,2,4] [--torch-device cpu|cuda|none]';

function list(value: string | undefined, flag: string): string[] {
  if (!value) throw new UsageError(`${flag} needs a value (${USAGE})`);
  return value.split(',').filter(Boolean);
}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { json: false, quick: false, torchThreads: 1, sections: [...SECTIONS], backends: ['wasm', 'cpu'], stacks: [1, 2, 4], torchDevice: 'cpu' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--json') options.json = true;
    else if (arg === '--quick') options.quick = true;
    else if (arg === '--sections') {
      const sections = list(argv[++i], arg);
      const unknown = sections.find((x) => !(SECTIONS as readonly string[]).includes(x));
      if (unknown) throw new UsageError(`unknown section ${unknown} (${USAGE})`);
      options.sections = sections as Section[];
    } else if (arg === '--backends') {
      const backends = list(argv[++i], arg);
      const unknown = backends.find((x) => !(PROVIDER_ORDER as readonly string[]).includes(x));
      if (unknown) throw new UsageError(`unknown backend ${unknown}: one of ${PROVIDER_ORDER.join(', ')} (${USAGE})`);
      options.backends = backends as BackendProvider[];
    } else if (arg === '--stacks') {
      options.stacks = list(argv[++i], arg).map(Number);
      if (options.stacks.some((k) => !Number.isInteger(k) || k < 1)) throw new UsageError(`--stacks takes whole numbers of at least 1 (${USAGE})`);
    } else if (arg === '--torch-device') {
      const device = argv[++i];
      options.torchDevice = device === 'none' ? null : (device ?? null);
    } else if (arg === '--torch-threads') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`--torch-threads needs a whole number of at least 1 (${USAGE})`);
      options.torchThreads = n;
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new UsageError(`unknown option ${arg} (${USAGE})`);
  }
  return options;
}

class UsageError extends Error {}

function machineInfo(mode: string): Record<string, string | number> {
  const cores = cpus();
  return {
    mode,
    cpu: cores[0]?.model.trim() ?? 'unknown',
    cpuCount: cores.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    platform: `${process.platform}-${process.arch}`,
    node: process.version,
    tfjs: tf.version.tfjs,
    date: new Date().toISOString(),
    loadAverage: loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}

function header(m: Record<string, string | number>): string {
  return [
    `Ticket Lab benchmark (${m.mode})`,
    `  machine   ${m.cpu} × ${m.cpuCount}, ${m.memoryGiB} GiB, ${m.platform}`,
    `  software  node ${m.node}, @tensorflow/tfjs ${m.tfjs}`,
    `  date      ${m.date}`,
    `  load avg  ${m.loadAverage} (1, 5, 15 min) at the start: other work on the cores lowers every number below`,
  ].join('\n');
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const mode = options.quick ? 'quick' : 'full';
  const plan = PLANS[mode];
  const began = performance.now();
  const log = (line: string): void => {
    process.stderr.write(`bench: ${line}\n`);
  };
  const show = (table: Table): void => {
    if (!options.json) process.stdout.write(`\n${renderTable(table)}\n`);
  };

  const machine = machineInfo(mode);
  if (!options.json) process.stdout.write(`${header(machine)}\n`);

  const wants = (section: Section) => options.sections.includes(section);
  // The training sections (stack, conv, throughput) train on the training split only; an empty validation split keeps
  // trainMasked's start-of-run evaluation out of the way (it is never inside the timed window).
  log('loading MNIST');
  const trainOnly = loadDataset('mnist', { validationSize: 0 });
  const ticket = await lenetTicket(trainOnly, SEED, 0.5);

  let stacks;
  if (wants('stack')) {
    const stackPlan: StackPlan = { ...plan.stack, backends: options.backends, stacks: options.stacks, torchDevice: options.torchDevice, torchThreads: options.torchThreads };
    stacks = await measureStacks(trainOnly, stackPlan, log);
    show(stackTable(stacks));
  }

  let conv;
  if (wants('conv')) {
    const convPlan: ConvPlan = { ...plan.conv, backends: options.backends, torchDevice: options.torchDevice, torchThreads: options.torchThreads };
    conv = await measureConv(trainOnly, convPlan, SEED, log);
    show(convTable(conv));
  }

  let resnet;
  if (wants('resnet')) {
    const resnetPlan: ConvPlan = { ...plan.resnet, backends: options.backends, torchDevice: options.torchDevice, torchThreads: options.torchThreads };
    resnet = await measureConv(randomCifarShaped(20 * RESNET20_BENCH.batchSize, SEED), resnetPlan, SEED, log, RESNET20_BENCH);
    show(convTable(resnet, RESNET20_BENCH));
  }

  let throughput;
  let torch;
  if (wants('throughput')) {
    throughput = await measureThroughput(trainOnly, ticket, plan.backends, log);
    torch = measureTorch(trainOnly, { ...plan.torch, threads: options.torchThreads }, log);
    show(throughputTable(throughput, torch));
    show(torchTable(torch));
  }

  // Section 3 runs as a search would: the LTH split with 5,000 validation images.
  const imp = wants('imp') ? await measureImp(loadDataset('mnist'), plan.imp, SEED, log) : undefined;
  if (imp) show(impTable(imp));
  const methods = wants('methods') ? await measureMethods(plan.methods, SEED, log) : undefined;
  if (methods) show(methodsTable(methods, plan.methods));

  const masks = wants('masks') ? await measureMaskStorage(plan.maskRepetitions, SEED, log) : undefined;
  if (masks) show(maskStorageTable(masks, plan.maskRepetitions));

  const store = wants('store') ? measureStore(trainOnly, ticket, plan.storeRepetitions, SEED, log) : undefined;
  if (store) show(storeTable(store));

  const imports = wants('import') ? measureImport(IMPORT_PLANS[mode], SEED, log) : undefined;
  if (imports) show(importTable(imports));

  const ownershipRepetitions = mode === 'quick' ? 3 : 20;
  const ownership = wants('ownership') ? await measureOwnership(ownershipRepetitions, SEED, log) : undefined;
  if (ownership) show(ownershipTable(ownership, ownershipRepetitions));

  const bundles = wants('bundle') ? await measureBundle(plan.bundle, SEED, log) : undefined;
  if (bundles) show(bundleTable(bundles));

  const server = wants('server') ? await measureServerLoad(plan.server, SEED, log) : undefined;
  if (server) show(serverTable(server));

  const heatmaps = wants('heatmap') ? await measureHeatmaps(mode === 'quick' ? 3 : 10, SEED, log) : undefined;
  if (heatmaps) show(heatmapTable(heatmaps));

  const totalSeconds = seconds(began);
  if (options.json) {
    // JSON has no NaN or Infinity: JSON.stringify writes them as null (a ratio with no bound, say).
    process.stdout.write(`${JSON.stringify({ machine, plan, options, totalSeconds, stacks, conv, resnet, training: throughput, torch, imp, methods, masks, store, imports, ownership, bundles: bundles?.rows, server, heatmaps }, null, 2)}\n`);
  } else {
    process.stdout.write(`\nTotal ${fixed(totalSeconds, 1)} s.\n`);
  }
}

main().then(
  // The wasm backend keeps handles that can hold the event loop open; the report is complete here.
  () => process.exit(0),
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`run-bench: ${error.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`run-bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
