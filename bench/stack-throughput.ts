// Section "stacked training": K masked LeNet-300-100 tickets trained as one computation by core's
// step engine, on each backend asked for, beside PyTorch doing the same work on the same machine
// (bench/lenet_torch_stack.py: eager one ticket, the same in a CUDA graph, K stacked with baddbmm).
//
// Timed: the engine's step loop only (batch gather on the device, forward, loss, backward, fused
// masked Adam for every member), after warm-up steps, between two full GPU synchronisations.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type BackendProvider, selectBackend } from '../core/compute/backend';
import { BatchOrder, type LoadedDataset } from '../core/data/datasets';
import { initWeights } from '../core/models/weights';
import { sparsityBudget } from '../core/pruning/budget';
import { denseMasks } from '../core/pruning/imp';
import { randomStrategy } from '../core/pruning/random';
import { MlpStepEngine, mlpLayers } from '../core/train/engine/mlp-engine';
import { DEFAULT_OPTIMIZER } from '../core/train/optimizers';
import { stepKernelsForBackend } from '../core/train/train-stack';
import { lenetTicket } from './lenet-ticket';
import { seconds } from './stopwatch';
import { type Table, approx, fixed } from './text-table';
import { BATCH_SIZE, LEARNING_RATE } from './training-throughput';

export interface StackPlan {
  backends: BackendProvider[];
  stacks: number[];
  warmup: number;
  steps: number;
  /** PyTorch's device: 'cuda' on the GPU machine, 'cpu' here; null skips PyTorch. */
  torchDevice: string | null;
  torchThreads: number;
}

export interface StackRow {
  backend: string;
  adapter: string | null;
  k: number;
  steps: number;
  seconds: number;
  stepsPerSecond: number;
  ticketStepsPerSecond: number;
  meanLoss: number;
}

export interface TorchStackRow {
  mode: 'eager' | 'graph' | 'stack';
  k: number;
  steps: number;
  seconds: number;
  steps_per_s: number;
  ticket_steps_per_s: number;
  device: string;
  torch_version: string;
  blas: string;
  threads: number;
  last_loss: number;
}

export interface StackResult {
  rows: StackRow[];
  torch: TorchStackRow[];
  notes: string[];
}

async function timeStack(backend: BackendProvider, k: number, dataset: LoadedDataset, plan: StackPlan): Promise<StackRow> {
  const info = await selectBackend(backend);
  const ticket = await lenetTicket(dataset, 0, 0.5);
  const layers = mlpLayers(ticket.arch, ticket.specs)!;
  const prunable = ticket.specs.filter((s) => s.prunable).map((s) => s.name);
  // K different tickets: own weights, own 50 % masks, own data order.
  const members = await Promise.all(
    Array.from({ length: k }, async (_, p) => ({
      weights: initWeights(ticket.specs, p),
      masks: await randomStrategy.prune({ weights: [], masks: denseMasks(ticket.specs), budget: sparsityBudget(denseMasks(ticket.specs), 0.5, 'layer', prunable), params: {}, seed: p }),
    })),
  );
  const kernels = stepKernelsForBackend(info.tfBackend)!();
  const engine = new MlpStepEngine(kernels, layers, members, BATCH_SIZE, { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: LEARNING_RATE });
  try {
    engine.useTrainingImages(kernels.images(dataset.train, dataset.normalization));
    const orders = members.map((_, p) => new BatchOrder(dataset.train.count, BATCH_SIZE, p));
    const rowIds = new Int32Array(k * BATCH_SIZE);
    const run = async (from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        orders.forEach((order, p) => rowIds.set(order.rowsAt(i), p * BATCH_SIZE));
        engine.step(rowIds);
        // As the trainer does: the host never runs more than a few steps ahead of the GPU.
        if ((i + 1) % 10 === 0) await kernels.settle();
      }
    };
    await run(0, plan.warmup);
    await engine.takeLosses(); // waits for the GPU
    const began = performance.now();
    await run(plan.warmup, plan.steps);
    const losses = await engine.takeLosses();
    const elapsed = seconds(began);
    return {
      backend,
      adapter: info.adapter ? `${info.adapter.vendor} ${info.adapter.device || info.adapter.architecture}`.trim() : null,
      k,
      steps: plan.steps,
      seconds: elapsed,
      stepsPerSecond: plan.steps / elapsed,
      ticketStepsPerSecond: (k * plan.steps) / elapsed,
      meanLoss: losses.reduce((a: number, b) => a + (b ?? Number.NaN), 0) / k,
    };
  } finally {
    engine.dispose();
  }
}

function torchScript(): string | undefined {
  return [join(__dirname, 'lenet_torch_stack.py'), join(__dirname, '..', '..', 'bench', 'lenet_torch_stack.py')].find((p) => existsSync(p));
}

