// Section 6: how long reading a model file takes, and how much memory, against PyTorch reading the
// same file in the same run.
//
// The benchmark writes its own files into a temp folder: a safetensors file (safetensorsBytes) of
// seeded float32 tensors and, where PyTorch is installed, a .pt state dict of the very same tensors
// written by torch.save. Every read runs in a child process of its own, so the peak RSS it reports
// is that read's (plus the runtime the child started with, printed in the notes): Ticket Lab's
// readModelFile in a child node that requires the built dist/, PyTorch's loader in a child python.
//
// Linux carries a process's peak RSS across fork and exec: a child forked straight from this process
// (which holds MNIST and more) would report this process's RSS as its own peak. So each child is
// started by a small /bin/sh that forks it (`"$@"; exit $?` is not the shell's last command, so it
// is not exec'd): the peak the child inherits is the shell's, about a megabyte. Each child also
// reports VmHWM from /proc/self/status, the peak of its own address space, as a cross-check.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../core/compute/rng';
import { type OutTensor, safetensorsBytes } from '../core/formats/writers';
import { type Table, fixed } from './text-table';
import { pythonWithTorch } from './torch-reference';

export interface ImportPlan {
  /** Tensors in each file, each of `shape` float32 elements. */
  tensors: number;
  shape: [number, number];
  repetitions: number;
}

/** 25 × 1024×1024 float32 = 100 MiB; quick: 10 × 1024×256 = 10 MiB. */
export const IMPORT_PLANS: Record<'full' | 'quick', ImportPlan> = {
  full: { tensors: 25, shape: [1024, 1024], repetitions: 3 },
  quick: { tensors: 10, shape: [1024, 256], repetitions: 3 },
};

const CHILD_TIMEOUT_MS = 5 * 60_000;
const MIB = 2 ** 20;

/** What one child prints as its last line: one read, timed inside the child. */
interface ChildLine {
  seconds: number;
  /** Peak RSS of the child over its whole life, KiB (maxRSS / ru_maxrss on Linux). */
  max_rss_kb: number;
  /** The same peak just before the read: the runtime and its imports alone. */
  baseline_rss_kb: number;
  /** VmHWM of /proc/self/status after the read, KiB; null where there is no /proc. */
  vm_hwm_kb: number | null;
  tensors: number;
  elements: number;
  abs_sum: number;
  reader?: string;
  torch_version?: string;
}

export interface ReadMeasurement {
  /** Best (lowest) wall time of the repetitions, seconds, of the read call alone. */
  seconds: number;
  all: number[];
  /** Highest peak RSS of the repetitions, MiB. */
  peakMiB: number;
  baselineMiB: number;
  /** Highest VmHWM of the repetitions, MiB: should match peakMiB; null without /proc. */
  vmHwmMiB: number | null;
  elements: number;
  absSum: number;
}

export type ReadResult = ({ kind: 'measured'; reader: string } & ReadMeasurement) | { kind: 'unavailable'; reason: string };

export interface ImportRow {
  file: 'safetensors' | 'pytorch .pt';
  bytes: number;
  /** Set when the file could not be made (no PyTorch to write a .pt). */
  skipped: string | null;
  ticketLab: ReadResult;
  torch: ReadResult;
  /** PyTorch seconds / Ticket Lab seconds: above 1, Ticket Lab is faster. */
  ratio: number;
  /** Both readers saw the same number of elements and the same Σ|x| (to 1e-9 relative). */
  valuesAgree: boolean | null;
}

export interface ImportResult {
  plan: ImportPlan;
  python: string | null;
  torchVersion: string | null;
  rows: ImportRow[];
  notes: string[];
}

// The Ticket Lab child: argv = registry.js, the model file. The clock and the baseline start after
// the require, as the PyTorch child's start after `import torch`.
const NODE_CHILD = `'use strict';
const { readModelFile } = require(process.argv[2]);
const baseline = process.resourceUsage().maxRSS;
const began = performance.now();
const contents = readModelFile(process.argv[3]);
const seconds = (performance.now() - began) / 1000;
const peak = process.resourceUsage().maxRSS;
let hwm = null;
try {
  hwm = Number(/VmHWM:\\s+(\\d+)/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]);
} catch {}
let elements = 0;
let absSum = 0;
for (const t of contents.tensors) {
  elements += t.values.length;
  for (let i = 0; i < t.values.length; i++) absSum += Math.abs(t.values[i]);
}
process.stdout.write(JSON.stringify({ seconds, max_rss_kb: peak, baseline_rss_kb: baseline, vm_hwm_kb: hwm, tensors: contents.tensors.length, elements, abs_sum: absSum, reader: 'readModelFile' }) + '\\n');
`;

