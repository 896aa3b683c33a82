// The model zoo: LeNet-300-100 and Conv-2/4/6 as in the lottery ticket paper (Frankle & Carbin,
// ICLR 2019, Figure 2), built for any input shape so they run on MNIST and CIFAR; and the CIFAR
// ResNet-20 of He et al. 2016 §4.2 with BatchNorm, in the two shortcut variants the ticket papers use.
import { InvalidRequestError } from '../api/errors';

/** Where a prunable layer sits; the LTH paper prunes each role at its own rate. */
export type LayerRole = 'conv' | 'fc' | 'output';

export type Activation = 'relu' | 'linear';

export type LayerSpec =
  | { kind: 'dense'; name: string; units: number; activation: Activation; role: 'fc' | 'output' }
  | {
      kind: 'conv2d';
      name: string;
      filters: number;
      kernelSize: number;
      activation: Activation;
      role: 'conv';
      /** Default 1 ('same' padding). Above 1: zero padding floor(k/2) on every side, as PyTorch's padding=k//2. */
      stride?: number;
      /** Default true; false for a conv followed by BatchNorm (PyTorch bias=False). */
      bias?: boolean;
      /**
       * Zero padding on every side (PyTorch's padding=p; 0 is 'valid'), for networks built from ONNX
       * graphs. Default: as `stride` says, 'same' at stride 1 and floor(k/2) above.
       */
      padding?: number;
    }
  /** BatchNorm over the channels of an NHWC tensor (PyTorch BatchNorm2d), then the activation. */
  | { kind: 'batchnorm'; name: string; activation: Activation }
  /** relu(body(x) + shortcut(x)); the names inside are prefixed by `name.` (blocks.0.conv1). */
  | { kind: 'residual'; name: string; body: readonly LayerSpec[]; shortcut: Shortcut }
  | { kind: 'maxpool'; size: number }
  /** Mean over height and width: [n, h, w, c] → [n, c] (PyTorch avg_pool2d over the whole map, then view). */
  | { kind: 'globalavgpool' }
  | { kind: 'flatten' };

/** A residual block's shortcut. */
export type Shortcut =
  | { kind: 'identity' }
  /**
   * He et al.'s option A: x[:, ::stride, ::stride] with zero channels added, half before and half
   * after (PyTorch `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes//4, planes//4))` for planes = 2·in).
   */
  | { kind: 'subsample-pad'; stride: number }
  /** Option B: layers of their own, a 1×1 strided conv and BatchNorm (open_lth `shortcut.0`, `shortcut.1`). */
  | { kind: 'projection'; layers: readonly LayerSpec[] };

/** How kernels are drawn at initialisation (core/models/weights.ts). */
export type KernelInit = 'glorot-normal' | 'kaiming-normal';

export interface LthTraining {
  optimizer: 'sgd' | 'adam';
  learningRate: number;
  /** SGD momentum, PyTorch convention; 0 with Adam. */
  momentum: number;
  /** L2 weight decay (PyTorch weight_decay). */
  weightDecay: number;
  batchSize: number;
  /** Training steps T. For the CIFAR nets: epochs × floor(45,000 / batch), the 50,000 training images less the 5,000 held out for validation. */
  iterations: number;
  /**
   * Learning rate × factor at these epochs of the model's `ofEpochs`-epoch run (PyTorch MultiStepLR);
   * a run of another length drops at the same fractions of its length.
   */
  learningRateDrops?: { epochs: number[]; ofEpochs: number; factor: number };
  /** Seeded random crop with zero padding and left-right flip of each training image (core/data/augment.ts). */
  augment?: { padding: number; flip: boolean };
}

export interface Architecture {
  id: string;
  title: string;
  layers: readonly LayerSpec[];
  /** LTH per-round pruning rates by role (Figure 2 of the paper); with global scope, `fc` is the one rate. */
  lthRates: Record<LayerRole, number>;
  /** How IMP ranks weights by default: one list over all prunable tensors (open_lth) or one per tensor (the LTH paper). */
  lthScope: 'global' | 'layer';
  /** The paper's optimiser settings, used as CLI defaults for this model. */
  lthTraining: LthTraining;
  /** Default 'glorot-normal' (the LTH nets); the ResNets use 'kaiming-normal' (open_lth). */
  kernelInit?: KernelInit;
}

/** What a parameter tensor is. BatchNorm's running statistics are state: stored with the weights, never trained or pruned. */
export type ParamKind = 'kernel' | 'bias' | 'gamma' | 'beta' | 'runningMean' | 'runningVar';

