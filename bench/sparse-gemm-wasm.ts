// Dense against sparse matrix products of the step engine on TF.js's WASM backend, across mask
// densities, on LeNet-300-100's layers at batch 60: where the sparse kernels (assembly/sparse.ts)
// start to win, which sets SPARSE_CROSSOVER in core/train/engine/kernels-wasm.ts.
//
//   npm run build && node dist/bench/sparse-gemm-wasm.js [--quick]
//
// Each product is prepared as the engine prepares it (same views, a mask hint) on kernels that
// always take the dense path and on kernels that always take the sparse one; masks are random at
// the given density, different per member. Numbers move with whatever else the machine is doing;
// the header prints the load average.
import { cpus, loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../core/compute/backend';
import { Rng } from '../core/compute/rng';
import { wasmStepKernels } from '../core/train/engine/kernels-wasm';
import type { GemmSpec, StepKernels } from '../core/train/engine/step-kernels';
import { median } from './stopwatch';
import { type Table, approx, fixed, renderTable } from './text-table';

const BATCH = 60;
const EVAL_ROWS = 1000;
const LAYERS = [
  { name: '784→300', inputs: 784, units: 300, relu: true },
  { name: '300→100', inputs: 300, units: 100, relu: true },
  { name: '100→10', inputs: 100, units: 10, relu: false },
] as const;
const DENSITIES = [1, 0.8, 0.64, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.035, 0.02];
const MEMBERS = [1, 4];

type Product = 'forward' | 'input grad' | 'weight grad' | 'eval forward';
const PRODUCTS: Product[] = ['forward', 'input grad', 'weight grad', 'eval forward'];

type Layer = (typeof LAYERS)[number];

/** The engine's spec of a product on one layer (mlp-engine.ts), over tensors made here. */
function productSpec(product: Product, layer: Layer, K: number, mask: tf.Tensor, w: tf.Tensor, tensors: tf.Tensor[], rng: Rng): GemmSpec {
  const { inputs: I, units: U } = layer;
  const random = (shape: number[]) => {
    const t = tf.tensor(Float32Array.from({ length: tf.util.sizeFromShape(shape) }, () => rng.normal()), shape);
    tensors.push(t);
    return t;
  };
  const zeros = (shape: number[]) => {
    const t = tf.zeros(shape);
    tensors.push(t);
    return t;
  };
  const B = BATCH;
  switch (product) {
    case 'forward':
      return {
        batch: K, m: B, n: U, k: I,
        a: { tensor: random([K, B, I]), offset: 0, batch: B * I, row: I, col: 1 },
        b: { tensor: w, offset: 0, batch: I * U, row: U, col: 1 },
        c: { tensor: zeros([K, B, U]), offset: 0, batch: B * U, row: U },
        bias: { tensor: random([K, U]), batch: U },
        relu: layer.relu,
        mask: { tensor: mask, operand: 'b' },
      };
    case 'input grad':
      return {
        batch: K, m: B, n: I, k: U,
        a: { tensor: random([K, B, U]), offset: 0, batch: B * U, row: U, col: 1 },
        b: { tensor: w, offset: 0, batch: I * U, row: 1, col: U },
        c: { tensor: zeros([K, B, I]), offset: 0, batch: B * I, row: I },
        relu: false,
        mask: { tensor: mask, operand: 'b' },
      };
    case 'weight grad':
      return {
        batch: K, m: I, n: U, k: B,
        a: { tensor: random([K, B, I]), offset: 0, batch: B * I, row: 1, col: I },
        b: { tensor: random([K, B, U]), offset: 0, batch: B * U, row: U, col: 1 },
        c: { tensor: zeros([K, I, U]), offset: 0, batch: I * U, row: U },
        relu: false,
        mask: { tensor: mask, operand: 'c' },
      };
    case 'eval forward':
      // The first layer's input chunk is shared by every member (batch stride 0), as in evaluate().
      return {
        batch: K, m: EVAL_ROWS, n: U, k: I,
        a: { tensor: random([EVAL_ROWS, I]), offset: 0, batch: 0, row: I, col: 1 },
        b: { tensor: w, offset: 0, batch: I * U, row: U, col: 1 },
        c: { tensor: zeros([K, EVAL_ROWS, U]), offset: 0, batch: EVAL_ROWS * U, row: U },
        bias: { tensor: random([K, U]), batch: U },
        relu: layer.relu,
        mask: { tensor: mask, operand: 'b' },
      };
  }
}

/** CPU seconds of this process since `from` (user + system): what another job on the machine takes from the wall clock does not count. */
function cpuSeconds(from: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1e6;
}

/** CPU seconds per call of each prepared call: median over rounds of enough calls to fill ~10 ms, taken in turn. */
function timeInTurn(rounds: number, runs: ReadonlyArray<() => void>): number[] {
  const callsPerRound = runs.map((run) => {
    const began = performance.now();
    let calls = 0;
    while (performance.now() - began < 10) {
      run();
      calls++;
    }
    return Math.max(1, calls);
  });
  const times: number[][] = runs.map(() => []);
  for (let r = 0; r < rounds; r++) {
    runs.forEach((run, i) => {
      const began = process.cpuUsage();
      for (let c = 0; c < callsPerRound[i]!; c++) run();
      times[i]!.push(cpuSeconds(began) / callsPerRound[i]!);
    });
  }
  return times.map(median);
}

interface Row {
  product: Product;
  layer: Layer;
  members: number;
  /** Seconds per call at each of DENSITIES. */
  dense: number[];
  sparse: number[];
  /** Seconds to build the index lists at the lowest density (paid once per engine). */
  prepareSeconds: number;
}

function measure(dense: StepKernels, sparse: StepKernels, quick: boolean, log: (line: string) => void): Row[] {
  const rows: Row[] = [];
  const rounds = quick ? 3 : 7;
  for (const product of PRODUCTS) {
    for (const layer of LAYERS) {
      if (product === 'input grad' && layer.inputs === 784) continue; // the engine never asks for the input's gradient
      for (const K of MEMBERS) {
        const row: Row = { product, layer, members: K, dense: [], sparse: [], prepareSeconds: 0 };
        for (const density of DENSITIES) {
          const rng = Rng.stream(0, 'bench-sparse-gemm', product, layer.name, String(K), String(density));
          const size = K * layer.inputs * layer.units;
          const bits = Float32Array.from({ length: size }, () => (rng.nextU32() / 2 ** 32 < density ? 1 : 0));
          const mask = tf.tensor(bits, [K, layer.inputs, layer.units]);
          const w = tf.tensor(Float32Array.from(bits, (bit) => bit * rng.normal() * 0.05), [K, layer.inputs, layer.units]);
          const tensors: tf.Tensor[] = [mask, w];
          const spec = productSpec(product, layer, K, mask, w, tensors, rng);
          const runDense = dense.gemm(spec);
          const began = performance.now();
          const runSparse = sparse.gemm(spec);
          row.prepareSeconds = (performance.now() - began) / 1000;
          const [d, s] = timeInTurn(rounds, [runDense, runSparse]);
          row.dense.push(d!);
          row.sparse.push(s!);
          tf.dispose(tensors);
        }
        log(`${product} ${layer.name} K=${K}: dense ${fixed(median(row.dense) * 1e6, 0)} µs`);
        rows.push(row);
      }
    }
  }
  return rows;
}

/**
 * The density below which the sparse kernel was faster at every measured density: from the lowest
 * up, interpolated between the last density where sparse wins and the first where it does not.
 */
function crossover(row: Row): number {
  for (let i = DENSITIES.length - 1; i >= 0; i--) {
    if (!(row.sparse[i]! < row.dense[i]!)) {
      if (i === DENSITIES.length - 1) return 0;
      const [d0, d1] = [DENSITIES[i]!, DENSITIES[i + 1]!];
      const [g0, g1] = [row.sparse[i]! - row.dense[i]!, row.sparse[i + 1]! - row.dense[i + 1]!];
      return d1 + (d0 - d1) * (-g1 / (g0 - g1));
    }
  }
  return 1;
}

function sparseTable(rows: readonly Row[]): Table {
  return {
    title: `Step-engine matrix products on TF.js wasm, dense vs sparse kernels (CPU µs per call), batch ${BATCH}, eval ${EVAL_ROWS} rows`,
    measures: [
      'CPU time of this process per call (so other jobs on the machine count less), median over rounds of ~10 ms of calls, dense and sparse in turn',
      'masks random at each density, one per member',
      'dense = median over the densities of the dense kernel (it does not depend on the mask); sparse at each density',
    ],
    columns: [
      { header: 'product' },
      { header: 'layer' },
      { header: 'K', align: 'right' },
      { header: 'dense', align: 'right' },
      ...DENSITIES.map((d) => ({ header: `${fixed(d * 100, d < 0.1 ? 1 : 0)}%`, align: 'right' as const })),
      { header: 'crossover', align: 'right' },
      { header: 'lists ms', align: 'right' },
    ],
    rows: rows.map((r) => [
      r.product,
      r.layer.name,
      String(r.members),
      approx(median(r.dense) * 1e6),
      ...r.sparse.map((s) => approx(s * 1e6)),
      fixed(crossover(r), 2),
      fixed(r.prepareSeconds * 1000, 1),
    ]),
    notes: ['crossover: the density below which the sparse kernel was faster at every measured density (interpolated); lists ms: preparing the sparse product at 2 % (index lists, once per engine).'],
  };
}

const USAGE = 'usage: sparse-gemm-wasm [--quick]';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--quick');
  if (unknown.length > 0) throw new Error(`unknown option ${unknown[0]} (${USAGE})`);
  const load = loadavg().map((l) => fixed(l, 2)).join(' ');
  process.stdout.write(`${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, load average ${load}; node ${process.version}, @tensorflow/tfjs ${tf.version.tfjs}\n\n`);
  await selectBackend('wasm');
  const dense = wasmStepKernels({ sparseBelow: 0 });
  const sparse = wasmStepKernels({ sparseBelow: Number.POSITIVE_INFINITY });
  const rows = measure(dense, sparse, args.includes('--quick'), (line) => process.stderr.write(`bench: ${line}\n`));
  dense.dispose();
  sparse.dispose();
  process.stdout.write(`${renderTable(sparseTable(rows))}\n`);
}

main().then(
  // The wasm backend keeps handles that can hold the event loop open; the report is complete here.
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`sparse-gemm-wasm failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
