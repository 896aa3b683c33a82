// Sections "conv" and "resnet": masked conv-net training steps per second at K = 1 (one ticket) on
// each backend asked for, beside PyTorch eager doing the same work on the same machine.
//
// conv: Conv-2 from the zoo (3×3 'same' convs 64, 64, max-pool 2, FC 256-256-10, ReLU) on MNIST's
// 28×28×1 images, batch 60, Adam lr 2e-4 (the LTH paper's Conv-2 settings); bench/conv2_torch.py.
// resnet: ResNet-20 (option-A shortcuts, BatchNorm) on random CIFAR-shaped images, batch 128, SGD
// lr 0.1, momentum 0.9, weight decay 1e-4 (open_lth's); bench/resnet20_torch.py, as ../shared/gpu's
// anchor. Both: 50 % seeded random masks on every conv and dense kernel. The steps are core's own:
// trainMasked runs unchanged (on WebGPU the conv step engine, elsewhere TF.js autodiff with Ticket
// Lab's conv gradient kernels), timed through its onProgress calls with evaluation kept out of the
// window, as in section 1 (training-throughput.ts).
//
// On a GPU the clock reads between onProgress calls, which come every 10 steps; trainMasked reads a
// loss back every 10 steps too (a full wait for the GPU), so at both ends of the window the same
// few steps are queued and not yet run: in the steady state they cancel, and the window holds
// `steps` steps of GPU work.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { LabError } from '../core/api/errors';
import { type BackendInfo, type BackendProvider, isInstalled, selectBackend } from '../core/compute/backend';
import { Rng } from '../core/compute/rng';
import { adapterLabel } from '../core/compute/webgpu';
import type { LoadedDataset } from '../core/data/datasets';
import { architecture } from '../core/models/architectures';
import { DEFAULT_OPTIMIZER, type OptimizerConfig } from '../core/train/optimizers';
import { zooTicket } from './lenet-ticket';
import { type Table, approx, fixed } from './text-table';
import { BATCH_SIZE, type StepPlan, type ThroughputRow, timeSteps } from './training-throughput';

const SPARSITY = 0.5;

/** What a conv section trains, and how PyTorch does the same. */
export interface ConvModel {
  modelId: string;
  /** The model in words, for the table's title. */
  title: string;
  batchSize: number;
  optimizer: OptimizerConfig;
  torchScript: string;
  /** The PyTorch script's arguments beyond device, steps, warm-up, threads and batch. */
  torchArgs(dataset: LoadedDataset): string[];
}

export const CONV2_BENCH: ConvModel = {
  modelId: 'conv-2',
  title: 'masked Conv-2 (64,64 3×3 same | pool | FC 256-256-10), MNIST 28×28×1, batch 60, Adam lr 2e-4',
  batchSize: BATCH_SIZE,
  optimizer: { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: architecture('conv-2').lthTraining.learningRate },
  torchScript: 'conv2_torch.py',
  torchArgs: (dataset) => ['--mnist-dir', dataset.source, '--lr', String(architecture('conv-2').lthTraining.learningRate), '--mean', String(dataset.normalization.mean), '--std', String(dataset.normalization.std)],
};

export const RESNET20_BENCH: ConvModel = {
  modelId: 'resnet-20',
  title: 'masked ResNet-20 (option A, BatchNorm), random CIFAR-shaped 32×32×3 images, batch 128, SGD lr 0.1 momentum 0.9 wd 1e-4',
  batchSize: 128,
  optimizer: { ...DEFAULT_OPTIMIZER, name: 'sgd', learningRate: 0.1, momentum: 0.9, weightDecay: 1e-4 },
  torchScript: 'resnet20_torch.py',
  torchArgs: () => ['--lr', '0.1'],
};

/** Seeded random images of CIFAR-10's shape: throughput does not depend on what the pixels show. */
export function randomCifarShaped(count: number, seed: number): LoadedDataset {
  const rng = Rng.stream(seed, 'bench-images');
  const images = new Uint8Array(count * 32 * 32 * 3);
  for (let i = 0; i < images.length; i++) images[i] = rng.int(256);
  const labels = Uint8Array.from({ length: count }, () => rng.int(10));
  const empty = { images: new Uint8Array(0), labels: new Uint8Array(0), count: 0 };
  return {
    id: 'random-cifar-shaped', source: 'random', digest: 'random', imageShape: [32, 32, 3], numClasses: 10,
    normalization: { mean: 0.5, std: 0.29 }, split: { seed, validationSize: 0 },
    train: { images, labels, count }, validation: empty, test: empty,
  };
}