/** How a tensor is drawn at initialisation (core/models/weights.ts initWeights). */
export type ParamInit = KernelInit | 'uniform' | 'zeros' | 'ones';

/**
 * A parameter or state tensor in TF.js layout: dense kernel [in, out], conv kernel [kh, kw, in, out],
 * bias and BatchNorm tensors [channels]. paramSpecs lists every tensor a network holds, so weight sets
 * carry the full state (ALGORITHMS.md §1 step 1).
 */
export interface ParamSpec {
  name: string;
  shape: number[];
  /** The layer's full name (blocks.0.conv1). */
  layer: string;
  kind: ParamKind;
  /** Kernels of dense and conv layers are prunable; biases and BatchNorm tensors never are. */
  prunable: boolean;
  /** Updated by the optimiser: all but BatchNorm's running statistics. */
  trainable: boolean;
  role: LayerRole;
  /** Kernels: inputs and outputs per unit (conv: kh·kw·channels). BatchNorm and biases: their channel count. */
  fanIn: number;
  fanOut: number;
  init: ParamInit;
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
    lthScope: 'layer',
    lthTraining: { optimizer: 'adam', learningRate, momentum: 0, weightDecay: 0, batchSize: 60, iterations },
  };
}

const CIFAR_TRAIN_IMAGES = 45_000;

/**
 * The CIFAR ResNet of He et al. 2016 §4.2 with 6n + 2 layers: 3×3 conv 16 + BN + ReLU, three stages
 * of n basic blocks (16, 32, 64 channels, stride 2 at the first block of stages 2 and 3), global
 * average pooling, dense to the classes. Block: conv3×3-BN-ReLU-conv3×3-BN, plus the shortcut, ReLU.
 * Names follow open_lth's models/cifar_resnet.py (conv, bn, blocks.i.conv1 …, fc) so PyTorch state
 * dicts match by name.
 */
function cifarResnet(id: string, title: string, blocksPerStage: number, shortcut: 'A' | 'B'): Architecture {
  const bnConv = (name: string, filters: number, kernelSize: number, stride: number): LayerSpec => ({
    kind: 'conv2d', name, filters, kernelSize, stride, bias: false, activation: 'linear', role: 'conv',
  });
  const bn = (name: string, activation: Activation): LayerSpec => ({ kind: 'batchnorm', name, activation });
  const layers: LayerSpec[] = [bnConv('conv', 16, 3, 1), bn('bn', 'relu')];
  let channels = 16;
  let index = 0;
  for (const [stage, filters] of [16, 32, 64].entries()) {
    for (let b = 0; b < blocksPerStage; b++) {
      const stride = stage > 0 && b === 0 ? 2 : 1;
      const reshapes = stride !== 1 || filters !== channels;
      layers.push({
        kind: 'residual',
        name: `blocks.${index}`,
        body: [bnConv('conv1', filters, 3, stride), bn('bn1', 'relu'), bnConv('conv2', filters, 3, 1), bn('bn2', 'linear')],
        shortcut: !reshapes
          ? { kind: 'identity' }
          : shortcut === 'A'
            ? { kind: 'subsample-pad', stride }
            : { kind: 'projection', layers: [bnConv('shortcut.0', filters, 1, stride), bn('shortcut.1', 'linear')] },
      });
      channels = filters;
      index++;
    }
  }
  layers.push({ kind: 'globalavgpool' }, dense('fc', 10, 'output'));
  const batchSize = 128;
  const epoch = Math.floor(CIFAR_TRAIN_IMAGES / batchSize);
  return {
    id,
    title,
    layers,
    // open_lth: 20 % of the remaining weights per level, ranked globally over every conv and the fc.
    lthRates: { conv: 0.2, fc: 0.2, output: 0.2 },
    lthScope: 'global',
    kernelInit: 'kaiming-normal',
    // open_lth cifar_resnet_20 default_hparams: 160 epochs, here of the 45,000 images left after the validation hold-out.
    lthTraining: {
      optimizer: 'sgd', learningRate: 0.1, momentum: 0.9, weightDecay: 1e-4, batchSize, iterations: 160 * epoch,
      learningRateDrops: { epochs: [80, 120], ofEpochs: 160, factor: 0.1 },
      augment: { padding: 4, flip: true },
    },
  };
}

