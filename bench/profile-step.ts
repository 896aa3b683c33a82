// Where a training step on TF.js's autodiff path (conv nets) spends its time, on one backend:
// kernels per step and their GPU or CPU time by kernel name (tf.profile), the host's time to issue
// a step (JavaScript only: WebGPU runs the work later) and the wall time per step, with the loss
// read back every 10 steps as training does. Host time close to wall time means the step is bound by issuing kernels, not by them.
//
//   node dist/bench/profile-step.js [--model conv-2] [--backend webgpu] [--steps 100] [--sparsity 0.5]
import * as tf from '@tensorflow/tfjs';
import { type BackendProvider, selectBackend } from '../core/compute/backend';
import { adapterLabel } from '../core/compute/webgpu';
import { BatchOrder, fillBatch, loadDataset } from '../core/data/datasets';
import { architecture } from '../core/models/architectures';
import { MaskedNetwork } from '../core/models/network';
import { DEFAULT_OPTIMIZER, createOptimizer } from '../core/train/optimizers';
import { autodiffStep } from '../core/train/train-autodiff';
import { zooTicket } from './lenet-ticket';
import { type Table, fixed, renderTable } from './text-table';

const BATCH = 60;
/** trainWithAutodiff reads the loss back every 10 steps. */
const READ_LOSS_EVERY = 10;

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at >= 0 && process.argv[at + 1] ? process.argv[at + 1]! : fallback;
}

async function main(): Promise<void> {
  const modelId = option('--model', 'conv-2');
  const backend = option('--backend', 'webgpu') as BackendProvider;
  const steps = Math.ceil(Number(option('--steps', '100')) / READ_LOSS_EVERY) * READ_LOSS_EVERY;
  const sparsity = Number(option('--sparsity', '0.5'));
  const info = await selectBackend(backend, { trainsConv: true });
  const dataset = loadDataset('mnist', { validationSize: 0 });
  const ticket = await zooTicket(modelId, dataset, 0, sparsity);
  const net = new MaskedNetwork(ticket.arch, ticket.specs, ticket.weights, ticket.masks);
  const optimizer = createOptimizer({ ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: architecture(modelId).lthTraining.learningRate }, net);
  const [h, w, c] = dataset.imageShape;
  const x = new Float32Array(BATCH * h * w * c);
  const y = new Int32Array(BATCH);
  const order = new BatchOrder(dataset.train.count, BATCH, 0);
  let iteration = 0;
  const step = (keepLoss: boolean) => {
    fillBatch(dataset.train, order.rowsAt(iteration++), dataset.normalization, x, y);
    return autodiffStep(net, optimizer, x, y, dataset, keepLoss);
  };
  const drain = async (loss: tf.Scalar | undefined) => {
    await loss!.data();
    loss!.dispose();
  };

  for (let i = 0; i < 20; i++) step(false);
  await drain(step(true));

  // As training does, the loss is read back every 10 steps (which drains the device). Host: the
  // time spent issuing steps (JS, kernel set-up, command encoding); wall: everything.
  let hostMs = 0;
  const began = performance.now();
  for (let done = 0; done < steps; done += READ_LOSS_EVERY) {
    const issuing = performance.now();
    for (let i = 1; i < READ_LOSS_EVERY; i++) step(false);
    const last = step(true);
    hostMs += performance.now() - issuing;
    await drain(last);
  }
  const wallMs = performance.now() - began;

  const profile = await tf.profile(() => step(true));
  const byName = new Map<string, { count: number; ms: number }>();
  let timed = true;
  for (const k of profile.kernels) {
    const entry = byName.get(k.name) ?? { count: 0, ms: 0 };
    entry.count++;
    if (typeof k.kernelTimeMs === 'number') entry.ms += k.kernelTimeMs;
    else timed = false;
    byName.set(k.name, entry);
  }
  const kernelMs = [...byName.values()].reduce((s, e) => s + e.ms, 0);
  const rows = [...byName.entries()].sort((a, b) => b[1].ms - a[1].ms || b[1].count - a[1].count);
  const table: Table = {
    title: `One ${modelId} training step on ${info.provider} (TF.js autodiff, masked Adam, batch ${BATCH}, ${fixed(sparsity * 100, 0)} % random masks)`,
    measures: [
      `${steps} steps, the loss read back every ${READ_LOSS_EVERY}: wall ${fixed(wallMs / steps, 2)} ms/step, host ${fixed(hostMs / steps, 2)} ms/step (issuing only);`,
      `${profile.kernels.length} kernels per step; kernel time ${timed ? `${fixed(kernelMs, 2)} ms (tf.profile, one step, each kernel timed alone)` : 'not reported by this backend'}.`,
    ],
    columns: [{ header: 'kernel' }, { header: 'per step', align: 'right' }, { header: 'ms', align: 'right' }, { header: 'share', align: 'right' }],
    rows: rows.map(([name, e]) => [name, String(e.count), timed ? fixed(e.ms, 3) : '—', timed && kernelMs > 0 ? `${fixed((100 * e.ms) / kernelMs, 1)} %` : '—']),
    notes: info.adapter ? [`adapter: ${adapterLabel(info.adapter)}`] : [],
  };
  process.stdout.write(`${renderTable(table)}\n`);
  optimizer.dispose();
  net.dispose();
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