export interface ConvPlan {
  backends: BackendProvider[];
  /** Steps for each backend; a GPU backend runs far more than the CPU ones. */
  steps: Record<BackendProvider, StepPlan>;
  /** PyTorch's device: 'cuda' on the GPU machine, 'cpu' here; null skips PyTorch. */
  torchDevice: string | null;
  torchThreads: number;
  /** PyTorch's steps on each device. */
  torchSteps: { cuda: StepPlan; cpu: StepPlan };
}

export interface ConvRow extends ThroughputRow {
  /** The GPU, for WebGPU. */
  adapter: string | null;
}

export interface ConvSkip {
  backend: BackendProvider;
  reason: string;
}

/** One line of bench/conv2_torch.py's output. */
export interface TorchConvRow {
  mode: 'eager';
  masking: string;
  data: string;
  warmup: number;
  steps: number;
  seconds: number;
  steps_per_s: number;
  images_per_s: number;
  loss_at_step10: number | null;
  device: string;
  torch_version: string;
  blas: string;
  threads: number;
  cudnn_benchmark: boolean;
  tf32: boolean;
}

export interface ConvResult {
  rows: ConvRow[];
  skipped: ConvSkip[];
  torch: TorchConvRow | null;
  notes: string[];
}

async function timeConv(info: BackendInfo, dataset: LoadedDataset, plan: StepPlan, seed: number, model: ConvModel): Promise<ConvRow> {
  const ticket = await zooTicket(model.modelId, dataset, seed, SPARSITY);
  const row = await timeSteps(info, dataset, ticket, plan, model.optimizer.learningRate, { batchSize: model.batchSize, optimizer: model.optimizer });
  return { ...row, adapter: info.adapter ? adapterLabel(info.adapter) : null };
}

function torchScript(name: string): string | undefined {
  // Beside the bundle or the built file, else in the working tree (the device runs from the repository root).
  return [join(__dirname, name), join(__dirname, '..', '..', 'bench', name), join(process.cwd(), 'bench', name)].find((p) => existsSync(p));
}

function measureTorchConv(dataset: LoadedDataset, plan: ConvPlan, model: ConvModel, log: (line: string) => void, notes: string[]): TorchConvRow | null {
  if (!plan.torchDevice) {
    notes.push('PyTorch not measured: --torch-device none');
    return null;
  }
  const script = torchScript(model.torchScript);
  const python = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 }).status === 0);
  if (!script || !python) {
    notes.push(`PyTorch not measured: ${script ? 'no python3 with torch' : `bench/${model.torchScript} not found`}`);
    return null;
  }
  const steps = plan.torchDevice === 'cuda' ? plan.torchSteps.cuda : plan.torchSteps.cpu;
  log(`PyTorch eager ${model.modelId} on ${plan.torchDevice}: ${steps.warmup} + ${steps.steps} steps`);
  const args = [
    script,
    '--device', plan.torchDevice,
    '--steps', String(steps.steps),
    '--warmup', String(steps.warmup),
    '--threads', String(plan.torchThreads),
    '--batch', String(model.batchSize),
    ...model.torchArgs(dataset),
  ];
  const run = spawnSync(python, args, { encoding: 'utf8', timeout: 15 * 60_000 });
  if (run.status !== 0) {
    notes.push(`PyTorch failed: ${(run.stderr || run.error?.message || `exit ${run.status}`).trim().split('\n').slice(-1)[0]}`);
    return null;
  }
  const line = run.stdout.trim().split('\n').find((l) => l.startsWith('{'));
  if (!line) {
    notes.push('PyTorch printed no result line');
    return null;
  }
  return JSON.parse(line) as TorchConvRow;
}

