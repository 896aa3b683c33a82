// Stock TF.js vs Ticket Lab conv gradient kernels (Conv2DBackpropFilter, Conv2DBackpropInput) on
// the WebGPU adapter this process finds, for the zoo's layer shapes.
//
//   node dist/bench/conv-backprop-webgpu.js                 zoo batch sizes (60, ResNet 128)
//   node dist/bench/conv-backprop-webgpu.js --quick         batch 2, fewer repetitions
//   --swiftshader                                           use SwiftShader (software Vulkan) when no GPU is present
//
// Both kernels are called the same way, straight through their kernel functions, with the same
// inputs; a sample runs a few calls and then awaits the data of a one-element reduction of the
// last output, so queued GPU work is inside the clock. Reported: the median over samples, per call.
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../core/compute/backend';
import { type ConvBackpropKernel, stockConvBackpropKernels } from '../core/compute/kernels/conv-backprop-webgpu';
import { Rng } from '../core/compute/rng';
import { adapterLabel } from '../core/compute/webgpu';
import { median } from './stopwatch';
import { type Table, approx, fixed, renderTable } from './text-table';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

interface Layer {
  name: string;
  /** [h, w, ci, co]; 3×3 filters, stride 1, 'same' padding. */
  shape: [number, number, number, number];
  batch: number;
}

const LAYERS: Layer[] = [
  { name: 'Conv-2 MNIST 1→64', shape: [28, 28, 1, 64], batch: 60 },
  { name: 'Conv-2 MNIST 64→64', shape: [28, 28, 64, 64], batch: 60 },
  { name: 'Conv CIFAR 3→64', shape: [32, 32, 3, 64], batch: 60 },
  { name: 'Conv CIFAR 64→64', shape: [32, 32, 64, 64], batch: 60 },
  { name: 'Conv-4/6 64→128', shape: [16, 16, 64, 128], batch: 60 },
  { name: 'Conv-4/6 128→128', shape: [16, 16, 128, 128], batch: 60 },
  { name: 'Conv-6 128→256', shape: [8, 8, 128, 256], batch: 60 },
  { name: 'Conv-6 256→256', shape: [8, 8, 256, 256], batch: 60 },
  { name: 'ResNet-20 16→16', shape: [32, 32, 16, 16], batch: 128 },
  { name: 'ResNet-20 32→32', shape: [16, 16, 32, 32], batch: 128 },
  { name: 'ResNet-20 64→64', shape: [8, 8, 64, 64], batch: 128 },
];

interface Plan {
  /** Overrides every layer's batch (quick mode). */
  batch?: number;
  warmup: number;
  samples: number;
  callsPerSample: number;
}

const PLANS: Record<'full' | 'quick', Plan> = {
  full: { warmup: 3, samples: 7, callsPerSample: 20 },
  quick: { batch: 2, warmup: 1, samples: 3, callsPerSample: 1 },
};

const USAGE = 'usage: conv-backprop-webgpu [--quick] [--swiftshader]';

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): { quick: boolean; swiftshader: boolean } {
  const options = { quick: false, swiftshader: false };
  for (const arg of argv) {
    if (arg === '--quick') options.quick = true;
    else if (arg === '--swiftshader') options.swiftshader = true;
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else throw new UsageError(`unknown option ${arg} (${USAGE})`);
  }
  return options;
}

type KernelCall = () => tf.Tensor;

/** Waits for everything queued up to `out` by reading one element of it; disposes `out`. */
async function settle(out: tf.Tensor): Promise<void> {
  const probe = tf.tidy(() => tf.sum(tf.slice(tf.reshape(out, [-1]), [0], [1])));
  out.dispose();
  await probe.data();
  probe.dispose();
}

/** Median milliseconds per call. */
async function timeCalls(call: KernelCall, plan: Plan): Promise<number> {
  for (let i = 0; i < plan.warmup; i++) await settle(call());
  const perCall: number[] = [];
  for (let s = 0; s < plan.samples; s++) {
    const began = performance.now();
    let out = call();
    for (let c = 1; c < plan.callsPerSample; c++) {
      out.dispose();
      out = call();
    }
    await settle(out);
    perCall.push((performance.now() - began) / plan.callsPerSample);
  }
  return median(perCall);
}

/** max |a − b| / max |b|: the two kernels should agree to float32 rounding. */
async function relativeDifference(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const [x, y] = (await Promise.all([a.data(), b.data()])) as [Float32Array, Float32Array];
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < x.length; i++) {
    diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
    scale = Math.max(scale, Math.abs(y[i]!));
  }
  return diff / scale;
}

interface Row {
  layer: Layer;
  batch: number;
  kernel: ConvBackpropKernel;
  stockMs: number;
  oursMs: number;
  difference: number;
}

