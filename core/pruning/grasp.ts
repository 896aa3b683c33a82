// GraSP (Wang et al., ICLR 2020; Synaptic-Flow's Pruners/pruners.py `GraSP`, ALGORITHMS.md §5):
// keep the weights whose removal would most reduce gradient flow. Score s = (Hg) ⊙ θ, signed,
// with g the detached gradient and H the Hessian, both of the loss with logits divided by T.
// Keep the largest s (pruneToBudget prunes the lowest): the paper's "remove the top of −θ⊙Hg".
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { InvalidRequestError, throwIfAborted } from '../api/errors';
import { cloneMasks } from './mask';
import { type ScoringNetwork, examplesPerClassParam, openScoring, readAndDispose } from './score-network';
import { pruneToBudget } from './select';
import type { PruneInput, PruningStrategy } from './strategy';

export const graspParams = z
  .object({
    examplesPerClass: examplesPerClassParam,
    temperature: z.number().positive().max(1e6).default(200).describe('The logits are divided by T in both passes (the paper and Synaptic-Flow: 200).'),
    hessian: z
      .enum(['auto', 'exact', 'finite-difference'])
      .default('auto')
      .describe(
        'How Hg is computed. exact: a gradient of gᵀ∇L (nested autodiff). finite-difference: [∇L(θ+r·g) − ∇L(θ−r·g)]/(2r). auto: exact, or the finite difference where TF.js cannot differentiate a kernel twice (conv and max-pool backprops).',
      ),
  })
  .strict();
export type GraspParams = z.output<typeof graspParams>;

export type HessianPath = 'exact' | 'finite-difference';

export interface GraspScores {
  /** s = Hg ⊙ θ for every tensor in the budget, by name. */
  scores: Map<string, Float32Array>;
  /** How Hg was computed; what 'auto' chose. */
  hessianPath: HessianPath;
}

/** The scores and which Hessian path gave them (the strategy returns only masks). */
export async function graspScores(input: PruneInput<Partial<GraspParams>>, signal?: AbortSignal): Promise<GraspScores> {
  const { net, params } = openScoring('grasp', input, graspParams, signal);
  const T = params.temperature;
  let g: tf.Tensor[] = [];
  let hg: tf.Tensor[] = [];
  try {
    // g is a constant in what follows: tensors made outside a gradient function are not differentiated.
    g = tf.tidy(() => net.gradient(net.theta, T));
    throwIfAborted(signal);
    let hessianPath: HessianPath = params.hessian === 'finite-difference' ? 'finite-difference' : 'exact';
    if (hessianPath === 'exact') {
      try {
        hg = exactHessianGradient(net, g, T);
      } catch (error) {
        releaseFailedTape();
        if (!isMissingGradient(error)) throw error;
        if (params.hessian === 'exact') {
          throw new InvalidRequestError(
            `GraSP's exact Hessian-vector product failed on the ${tf.getBackend()} backend (${(error as Error).message.replace(/\.$/, '')}). Use hessian 'auto' or 'finite-difference'.`,
            { cause: error },
          );
        }
        hessianPath = 'finite-difference';
      }
      throwIfAborted(signal);
    }
    if (hessianPath === 'finite-difference') {
      hg = await finiteDifferenceHessianGradient(net, g, T);
      throwIfAborted(signal);
    }
    const scores = tf.tidy(() => hg.map((h, i) => tf.mul(h, net.theta[i]!)));
    const values = await readAndDispose(scores);
    return { scores: new Map(net.names.map((name, i) => [name, values[i]!])), hessianPath };
  } finally {
    for (const t of [...g, ...hg]) t.dispose();
    net.dispose();
  }
}

/** Hg = ∇_θ(gᵀ∇L(θ)) by autodiff of the gradient. Throws where a kernel's gradient has no gradient. */
function exactHessianGradient(net: ScoringNetwork, g: readonly tf.Tensor[], temperature: number): tf.Tensor[] {
  return tf.tidy(() =>
    tf.grads((...theta: tf.Tensor[]) => {
      const grads = net.gradient(theta, temperature);
      return tf.addN(grads.map((gi, i) => tf.sum(tf.mul(g[i]!, gi))));
    })([...net.theta]),
  );
}

/** TF.js's error for a kernel with no registered gradient (here: the gradient of a backprop kernel). */
function isMissingGradient(error: unknown): boolean {
  return error instanceof Error && /gradient function not found/i.test(error.message);
}

/**
 * After a gradient that threw, TF.js keeps its tape and the tensors the tape saved (it frees them
 * only when a top-level gradient returns). Free them as that return would, so a fallback leaks nothing.
 */
function releaseFailedTape(): void {
  const state = tf.engine().state;
  if (state.gradientDepth !== 0 || !state.activeTape) return;
  for (const node of state.activeTape) for (const t of node.saved ?? []) t.dispose();
  state.activeTape = null as unknown as typeof state.activeTape;
}

/** Hg ≈ [∇L(θ+r·g) − ∇L(θ−r·g)]/(2r), r = 1e-3·max(1, ‖θ‖)/‖g‖ (ALGORITHMS.md §5, Ticket Lab choice). */
async function finiteDifferenceHessianGradient(net: ScoringNetwork, g: readonly tf.Tensor[], temperature: number): Promise<tf.Tensor[]> {
  const squaredNorm = async (ts: readonly tf.Tensor[]): Promise<number> => {
    const total = tf.tidy(() => tf.addN(ts.map((t) => tf.sum(tf.square(t)))));
    try {
      return (await total.data())[0]!;
    } finally {
      total.dispose();
    }
  };
  const thetaNorm = Math.sqrt(await squaredNorm(net.theta));
  const gNorm = Math.sqrt(await squaredNorm(g));
  // A zero gradient has no direction to differentiate along: Hg = H·0 = 0.
  if (gNorm === 0) return g.map((t) => tf.zerosLike(t));
  const r = (1e-3 * Math.max(1, thetaNorm)) / gNorm;
  return tf.tidy(() => {
    const plus = net.gradient(net.theta.map((t, i) => tf.add(t, tf.mul(g[i]!, r))), temperature);
    const minus = net.gradient(net.theta.map((t, i) => tf.sub(t, tf.mul(g[i]!, r))), temperature);
    return plus.map((p, i) => tf.div(tf.sub(p, minus[i]!), 2 * r));
  });
}

export const graspStrategy: PruningStrategy<GraspParams> = {
  id: 'grasp',
  description: 'GraSP: keep the weights that most preserve gradient flow, the largest (Hessian × gradient) ⊙ weight on a batch of training data, signed (global or layer-wise, as the budget says).',
  params: graspParams,
  async prune(input, signal) {
    const { scores, hessianPath } = await graspScores(input, signal);
    input.onReport?.({ hessianPath });
    const next = cloneMasks(input.masks);
    pruneToBudget(next, scores, input.budget);
    return next;
  },
};