function measureTorchStacks(dataset: LoadedDataset, plan: StackPlan, log: (line: string) => void, notes: string[]): TorchStackRow[] {
  if (!plan.torchDevice) return [];
  const script = torchScript();
  const python = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 }).status === 0);
  if (!script || !python) {
    notes.push(`PyTorch not measured: ${script ? 'no python3 with torch' : 'bench/lenet_torch_stack.py not found'}`);
    return [];
  }
  const stacks = plan.stacks.filter((k) => k > 1);
  log(`PyTorch on ${plan.torchDevice}: eager K=1${plan.torchDevice === 'cuda' ? ', CUDA graph K=1' : ''}${stacks.length ? `, stacked K=${stacks.join(',')}` : ''}`);
  const args = [
    script,
    '--mnist-dir', dataset.source,
    '--device', plan.torchDevice,
    '--modes', ['eager', 'graph', ...(stacks.length ? ['stack'] : [])].join(','),
    '--stacks', stacks.join(','),
    '--steps', String(plan.steps),
    '--warmup', String(plan.warmup),
    '--threads', String(plan.torchThreads),
    '--mean', String(dataset.normalization.mean),
    '--std', String(dataset.normalization.std),
  ];
  const run = spawnSync(python, args, { encoding: 'utf8', timeout: 15 * 60_000 });
  if (run.status !== 0) {
    notes.push(`PyTorch failed: ${(run.stderr || run.error?.message || `exit ${run.status}`).trim().split('\n').slice(-1)[0]}`);
    return [];
  }
  return run.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as TorchStackRow);
}

export async function measureStacks(dataset: LoadedDataset, plan: StackPlan, log: (line: string) => void): Promise<StackResult> {
  const notes: string[] = [];
  const rows: StackRow[] = [];
  for (const backend of plan.backends) {
    for (const k of plan.stacks) {
      try {
        log(`stacked training on ${backend}, K = ${k}: ${plan.warmup} + ${plan.steps} steps`);
        rows.push(await timeStack(backend, k, dataset, plan));
      } catch (error) {
        notes.push(`${backend} K=${k}: ${(error as Error).message.split('\n')[0]}`);
      }
    }
  }
  const torch = measureTorchStacks(dataset, plan, log, notes);
  return { rows, torch, notes };
}

export function stackTable(result: StackResult): Table {
  const torchAt = (mode: TorchStackRow['mode'], k: number) => result.torch.find((t) => t.mode === mode && t.k === k);
  const ratio = (ours: number, theirs: TorchStackRow | undefined) => (theirs ? `${fixed(ours / theirs.ticket_steps_per_s, 2)}×` : '—');
  const torchVersion = result.torch[0] ? `PyTorch ${result.torch[0].torch_version} (BLAS: ${result.torch[0].blas}, ${result.torch[0].threads} thread${result.torch[0].threads === 1 ? '' : 's'}) on ${result.torch[0].device}` : 'PyTorch not measured';
  const rows: string[][] = [];
  for (const r of result.rows) {
    rows.push([
      `Ticket Lab ${r.backend}`,
      r.adapter ?? '',
      String(r.k),
      approx(r.stepsPerSecond),
      approx(r.ticketStepsPerSecond),
      r.k === 1 ? ratio(r.ticketStepsPerSecond, torchAt('eager', 1)) : '',
      r.k === 1 ? ratio(r.ticketStepsPerSecond, torchAt('graph', 1)) : '',
      r.k > 1 ? ratio(r.ticketStepsPerSecond, torchAt('stack', r.k)) : '',
      fixed(r.meanLoss, 3),
    ]);
  }
  for (const t of result.torch) {
    rows.push([`PyTorch ${t.mode}`, t.device, String(t.k), approx(t.steps_per_s), approx(t.ticket_steps_per_s), '', '', '', fixed(t.last_loss, 3)]);
  }
  return {
    title: 'Stacked training: K masked LeNet-300-100 tickets (50 % masks), batch 60 each, Adam',
    measures: [
      'Timed: the step loop after warm-up, between full device synchronisations: batch gather, forward, loss,',
      'backward, masked Adam for all K. Ratios are ticket-steps/s over PyTorch\'s at the same K, same run:',
      `eager = one ticket in a plain loop (open_lth style), graph = that step in a CUDA graph, stack = K stacked with baddbmm. ${torchVersion}.`,
    ],
    columns: [
      { header: 'who' },
      { header: 'device' },
      { header: 'K', align: 'right' },
      { header: 'steps/s', align: 'right' },
      { header: 'ticket-steps/s', align: 'right' },
      { header: 'vs eager', align: 'right' },
      { header: 'vs graph', align: 'right' },
      { header: 'vs stacked', align: 'right' },
      { header: 'mean loss', align: 'right' },
    ],
    rows,
    notes: [...result.notes, `tf.memory().numTensors after the section: ${tf.memory().numTensors}`],
  };
}
