// The model zoo: LeNet-300-100 and Conv-2/4/6 as in the lottery ticket paper
// (Frankle & Carbin, ICLR 2019, Figure 2), built for any input shape so they run on MNIST and CIFAR.
import { InvalidRequestError } from '../api/errors';

/** Where a prunable layer sits; the LTH paper prunes each role at its own rate. */
export type LayerRole = 'conv' | 'fc' | 'output';

export type LayerSpec =
  | { kind: 'dense'; name: string; units: number; activation: 'relu' | 'linear'; role: 'fc' | 'output' }
  | { kind: 'conv2d'; name: string; filters: number; kernelSize: number; activation: 'relu'; role: 'conv' }
  | { kind: 'maxpool'; size: number }
  | { kind: 'flatten' };

export interface Architecture {
  id: string;
  title: string;
  layers: readonly LayerSpec[];
  /** LTH per-round pruning rates by role (Figure 2 of the paper). */
  lthRates: Record<LayerRole, number>;
  /** The paper's optimiser settings, used as CLI defaults for this model. */
  lthTraining: { optimizer: 'adam'; learningRate: number; batchSize: number; iterations: number };
}

/** A parameter tensor in TF.js layout: dense kernel [in, out], conv kernel [kh, kw, in, out]. */
export interface ParamSpec {
  name: string;
  shape: number[];
  layer: string;
  kind: 'kernel' | 'bias';
  /** Kernels of dense and conv layers are prunable; biases never are. */
  prunable: boolean;
  role: LayerRole;
  fanIn: number;
  fanOut: number;
}

const dense = (name: string, units: number, role: 'fc' | 'output' = 'fc'): LayerSpec => ({
  kind: 'dense',
  name,
  units,
  activation: role === 'output' ? 'linear' : 'relu',
  role,
});
const conv = (name: string, filters: number): LayerSpec => ({ kind: 'conv2d', name, filters, kernelSize: 3, activation: 'relu', role: 'conv' });
const pool: LayerSpec = { kind: 'maxpool', size: 2 };
const flatten: LayerSpec = { kind: 'flatten' };

function convNet(id: string, blocks: number[], convRate: number, learningRate: number, iterations: number): Architecture {
  const layers: LayerSpec[] = [];
  blocks.forEach((filters, b) => {
    layers.push(conv(`conv${2 * b + 1}`, filters), conv(`conv${2 * b + 2}`, filters), pool);
  });
  layers.push(flatten, dense('fc1', 256), dense('fc2', 256), dense('fc3', 10, 'output'));
  return {
    id,
    title: `${id[0]!.toUpperCase()}${id.slice(1)} (${blocks.map((f) => `${f},${f}`).join(' | ')} 3×3 convs, FC 256-256-10)`,
    layers,
    lthRates: { conv: convRate, fc: 0.2, output: 0.1 },
    lthTraining: { optimizer: 'adam', learningRate, batchSize: 60, iterations },
  };
}

const ARCHITECTURES: readonly Architecture[] = [
  {
    id: 'lenet-300-100',
    title: 'LeNet-300-100 (fully connected 300-100-10)',
    layers: [flatten, dense('fc1', 300), dense('fc2', 100), dense('fc3', 10, 'output')],
    lthRates: { conv: 0, fc: 0.2, output: 0.1 },
    lthTraining: { optimizer: 'adam', learningRate: 1.2e-3, batchSize: 60, iterations: 50_000 },
  },
  convNet('conv-2', [64], 0.1, 2e-4, 20_000),
  convNet('conv-4', [64, 128], 0.1, 3e-4, 25_000),
  convNet('conv-6', [64, 128, 256], 0.15, 3e-4, 30_000),
];

export const MODEL_IDS = ARCHITECTURES.map((a) => a.id);

export function architecture(id: string): Architecture {
  const arch = ARCHITECTURES.find((a) => a.id === id);
  if (!arch) throw new InvalidRequestError(`Unknown model '${id}'. Valid models: ${MODEL_IDS.join(', ')}.`);
  return arch;
}

export function hasConv(arch: Architecture): boolean {
  return arch.layers.some((l) => l.kind === 'conv2d');
}

/** The parameter tensors of an architecture on a given input shape [h, w, c] with `numClasses` outputs. */
export function paramSpecs(arch: Architecture, inputShape: readonly [number, number, number], numClasses: number): ParamSpec[] {
  let [h, w, c] = inputShape;
  let flat: number | undefined;
  const specs: ParamSpec[] = [];
  for (const layer of arch.layers) {
    switch (layer.kind) {
      case 'conv2d': {
        if (flat !== undefined) throw new Error(`${arch.id}: conv after flatten`);
        const k = layer.kernelSize;
        specs.push(
          { name: `${layer.name}.kernel`, shape: [k, k, c, layer.filters], layer: layer.name, kind: 'kernel', prunable: true, role: 'conv', fanIn: k * k * c, fanOut: k * k * layer.filters },
          { name: `${layer.name}.bias`, shape: [layer.filters], layer: layer.name, kind: 'bias', prunable: false, role: 'conv', fanIn: k * k * c, fanOut: k * k * layer.filters },
        );
        c = layer.filters; // 'same' padding keeps h and w
        break;
      }
      case 'maxpool':
        h = Math.floor(h / layer.size);
        w = Math.floor(w / layer.size);
        if (h === 0 || w === 0) throw new InvalidRequestError(`${arch.id} pools its input below 1×1; the input ${inputShape.join('×')} is too small for it.`);
        break;
      case 'flatten':
        flat = h * w * c;
        break;
      case 'dense': {
        if (flat === undefined) throw new Error(`${arch.id}: dense before flatten`);
        const units = layer.role === 'output' ? numClasses : layer.units;
        specs.push(
          { name: `${layer.name}.kernel`, shape: [flat, units], layer: layer.name, kind: 'kernel', prunable: true, role: layer.role, fanIn: flat, fanOut: units },
          { name: `${layer.name}.bias`, shape: [units], layer: layer.name, kind: 'bias', prunable: false, role: layer.role, fanIn: flat, fanOut: units },
        );
        flat = units;
        break;
      }
    }
  }
  return specs;
}