export async function measureConv(dataset: LoadedDataset, plan: ConvPlan, seed: number, log: (line: string) => void, model: ConvModel = CONV2_BENCH): Promise<ConvResult> {
  const notes: string[] = [];
  const rows: ConvRow[] = [];
  const skipped: ConvSkip[] = [];
  for (const backend of plan.backends) {
    // Native TensorFlow only where someone installed it: its install downloads libtensorflow.
    if ((backend === 'tfjs-node' || backend === 'tfjs-node-gpu') && !isInstalled(`@tensorflow/${backend}`)) {
      skipped.push({ backend, reason: `@tensorflow/${backend} not installed` });
      continue;
    }
    if (backend === 'cpu') {
      skipped.push({ backend, reason: "TF.js's pure-JS reference kernels: a Conv-2 step takes seconds there, no one trains conv nets on it" });
      continue;
    }
    let info: BackendInfo;
    try {
      info = await selectBackend(backend, { trainsConv: true });
    } catch (error) {
      if (!(error instanceof LabError)) throw error;
      skipped.push({ backend, reason: error.message.split('\n')[0]! });
      continue;
    }
    if (info.adapter?.software) {
      skipped.push({ backend, reason: `only ${adapterLabel(info.adapter)}, a software GPU: Conv-2 steps there take seconds each` });
      continue;
    }
    const steps = plan.steps[backend];
    try {
      log(`${model.modelId} training on ${backend}: ${steps.warmup} + ${steps.steps} steps`);
      rows.push(await timeConv(info, dataset, steps, seed, model));
    } catch (error) {
      if (!(error instanceof LabError)) throw error;
      skipped.push({ backend, reason: error.message.split('\n')[0]! });
    }
  }
  const torch = measureTorchConv(dataset, plan, model, log, notes);
  return { rows, skipped, torch, notes };
}

export function convTable(result: ConvResult, model: ConvModel = CONV2_BENCH): Table {
  const torch = result.torch;
  const ratio = (ours: number) => (torch ? `${fixed(ours / torch.steps_per_s, 2)}×` : '—');
  const torchSays = torch
    ? `PyTorch ${torch.torch_version} eager fp32 on ${torch.device} (BLAS: ${torch.blas}, ${torch.threads} thread${torch.threads === 1 ? '' : 's'}, TF32 ${torch.tf32 ? 'on' : 'off'}, cudnn.benchmark ${torch.cudnn_benchmark ? 'on' : 'off'}; masks: ${torch.masking}; data: ${torch.data})`
    : 'PyTorch not measured';
  const rows: string[][] = result.rows.map((r) => [
    `Ticket Lab ${r.backend}`,
    r.adapter ?? r.tfBackend,
    String(r.warmupSteps),
    String(r.timedSteps),
    approx(r.stepsPerSecond),
    fixed(r.samplesPerSecond, 0),
    r.lossAtStep10 === null ? '' : fixed(r.lossAtStep10, 4),
    String(r.leakedTensors),
    torch ? approx(torch.steps_per_s) : '—',
    ratio(r.stepsPerSecond),
  ]);
  if (torch) {
    rows.push(['PyTorch eager', torch.device, String(torch.warmup), String(torch.steps), approx(torch.steps_per_s), fixed(torch.images_per_s, 0), torch.loss_at_step10 === null ? '' : fixed(torch.loss_at_step10, 4), '', '', '']);
  }
  const leaks = result.rows.filter((r) => r.leakedTensors !== 0);
  return {
    title: `Conv training, K = 1: ${model.title}, 50 % random masks`,
    measures: [
      `Timed: only the step loop of core trainMasked (batch fill, upload, forward, backward, masked ${model.optimizer.name === 'adam' ? 'Adam' : 'SGD'}, loss read-back`,
      'every 10 steps) after the warm-up steps; no evaluation inside the window. PyTorch: its plain training loop between',
      `two device synchronisations, after its own warm-up. "vs PyTorch" = steps/s over PyTorch's, same run. ${torchSays}.`,
    ],
    columns: [
      { header: 'who' },
      { header: 'device' },
      { header: 'warm-up', align: 'right' },
      { header: 'timed steps', align: 'right' },
      { header: 'steps/s', align: 'right' },
      { header: 'images/s', align: 'right' },
      { header: 'loss@10', align: 'right' },
      { header: 'leaked', align: 'right' },
      { header: 'PyTorch steps/s', align: 'right' },
      { header: 'vs PyTorch', align: 'right' },
    ],
    rows,
    notes: [
      ...result.skipped.map((s) => `${s.backend}: skipped: ${s.reason}`),
      ...result.notes,
      ...leaks.map((r) => `${r.backend}: ${r.leakedTensors} tensors left alive after training (a leak in the training loop)`),
      'loss@10: training loss of step 10 (after 10 updates; the WebGPU conv engine reports the mean of steps 10–19); PyTorch has its own init and batches, so only the size agrees.',
      `tf.memory().numTensors after the section: ${tf.memory().numTensors}`,
    ],
  };
}
