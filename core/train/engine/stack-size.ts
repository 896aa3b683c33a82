// How many members one stack may hold: the step engine keeps every member's parameters, gradients,
// optimiser state, best copy, mask and activations on the device at once, so a stack of many
// seeds of a large net can outgrow the GPU's memory or the WASM heap. Larger stacks are trained
// in parts of at most this many members, one after another (train-stack.ts).
import { InvalidRequestError } from '../../api/errors';
import type { OptimizerConfig } from '../optimizers';
import { MAX_EVAL_CHUNK, type MlpLayer } from './mlp-engine';

/** Overrides the memory a stack may take, in MiB. */
export const STACK_MEMORY_ENV = 'TICKET_LAB_STACK_MEMORY_MB';

const MIB = 1024 * 1024;

/**
 * Memory a stack may take by default. WebGPU does not say how much memory the GPU has: 4 GiB
 * leaves room on any GPU worth training on. WASM's heap ends at 4 GiB and also holds the training
 * images (55,000 MNIST images: 172 MB) and the evaluation buffers: 2 GiB. The JS reference
 * backend: 1 GiB of typed arrays.
 */
const DEFAULT_BUDGET_MIB: Record<string, number> = { webgpu: 4096, wasm: 2048, cpu: 1024 };

/** Bytes the engine holds per member (an upper bound: the evaluation chunk shrinks for large stacks); see MlpStepEngine's constructor. */
export function engineBytesPerMember(layers: readonly MlpLayer[], batchSize: number, optimizer: Pick<OptimizerConfig, 'name' | 'momentum'>): number {
  const stateTensors = optimizer.name === 'adam' ? 2 : optimizer.momentum > 0 ? 1 : 0;
  let floats = 0;
  for (const layer of layers) {
    const kernel = layer.inputs * layer.units;
    // weights, best copy, gradient, optimiser state, and the mask (kernels only); likewise the bias without a mask.
    floats += kernel * (4 + stateTensors) + layer.units * (3 + stateTensors);
    // One batch's activations and their gradients; the evaluation chunk's activations (at most).
    floats += 2 * batchSize * layer.units + MAX_EVAL_CHUNK * layer.units;
  }
  // The batch's inputs and labels; the loss and evaluation sums.
  floats += batchSize * layers[0]!.inputs + batchSize + 3;
  return 4 * floats;
}

export interface StackLimits {
  /** Bytes the whole stack may take. */
  budgetBytes: number;
  /** The largest buffer the device can bind, where it has such a limit (WebGPU). */
  maxBindingBytes?: number | undefined;
}

export function stackBudgetBytes(tfBackend: string): number {
  const value = process.env[STACK_MEMORY_ENV];
  if (value !== undefined && value !== '') {
    const mib = Number(value);
    if (!Number.isFinite(mib) || mib <= 0) throw new InvalidRequestError(`${STACK_MEMORY_ENV} must be a positive number of MiB; got '${value}'.`);
    return mib * MIB;
  }
  return (DEFAULT_BUDGET_MIB[tfBackend] ?? 1024) * MIB;
}

/** The most members one stack of these layers may hold (at least 1: a single member always trains). */
export function maxStackMembers(layers: readonly MlpLayer[], batchSize: number, optimizer: Pick<OptimizerConfig, 'name' | 'momentum'>, limits: StackLimits): number {
  const byBudget = Math.floor(limits.budgetBytes / engineBytesPerMember(layers, batchSize, optimizer));
  // A stacked kernel is one buffer [K, in, out]: it must fit one binding.
  const widest = Math.max(...layers.map((l) => 4 * l.inputs * l.units));
  const byBinding = limits.maxBindingBytes ? Math.floor(limits.maxBindingBytes / widest) : Number.POSITIVE_INFINITY;
  return Math.max(1, Math.min(byBudget, byBinding));
}
