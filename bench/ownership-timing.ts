// Section 7: ownership. How long claiming and checking take on ResNet-20 (CIFAR-shaped) and
// LeNet-300-100: planning and embedding the graph signature, verifying it on a suspect's mask,
// drawing a trigger set and querying a network with it. Beside them, the same extraction and the
// trigger forward pass in PyTorch (bench/ownership_torch.py), as the paper's code base would run them.
//
// Masks are 90 % sparse, drawn at random with exact counts per layer; weights are seeded at init.
// Timing is of the operations alone (median of repetitions), not of any training.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../core/compute/backend';
import { architecture, paramSpecs } from '../core/models/architectures';
import { initWeights } from '../core/models/weights';
import { embedSignature, planSignature, verifySignature } from '../core/ownership/graph-signature';
import { makeTriggerSet, predictTriggers, verifyTriggerSet } from '../core/ownership/trigger-set';
import { randomStrategy } from '../core/pruning/random';
import { denseMasks } from '../core/pruning/imp';
import { median } from './stopwatch';
import { type Table, fixed } from './text-table';
import { pythonWithTorch } from './torch-reference';

const SECRET = new Uint8Array(32).fill(7);
const MESSAGE = { fingerprint: 'bench', ticketId: 'tk_bench', nonce: '0' };

export interface OwnershipRow {
  model: string;
  embedSeconds: number;
  verifySeconds: number;
  triggerSeconds: number;
  /** PyTorch's extraction and trigger forward on the same model, where measured. */
  torch: { extractSeconds: number; triggerForwardSeconds: number; version: string } | null;
}

async function timeAsync(repetitions: number, fn: () => unknown): Promise<number> {
  await fn();
  const all: number[] = [];
  for (let r = 0; r < repetitions; r++) {
    const began = performance.now();
    await fn();
    all.push((performance.now() - began) / 1000);
  }
  return median(all);
}

export async function measureOwnership(repetitions: number, seed: number, log: (line: string) => void): Promise<{ rows: OwnershipRow[]; backend: string }> {
  // The backend a claim or verify would run on here (auto: WebGPU, else WASM).
  await selectBackend('auto');
  const rows: OwnershipRow[] = [];
  for (const [id, inputShape] of [['resnet-20', [32, 32, 3]], ['lenet-300-100', [28, 28, 1]]] as const) {
    log(`ownership: ${id}`);
    const specs = paramSpecs(architecture(id), inputShape, 10);
    const weights = initWeights(specs, seed);
    const prunable = specs.filter((s) => s.prunable);
    const keep = Object.fromEntries(prunable.map((s) => [s.name, Math.round(0.1 * s.shape.reduce((a, b) => a * b, 1))]));
    const masks = await randomStrategy.prune({ weights, masks: denseMasks(specs), budget: { scope: 'layer', keep }, params: {}, seed });
    const plan = planSignature(specs, SECRET, MESSAGE);
    const signed = embedSignature(masks, plan, { seed, weights }).masks;
    const embedSeconds = await timeAsync(repetitions, () => embedSignature(masks, planSignature(specs, SECRET, MESSAGE), { seed, weights }));
    const verifySeconds = await timeAsync(repetitions, () => verifySignature(signed, plan));
    const normalization = { mean: 0.5, std: 0.25 };
    const triggerSeconds = await timeAsync(Math.min(repetitions, 5), async () => {
      const triggers = makeTriggerSet(SECRET, MESSAGE, { imageShape: [...inputShape], numClasses: 10 });
      return verifyTriggerSet(await predictTriggers({ arch: architecture(id), specs, weights, masks: signed, normalization }, triggers), triggers);
    });
    rows.push({ model: id, embedSeconds, verifySeconds, triggerSeconds, torch: id === 'resnet-20' ? torchReference(repetitions, log) : null });
  }
  return { rows, backend: tf.getBackend() };
}

function torchReference(repetitions: number, log: (line: string) => void): OwnershipRow['torch'] {
  const script = join(__dirname, '..', '..', 'bench', 'ownership_torch.py');
  const python = pythonWithTorch();
  if (!existsSync(script) || !python) return null;
  log('ownership: PyTorch reference');
  const run = spawnSync(python, [script, '--repetitions', String(repetitions)], { encoding: 'utf8', timeout: 5 * 60_000, cwd: join(__dirname, '..', '..', 'bench') });
  if (run.status !== 0) return null;
  const line = JSON.parse(run.stdout.trim().split('\n').slice(-1)[0]!) as { extract_s: number; trigger_forward_s: number; torch_version: string; threads: number; device: string };
  return { extractSeconds: line.extract_s, triggerForwardSeconds: line.trigger_forward_s, version: `${line.torch_version}, ${line.device}, ${line.threads} thread${line.threads === 1 ? '' : 's'}` };
}

export function ownershipTable(result: { rows: OwnershipRow[]; backend: string }, repetitions: number): Table {
  const torch = result.rows.find((r) => r.torch)?.torch;
  const ms = (s: number) => fixed(1000 * s, 2);
  return {
    title: '7. Ownership: claiming and checking a 90 %-sparse network (random masks, seeded weights)',
    measures: [
      `embed = plan the keyed window and write 256 bits into the mask (every layer keeps its count); verify = extract the window's channel adjacency and score it (exact binomial tail), with evidence;`,
      `trigger = draw the 100-image keyed trigger set, query the network (TF.js ${result.backend}), binomial test. Median of ${repetitions} (trigger: of ${Math.min(repetitions, 5)}), after one warm-up.`,
      `PyTorch: the same extraction (mask[o, i].any() over the window, the same tail) and the trigger forward pass alone, in bench/ownership_torch.py${torch ? ` (torch ${torch.version})` : ''}; ratio = PyTorch / Ticket Lab (above 1, Ticket Lab is faster).`,
    ],
    columns: [
      { header: 'model' },
      { header: 'embed ms', align: 'right' },
      { header: 'verify ms', align: 'right' },
      { header: 'PyTorch extract ms', align: 'right' },
      { header: 'ratio', align: 'right' },
      { header: 'trigger ms', align: 'right' },
      { header: 'PyTorch forward ms', align: 'right' },
      { header: 'ratio', align: 'right' },
    ],
    rows: result.rows.map((r) => [
      r.model, ms(r.embedSeconds), ms(r.verifySeconds), r.torch ? ms(r.torch.extractSeconds) : '—', r.torch ? fixed(r.torch.extractSeconds / r.verifySeconds, 2) : '—',
      ms(r.triggerSeconds), r.torch ? ms(r.torch.triggerForwardSeconds) : '—', r.torch ? fixed(r.torch.triggerForwardSeconds / r.triggerSeconds, 2) : '—',
    ]),
    notes: torch ? [] : ['PyTorch not found (or bench/ownership_torch.py failed): no ratios.'],
  };
}
