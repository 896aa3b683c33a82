// From a file's tensors to a zoo network: which architecture, input shape and class count they
// fit, and the weights in TF.js layouts. Files without a graph (state dicts, safetensors, npz) say
// only names and shapes, so a file runs when it fits a zoo architecture:
// - by name: open_lth's and torchvision-style names (`fc1.weight`, `blocks.0.bn1.running_mean`),
//   under any common prefix (`module.`, `model.`), BatchNorm's `num_batches_tracked` ignored;
// - else by order: the state dict's order is the modules' order, which is the zoo's.
// PyTorch layouts are converted: Linear [out, in] → [in, out]; Conv2d [out, in, kh, kw] →
// [kh, kw, in, out]; and the first Linear after a conv stack flattens (c, h, w) where TF.js
// flattens (h, w, c), so its input rows are permuted.
import { InvalidRequestError } from '../api/errors';
import { type Architecture, MODEL_IDS, type ParamKind, type ParamSpec, architecture, paramSpecs } from '../models/architectures';
import { type WeightSet, sizeOf } from '../models/weights';
import type { FileTensor, FormatId } from './model-format';

/** How a format lays out weights: PyTorch's (state dicts, and by convention safetensors and npz) or TF.js's. */
export type WeightLayout = 'pytorch' | 'tfjs';

export function layoutOf(format: FormatId): WeightLayout {
  return format === 'tfjs' ? 'tfjs' : 'pytorch';
}

export interface ZooMatch {
  arch: Architecture;
  /** [h, w, c]: the input the tensors imply (conv nets without a dense layer fit any size; 32×32 or 28×28 is taken). */
  inputShape: [number, number, number];
  numClasses: number;
  specs: ParamSpec[];
  /** In the zoo's names and TF.js layouts, running statistics included. */
  weights: WeightSet;
  /** 'graph': built from an ONNX graph (onnx-network.ts), not matched to the zoo. */
  matchedBy: 'names' | 'order' | 'graph';
  /** Zoo tensor name → the file's name for it (export writes masks back under these). */
  sourceNames: Record<string, string>;
  /** Dense kernels the file stores as [in, out] (ONNX MatMul), by zoo name: exports write them so. */
  kernelLayouts?: Record<string, KernelLayout>;
}

const FILE_SUFFIX: Record<ParamKind, string> = {
  kernel: 'weight',
  bias: 'bias',
  gamma: 'weight',
  beta: 'bias',
  runningMean: 'running_mean',
  runningVar: 'running_var',
};

/** Buffers a PyTorch state dict carries that no computation reads. */
const isBookkeeping = (name: string) => name.endsWith('num_batches_tracked');

/** Square input sizes tried: the datasets' first (CIFAR's 32 for colour, MNIST's 28 for grey), which a net that pools globally takes. */
const sidesFor = (channels: number) => {
  const first = channels === 3 ? [32, 28] : [28, 32];
  return [...first, ...Array.from({ length: 64 }, (_, i) => i + 1).filter((s) => !first.includes(s))];
};

/**
 * The parameters of a state dict as a network reads them. Modules pruned with
 * torch.nn.utils.prune store `weight_orig` and `weight_mask` instead of `weight`: the weight is their
 * product. A mask beside a plain `weight` (Ticket Lab's own exports) is dropped: the weight is already masked.
 */
function effectiveParameters(tensors: readonly FileTensor[]): FileTensor[] {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const out: FileTensor[] = [];
  for (const t of tensors) {
    if (isBookkeeping(t.name) || t.name.endsWith('_mask')) continue;
    if (t.name.endsWith('_orig')) {
      const base = t.name.slice(0, -'_orig'.length);
      const mask = byName.get(`${base}_mask`);
      const values = mask && mask.values.length === t.values.length ? t.values.map((v, i) => v * mask.values[i]!) : t.values;
      out.push({ ...t, name: base, values });
      continue;
    }
    out.push(t);
  }
  return out;
}

/** The zoo architecture the tensors fit, or null. */
export function matchZooArchitecture(tensors: readonly FileTensor[], layout: WeightLayout): ZooMatch | null {
  const inFileOrder = effectiveParameters(tensors);
  // safetensors files keep no module order (the package writes its header sorted by name), nor may
  // other writers: the order the names imply (`0.weight` … `10.bias`, `fc1` … `fc3`) is tried second.
  const byModule = moduleOrder(inFileOrder);
  const sameOrder = byModule.every((t, i) => t === inFileOrder[i]);
  return matchInOrder(inFileOrder, layout) ?? (sameOrder ? null : matchInOrder(byModule, layout));
}