async function measureLayer(layer: Layer, plan: Plan, log: (line: string) => void): Promise<Row[]> {
  const [h, w, ci, co] = layer.shape;
  const batch = plan.batch ?? layer.batch;
  const rng = Rng.stream(0, 'bench-conv-backprop', layer.name);
  const normal = (shape: number[]) => tf.tensor(Float32Array.from({ length: tf.util.sizeFromShape(shape) }, () => rng.normal()), shape);
  const x = normal([batch, h, w, ci]);
  const filter = normal([3, 3, ci, co]);
  const dy = normal([batch, h, w, co]);
  const common = { strides: 1, pad: 'same', dataFormat: 'NHWC' };
  const args: Record<ConvBackpropKernel, { inputs: tf.NamedTensorMap; attrs: tf.NamedAttrMap }> = {
    Conv2DBackpropFilter: { inputs: { x, dy }, attrs: { ...common, filterShape: [3, 3, ci, co] } as unknown as tf.NamedAttrMap },
    Conv2DBackpropInput: { inputs: { dy, filter }, attrs: { ...common, inputShape: [batch, h, w, ci] } as unknown as tf.NamedAttrMap },
  };
  const stock = stockConvBackpropKernels();
  const rows: Row[] = [];
  try {
    for (const kernel of ['Conv2DBackpropFilter', 'Conv2DBackpropInput'] as const) {
      const stockFunc = stock[kernel];
      const oursFunc = tf.getKernel(kernel, 'webgpu')?.kernelFunc;
      if (!stockFunc || !oursFunc || oursFunc === stockFunc) throw new Error(`${kernel}: the stock and Ticket Lab kernels are not both available on webgpu`);
      const call = (func: tf.KernelFunc) => () => tf.engine().makeTensorFromTensorInfo(func({ inputs: args[kernel].inputs, backend: tf.backend(), attrs: args[kernel].attrs }) as tf.TensorInfo);
      log(`${layer.name}, batch ${batch}: ${kernel}`);
      const stockOut = call(stockFunc)();
      const oursOut = call(oursFunc)();
      const difference = await relativeDifference(oursOut, stockOut);
      tf.dispose([stockOut, oursOut]);
      const stockMs = await timeCalls(call(stockFunc), plan);
      const oursMs = await timeCalls(call(oursFunc), plan);
      rows.push({ layer, batch, kernel, stockMs, oursMs, difference });
    }
  } finally {
    tf.dispose([x, filter, dy]);
  }
  return rows;
}

function resultTable(rows: Row[], adapter: string, software: boolean, plan: Plan): Table {
  const total = (pick: (r: Row) => number) => rows.reduce((sum, r) => sum + pick(r), 0);
  return {
    title: `Conv gradients on webgpu: stock TF.js vs Ticket Lab (${adapter})`,
    measures: [
      'ms per call, median of ' + `${plan.samples} samples of ${plan.callsPerSample} call(s) after ${plan.warmup} warm-up call(s); 3×3 filters, stride 1, same padding, NHWC float32`,
      'diff: max |ours − stock| / max |stock|',
      ...(software ? ['SOFTWARE ADAPTER (SwiftShader on the CPU): these numbers say nothing about GPU speed'] : []),
    ],
    columns: [
      { header: 'layer' },
      { header: 'h×w', align: 'right' },
      { header: 'batch', align: 'right' },
      { header: 'kernel' },
      { header: 'stock ms', align: 'right' },
      { header: 'ours ms', align: 'right' },
      { header: 'stock/ours', align: 'right' },
      { header: 'diff', align: 'right' },
    ],
    rows: [
      ...rows.map((r) => [
        r.layer.name,
        `${r.layer.shape[0]}×${r.layer.shape[1]}`,
        String(r.batch),
        r.kernel === 'Conv2DBackpropFilter' ? 'filter' : 'input',
        approx(r.stockMs),
        approx(r.oursMs),
        `${fixed(r.stockMs / r.oursMs, 1)}×`,
        r.difference.toExponential(1),
      ]),
      ['all', '', '', '', approx(total((r) => r.stockMs)), approx(total((r) => r.oursMs)), `${fixed(total((r) => r.stockMs) / total((r) => r.oursMs), 1)}×`, ''],
    ],
  };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  // Read by the Vulkan loader when Dawn creates its instance, on first use below.
  if (options.swiftshader && !process.env.VK_ICD_FILENAMES) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  const plan = PLANS[options.quick ? 'quick' : 'full'];
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
  const info = await selectBackend('webgpu');
  const adapter = info.adapter ? adapterLabel(info.adapter) : 'unknown adapter';
  process.stdout.write(`node ${process.version}, @tensorflow/tfjs ${tf.version.tfjs}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  const rows: Row[] = [];
  for (const layer of LAYERS) rows.push(...(await measureLayer(layer, plan, log)));
  process.stdout.write(`\n${renderTable(resultTable(rows, adapter, info.adapter?.software ?? false, plan))}\n`);
}

main().then(
  // Dawn's instance keeps the event loop alive; the report is complete here.
  () => process.exit(0),
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`conv-backprop-webgpu: ${error.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`conv-backprop-webgpu failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