// The PyTorch child: argv = safetensors|pt, the file. Without the safetensors package the
// safetensors file is read the way that package does it: mmap, then each tensor copied out into a
// torch tensor of its own.
const PYTHON_CHILD = `import json, mmap, resource, struct, sys, time
import numpy as np
import torch
try:
    from safetensors.torch import load_file
except ImportError:
    load_file = None

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}

def numpy_load_file(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = np.dtype(DTYPES[info["dtype"]])
        begin, end = info["data_offsets"]
        array = np.frombuffer(m, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=8 + n + begin)
        out[name] = torch.from_numpy(array.reshape(info["shape"]).copy())
    return out

mode, path = sys.argv[1], sys.argv[2]
if mode == "safetensors":
    reader = "safetensors.torch.load_file" if load_file else "NumPy reader of the safetensors layout (mmap + np.frombuffer, copied into torch tensors)"
    load = load_file or numpy_load_file
else:
    reader = "torch.load(weights_only=True)"
    load = lambda p: torch.load(p, weights_only=True)
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
began = time.perf_counter()
state = load(path)
seconds = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    with open("/proc/self/status") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    hwm = None
elements = sum(t.numel() for t in state.values())
abs_sum = float(sum(t.double().abs().sum() for t in state.values()))
print(json.dumps({"seconds": seconds, "max_rss_kb": peak, "baseline_rss_kb": baseline, "vm_hwm_kb": hwm, "tensors": len(state), "elements": elements, "abs_sum": abs_sum, "reader": reader, "torch_version": torch.__version__}))
`;

// Writes a .pt of the safetensors file's tensors (the same names and values), as a state dict.
const PYTHON_WRITE_PT = `import json, struct, sys
import numpy as np
import torch
source, target = sys.argv[1], sys.argv[2]
with open(source, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
state = {}
for name, info in header.items():
    if name == "__metadata__":
        continue
    begin, end = info["data_offsets"]
    state[name] = torch.from_numpy(np.frombuffer(data, dtype="<f4", count=(end - begin) // 4, offset=begin).reshape(info["shape"]).copy())
torch.save(state, target)
`;

function registryPath(): string | undefined {
  // Built: dist/bench/ beside dist/core/. From the sources (bench/): the build output in dist/.
  return [
    join(__dirname, '..', 'core', 'formats', 'registry.js'),
    join(__dirname, '..', 'dist', 'core', 'formats', 'registry.js'),
    join(process.cwd(), 'dist', 'core', 'formats', 'registry.js'),
  ].find((p) => existsSync(p));
}

function lastLine(text: string): string {
  return text.trim().split('\n').slice(-1)[0] ?? '';
}

function failure(command: string, run: ReturnType<typeof spawnSync>): string {
  const stderr = typeof run.stderr === 'string' ? run.stderr : String(run.stderr ?? '');
  return `${command} failed: ${lastLine(stderr) || run.error?.message || `exit ${run.status}`}`;
}

/** One read in a child process (forked by /bin/sh: see the top): its last stdout line is a ChildLine, or the reason there is none. */
function runChild(command: string, args: string[]): ChildLine | string {
  const [file, argv] = process.platform === 'win32' ? [command, args] : ['/bin/sh', ['-c', '"$@"; exit $?', 'sh', command, ...args]];
  const run = spawnSync(file, argv, { encoding: 'utf8', timeout: CHILD_TIMEOUT_MS, maxBuffer: 16 * MIB });
  if (run.status !== 0) return failure(command, run);
  try {
    return JSON.parse(lastLine(run.stdout)) as ChildLine;
  } catch {
    return `${command} printed no JSON line (got: ${lastLine(run.stdout).slice(0, 200)})`;
  }
}

/** The seeded tensors of the plan: N(0, 0.05²), like freshly initialised weights. */
function benchTensors(plan: ImportPlan, seed: number): OutTensor[] {
  const rng = Rng.stream(seed, 'bench-import');
  const count = plan.shape[0] * plan.shape[1];
  return Array.from({ length: plan.tensors }, (_, t) => {
    const values = new Float32Array(count);
    for (let i = 0; i < count; i++) values[i] = 0.05 * rng.normal();
    return { name: `layers.${t}.weight`, shape: [...plan.shape], values };
  });
}