/** Tensors sorted by module name, numbers compared as numbers, and in a module weight, bias, then running statistics (PyTorch's registration order). */
function moduleOrder(params: readonly FileTensor[]): FileTensor[] {
  const RANK = ['weight', 'bias', 'running_mean', 'running_var'];
  const key = (name: string) => {
    const parts = name.split('.');
    const last = parts.pop()!;
    return { parts, rank: RANK.includes(last) ? RANK.indexOf(last) : RANK.length, last };
  };
  const compare = (a: string, b: string) => {
    const [x, y] = [Number(a), Number(b)];
    const numeric = /^\d+$/.test(a) && /^\d+$/.test(b);
    return numeric ? x - y : a < b ? -1 : a > b ? 1 : 0;
  };
  return [...params].sort((a, b) => {
    const [ka, kb] = [key(a.name), key(b.name)];
    for (let i = 0; i < Math.min(ka.parts.length, kb.parts.length); i++) {
      const c = compare(ka.parts[i]!, kb.parts[i]!);
      if (c !== 0) return c;
    }
    return ka.parts.length - kb.parts.length || ka.rank - kb.rank || compare(ka.last, kb.last);
  });
}

function matchInOrder(params: readonly FileTensor[], layout: WeightLayout): ZooMatch | null {
  const classes = outputClasses(params);
  if (classes === null) return null;
  const channels = [...new Set([inputChannels(params, layout), 1, 3].filter((c): c is number => c !== null))];
  for (const id of MODEL_IDS) {
    const arch = architecture(id);
    for (const c of channels) {
      for (const side of sidesFor(c)) {
        let specs: ParamSpec[];
        try {
          specs = paramSpecs(arch, [side, side, c], classes);
        } catch {
          continue; // the input is too small for this net
        }
        if (specs.length !== params.length) continue;
        const match = byNames(specs, params, layout, c) ?? byOrder(specs, params, layout, c);
        if (match) return { arch, inputShape: [side, side, c], numClasses: classes, specs, ...match };
      }
    }
  }
  return matchLenetFamily(params, classes, layout);
}

/**
 * A fully connected net of other widths (open_lth's mnist_lenet_8_4) as the LeNet of those widths,
 * matched by order: weight and bias pairs, each layer's inputs the previous one's outputs. The input
 * is the square grey or colour image of that many pixels (784: 28×28×1), else a 1×1 image of them.
 */
function matchLenetFamily(params: readonly FileTensor[], classes: number, layout: WeightLayout): ZooMatch | null {
  if (params.length < 4 || params.length % 2 !== 0) return null;
  const widths: number[] = [];
  let inputs = 0;
  for (let i = 0; i < params.length; i += 2) {
    const [weight, bias] = [params[i]!, params[i + 1]!];
    if (weight.shape.length !== 2 || bias.shape.length !== 1) return null;
    const [fanIn, fanOut] = layout === 'pytorch' ? [weight.shape[1]!, weight.shape[0]!] : [weight.shape[0]!, weight.shape[1]!];
    if (i === 0) inputs = fanIn;
    else if (fanIn !== widths[widths.length - 1]) return null;
    widths.push(fanOut);
  }
  let arch: Architecture;
  try {
    arch = architecture(`lenet-${widths.slice(0, -1).join('-')}`);
  } catch {
    return null; // widths past the family's bounds
  }
  const inputShape = imageOf(inputs);
  const specs = paramSpecs(arch, inputShape, classes);
  const match = byOrder(specs, params, layout, inputShape[2]);
  return match && { arch, inputShape, numClasses: classes, specs, ...match };
}

/** The image a flat input of `pixels` values is taken for: square grey, else square colour (784: 28×28×1, 3072: 32×32×3), else 1×1×pixels. */
export function imageOf(pixels: number): [number, number, number] {
  for (const c of [1, 3]) {
    const side = Math.round(Math.sqrt(pixels / c));
    if (side * side * c === pixels) return [side, side, c];
  }
  return [1, 1, pixels];
}

/** The class count: the last 1-D tensor's length (the output layer's bias). */
function outputClasses(params: readonly FileTensor[]): number | null {
  for (let i = params.length - 1; i >= 0; i--) if (params[i]!.shape.length === 1) return params[i]!.shape[0]!;
  return null;
}

