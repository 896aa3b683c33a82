// The networks the sections measure: a zoo model (LeNet-300-100 in most sections, Conv-2 in the
// conv section) with seeded Glorot weights and seeded random masks of exact counts, built only
// from core's own pieces so the benchmark times what a real run would build.
import type { LoadedDataset } from '../core/data/datasets';
import { type Architecture, type ParamSpec, architecture, paramSpecs } from '../core/models/architectures';
import { type WeightSet, initWeights } from '../core/models/weights';
import { sparsityBudget } from '../core/pruning/budget';
import { denseMasks } from '../core/pruning/imp';
import type { MaskSet } from '../core/pruning/mask';
import { randomStrategy } from '../core/pruning/random';

export const MODEL_ID = 'lenet-300-100';

export interface BenchTicket {
  arch: Architecture;
  specs: ParamSpec[];
  weights: WeightSet;
  masks: MaskSet;
}

export type LenetTicket = BenchTicket;

/** Weights from `seed`; every prunable kernel (output layer included) keeps round((1 − sparsity)·n) entries at random. */
export async function lenetTicket(dataset: LoadedDataset, seed: number, sparsity: number): Promise<LenetTicket> {
  return zooTicket(MODEL_ID, dataset, seed, sparsity);
}

/** The same for any zoo model (`conv-2`, ...): every conv and dense kernel masked at `sparsity`. */
export async function zooTicket(modelId: string, dataset: LoadedDataset, seed: number, sparsity: number): Promise<BenchTicket> {
  const arch = architecture(modelId);
  const specs = paramSpecs(arch, dataset.imageShape, dataset.numClasses);
  const weights = initWeights(specs, seed);
  const prunable = specs.filter((s) => s.prunable).map((s) => s.name);
  const masks = await randomStrategy.prune({
    weights,
    masks: denseMasks(specs),
    budget: sparsityBudget(denseMasks(specs), sparsity, 'layer', prunable),
    params: {},
    seed,
  });
  return { arch, specs, weights, masks };
}