/** Repetitions of each reader, interleaved so a slow stretch of the machine hits both alike. */
function measureFile(
  repetitions: number,
  readers: { ticketLab: (() => ChildLine | string) | string; torch: (() => ChildLine | string) | string },
): { ticketLab: ReadResult; torch: ReadResult } {
  const lines = { ticketLab: [] as ChildLine[], torch: [] as ChildLine[] };
  const failed: { ticketLab?: string; torch?: string } = {};
  for (let r = 0; r < repetitions; r++) {
    for (const side of ['ticketLab', 'torch'] as const) {
      const reader = readers[side];
      if (typeof reader === 'string' || failed[side]) continue;
      const line = reader();
      if (typeof line === 'string') failed[side] = line;
      else lines[side].push(line);
    }
  }
  const result = (side: 'ticketLab' | 'torch'): ReadResult => {
    const reader = readers[side];
    if (typeof reader === 'string') return { kind: 'unavailable', reason: reader };
    if (failed[side]) return { kind: 'unavailable', reason: failed[side] };
    const all = lines[side].map((l) => l.seconds);
    const first = lines[side][0]!;
    return {
      kind: 'measured',
      reader: first.reader ?? side,
      seconds: Math.min(...all),
      all,
      peakMiB: Math.max(...lines[side].map((l) => l.max_rss_kb)) / 1024,
      baselineMiB: Math.max(...lines[side].map((l) => l.baseline_rss_kb)) / 1024,
      vmHwmMiB: lines[side].every((l) => l.vm_hwm_kb !== null) ? Math.max(...lines[side].map((l) => l.vm_hwm_kb!)) / 1024 : null,
      elements: first.elements,
      absSum: first.abs_sum,
    };
  };
  return { ticketLab: result('ticketLab'), torch: result('torch') };
}

function agree(a: ReadResult, b: ReadResult): boolean | null {
  if (a.kind !== 'measured' || b.kind !== 'measured') return null;
  return a.elements === b.elements && Math.abs(a.absSum - b.absSum) <= 1e-9 * Math.max(1, a.absSum);
}