/** The first conv kernel's input channels, if there is one. */
function inputChannels(params: readonly FileTensor[], layout: WeightLayout): number | null {
  const conv = params.find((t) => t.shape.length === 4);
  if (!conv) return null;
  return layout === 'pytorch' ? conv.shape[1]! : conv.shape[2]!;
}

function byNames(specs: readonly ParamSpec[], params: readonly FileTensor[], layout: WeightLayout, channels: number): Pick<ZooMatch, 'weights' | 'matchedBy' | 'sourceNames'> | null {
  for (const prefix of commonPrefixes(params)) {
    const byName = new Map(params.map((t) => [t.name.slice(prefix.length), t]));
    const chosen = specs.map((s) => byName.get(`${s.layer}.${FILE_SUFFIX[s.kind]}`));
    if (chosen.some((t) => t === undefined)) continue;
    const converted = convertAll(specs, chosen as FileTensor[], layout, channels);
    if (converted) return { ...converted, matchedBy: 'names' };
  }
  return null;
}

function byOrder(specs: readonly ParamSpec[], params: readonly FileTensor[], layout: WeightLayout, channels: number): Pick<ZooMatch, 'weights' | 'matchedBy' | 'sourceNames'> | null {
  const converted = convertAll(specs, params, layout, channels);
  return converted && { ...converted, matchedBy: 'order' };
}

/** '' and every dotted prefix all names share ('module.', 'model.encoder.'). */
function commonPrefixes(params: readonly FileTensor[]): string[] {
  const prefixes = [''];
  const first = params[0]?.name.split('.') ?? [];
  for (let i = 1; i < first.length; i++) {
    const prefix = `${first.slice(0, i).join('.')}.`;
    if (!params.every((t) => t.name.startsWith(prefix))) break;
    prefixes.push(prefix);
  }
  return prefixes;
}

function convertAll(specs: readonly ParamSpec[], files: readonly FileTensor[], layout: WeightLayout, channels: number): Pick<ZooMatch, 'weights' | 'sourceNames'> | null {
  const weights: WeightSet = [];
  const sourceNames: Record<string, string> = {};
  const flattens = flattenChannels(specs, channels);
  for (const [i, spec] of specs.entries()) {
    const file = files[i]!;
    const values = convert(spec, file, layout, flattens[i]!);
    if (!values) return null;
    weights.push({ name: spec.name, shape: [...spec.shape], values });
    sourceNames[spec.name] = file.name;
  }
  return { weights, sourceNames };
}

/**
 * For each spec, the channels of the image it reads flattened (the first dense kernel: after the
 * convs, their output; in a fully connected net, the input image of `inputChannels`), else null.
 */
function flattenChannels(specs: readonly ParamSpec[], inputChannels: number): Array<number | null> {
  let channels = inputChannels;
  let flattened = false;
  return specs.map((spec) => {
    if (spec.kind !== 'kernel') return null;
    if (spec.shape.length === 4) {
      channels = spec.shape[3]!;
      return null;
    }
    if (flattened) return null;
    flattened = true;
    return channels;
  });
}

/**
 * Another file of a matched network (a later checkpoint, a mask file) in the zoo's names and
 * layouts, found under the names the match was made from; null for a spec the file does not hold.
 * A tensor of the wrong shape is an error naming it.
 */
export function tensorsOfMatch(
  match: Pick<ZooMatch, 'specs' | 'sourceNames' | 'inputShape'>,
  tensors: readonly FileTensor[],
  layout: WeightLayout,
  path: string,
): Array<{ name: string; shape: number[]; values: Float32Array } | null> {
  const byName = new Map(effectiveParameters(tensors).map((t) => [t.name, t]));
  const flattens = flattenChannels(match.specs, match.inputShape[2]);
  return match.specs.map((spec, i) => {
    const source = match.sourceNames[spec.name] ?? spec.name;
    const file = byName.get(source);
    if (!file) return null;
    const values = convert(spec, file, layout, flattens[i]!);
    if (!values) throw new InvalidRequestError(`${path}: ${source} has shape [${file.shape.join(', ')}], not the [${(layout === 'tfjs' ? spec.shape : pytorchShape(spec)).join(', ')}] of the network it belongs to.`);
    return { name: spec.name, shape: [...spec.shape], values };
  });
}

