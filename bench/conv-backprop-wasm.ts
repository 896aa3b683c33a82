// Ticket Lab's Conv2DBackpropFilter on TF.js's WASM backend (core/compute/kernels/conv-backprop-wasm.ts)
// on the zoo's conv layers, against the cpu backend's kernel (the only other one TF.js has on this
// machine) and, for scale, against the forward convolution of the same shape on wasm (XNNPACK),
// which does the same number of multiply-adds.
//
//   npm run build && node dist/bench/conv-backprop-wasm.js [--quick]
//
// The cpu kernel runs at a few million multiply-adds a second: it is timed once at batch 1 and
// scaled to the batch (its time is linear in the batch). Numbers move with whatever else the
// machine is doing; the header prints the load average.
import { cpus, loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../core/compute/backend';
import { CONV2D_BACKPROP_FILTER } from '../core/compute/kernels/conv-backprop-wasm';
import { Rng } from '../core/compute/rng';
import { median, seconds } from './stopwatch';
import { type Table, approx, fixed, renderTable } from './text-table';

const BATCH = 60;

interface ConvShape {
  /** Where the layer sits in the zoo. */
  layer: string;
  size: number;
  inChannels: number;
  outChannels: number;
}

/** Conv-2/4/6 of the LTH paper on MNIST (28×28×1) and CIFAR-10 (32×32×3): 3×3, stride 1, 'same'. */
const ZOO_SHAPES: readonly ConvShape[] = [
  { layer: 'MNIST conv1', size: 28, inChannels: 1, outChannels: 64 },
  { layer: 'MNIST conv2', size: 28, inChannels: 64, outChannels: 64 },
  { layer: 'MNIST conv3', size: 14, inChannels: 64, outChannels: 128 },
  { layer: 'MNIST conv4', size: 14, inChannels: 128, outChannels: 128 },
  { layer: 'MNIST conv5', size: 7, inChannels: 128, outChannels: 256 },
  { layer: 'MNIST conv6', size: 7, inChannels: 256, outChannels: 256 },
  { layer: 'CIFAR conv1', size: 32, inChannels: 3, outChannels: 64 },
  { layer: 'CIFAR conv2', size: 32, inChannels: 64, outChannels: 64 },
  { layer: 'CIFAR conv3', size: 16, inChannels: 64, outChannels: 128 },
  { layer: 'CIFAR conv4', size: 16, inChannels: 128, outChannels: 128 },
  { layer: 'CIFAR conv5', size: 8, inChannels: 128, outChannels: 256 },
  { layer: 'CIFAR conv6', size: 8, inChannels: 256, outChannels: 256 },
];

interface ConvBackpropRow {
  shape: ConvShape;
  /** Multiply-adds × 2 of one gradient (and of one forward convolution) at BATCH. */
  flop: number;
  wasmSeconds: number;
  forwardSeconds: number;
  /** The cpu kernel's time at batch 1, times BATCH; absent with --quick. */
  cpuSeconds: number | undefined;
}

function randomTensor(rng: Rng, shape: number[]): tf.Tensor {
  return tf.tensor(Float32Array.from({ length: tf.util.sizeFromShape(shape) }, () => rng.normal()), shape);
}

function filterGrad(x: tf.Tensor, dy: tf.Tensor, filterShape: number[]): tf.Tensor {
  const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape };
  return tf.engine().runKernel(CONV2D_BACKPROP_FILTER, { x, dy }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/**
 * Median seconds of each of two computations, `repetitions` runs each after `warmup` runs, taken
 * in turn so that both see the same load on a shared machine. Each result is read back.
 */
function timeInTurn(warmup: number, repetitions: number, runs: readonly [() => tf.Tensor, () => tf.Tensor]): [number, number] {
  const once = (run: () => tf.Tensor) => {
    const began = performance.now();
    const out = run();
    out.dataSync();
    const s = seconds(began);
    out.dispose();
    return s;
  };
  for (let i = 0; i < warmup; i++) runs.forEach(once);
  const times: [number[], number[]] = [[], []];
  for (let i = 0; i < repetitions; i++) runs.forEach((run, k) => times[k]!.push(once(run)));
  return [median(times[0]), median(times[1])];
}

async function measureConvBackpropWasm(options: { quick: boolean; seed: number }, log: (line: string) => void): Promise<ConvBackpropRow[]> {
  const rows: ConvBackpropRow[] = [];
  const [warmup, repetitions] = options.quick ? [1, 3] : [2, 9];
  for (const shape of ZOO_SHAPES) {
    const { size, inChannels: ci, outChannels: co } = shape;
    const filterShape = [3, 3, ci, co];
    const flop = 2 * BATCH * size * size * 9 * ci * co;
    const rng = Rng.stream(options.seed, 'bench-conv-backprop-wasm', shape.layer);
    const xValues = randomTensor(rng, [BATCH, size, size, ci]);
    const dyValues = randomTensor(rng, [BATCH, size, size, co]);
    const filter = randomTensor(rng, filterShape);
    log(`${shape.layer}: ${size}×${size}, ${ci} → ${co}`);

    await selectBackend('wasm');
    const [wasmSeconds, forwardSeconds] = timeInTurn(warmup, repetitions, [
      () => filterGrad(xValues, dyValues, filterShape),
      () => tf.conv2d(xValues as tf.Tensor4D, filter as tf.Tensor4D, 1, 'same'),
    ]);

    let cpuSeconds: number | undefined;
    if (!options.quick) {
      await tf.setBackend('cpu');
      const [x1, dy1] = tf.tidy(() => [tf.slice(xValues, 0, 1), tf.slice(dyValues, 0, 1)]);
      const began = performance.now();
      filterGrad(x1!, dy1!, filterShape).dispose();
      cpuSeconds = seconds(began) * BATCH;
      tf.dispose([x1!, dy1!]);
    }
    tf.dispose([xValues, dyValues, filter]);
    rows.push({ shape, flop, wasmSeconds, forwardSeconds, cpuSeconds });
  }
  return rows;
}

function convBackpropWasmTable(rows: readonly ConvBackpropRow[]): Table {
  const gflops = (flop: number, s: number) => approx(flop / s / 1e9);
  return {
    title: `Conv2D filter gradient on TF.js wasm (Ticket Lab's kernel), batch ${BATCH}, 3×3, stride 1, 'same'`,
    measures: [
      'median of timed runs after warm-up, gradient and forward in turn, result read back; GFLOP/s = 2 × multiply-adds / time',
      'forward = tf.conv2d on wasm (XNNPACK) of the same shape: the same multiply-adds, for scale',
      'cpu = the cpu backend\'s Conv2DBackpropFilter, one run at batch 1 scaled to the batch',
    ],
    columns: [
      { header: 'layer' },
      { header: 'shape' },
      { header: 'GFLOP', align: 'right' },
      { header: 'ms', align: 'right' },
      { header: 'GFLOP/s', align: 'right' },
      { header: 'forward ms', align: 'right' },
      { header: 'forward GFLOP/s', align: 'right' },
      { header: 'vs forward', align: 'right' },
      { header: 'cpu ms', align: 'right' },
      { header: 'vs cpu', align: 'right' },
    ],
    rows: rows.map((r) => [
      r.shape.layer,
      `${r.shape.size}×${r.shape.size} ${r.shape.inChannels}→${r.shape.outChannels}`,
      approx(r.flop / 1e9),
      fixed(r.wasmSeconds * 1000, 1),
      gflops(r.flop, r.wasmSeconds),
      fixed(r.forwardSeconds * 1000, 1),
      gflops(r.flop, r.forwardSeconds),
      `${fixed(r.forwardSeconds / r.wasmSeconds, 2)}×`,
      r.cpuSeconds === undefined ? '—' : fixed(r.cpuSeconds * 1000, 0),
      r.cpuSeconds === undefined ? '—' : `${approx(r.cpuSeconds / r.wasmSeconds)}×`,
    ]),
    notes: ['vs forward > 1: the gradient is faster than the forward convolution; vs cpu: how many times faster than the cpu kernel.'],
  };
}

const USAGE = 'usage: conv-backprop-wasm [--quick]';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--quick');
  if (unknown.length > 0) throw new Error(`unknown option ${unknown[0]} (${USAGE})`);
  const quick = args.includes('--quick');
  const load = loadavg().map((l) => fixed(l, 2)).join(' ');
  process.stdout.write(`${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, load average ${load}; node ${process.version}, @tensorflow/tfjs ${tf.version.tfjs}\n\n`);
  const rows = await measureConvBackpropWasm({ quick, seed: 0 }, (line) => process.stderr.write(`bench: ${line}\n`));
  process.stdout.write(`${renderTable(convBackpropWasmTable(rows))}\n`);
}

main().then(
  // The wasm backend keeps handles that can hold the event loop open; the report is complete here.
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`conv-backprop-wasm failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