/**
 * A fully connected LeNet with the given hidden widths (open_lth's `mnist_lenet_<w1>_<w2>…` plan),
 * layers fc1 … fc<k+1>, trained as LeNet-300-100 is in the LTH paper.
 */
function lenet(hidden: readonly number[]): Architecture {
  const id = `lenet-${hidden.join('-')}`;
  return {
    id,
    title: `LeNet-${hidden.join('-')} (fully connected ${[...hidden, 10].join('-')})`,
    layers: [flatten, ...hidden.map((units, i) => dense(`fc${i + 1}`, units)), dense(`fc${hidden.length + 1}`, 10, 'output')],
    lthRates: { conv: 0, fc: 0.2, output: 0.1 },
    lthScope: 'layer',
    lthTraining: { optimizer: 'adam', learningRate: 1.2e-3, momentum: 0, weightDecay: 0, batchSize: 60, iterations: 50_000 },
  };
}

/** `lenet-<w1>-<w2>…`: one to eight hidden layers of 1 to 65,536 units each. */
const LENET_FAMILY = /^lenet((?:-[1-9][0-9]{0,4}){1,8})$/;

const ARCHITECTURES: readonly Architecture[] = [
  lenet([300, 100]),
  convNet('conv-2', [64], 0.1, 2e-4, 20_000),
  convNet('conv-4', [64, 128], 0.1, 3e-4, 25_000),
  convNet('conv-6', [64, 128, 256], 0.15, 3e-4, 30_000),
  // Option A, as He et al. and the ownership paper (VITA-Group/NO-stealing-LTH resnet20s).
  cifarResnet('resnet-20', 'ResNet-20 (He et al. 2016 CIFAR ResNet, 16/32/64 channels, BatchNorm, option-A shortcuts: subsample and zero-pad)', 3, 'A'),
  // Option B, as facebookresearch/open_lth models/cifar_resnet.py, which open_lth checkpoints use.
  cifarResnet('resnet-20-openlth', 'ResNet-20, open_lth variant (option-B shortcuts: 1×1 conv stride 2 + BatchNorm)', 3, 'B'),
];

export const MODEL_IDS = ARCHITECTURES.map((a) => a.id);

/** A zoo architecture by id; `lenet-<w1>-<w2>…` names any fully connected LeNet (lenet-8-4). */
export function architecture(id: string): Architecture {
  const arch = ARCHITECTURES.find((a) => a.id === id) ?? lenetOf(id);
  if (!arch) throw new InvalidRequestError(`Unknown model '${id}'. Valid models: ${MODEL_IDS.join(', ')}, or lenet-<widths> (lenet-8-4).`);
  return arch;
}

function lenetOf(id: string): Architecture | null {
  const widths = LENET_FAMILY.exec(id)?.[1]?.slice(1).split('-').map(Number);
  return widths && widths.every((w) => w <= 65_536) ? lenet(widths) : null;
}

export function hasConv(arch: Architecture): boolean {
  const inside = (layers: readonly LayerSpec[]): boolean =>
    layers.some((l) => l.kind === 'conv2d' || (l.kind === 'residual' && (inside(l.body) || (l.shortcut.kind === 'projection' && inside(l.shortcut.layers)))));
  return inside(arch.layers);
}

/** The activation shape between layers: an image [h, w, c], or a vector of `flat` entries once flattened. */
interface Shape {
  h: number;
  w: number;
  c: number;
  flat?: number | undefined;
}

/** The parameter tensors of an architecture on a given input shape [h, w, c] with `numClasses` outputs. */
export function paramSpecs(arch: Architecture, inputShape: readonly [number, number, number], numClasses: number): ParamSpec[] {
  const specs: ParamSpec[] = [];
  const [h, w, c] = inputShape;
  const context = { arch, inputShape, numClasses, kernelInit: arch.kernelInit ?? 'glorot-normal', specs };
  walk(context, arch.layers, '', { h, w, c });
  return specs;
}

interface WalkContext {
  arch: Architecture;
  inputShape: readonly [number, number, number];
  numClasses: number;
  kernelInit: KernelInit;
  specs: ParamSpec[];
}