/**
 * How a file stores a dense kernel other than as PyTorch's Linear [out, in]: 'in-out' for ONNX's
 * MatMul and Gemm with transB = 0, [in, out] (their rows still in PyTorch's flatten order).
 */
export type KernelLayout = 'in-out';

/** A zoo tensor's shape in PyTorch's layout: Linear [out, in] (or the file's [in, out]), Conv2d [out, in, kh, kw]. */
function pytorchShape(spec: ParamSpec, kernelLayout?: KernelLayout): number[] {
  if (spec.shape.length === 4) {
    const [kh, kw, cin, cout] = spec.shape as [number, number, number, number];
    return [cout, cin, kh, kw];
  }
  if (spec.shape.length === 2 && kernelLayout !== 'in-out') return [spec.shape[1]!, spec.shape[0]!];
  return [...spec.shape];
}

/**
 * For each flat index of a zoo tensor (TF.js layout), the flat index of the same value in PyTorch's
 * layout. A dense kernel reading a flattened conv output of `flattenChannels` channels also maps its
 * input rows: ours run over (h, w, c), PyTorch's over (c, h, w).
 */
function pytorchIndex(spec: ParamSpec, flattenChannels: number | null, kernelLayout?: KernelLayout): Int32Array {
  const index = new Int32Array(sizeOf(spec.shape));
  if (spec.shape.length === 4) {
    const [kh, kw, cin, cout] = spec.shape as [number, number, number, number];
    for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) for (let c = 0; c < cin; c++) for (let o = 0; o < cout; o++) {
      index[((y * kw + x) * cin + c) * cout + o] = ((o * cin + c) * kh + y) * kw + x;
    }
  } else if (spec.shape.length === 2) {
    const [inputs, units] = spec.shape as [number, number];
    const pixels = flattenChannels !== null && inputs % flattenChannels === 0 ? inputs / flattenChannels : null;
    for (let r = 0; r < inputs; r++) {
      const row = pixels === null ? r : (r % flattenChannels!) * pixels + Math.floor(r / flattenChannels!);
      for (let u = 0; u < units; u++) index[r * units + u] = kernelLayout === 'in-out' ? row * units + u : u * inputs + row;
    }
  } else {
    for (let i = 0; i < index.length; i++) index[i] = i;
  }
  return index;
}

/** The file tensor in the spec's TF.js layout, or null if its shape does not fit. */
function convert(spec: ParamSpec, file: FileTensor, layout: WeightLayout, flattenChannels: number | null): Float32Array | null {
  const wanted = layout === 'tfjs' ? spec.shape : pytorchShape(spec);
  if (file.shape.length !== wanted.length || file.shape.some((d, i) => d !== wanted[i])) return null;
  if (layout === 'tfjs' || spec.shape.length === 1) return file.values;
  const index = pytorchIndex(spec, flattenChannels);
  const out = new Float32Array(index.length);
  for (let i = 0; i < index.length; i++) out[i] = file.values[index[i]!]!;
  return out;
}

/**
 * Zoo tensors (TF.js layouts, by spec name) in PyTorch's names and layouts, or an imported file's own
 * (`sourceNames`, `kernelLayouts`); `maskSuffix` names them `<name>_mask`. `inputChannels`: of the
 * network's input image, which a fully connected net's first layer reads flattened.
 */
export function toPytorchTensors(
  specs: readonly ParamSpec[],
  tensors: ReadonlyArray<{ name: string; values: Float32Array }>,
  options: { inputChannels: number; sourceNames?: Record<string, string>; kernelLayouts?: Record<string, KernelLayout>; maskSuffix?: boolean },
): Array<{ name: string; shape: number[]; values: Float32Array }> {
  const out: Array<{ name: string; shape: number[]; values: Float32Array }> = [];
  const flattens = flattenChannels(specs, options.inputChannels);
  for (const [i, spec] of specs.entries()) {
    const tensor = tensors.find((t) => t.name === spec.name);
    if (!tensor) continue;
    const base = options.sourceNames?.[spec.name] ?? `${spec.layer}.${FILE_SUFFIX[spec.kind]}`;
    const index = pytorchIndex(spec, flattens[i]!, options.kernelLayouts?.[spec.name]);
    const values = new Float32Array(index.length);
    for (let k = 0; k < index.length; k++) values[index[k]!] = tensor.values[k]!;
    out.push({ name: options.maskSuffix ? `${base}_mask` : base, shape: pytorchShape(spec, options.kernelLayouts?.[spec.name]), values });
  }
  return out;
}
