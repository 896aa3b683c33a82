// The search form's choices: the zoo's models with the paper defaults a search uses when none are
// given, and which datasets this machine has (found without reading them).
import { PRUNE_AT_INIT_METHODS, type CatalogReport } from '../api/schemas';
import { DATASET_IDS, datasetSpec } from '../data/datasets';
import { MODEL_IDS, architecture } from '../models/architectures';

export function catalog(): CatalogReport {
  const models = MODEL_IDS.map((id) => {
    const arch = architecture(id);
    const t = arch.lthTraining;
    return {
      id, title: arch.title,
      defaults: { optimizer: t.optimizer, learningRate: t.learningRate, batchSize: t.batchSize, iterations: t.iterations, scope: arch.lthScope, rates: { ...arch.lthRates } },
    };
  });
  const datasets = DATASET_IDS.map((id) => {
    const spec = datasetSpec(id);
    const described = { id, title: spec.title, imageShape: [...spec.imageShape], numClasses: spec.numClasses };
    try {
      return { ...described, available: true, source: spec.locate({}).source, reason: null };
    } catch (error) {
      return { ...described, available: false, source: null, reason: (error as Error).message };
    }
  });
  return { models, modelPattern: 'lenet-<w1>-<w2>… (any fully connected LeNet, e.g. lenet-1000-300)', datasets, pruneAtInitMethods: [...PRUNE_AT_INIT_METHODS] };
}