/** Appends the specs of `layers` (names prefixed by `prefix`) and returns the shape they output. */
function walk(context: WalkContext, layers: readonly LayerSpec[], prefix: string, input: Shape): Shape {
  const { arch, specs } = context;
  let { h, w, c, flat } = input;
  const tooSmall = (how: string) =>
    new InvalidRequestError(`${arch.id} ${how} its input below 1×1; the input ${context.inputShape.join('×')} is too small for it.`);
  for (const layer of layers) {
    switch (layer.kind) {
      case 'conv2d': {
        if (flat !== undefined) throw new Error(`${arch.id}: conv after flatten`);
        const k = layer.kernelSize;
        const stride = layer.stride ?? 1;
        const name = `${prefix}${layer.name}`;
        const fan = { role: 'conv' as const, fanIn: k * k * c, fanOut: k * k * layer.filters };
        specs.push({ name: `${name}.kernel`, shape: [k, k, c, layer.filters], layer: name, kind: 'kernel', prunable: true, trainable: true, ...fan, init: context.kernelInit });
        if (layer.bias !== false) specs.push({ name: `${name}.bias`, shape: [layer.filters], layer: name, kind: 'bias', prunable: false, trainable: true, ...fan, init: 'zeros' });
        if (stride !== 1 || layer.padding !== undefined) {
          // Zero padding p on each side (floor(k/2) unless given): floor((h + 2p − k) / stride) + 1 (PyTorch's formula).
          const pad = layer.padding ?? Math.floor(k / 2);
          h = Math.floor((h + 2 * pad - k) / stride) + 1;
          w = Math.floor((w + 2 * pad - k) / stride) + 1;
          if (h <= 0 || w <= 0) throw tooSmall(stride !== 1 ? 'strides' : 'shrinks');
        } // 'same' padding keeps h and w at stride 1
        c = layer.filters;
        break;
      }
      case 'batchnorm': {
        if (flat !== undefined) throw new Error(`${arch.id}: batchnorm after flatten`);
        const name = `${prefix}${layer.name}`;
        const tensor = (kind: ParamKind, trainable: boolean, init: ParamInit): ParamSpec => ({
          name: `${name}.${kind}`, shape: [c], layer: name, kind, prunable: false, trainable, role: 'conv', fanIn: c, fanOut: c, init,
        });
        // open_lth's bn_initializers.uniform: γ ~ U(0, 1), β = 0; PyTorch's running statistics start at 0 and 1.
        specs.push(tensor('gamma', true, 'uniform'), tensor('beta', true, 'zeros'), tensor('runningMean', false, 'zeros'), tensor('runningVar', false, 'ones'));
        break;
      }
      case 'residual': {
        if (flat !== undefined) throw new Error(`${arch.id}: residual block after flatten`);
        const blockPrefix = `${prefix}${layer.name}.`;
        const out = walk(context, layer.body, blockPrefix, { h, w, c });
        const shortcut = layer.shortcut;
        let through: Shape;
        if (shortcut.kind === 'identity') through = { h, w, c };
        else if (shortcut.kind === 'subsample-pad') through = { h: Math.ceil(h / shortcut.stride), w: Math.ceil(w / shortcut.stride), c: Math.max(c, out.c) };
        else through = walk(context, shortcut.layers, blockPrefix, { h, w, c });
        if (through.h !== out.h || through.w !== out.w || through.c !== out.c || out.flat !== undefined) {
          throw new Error(`${arch.id}: the shortcut of ${blockPrefix.slice(0, -1)} gives ${through.h}×${through.w}×${through.c}, its body ${out.h}×${out.w}×${out.c}`);
        }
        ({ h, w, c } = out);
        break;
      }
      case 'maxpool':
        h = Math.floor(h / layer.size);
        w = Math.floor(w / layer.size);
        if (h === 0 || w === 0) throw tooSmall('pools');
        break;
      case 'globalavgpool':
        if (flat !== undefined) throw new Error(`${arch.id}: pooling after flatten`);
        flat = c;
        break;
      case 'flatten':
        flat = h * w * c;
        break;
      case 'dense': {
        if (flat === undefined) throw new Error(`${arch.id}: dense before flatten`);
        const units = layer.role === 'output' ? context.numClasses : layer.units;
        const name = `${prefix}${layer.name}`;
        const fan = { role: layer.role, fanIn: flat, fanOut: units };
        specs.push(
          { name: `${name}.kernel`, shape: [flat, units], layer: name, kind: 'kernel', prunable: true, trainable: true, ...fan, init: context.kernelInit },
          { name: `${name}.bias`, shape: [units], layer: name, kind: 'bias', prunable: false, trainable: true, ...fan, init: 'zeros' },
        );
        flat = units;
        break;
      }
    }
  }
  return { h, w, c, flat };
}
