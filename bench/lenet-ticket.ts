// The network every section measures: LeNet-300-100 on MNIST with seeded Glorot weights and
// seeded random masks of exact counts, built only from core's own pieces so the benchmark times
// what a real run would build.
import type { LoadedDataset } from '../core/data/datasets';
import { type Architecture, type ParamSpec, architecture, paramSpecs } from '../core/models/architectures';
import { type WeightSet, initWeights } from '../core/models/weights';
import { sparsityBudget } from '../core/pruning/budget';
import { denseMasks } from '../core/pruning/imp';
import type { MaskSet } from '../core/pruning/mask';
import { randomStrategy } from '../core/pruning/random';

export const MODEL_ID = 'lenet-300-100';

export interface LenetTicket {
  arch: Architecture;
  specs: ParamSpec[];
  weights: WeightSet;
  masks: MaskSet;
}

/** Weights from `seed`; every prunable kernel (output layer included) keeps round((1 − sparsity)·n) entries at random. */
export async function lenetTicket(dataset: LoadedDataset, seed: number, sparsity: number): Promise<LenetTicket> {
  const arch = architecture(MODEL_ID);
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
