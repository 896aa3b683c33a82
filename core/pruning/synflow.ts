// SynFlow (ALGORITHMS.md §6; Tanaka et al. 2020, Synaptic-Flow's Pruners/pruners.py and prune.py):
// data-free scores |∂R/∂θ ⊙ θ| where R is the output sum of the network with every parameter
// replaced by its absolute value, on an all-ones input. Pruning in many small rounds, re-scoring
// each time, is what keeps every layer connected at extreme sparsity (no layer collapse).
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { InvalidRequestError, TrainingDivergedError, throwIfAborted } from '../api/errors';
import { type Architecture, type ParamSpec, hasConv, paramSpecs } from '../models/architectures';
import { MaskedNetwork } from '../models/network';
import type { WeightSet } from '../models/weights';
import { type MaskSet, cloneMasks, countKept } from './mask';
import { pruneToBudget } from './select';
import type { PruneContext, PruningStrategy } from './strategy';

export const synflowParams = z
  .object({
    rounds: z.number().int().min(1).max(1000).default(100).describe('Scoring and pruning rounds; the paper uses 100, and 1 loses the layer-collapse protection.'),
    schedule: z
      .enum(['exponential', 'linear'])
      .default('exponential')
      .describe('Density kept after round j of n: d^(j/n) (exponential, the paper) or 1 − (1 − d)·j/n (linear).'),
  })
  .strict();
export type SynflowParams = z.output<typeof synflowParams>;

export interface SynflowInput {
  arch: Architecture;
  specs: readonly ParamSpec[];
  /** Signed weights of every parameter; their absolute values are used. */
  weights: WeightSet;
  masks: MaskSet;
  /** [h, w, c] of one input image. */
  imageShape: readonly [number, number, number];
}

/** Density kept after round `round` of `rounds` toward the final density `density`. */
export function synflowDensity(schedule: SynflowParams['schedule'], density: number, round: number, rounds: number): number {
  return schedule === 'exponential' ? density ** (round / rounds) : 1 - ((1 - density) * round) / rounds;
}

/**
 * One round of SynFlow scores, one array per masked tensor (same layout as its mask). Pruned
 * entries score 0: the network sees them as zero weights.
 */
export async function synflowScores({ arch, specs, weights, masks, imageShape }: SynflowInput): Promise<Map<string, Float32Array>> {
  // Every tensor of the state, as Synaptic-Flow's linearize() takes abs of the whole state_dict:
  // biases, BatchNorm γ, β and running statistics too. MaskedNetwork.forward runs BatchNorm in eval
  // mode (on the running statistics): with one constant image, train mode would erase the signal.
  const absolute = weights.map((t) => ({ name: t.name, shape: [...t.shape], values: t.values.map(Math.abs) }));
  const network = new MaskedNetwork(arch, specs, absolute, masks);
  const input = tf.ones([1, ...imageShape]) as tf.Tensor4D;
  const scored = masks.map((m) => network.params.get(m.name)!);
  let value: tf.Scalar | undefined;
  let grads: tf.NamedTensorMap | undefined;
  try {
    ({ value, grads } = tf.variableGrads(() => tf.sum(network.forward(input)), scored));
    const r = (await value.data())[0]!;
    if (!Number.isFinite(r)) throw overflow(`the output sum R is ${r}`);
    const scores = new Map<string, Float32Array>();
    for (const [i, mask] of masks.entries()) {
      const w = scored[i]!;
      const score = tf.tidy(() => tf.abs(tf.mul(grads![w.name]!, w)));
      const values = ((await score.data()) as Float32Array).slice();
      score.dispose();
      for (let k = 0; k < values.length; k++) {
        if (!Number.isFinite(values[k]!)) throw overflow(`the score of ${mask.name}[${k}] is ${values[k]}`);
      }
      scores.set(mask.name, values);
    }
    return scores;
  } finally {
    value?.dispose();
    if (grads) tf.dispose(grads);
    input.dispose();
    network.dispose();
  }
}

function overflow(what: string): TrainingDivergedError {
  return new TrainingDivergedError(
    `SynFlow cannot score this network: ${what}. The product of absolute weights along every path overflows float32 (TF.js has no float64); scale the initial weights down or use another strategy.`,
  );
}

/**
 * The input shape SynFlow feeds. From the dataset when given; a network that flattens its input first
 * sees only the pixel count, so for those the first kernel's fan-in is enough and no data is needed.
 */
function inputShapeFor(context: PruneContext): [number, number, number] {
  const { arch, specs, dataset } = context;
  const kernels = specs.filter((s) => s.kind === 'kernel');
  const first = kernels[0];
  const last = kernels[kernels.length - 1];
  if (!first || !last) throw new InvalidRequestError(`SynFlow found no kernels in ${arch.id}.`);
  let shape: [number, number, number];
  if (dataset) shape = dataset.imageShape;
  else if (!hasConv(arch)) shape = [1, 1, first.shape[0]!];
  else throw new InvalidRequestError(`SynFlow needs the input image shape of ${arch.id}, a convolutional network: pass the dataset in the pruning context.`);
  const expected = paramSpecs(arch, shape, last.shape[last.shape.length - 1]!);
  const matches = expected.length === specs.length && expected.every((s, i) => s.name === specs[i]!.name && s.shape.join() === specs[i]!.shape.join());
  if (!matches) throw new InvalidRequestError(`SynFlow: the parameter shapes of ${arch.id} do not fit input images of ${shape.join('×')}.`);
  return shape;
}

export const synflowStrategy: PruningStrategy<SynflowParams> = {
  id: 'synflow',
  description: 'SynFlow (Tanaka et al. 2020): data-free iterative pruning by synaptic flow, which avoids layer collapse. Global budget only.',
  params: synflowParams,
  async prune({ weights, masks, budget, params, context, onProgress }, signal) {
    if (budget.scope !== 'global') {
      throw new InvalidRequestError('SynFlow ranks all pruned tensors together: give it a global budget (one overall sparsity), not per-layer counts.');
    }
    if (!context) throw new InvalidRequestError('SynFlow scores through the network: the pruning context (architecture and parameter specs) is missing.');
    const { rounds, schedule } = synflowParams.parse(params);
    const imageShape = inputShapeFor(context);
    const next = cloneMasks(masks);
    const scoped = budget.tensors.map((name) => {
      const mask = next.find((m) => m.name === name);
      if (!mask) throw new InvalidRequestError(`SynFlow budget names ${name}, which has no mask.`);
      return mask;
    });
    const total = scoped.reduce((n, m) => n + m.bits.length, 0);
    const density = total === 0 ? 0 : budget.keep / total;
    for (let round = 1; round <= rounds; round++) {
      throwIfAborted(signal);
      const kept = scoped.reduce((n, m) => n + countKept(m.bits), 0);
      // The last round lands on the budget exactly, whatever the rounding of d^(j/n)·N did before.
      const target = round === rounds ? budget.keep : Math.round(synflowDensity(schedule, density, round, rounds) * total);
      const keep = Math.min(kept, target);
      if (keep === kept) continue;
      const scores = await synflowScores({ arch: context.arch, specs: context.specs, weights, masks: next, imageShape });
      pruneToBudget(next, scores, { scope: 'global', keep, tensors: budget.tensors });
      onProgress?.({ done: round, total: rounds });
    }
    return next;
  },
};
