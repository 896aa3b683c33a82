// Section 2: the same masked LeNet step in PyTorch (bench/lenet_torch.py), the yardstick the TF.js
// rows are divided by. Debian's python3-torch lives under /usr/bin/python3, which is often not the
// first python3 on the PATH (pyenv, venvs), so that one is tried first.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadedDataset } from '../core/data/datasets';
import { BATCH_SIZE, LEARNING_RATE } from './training-throughput';
import { STEP_TIMING_COLUMNS, type Table, fixed, stepTimingCells } from './text-table';

const PYTHON_CANDIDATES = ['/usr/bin/python3', 'python3'];
const INSTALL_HINT = 'PyTorch not installed (apt-get install python3-torch libopenblas0-pthread)';

export interface TorchPlan {
  warmup: number;
  steps: number;
  threads: number;
}

export type TorchResult =
  | {
      kind: 'measured';
      python: string;
      stepsPerSecond: number;
      samplesPerSecond: number;
      torchVersion: string;
      threads: number;
      device: string;
      data: string;
      warmupSteps: number;
      timedSteps: number;
      seconds: number;
      lastLoss: number | null;
    }
  | { kind: 'unavailable'; reason: string };

interface TorchLine {
  steps_per_s: number;
  samples_per_s: number;
  torch_version: string;
  /** The BLAS library PyTorch loaded (bench/torch_env.py). */
  blas: string;
  threads: number;
  device: string;
  data: string;
  warmup: number;
  steps: number;
  seconds: number;
  last_loss: number | null;
}

/** The script sits in bench/ of the source tree; this module runs from dist/bench/ (built) or bench/ (ts). */
function scriptPath(): string | undefined {
  return [join(__dirname, 'lenet_torch.py'), join(__dirname, '..', '..', 'bench', 'lenet_torch.py')].find((p) => existsSync(p));
}

/** The first Python here that imports torch (Debian's /usr/bin/python3 first), for every PyTorch reference of the bench. */
export function pythonWithTorch(): string | undefined {
  return PYTHON_CANDIDATES.find((python) => spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 }).status === 0);
}

export function measureTorch(dataset: LoadedDataset, plan: TorchPlan, log: (line: string) => void): TorchResult {
  const script = scriptPath();
  if (!script) return { kind: 'unavailable', reason: 'bench/lenet_torch.py not found next to the benchmark' };
  const python = pythonWithTorch();
  if (!python) return { kind: 'unavailable', reason: INSTALL_HINT };
  log(`PyTorch: ${plan.warmup} + ${plan.steps} steps with ${python}, ${plan.threads} thread${plan.threads === 1 ? '' : 's'}`);
  const args = [
    script,
    ['--steps', plan.steps],
    ['--warmup', plan.warmup],
    ['--threads', plan.threads],
    ['--batch', BATCH_SIZE],
    ['--lr', LEARNING_RATE],
    // The very files and normalisation the TF.js rows trained on.
    ['--mnist-dir', dataset.source],
    ['--mean', dataset.normalization.mean],
    ['--std', dataset.normalization.std],
  ].flat().map(String);
  const run = spawnSync(python, args, { encoding: 'utf8', timeout: 10 * 60_000 });
  if (run.status !== 0) {
    const why = (run.stderr || run.error?.message || `exit ${run.status}`).trim().split('\n').slice(-1)[0];
    return { kind: 'unavailable', reason: `${python} ${script} failed: ${why}` };
  }
  const lastLine = run.stdout.trim().split('\n').slice(-1)[0] ?? '';
  let line: TorchLine;
  try {
    line = JSON.parse(lastLine) as TorchLine;
  } catch {
    return { kind: 'unavailable', reason: `${script} printed no JSON line (got: ${lastLine.slice(0, 200)})` };
  }
  return {
    kind: 'measured',
    python,
    stepsPerSecond: line.steps_per_s,
    samplesPerSecond: line.samples_per_s,
    torchVersion: `${line.torch_version} (${line.blas})`,
    threads: line.threads,
    device: line.device,
    data: line.data,
    warmupSteps: line.warmup,
    timedSteps: line.steps,
    seconds: line.seconds,
    lastLoss: line.last_loss,
  };
}

export function torchTable(result: TorchResult): Table {
  const table: Table = {
    title: '2. The same step in PyTorch (bench/lenet_torch.py)',
    measures: [
      'Timed: the step loop after the warm-up: batch from MNIST bytes, forward with w·m, cross-entropy, backward,',
      'gradients masked, torch.optim.Adam, weights re-masked (as core does after each update).',
      'Same MNIST files and normalisation as section 1; its own seeded data order, weights and masks.',
    ],
    columns: [],
    rows: [],
  };
  if (result.kind === 'unavailable') {
    return {
      ...table,
      columns: [{ header: 'PyTorch' }, { header: 'steps/s', align: 'right' }, { header: 'samples/s', align: 'right' }],
      rows: [[result.reason, '—', '—']],
    };
  }
  return {
    ...table,
    columns: [
      { header: 'python' },
      { header: 'torch' },
      { header: 'device' },
      { header: 'threads', align: 'right' },
      { header: 'data' },
      ...STEP_TIMING_COLUMNS,
      { header: 'last loss', align: 'right' },
    ],
    rows: [
      [
        result.python,
        result.torchVersion,
        result.device,
        String(result.threads),
        result.data,
        ...stepTimingCells(result),
        result.lastLoss === null ? '' : fixed(result.lastLoss, 4),
      ],
    ],
  };
}
