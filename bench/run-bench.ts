// `npm run bench`: how fast Ticket Lab trains, searches and stores, on this machine, today.
//
//   node dist/bench/run-bench.js            tables on stdout, progress on stderr (a few minutes)
//   node dist/bench/run-bench.js --quick    fewer steps and repetitions (under a minute or so)
//   node dist/bench/run-bench.js --json     the same numbers as one JSON document on stdout
//   --torch-threads N                       PyTorch's thread count (default 1, like TF.js wasm in Node)
//
// Numbers move with whatever else the machine is doing; the header prints the load average so a
// reader can tell a slow machine from a busy one.
import { cpus, loadavg, totalmem } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { loadDataset } from '../core/data/datasets';
import { type ImpTimingPlan, impTable, measureImp } from './imp-timing';
import { lenetTicket } from './lenet-ticket';
import { maskStorageTable, measureMaskStorage } from './mask-storage';
import { seconds } from './stopwatch';
import { measureStore, storeTable } from './store-timing';
import { type Table, fixed, renderTable } from './text-table';
import { type StepPlan, measureThroughput, throughputTable } from './training-throughput';
import { type TorchPlan, measureTorch, torchTable } from './torch-reference';

const SEED = 0;

interface BenchPlan {
  backends: { 'tfjs-node': StepPlan; wasm: StepPlan; cpu: StepPlan };
  torch: Omit<TorchPlan, 'threads'>;
  imp: ImpTimingPlan;
  maskRepetitions: number;
  storeRepetitions: number;
}

const PLANS: Record<'full' | 'quick', BenchPlan> = {
  full: {
    // The pure-JS cpu backend does about 4 steps/s: 30 timed steps are enough to see it.
    backends: { 'tfjs-node': { warmup: 20, steps: 200 }, wasm: { warmup: 20, steps: 200 }, cpu: { warmup: 10, steps: 30 } },
    torch: { warmup: 50, steps: 1000 },
    imp: { levels: 2, iterations: 300, evalEvery: 100 },
    maskRepetitions: 5,
    storeRepetitions: 9,
  },
  quick: {
    backends: { 'tfjs-node': { warmup: 10, steps: 50 }, wasm: { warmup: 10, steps: 50 }, cpu: { warmup: 10, steps: 10 } },
    torch: { warmup: 20, steps: 200 },
    imp: { levels: 1, iterations: 100, evalEvery: 100 },
    maskRepetitions: 1,
    storeRepetitions: 3,
  },
};

interface Options {
  json: boolean;
  quick: boolean;
  torchThreads: number;
}

const USAGE = 'usage: run-bench [--quick] [--json] [--torch-threads N]';

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { json: false, quick: false, torchThreads: 1 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--json') options.json = true;
    else if (arg === '--quick') options.quick = true;
    else if (arg === '--torch-threads') {
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

  // Sections 1 and 2 train on the training split only; an empty validation split keeps
  // trainMasked's start-of-run evaluation out of the way (it is never inside the timed window).
  log('loading MNIST');
  const trainOnly = loadDataset('mnist', { validationSize: 0 });
  const ticket = await lenetTicket(trainOnly, SEED, 0.5);
  const throughput = await measureThroughput(trainOnly, ticket, plan.backends, log);
  const torch = measureTorch(trainOnly, { ...plan.torch, threads: options.torchThreads }, log);
  show(throughputTable(throughput, torch));
  show(torchTable(torch));

  // Section 3 runs as a search would: the LTH split with 5,000 validation images.
  const imp = await measureImp(loadDataset('mnist'), plan.imp, SEED, log);
  show(impTable(imp));

  const masks = await measureMaskStorage(plan.maskRepetitions, SEED, log);
  show(maskStorageTable(masks, plan.maskRepetitions));

  const store = measureStore(trainOnly, ticket, plan.storeRepetitions, SEED, log);
  show(storeTable(store));

  const totalSeconds = seconds(began);
  if (options.json) {
    // JSON has no NaN or Infinity: JSON.stringify writes them as null (a ratio with no bound, say).
    process.stdout.write(`${JSON.stringify({ machine, plan, totalSeconds, training: throughput, torch, imp, masks, store }, null, 2)}\n`);
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