export function measureImport(plan: ImportPlan, seed: number, log: (line: string) => void): ImportResult {
  const dir = mkdtempSync(join(tmpdir(), 'ticket-lab-bench-import-'));
  try {
    const notes: string[] = [];
    const registry = registryPath();
    const nodeScript = join(dir, 'read-ticket-lab.js');
    const pythonScript = join(dir, 'read_torch.py');
    writeFileSync(nodeScript, NODE_CHILD);
    writeFileSync(pythonScript, PYTHON_CHILD);
    const python = pythonWithTorch() ?? null;

    const safetensorsPath = join(dir, 'bench.safetensors');
    const ptPath = join(dir, 'bench.pt');
    log(`import: writing ${plan.tensors} seeded float32 tensors of ${plan.shape.join('×')} as safetensors`);
    writeFileSync(safetensorsPath, safetensorsBytes(benchTensors(plan, seed)));
    let ptSkipped: string | null = null;
    if (!python) ptSkipped = "no python3 that can 'import torch' (apt-get install python3-torch)";
    else {
      log(`import: torch.save of the same tensors with ${python}`);
      const run = spawnSync(python, ['-c', PYTHON_WRITE_PT, safetensorsPath, ptPath], { encoding: 'utf8', timeout: CHILD_TIMEOUT_MS });
      if (run.status !== 0) ptSkipped = failure(`${python} torch.save`, run);
    }

    const ticketLab = (path: string): (() => ChildLine | string) | string =>
      registry ? () => runChild(process.execPath, [nodeScript, registry, path]) : 'dist/core/formats/registry.js not found: run npm run build';
    const torch = (mode: 'safetensors' | 'pt', path: string): (() => ChildLine | string) | string =>
      python ? () => runChild(python, [pythonScript, mode, path]) : "no python3 that can 'import torch'";

    const rows: ImportRow[] = [];
    const files = [
      { file: 'safetensors' as const, path: safetensorsPath, mode: 'safetensors' as const, skipped: null },
      { file: 'pytorch .pt' as const, path: ptPath, mode: 'pt' as const, skipped: ptSkipped },
    ];
    let torchVersion: string | null = null;
    for (const f of files) {
      if (f.skipped) {
        const skipped: ReadResult = { kind: 'unavailable', reason: f.skipped };
        rows.push({ file: f.file, bytes: Number.NaN, skipped: f.skipped, ticketLab: skipped, torch: skipped, ratio: Number.NaN, valuesAgree: null });
        continue;
      }
      const bytes = statSync(f.path).size;
      log(`import: ${f.file}, ${fixed(bytes / MIB, 1)} MiB, ${plan.repetitions} reads each by Ticket Lab and PyTorch, one child process per read`);
      const measured = measureFile(plan.repetitions, { ticketLab: ticketLab(f.path), torch: torch(f.mode, f.path) });
      if (python && measured.torch.kind === 'measured' && torchVersion === null) {
        const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8', timeout: 60_000 });
        torchVersion = probe.status === 0 ? probe.stdout.trim() : null;
      }
      const ratio = measured.ticketLab.kind === 'measured' && measured.torch.kind === 'measured' ? measured.torch.seconds / measured.ticketLab.seconds : Number.NaN;
      rows.push({ file: f.file, bytes, skipped: null, ...measured, ratio, valuesAgree: agree(measured.ticketLab, measured.torch) });
    }
    for (const row of rows) {
      if (row.skipped) notes.push(`${row.file} skipped: ${row.skipped}.`);
      else {
        if (row.ticketLab.kind === 'unavailable') notes.push(`${row.file}, Ticket Lab not measured: ${row.ticketLab.reason}.`);
        if (row.torch.kind === 'unavailable') notes.push(`${row.file}, PyTorch not measured: ${row.torch.reason}.`);
      }
    }
    return { plan, python, torchVersion, rows, notes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function importTable(result: ImportResult): Table {
  const { plan } = result;
  const seconds = (r: ReadResult): string => (r.kind === 'measured' ? fixed(r.seconds, 3) : '—');
  const peak = (r: ReadResult): string => (r.kind === 'measured' ? fixed(r.peakMiB, 0) : '—');
  const measured = result.rows.flatMap((row) => [row.ticketLab, row.torch]).filter((r): r is Extract<ReadResult, { kind: 'measured' }> => r.kind === 'measured');
  const baseline = (which: 'ticketLab' | 'torch'): string => {
    const values = result.rows.map((row) => row[which]).flatMap((r) => (r.kind === 'measured' ? [r.baselineMiB] : []));
    return values.length > 0 ? `${fixed(Math.max(...values), 0)} MB` : '—';
  };
  const torchReaders = [...new Set(result.rows.flatMap((row) => (row.torch.kind === 'measured' ? [`${row.file}: ${row.torch.reader}`] : [])))];
  const agreement = result.rows.filter((row) => row.valuesAgree !== null);
  return {
    title: `6. Import: reading a model file of ${plan.tensors} seeded float32 tensors of ${plan.shape.join('×')} (written by the benchmark to a temp folder)`,
    measures: [
      `Each read in a child process of its own: Ticket Lab = readModelFile (dist/core/formats/registry.js) in node; PyTorch = its loader in python${result.torchVersion ? ` (torch ${result.torchVersion})` : ''}.`,
      `s = the read call alone (after the runtime started and imported), best of ${plan.repetitions}; peak MB = the child's peak RSS (maxRSS / ru_maxrss),`,
      `highest of the ${plan.repetitions}, runtime included. ratio = PyTorch s / Ticket Lab s: above 1, Ticket Lab reads faster. MB = 2^20 bytes.`,
      'The files were just written, so they are read from the page cache (a warm read, alike for both).',
    ],
    columns: [
      { header: 'file' },
      { header: 'size MB', align: 'right' },
      { header: 'Ticket Lab s', align: 'right' },
      { header: 'Ticket Lab peak MB', align: 'right' },
      { header: 'PyTorch s', align: 'right' },
      { header: 'PyTorch peak MB', align: 'right' },
      { header: 'ratio', align: 'right' },
    ],
    rows: result.rows.map((row) => [
      row.skipped ? `${row.file} (skipped)` : row.file,
      Number.isFinite(row.bytes) ? fixed(row.bytes / MIB, 1) : '—',
      seconds(row.ticketLab),
      peak(row.ticketLab),
      seconds(row.torch),
      peak(row.torch),
      Number.isFinite(row.ratio) ? `${fixed(row.ratio, 2)}×` : '—',
    ]),
    notes: [
      ...(measured.length > 0 ? [`Peak RSS just before the read (the runtime alone): node ${baseline('ticketLab')}, python + torch ${baseline('torch')}.`] : []),
      ...torchReaders.map((r) => `PyTorch reader, ${r}.`),
      ...hwmCheck(measured),
      ...agreement.map((row) => `${row.file}: ${row.valuesAgree ? 'both read the same element count and Σ|x| (to 1e-9)' : 'MISMATCH between what Ticket Lab and PyTorch read'}.`),
      ...result.notes,
    ],
  };
}

/** Whether every peak RSS matches the child's own VmHWM (within 5 MB): that no peak was inherited from the parent. */
function hwmCheck(measured: ReadonlyArray<Extract<ReadResult, { kind: 'measured' }>>): string[] {
  const checked = measured.filter((r) => r.vmHwmMiB !== null);
  if (checked.length === 0) return [];
  const worst = Math.max(...checked.map((r) => Math.abs(r.peakMiB - r.vmHwmMiB!)));
  return worst <= 5
    ? [`Every peak matches the child's own VmHWM (/proc/self/status) within ${fixed(worst, 1)} MB: no peak inherited from the parent.`]
    : [`A peak differs from the child's own VmHWM by ${fixed(worst, 1)} MB: part of it may be inherited from the parent process.`];
}
