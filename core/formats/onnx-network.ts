// A network built from an ONNX graph, for files that fit no zoo architecture: the graph's nodes
// become the zoo's layer kinds (core/models/architectures.ts), its initializers the weights in TF.js
// layouts. The nodes read are the ones PyTorch's torch.onnx.export writes for the zoo's kinds:
// Conv, Gemm, MatMul + Add, Relu, MaxPool, BatchNormalization, Flatten and Reshape to [n, features],
// GlobalAveragePool (and AveragePool over the whole map, ReduceMean over height and width), the Add
// of two branches followed by Relu (a residual block), Identity, Dropout and Pad by zeros (no-ops at
// inference), the constants and shape arithmetic of `x.view(x.size(0), -1)`, and a final Softmax or
// LogSoftmax, which is dropped: Ticket Lab trains and predicts on logits, and the title says so.
// Whatever a layer cannot express (dilation, groups, uneven padding, overlapping pools, other ops)
// is refused with a ModelFileError naming the node and its op.
//
// Layouts: Conv [out, in, kh, kw] → [kh, kw, in, out]; Gemm's B [out, in] (transB = 1, PyTorch's
// Linear) or [in, out], MatMul's [in, out] → [in, out]; and a dense layer reading a flattened image
// takes its rows in TF.js's (h, w, c) order where PyTorch flattens (c, h, w).
import { createHash } from 'node:crypto';
import { basename, extname } from 'node:path';
import { type Architecture, type LayerSpec, type ParamKind, hasConv, paramSpecs } from '../models/architectures';
import type { WeightSet } from '../models/weights';
import { quote } from './file-bytes';
import { ModelFileError } from './model-format';
import type { OnnxAttributeValue, OnnxModel, OnnxNode } from './onnx';
import { type KernelLayout, type ZooMatch, imageOf } from './zoo-match';

interface Image {
  kind: 'image';
  h: number;
  w: number;
  c: number;
}

/** A vector per example. ONNX may see it as [n, f, 1, 1] (after global pooling); `flattened`: the image it is, as PyTorch flattens it. */
interface Flat {
  kind: 'flat';
  n: number;
  rank: 2 | 4;
  flattened?: Image;
}

type PlainLayer = Exclude<LayerSpec, { kind: 'residual' }>;
/** A layer's tensors in TF.js layouts, each with the initializer it came from and, for a kernel stored [in, out], that layout. */
type Params = Partial<Record<ParamKind, { values: Float32Array; source: string | undefined; layout?: KernelLayout }>>;

/**
 * A layer on the way from the graph's input, with `output` the value it gives (for telling where two
 * branches part) and `node` the node it comes from. Names are given once the whole graph is read.
 */
type Step =
  | { kind: 'layer'; layer: PlainLayer; base: string; node: number; output: string; params: Params }
  | { kind: 'block'; body: Step[]; shortcut: Step[]; node: number; output: string; depth: number };

/** An activation: the layers from the input to it. `sum`: an Add of two branches, waiting for its Relu. */
interface Act {
  kind: 'act';
  steps: readonly Step[];
  shape: Image | Flat;
  sum?: { body: Step[]; shortcut: Step[]; node: number };
}

/** A constant: an initializer (`source` is its name), a Constant node, or shape arithmetic (the batch size is NaN). */
interface Const {
  kind: 'const';
  shape: number[];
  values: Float32Array;
  source?: string;
}

type Value = Act | Const;

const OPS = [
  'Conv', 'Gemm', 'MatMul', 'Add', 'Relu', 'BatchNormalization', 'MaxPool', 'GlobalAveragePool', 'AveragePool', 'ReduceMean',
  'Flatten', 'Reshape', 'Identity', 'Dropout', 'Pad', 'Softmax', 'LogSoftmax', 'Constant', 'Shape', 'Gather', 'Unsqueeze', 'Squeeze', 'Concat', 'Cast',
];

/** PyTorch's BatchNorm epsilon, which MaskedNetwork uses; a float32 attribute reads as 9.99999975e-6. */
const BATCHNORM_EPSILON = 1e-5;
/**
 * Bounds for files from anywhere: layers on one path (ResNet-152 has about 500; each step copies its
 * path, so a crafted file of a million could take hours) and residual blocks inside blocks (the
 * network is walked recursively).
 */
const MAX_LAYERS = 10_000;
const MAX_NESTING = 64;

/** The network an ONNX graph computes, in the zoo's terms; throws ModelFileError naming the node it cannot run. */
export function networkFromOnnxGraph(model: OnnxModel, path: string): ZooMatch {
  return new GraphReader(model, path).read();
}

class GraphReader {
  private readonly values = new Map<string, Value>();
  private readonly bases = new Set<string>();
  /** The batch size the graph was exported with, NaN when symbolic. */
  private batch = NaN;
  private dropped: string | null = null;
  private where = 'the graph';

  constructor(private readonly model: OnnxModel, private readonly path: string) {}

  private refuse(reason: string): never {
    throw new ModelFileError(this.path, `cannot build a network from its ONNX graph: ${this.where} ${reason}.`);
  }

  read(): ZooMatch {
    const { graph } = this.model;
    for (const t of graph.initializers) this.values.set(t.name, { kind: 'const', shape: t.shape, values: t.values, source: t.name });
    const inputShape = this.graphInput();
    if (graph.outputs.length !== 1) this.refuse(`has ${graph.outputs.length} outputs; Ticket Lab runs networks with one (the logits)`);
    const output = graph.outputs[0]!.name;
    for (const [index, node] of this.liveNodes(output)) {
      this.where = `node ${index} (${quote(node.name)}, ${node.opType})`;
      if (node.domain !== '' && node.domain !== 'ai.onnx') this.refuse(`is from the operator domain ${quote(node.domain)}, not ONNX's own`);
      const value = this.node(node, index, output);
      this.values.set(node.outputs[0]!, value);
    }
    this.where = 'the graph';
    const result = this.values.get(output);
    if (result === undefined) this.refuse(`never computes its output ${quote(output)}`);
    if (result.kind !== 'act') this.refuse('gives a constant, not a function of its input');
    if (result.sum) this.refuse('ends in an Add of two branches without the Relu a residual block has');
    const last = result.steps[result.steps.length - 1];
    if (last?.kind !== 'layer' || last.layer.kind !== 'dense') {
      this.refuse('does not end in a Gemm or MatMul layer: Ticket Lab needs a final fully connected layer giving the class logits');
    }
    const numClasses = last.layer.units;
    const declared = graph.outputs[0]!.shape;
    if (declared.length === 2 && typeof declared[1] === 'number' && declared[1] !== numClasses) {
      this.refuse(`declares ${declared[1]} outputs, but its last layer gives ${numClasses}`);
    }
    const steps = [...result.steps.slice(0, -1), { ...last, layer: { ...last.layer, role: 'output' as const } }];
    return this.network(steps, inputShape, numClasses);
  }

  /** The graph's one input: [n, c, h, w], or [n, features] for a fully connected net. */
  private graphInput(): [number, number, number] {
    const { graph } = this.model;
    const inputs = graph.inputs.filter((i) => !this.values.has(i.name));
    if (inputs.length !== 1) this.refuse(`takes ${inputs.length} inputs besides its initializers; Ticket Lab runs networks of one image input`);
    const input = inputs[0]!;
    if (input.elemType !== null && input.elemType !== 1) this.refuse(`input ${quote(input.name)} is not float32 (ONNX type ${input.elemType})`);
    const [batch, ...dims] = input.shape;
    if (typeof batch === 'number') this.batch = batch;
    if (!dims.every((d): d is number => typeof d === 'number' && d > 0) || (dims.length !== 3 && dims.length !== 1)) {
      this.refuse(`input ${quote(input.name)} has shape [${input.shape.map((d) => d ?? '?').join(', ')}]; Ticket Lab needs [n, channels, height, width] or [n, features] with fixed sizes`);
    }
    if (dims.length === 3) {
      const [c, h, w] = dims as [number, number, number];
      this.values.set(input.name, { kind: 'act', steps: [], shape: { kind: 'image', h, w, c } });
      return [h, w, c];
    }
    // A vector input is an image flattened as PyTorch does (c, h, w): the network takes the image, so
    // it trains on the datasets (784 → 28×28×1, 3072 → 32×32×3), and flattens it first.
    const [h, w, c] = imageOf(dims[0]!);
    const image: Image = { kind: 'image', h, w, c };
    const flatten: Step = { kind: 'layer', layer: { kind: 'flatten' }, base: '', node: -1, output: `${input.name}#flatten`, params: {} };
    this.values.set(input.name, { kind: 'act', steps: [flatten], shape: { kind: 'flat', n: dims[0]!, rank: 2, flattened: image } });
    return [h, w, c];
  }

  /** The nodes the output depends on, in graph order (ONNX's topological order); only a node's first output may be read. */
  private liveNodes(output: string): Array<[number, OnnxNode]> {
    const nodes = this.model.graph.nodes;
    const needed = new Set([output]);
    const live: Array<[number, OnnxNode]> = [];
    for (let i = nodes.length - 1; i >= 0; i--) {
      const node = nodes[i]!;
      if (!node.outputs.some((o) => needed.has(o))) continue;
      this.where = `node ${i} (${quote(node.name)}, ${node.opType})`;
      const extra = node.outputs.slice(1).find((o) => o !== '' && needed.has(o));
      if (extra !== undefined) this.refuse(`has its output ${quote(extra)} read, which Ticket Lab does not compute (only a node's first output)`);
      for (const name of node.inputs) if (name !== '') needed.add(name);
      live.push([i, node]);
    }
    return live.reverse();
  }

  private node(node: OnnxNode, index: number, graphOutput: string): Value {
    const output = node.outputs[0]!;
    switch (node.opType) {
      case 'Identity':
        return this.input(node, 0);
      case 'Dropout': {
        const training = node.inputs[2] ? this.constant(node, 2, 'training_mode') : undefined;
        if (training?.values.some((v) => v !== 0)) this.refuse('is in training mode; export the model in eval mode');
        return this.activation(node, 0);
      }
      case 'Relu':
        return this.relu(this.activation(node, 0, true), output);
      case 'Conv':
        return this.conv(node, index, output);
      case 'Gemm':
        return this.gemm(node, index, output);
      case 'MatMul': {
        const weight = this.constant(node, 1, 'the weight B');
        if (weight.shape.length !== 2 || weight.shape.some((d) => d < 1)) this.refuse(`multiplies by a tensor of shape [${weight.shape.join(', ')}]; Ticket Lab reads MatMul as x·W with W [in, out]`);
        return this.dense(node, index, output, weight, false);
      }
      case 'Add':
        return this.add(node, index, output);
      case 'BatchNormalization':
        return this.batchNorm(node, index, output);
      case 'MaxPool':
        return this.maxPool(node, index, output);
      case 'GlobalAveragePool':
        return this.globalPool(this.image(node), index, output, 4);
      case 'AveragePool': {
        const x = this.image(node);
        const kernel = this.ints(node, 'kernel_shape', []);
        if (kernel[0] !== x.shape.h || kernel[1] !== x.shape.w || this.ints(node, 'pads', [0]).some((p) => p !== 0) || this.string(node, 'auto_pad', 'NOTSET') !== 'NOTSET') {
          this.refuse(`averages ${kernel.join('×')} windows of a ${x.shape.h}×${x.shape.w} map; Ticket Lab averages only over the whole map (global average pooling)`);
        }
        return this.globalPool(x, index, output, 4);
      }
      case 'ReduceMean': {
        const x = this.image(node);
        const axes = node.inputs[1] ? [...this.constant(node, 1, 'axes').values] : this.ints(node, 'axes', []);
        const spatial = new Set(axes.map((a) => (a < 0 ? a + 4 : a)));
        if (spatial.size !== 2 || !spatial.has(2) || !spatial.has(3)) this.refuse(`averages over axes [${axes.join(', ')}]; Ticket Lab averages only over height and width (axes 2 and 3)`);
        return this.globalPool(x, index, output, this.int(node, 'keepdims', 1) === 1 ? 4 : 2);
      }
      case 'Flatten':
        if (this.int(node, 'axis', 1) !== 1) this.refuse(`flattens from axis ${this.int(node, 'axis', 1)}; Ticket Lab flattens each example (axis 1)`);
        return this.flatten(this.activation(node, 0), index, output);
      case 'Reshape':
        return this.reshape(node, index, output);
      case 'Pad': {
        const x = this.activation(node, 0);
        const pads = node.inputs[1] ? [...this.constant(node, 1, 'pads').values] : this.ints(node, 'pads', []);
        if (pads.some((p) => p !== 0)) {
          this.refuse(`pads by [${pads.join(', ')}]; Ticket Lab pads only inside its Conv layers (give the Conv its pads)`);
        }
        return x;
      }
      case 'Softmax':
      case 'LogSoftmax': {
        const x = this.activation(node, 0);
        const axis = this.int(node, 'axis', -1);
        if (output !== graphOutput || x.shape.kind !== 'flat' || (axis !== 1 && axis !== -1)) {
          this.refuse(`is not the graph's last node over the classes; Ticket Lab drops a final ${node.opType} only`);
        }
        this.dropped = node.opType;
        return x;
      }
      case 'Constant':
        return this.constantNode(node);
      case 'Shape': {
        const x = this.activation(node, 0);
        if (this.int(node, 'start', 0) !== 0 || this.attribute(node, 'end') !== undefined) this.refuse('takes a slice of the shape (start, end)');
        const dims = x.shape.kind === 'image' ? [x.shape.c, x.shape.h, x.shape.w] : x.shape.rank === 2 ? [x.shape.n] : [x.shape.n, 1, 1];
        return { kind: 'const', shape: [1 + dims.length], values: Float32Array.from([NaN, ...dims]) };
      }
      case 'Gather': {
        const [data, indices] = [this.constant(node, 0, 'data'), this.constant(node, 1, 'indices')];
        if (data.shape.length !== 1 || this.int(node, 'axis', 0) !== 0) this.refuse('gathers from a constant of more than one axis');
        const n = data.values.length;
        return { kind: 'const', shape: indices.shape, values: indices.values.map((i) => data.values[i < 0 ? i + n : i] ?? this.refuse(`gathers index ${i} of ${n}`)) };
      }
      case 'Unsqueeze':
      case 'Squeeze': {
        const data = this.constant(node, 0, 'data');
        const axes = node.inputs[1] ? [...this.constant(node, 1, 'axes').values] : this.ints(node, 'axes', []);
        let shape: number[];
        if (node.opType === 'Unsqueeze') {
          shape = [...data.shape];
          const rank = shape.length + axes.length;
          for (const a of axes.map((a) => (a < 0 ? a + rank : a)).sort((x, y) => x - y)) shape.splice(a, 0, 1);
        } else {
          const drop = new Set(axes.map((a) => (a < 0 ? a + data.shape.length : a)));
          shape = data.shape.filter((d, i) => (axes.length === 0 ? d !== 1 : !drop.has(i)));
        }
        return { kind: 'const', shape, values: data.values };
      }
      case 'Concat': {
        const parts = node.inputs.map((_, i) => this.constant(node, i, `input ${i}`));
        if (parts.some((p) => p.shape.length !== 1)) this.refuse('joins constants of more than one axis');
        const values = Float32Array.from(parts.flatMap((p) => [...p.values]));
        return { kind: 'const', shape: [values.length], values };
      }
      case 'Cast': {
        const data = this.constant(node, 0, 'input');
        return { kind: 'const', shape: data.shape, values: data.values };
      }
      default:
        return this.refuse(`is not an op Ticket Lab builds networks from (${OPS.join(', ')})`);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Inputs and attributes

  private input(node: OnnxNode, i: number): Value {
    const name = node.inputs[i];
    if (name === undefined || name === '') this.refuse(`has no input ${i}`);
    const value = this.values.get(name);
    if (value === undefined) this.refuse(`reads ${quote(name)}, which no initializer or earlier node gives`);
    return value;
  }

  /** An activation input; a sum of branches only for a Relu (the end of a residual block). */
  private activation(node: OnnxNode, i: number, sumAllowed = false): Act {
    const value = this.input(node, i);
    if (value.kind !== 'act') this.refuse(`takes a constant as its input ${i}, where Ticket Lab expects the activations`);
    if (value.sum && !sumAllowed) this.refuse('reads the Add of two branches, which a residual block follows by a Relu; Ticket Lab runs only that');
    return value;
  }

  private image(node: OnnxNode): Act & { shape: Image } {
    const x = this.activation(node, 0);
    if (x.shape.kind !== 'image') this.refuse('reads a flat vector where it needs an image [n, c, h, w]');
    return x as Act & { shape: Image };
  }

  private constant(node: OnnxNode, i: number, what: string): Const {
    const value = this.input(node, i);
    if (value.kind !== 'const') this.refuse(`computes its ${what} (input ${i}) from the activations; Ticket Lab needs a constant there`);
    return value;
  }

  private attribute(node: OnnxNode, name: string): OnnxAttributeValue | undefined {
    return Object.hasOwn(node.attributes, name) ? node.attributes[name] : undefined;
  }

  private int(node: OnnxNode, name: string, fallback: number): number {
    const value = this.attribute(node, name) ?? fallback;
    if (typeof value !== 'number') this.refuse(`has a ${name} attribute that is not a number`);
    return value;
  }

  private ints(node: OnnxNode, name: string, fallback: number[]): number[] {
    const value = this.attribute(node, name) ?? fallback;
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'number')) this.refuse(`has a ${name} attribute that is not a list of numbers`);
    return value as number[];
  }

  private string(node: OnnxNode, name: string, fallback: string): string {
    const value = this.attribute(node, name) ?? fallback;
    if (typeof value !== 'string') this.refuse(`has a ${name} attribute that is not a string`);
    return value;
  }

  private constantNode(node: OnnxNode): Const {
    const value = this.attribute(node, 'value');
    if (value && typeof value === 'object' && 'values' in value && !Array.isArray(value)) return { kind: 'const', shape: value.shape, values: value.values };
    for (const [name, scalar] of [['value_float', true], ['value_int', true], ['value_floats', false], ['value_ints', false]] as const) {
      const v = this.attribute(node, name);
      if (typeof v === 'number' && scalar) return { kind: 'const', shape: [], values: Float32Array.of(v) };
      if (Array.isArray(v) && !scalar) return { kind: 'const', shape: [v.length], values: Float32Array.from(v as number[]) };
    }
    return this.refuse('holds no tensor or number Ticket Lab reads (value, value_float(s), value_int(s))');
  }

  // ------------------------------------------------------------------------------------------
  // Layers

  /** A name for a layer: its weight's module path (`features.0.weight` → `features.0`), else the node's scope, unique and safe inside `${layer}.kernel`. */
  private baseName(node: OnnxNode, index: number, weight: Const): string {
    const fromWeight = weight.source && /^(.+)\.weight$/.exec(weight.source)?.[1];
    const base = sanitize(fromWeight || scopeName(node.name)) || `${node.opType.toLowerCase()}${index}`;
    let name = base;
    for (let k = 2; this.bases.has(name); k++) name = `${base}_${k}`;
    this.bases.add(name);
    return name;
  }

  private append(x: Act, step: Step, shape: Image | Flat): Act {
    if (x.steps.length >= MAX_LAYERS) this.refuse(`makes a path of more than ${MAX_LAYERS} layers, more than Ticket Lab builds`);
    return { kind: 'act', steps: [...x.steps, step], shape };
  }

  private layer(x: Act, step: Omit<Extract<Step, { kind: 'layer' }>, 'kind'>, shape: Image | Flat): Act {
    return this.append(x, { kind: 'layer', ...step }, shape);
  }

  private conv(node: OnnxNode, index: number, output: string): Act {
    const x = this.image(node);
    const weight = this.constant(node, 1, 'the weight W');
    const bias = node.inputs[2] ? this.constant(node, 2, 'the bias B') : undefined;
    if (weight.shape.length !== 4 || weight.shape.some((d) => d < 1)) this.refuse(`has a weight of shape [${weight.shape.join(', ')}], not [out, in, kh, kw]`);
    const [filters, inputs, kh, kw] = weight.shape as [number, number, number, number];
    const group = this.int(node, 'group', 1);
    if (group !== 1) this.refuse(`has group ${group}; Ticket Lab's conv layers are not grouped (group 1)`);
    if (inputs !== x.shape.c) this.refuse(`has a weight for ${inputs} input channels, but its input has ${x.shape.c}`);
    if (kh !== kw) this.refuse(`has a ${kh}×${kw} kernel; Ticket Lab's conv layers are square`);
    const dilations = this.ints(node, 'dilations', [1, 1]);
    if (dilations.some((d) => d !== 1)) this.refuse(`has dilations [${dilations.join(', ')}]; Ticket Lab's conv layers have dilation 1`);
    const strides = this.ints(node, 'strides', [1, 1]);
    if (strides.length !== 2 || strides[0] !== strides[1] || strides[0]! < 1) this.refuse(`has strides [${strides.join(', ')}]; Ticket Lab's conv layers stride equally along height and width`);
    const stride = strides[0]!;
    const autoPad = this.string(node, 'auto_pad', 'NOTSET');
    let pad: number;
    if (autoPad === 'VALID') pad = 0;
    else if ((autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') && stride === 1 && kh % 2 === 1) pad = (kh - 1) / 2;
    else if (autoPad === 'NOTSET' || autoPad === '') {
      const pads = this.ints(node, 'pads', [0, 0, 0, 0]);
      if (pads.length !== 4 || pads.some((p) => p !== pads[0] || p < 0)) this.refuse(`has pads [${pads.join(', ')}]; Ticket Lab's conv layers pad every side equally`);
      pad = pads[0]!;
    } else return this.refuse(`has auto_pad ${autoPad} at stride ${stride}; Ticket Lab's conv layers pad every side equally`);
    if (bias && (bias.values.length !== filters || bias.shape.length !== 1)) this.refuse(`has a bias of shape [${bias.shape.join(', ')}], not [${filters}]`);
    const h = Math.floor((x.shape.h + 2 * pad - kh) / stride) + 1;
    const w = Math.floor((x.shape.w + 2 * pad - kh) / stride) + 1;
    if (h <= 0 || w <= 0) this.refuse(`leaves nothing of its ${x.shape.h}×${x.shape.w} input`);
    const layer: PlainLayer = { kind: 'conv2d', name: '', filters, kernelSize: kh, activation: 'linear', role: 'conv' };
    if (stride !== 1) layer.stride = stride;
    if (!bias) layer.bias = false;
    // The zoo's own padding (floor(k/2): 'same' at stride 1) stays implicit, so the conv step engine runs it.
    if (pad !== Math.floor(kh / 2) || (kh % 2 === 0 && stride === 1)) layer.padding = pad;
    const params: Params = { kernel: { values: convKernel(weight.values, filters, inputs, kh), source: weight.source } };
    if (bias) params.bias = { values: bias.values, source: bias.source };
    return this.layer(x, { layer, base: this.baseName(node, index, weight), node: index, output, params }, { kind: 'image', h, w, c: filters });
  }

  private gemm(node: OnnxNode, index: number, output: string): Act {
    const weight = this.constant(node, 1, 'the weight B');
    const bias = node.inputs[2] ? this.constant(node, 2, 'the bias C') : undefined;
    if (this.int(node, 'transA', 0) !== 0) this.refuse('has transA = 1; Ticket Lab reads Gemm as x·Wᵀ + b or x·W + b on [n, features] inputs');
    const alpha = this.attribute(node, 'alpha') ?? 1;
    const beta = bias ? (this.attribute(node, 'beta') ?? 1) : 1;
    if (alpha !== 1 || beta !== 1) this.refuse(`has alpha ${String(alpha)} and beta ${String(beta)}; Ticket Lab reads Gemm with alpha = beta = 1`);
    if (weight.shape.length !== 2 || weight.shape.some((d) => d < 1)) this.refuse(`has a weight of shape [${weight.shape.join(', ')}], not a matrix`);
    const transB = this.int(node, 'transB', 0);
    if (transB !== 0 && transB !== 1) this.refuse(`has transB ${transB}`);
    return this.dense(node, index, output, weight, transB === 1, bias);
  }

  /** A dense layer: x·W with W [in, out], or x·Wᵀ with W [out, in] (`transposed`); plus a bias, or an Add after (MatMul). */
  private dense(node: OnnxNode, index: number, output: string, weight: Const, transposed: boolean, bias?: Const): Act {
    const x = this.activation(node, 0);
    if (x.shape.kind !== 'flat' || x.shape.rank !== 2) this.refuse('reads an input that is not [n, features]; flatten it first (Flatten or Reshape)');
    const [inputs, units] = (transposed ? [weight.shape[1], weight.shape[0]] : weight.shape) as [number, number];
    if (inputs !== x.shape.n) this.refuse(`has a weight for ${inputs} inputs, but its input has ${x.shape.n} features`);
    const kernel = denseKernel(weight.values, inputs, units, transposed, x.shape.flattened);
    const params: Params = { kernel: { values: kernel, source: weight.source, ...(transposed ? {} : { layout: 'in-out' as const }) } };
    if (bias) {
      if (bias.values.length !== units || bias.shape.some((d, i) => d !== (i === bias.shape.length - 1 ? units : 1))) this.refuse(`has a bias of shape [${bias.shape.join(', ')}], not [${units}]`);
      params.bias = { values: bias.values, source: bias.source };
    }
    const layer: PlainLayer = { kind: 'dense', name: '', units, activation: 'linear', role: 'fc' };
    return this.layer(x, { layer, base: this.baseName(node, index, weight), node: index, output, params }, { kind: 'flat', n: units, rank: 2 });
  }

  private batchNorm(node: OnnxNode, index: number, output: string): Act {
    const x = this.activation(node, 0);
    if (x.shape.kind !== 'image') this.refuse('normalises a flat vector (BatchNorm1d); Ticket Lab\'s BatchNorm works on the channels of an image (BatchNorm2d)');
    const c = x.shape.c;
    const [gamma, beta, mean, variance] = (['scale', 'B', 'input_mean', 'input_var'] as const).map((what, i) => {
      const t = this.constant(node, i + 1, what);
      if (t.values.length !== c || t.shape.length !== 1) this.refuse(`has ${what} of shape [${t.shape.join(', ')}], not [${c}]`);
      return { values: t.values, source: t.source };
    }) as [Params['gamma'], Params['beta'], Params['runningMean'], Params['runningVar']];
    const epsilon = this.attribute(node, 'epsilon') ?? BATCHNORM_EPSILON;
    if (typeof epsilon !== 'number' || Math.abs(epsilon - BATCHNORM_EPSILON) > 1e-3 * BATCHNORM_EPSILON) {
      this.refuse(`has epsilon ${String(epsilon)}; Ticket Lab's BatchNorm uses PyTorch's ${BATCHNORM_EPSILON}`);
    }
    if (this.int(node, 'training_mode', 0) !== 0 || this.int(node, 'spatial', 1) !== 1) this.refuse('normalises in training mode or per position; export the model in eval mode');
    const scale = this.constant(node, 1, 'scale');
    const layer: PlainLayer = { kind: 'batchnorm', name: '', activation: 'linear' };
    const params: Params = { gamma, beta, runningMean: mean, runningVar: variance };
    return this.layer(x, { layer, base: this.baseName(node, index, scale), node: index, output, params }, x.shape);
  }

  private maxPool(node: OnnxNode, index: number, output: string): Act {
    const x = this.image(node);
    const kernel = this.ints(node, 'kernel_shape', []);
    const strides = this.ints(node, 'strides', [1, 1]);
    const k = kernel[0]!;
    const even = x.shape.h % k === 0 && x.shape.w % k === 0;
    if (kernel.length !== 2 || kernel[1] !== k || k < 1 || strides.some((s) => s !== k)) {
      this.refuse(`pools ${kernel.join('×')} windows at strides [${strides.join(', ')}]; Ticket Lab's max pooling takes square windows that do not overlap (stride = kernel)`);
    }
    if (this.ints(node, 'pads', [0]).some((p) => p !== 0) || this.ints(node, 'dilations', [1]).some((d) => d !== 1) || !['NOTSET', 'VALID', ''].includes(this.string(node, 'auto_pad', 'NOTSET'))) {
      this.refuse('pads or dilates its windows; Ticket Lab\'s max pooling does neither');
    }
    if (this.int(node, 'ceil_mode', 0) !== 0 && !even) this.refuse(`has ceil_mode 1 on a ${x.shape.h}×${x.shape.w} map; Ticket Lab's max pooling drops a partial window`);
    const shape: Image = { kind: 'image', h: Math.floor(x.shape.h / k), w: Math.floor(x.shape.w / k), c: x.shape.c };
    if (shape.h === 0 || shape.w === 0) this.refuse(`pools ${k}×${k} windows of a ${x.shape.h}×${x.shape.w} map, which holds none`);
    return this.layer(x, { layer: { kind: 'maxpool', size: k }, base: '', node: index, output, params: {} }, shape);
  }

  private globalPool(x: Act & { shape: Image }, index: number, output: string, rank: 2 | 4): Act {
    return this.layer(x, { layer: { kind: 'globalavgpool' }, base: '', node: index, output, params: {} }, { kind: 'flat', n: x.shape.c, rank });
  }

  private flatten(x: Act, index: number, output: string): Act {
    if (x.shape.kind === 'flat') return { ...x, shape: { ...x.shape, rank: 2 } };
    return this.layer(x, { layer: { kind: 'flatten' }, base: '', node: index, output, params: {} }, { kind: 'flat', n: x.shape.h * x.shape.w * x.shape.c, rank: 2, flattened: x.shape });
  }

  /** Reshape to [n, features] (x.view(n, -1), x.view(-1, features)), the only one a flatten layer does. */
  private reshape(node: OnnxNode, index: number, output: string): Act {
    const x = this.activation(node, 0);
    const target = [...this.constant(node, 1, 'shape').values];
    const features = x.shape.kind === 'image' ? x.shape.h * x.shape.w * x.shape.c : x.shape.n;
    const [first, second] = target;
    const batchLike = (d: number | undefined) => d !== undefined && (Number.isNaN(d) || d === 0 || d === -1 || d === this.batch);
    const flattens = target.length === 2 && (second === features || (second === -1 && first !== -1)) && batchLike(first);
    if (!flattens || (this.int(node, 'allowzero', 0) !== 0 && target.includes(0))) {
      this.refuse(`reshapes [${x.shape.kind === 'image' ? `n, ${x.shape.c}, ${x.shape.h}, ${x.shape.w}` : `n, ${features}`}] to [${target.map((d) => (Number.isNaN(d) ? 'n' : d)).join(', ')}]; Ticket Lab reshapes only to [n, ${features}] (flattening each example)`);
    }
    return this.flatten(x, index, output);
  }

  /**
   * ReLU becomes the activation of the layer before it. Max pooling and flattening commute with it
   * (relu(max(x)) = max(relu(x))), so it moves past them; on a layer already ReLU'd it does nothing.
   */
  private relu(x: Act, output: string): Act {
    if (x.sum) {
      const depth = 1 + Math.max(0, ...[...x.sum.body, ...x.sum.shortcut].map((s) => (s.kind === 'block' ? s.depth : 0)));
      if (depth > MAX_NESTING) this.refuse(`closes a residual block inside ${MAX_NESTING} others, more than Ticket Lab builds`);
      return this.append(x, { kind: 'block', ...x.sum, output, depth }, x.shape);
    }
    const steps = x.steps;
    let at = steps.length - 1;
    const commutes = (s: Step) => s.kind === 'layer' && (s.layer.kind === 'maxpool' || s.layer.kind === 'flatten');
    while (at >= 0 && commutes(steps[at]!)) at--;
    const target = steps[at];
    if (target?.kind === 'block') return x;
    if (target === undefined || (target.layer.kind !== 'conv2d' && target.layer.kind !== 'dense' && target.layer.kind !== 'batchnorm')) {
      return this.refuse('follows no Conv, Gemm, MatMul or BatchNormalization to take it as its activation (Ticket Lab has no ReLU layer of its own)');
    }
    if (target.layer.activation === 'relu') return x;
    // New outputs for the steps it changes: their values are no longer the graph's pre-ReLU ones.
    const moved = steps.slice(at).map((s, k, all): Step => ({ ...s, output: k === all.length - 1 ? output : `${output}#${k}` }));
    moved[0] = { ...target, layer: { ...target.layer, activation: 'relu' }, output: moved[0]!.output };
    return { ...x, steps: [...steps.slice(0, at), ...moved] };
  }

  private add(node: OnnxNode, index: number, output: string): Act {
    const [a, b] = [this.input(node, 0), this.input(node, 1)];
    if (a.kind === 'const' && b.kind === 'const') this.refuse('adds two constants');
    if (a.kind === 'const' || b.kind === 'const') {
      const [x, bias] = (a.kind === 'act' ? [a, b] : [b, a]) as [Act, Const];
      return this.addBias(x, bias, output);
    }
    if (a.sum || b.sum) this.refuse('adds the Add of two branches without the Relu a residual block has between');
    const [s, t] = [a.shape, b.shape];
    if (s.kind !== 'image' || t.kind !== 'image' || s.h !== t.h || s.w !== t.w || s.c !== t.c) {
      this.refuse('adds two values that are not images of one shape; Ticket Lab adds branches only in residual blocks');
    }
    // The branches part where their layers do: the shorter is the shortcut (none: identity).
    let common = 0;
    while (common < a.steps.length && common < b.steps.length && a.steps[common]!.output === b.steps[common]!.output) common++;
    const [ta, tb] = [a.steps.slice(common), b.steps.slice(common)];
    if (ta.length === 0 && tb.length === 0) this.refuse('adds a value to itself');
    const inB = new Set(nodesOf(tb));
    const shared = nodesOf(ta).find((n) => inB.has(n));
    if (shared !== undefined) this.refuse(`adds two branches that both hold node ${shared} (once with its ReLU applied, once without); Ticket Lab cannot run a layer twice`);
    const [body, shortcut] = tb.length > ta.length ? [tb, ta] : [ta, tb];
    return { kind: 'act', steps: a.steps.slice(0, common), shape: s, sum: { body, shortcut, node: index } };
  }

  /** MatMul + Add, or a Conv without bias + Add: the constant is the layer's bias. */
  private addBias(x: Act, bias: Const, output: string): Act {
    const last = x.steps[x.steps.length - 1];
    const layer = last?.kind === 'layer' ? last.layer : undefined;
    const open = (layer?.kind === 'dense' && last!.kind === 'layer' && !last!.params.bias) || (layer?.kind === 'conv2d' && layer.bias === false);
    if (!open || x.sum || layer === undefined || !('activation' in layer) || layer.activation !== 'linear') {
      this.refuse('adds a constant that is not the bias of the MatMul or Conv right before it');
    }
    const width = layer.kind === 'dense' ? layer.units : layer.kind === 'conv2d' ? layer.filters : 0;
    // [units] or [1, units] for a dense layer; [c], [c, 1, 1] or [1, c, 1, 1] for a conv.
    const axis = layer.kind === 'dense' ? bias.shape.length - 1 : bias.shape.length === 1 ? 0 : bias.shape.length - 3;
    if (bias.values.length !== width || bias.shape[axis] !== width) this.refuse(`adds a constant of shape [${bias.shape.join(', ')}], not a bias of ${width}`);
    const step = last as Extract<Step, { kind: 'layer' }>;
    let withBias: PlainLayer = layer;
    if (layer.kind === 'conv2d') {
      const { bias: _none, ...rest } = layer; // a conv has a bias unless it says bias: false
      withBias = rest;
    }
    const params = { ...step.params, bias: { values: bias.values, source: bias.source } };
    return { ...x, steps: [...x.steps.slice(0, -1), { ...step, layer: withBias, output, params }] };
  }

  // ------------------------------------------------------------------------------------------
  // The network

  private network(steps: Step[], inputShape: [number, number, number], numClasses: number): ZooMatch {
    const params = new Map<string, Params>();
    const layers = this.assemble(steps, '', '', params);
    const structure = createHash('sha256').update(JSON.stringify({ layers, inputShape })).digest('hex').slice(0, 6);
    const stem = sanitize(basename(this.path, extname(this.path))).slice(0, 32) || sanitize(this.model.graph.name).slice(0, 32) || 'graph';
    const title = `ONNX graph (${describeLayers(layers)})${this.dropped ? `; its final ${this.dropped} dropped: Ticket Lab works on logits` : ''}`;
    const arch: Architecture = {
      id: `onnx:${stem}-${structure}`,
      title: title.length > 240 ? `${title.slice(0, 239)}…` : title,
      layers,
      lthRates: { conv: 0.15, fc: 0.2, output: 0.1 },
      lthScope: 'layer',
      // The LTH paper's settings for its nets of the same kind (LeNet, Conv-4): CLI defaults only.
      lthTraining: { optimizer: 'adam', learningRate: 1.2e-3, momentum: 0, weightDecay: 0, batchSize: 60, iterations: 50_000 },
    };
    if (hasConv(arch)) arch.lthTraining = { ...arch.lthTraining, learningRate: 3e-4, iterations: 25_000 };
    else if (layers.some((l) => l.kind !== 'dense' && l.kind !== 'flatten' && l.kind !== 'maxpool')) {
      // The fully connected step engine (train/engine/mlp-engine.ts) would skip such a layer.
      this.refuse('normalises or pools without any Conv; Ticket Lab\'s fully connected trainer runs only Gemm and MatMul layers');
    }
    const specs = paramSpecs(arch, inputShape, numClasses);
    const weights: WeightSet = [];
    const sourceNames: Record<string, string> = {};
    const kernelLayouts: Record<string, KernelLayout> = {};
    for (const spec of specs) {
      const param = params.get(spec.layer)?.[spec.kind];
      const values = param?.values ?? (spec.kind === 'bias' ? new Float32Array(spec.shape[0]!) : undefined);
      if (values === undefined || values.length !== spec.shape.reduce((a, b) => a * b, 1)) throw new Error(`onnx-network: no ${spec.name} of shape [${spec.shape.join(', ')}]`);
      weights.push({ name: spec.name, shape: [...spec.shape], values });
      if (param?.source !== undefined) sourceNames[spec.name] = param.source;
      if (param?.layout !== undefined) kernelLayouts[spec.name] = param.layout;
    }
    return { arch, inputShape, numClasses, specs, weights, matchedBy: 'graph', sourceNames, ...(Object.keys(kernelLayouts).length > 0 ? { kernelLayouts } : {}) };
  }

  /**
   * The steps as layer specs, named. `prefix` is the spec-name prefix of the blocks around them,
   * `strip` the part of their base names it stands for: a block is named by what its layers' names
   * share (`layer1.0.conv1`, `layer1.0.bn1` → block `layer1.0` holding `conv1`, `bn1`), so full
   * names stay the file's; a block whose layers share nothing is `block<k>`.
   */
  private assemble(steps: readonly Step[], prefix: string, strip: string, params: Map<string, Params>): LayerSpec[] {
    return steps.map((step): LayerSpec => {
      if (step.kind === 'layer') {
        if (!('name' in step.layer)) return step.layer;
        const name = step.base.slice(strip.length);
        if (params.has(`${prefix}${name}`)) this.refuse(`uses the layer ${quote(prefix + name)} twice`);
        params.set(`${prefix}${name}`, step.params);
        return { ...step.layer, name };
      }
      const names = basesOf([...step.body, ...step.shortcut]).map((b) => b.slice(strip.length));
      const shared = sharedPrefix(names);
      let block = shared;
      for (let k = 0; block === ''; k++) if (![...this.bases].some((b) => b.startsWith(`block${k}`))) block = `block${k}`;
      this.bases.add(block);
      const inner = `${prefix}${block}.`;
      const innerStrip = shared === '' ? strip : `${strip}${shared}.`;
      const body = this.assemble(step.body, inner, innerStrip, params);
      const shortcut = step.shortcut.length === 0 ? { kind: 'identity' as const } : { kind: 'projection' as const, layers: this.assemble(step.shortcut, inner, innerStrip, params) };
      return { kind: 'residual', name: block, body, shortcut };
    });
  }
}

/** Conv2d's [out, in, k, k] as TF.js's [k, k, in, out]. */
function convKernel(values: Float32Array, filters: number, inputs: number, k: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let y = 0; y < k; y++) for (let x = 0; x < k; x++) for (let c = 0; c < inputs; c++) for (let o = 0; o < filters; o++) {
    out[((y * k + x) * inputs + c) * filters + o] = values[((o * inputs + c) * k + y) * k + x]!;
  }
  return out;
}

/**
 * A dense kernel as TF.js's [in, out], from [out, in] (`transposed`: Linear, Gemm with transB = 1)
 * or [in, out]. Reading a flattened image, its rows go from PyTorch's (c, h, w) order to TF.js's (h, w, c).
 */
function denseKernel(values: Float32Array, inputs: number, units: number, transposed: boolean, image: Image | undefined): Float32Array {
  const out = new Float32Array(inputs * units);
  const channels = image?.c ?? 1;
  const pixels = inputs / channels;
  for (let r = 0; r < inputs; r++) {
    const row = (r % channels) * pixels + Math.floor(r / channels);
    for (let u = 0; u < units; u++) out[r * units + u] = values[transposed ? u * inputs + row : row * units + u]!;
  }
  return out;
}

/** The module path of a PyTorch node name: "/layer1/layer1.0/conv1/Conv" → "layer1.0.conv1" (scopes repeat their parents). */
function scopeName(nodeName: string): string {
  const parts = nodeName.split('/').filter((p) => p !== '');
  if (parts.length > 1) parts.pop();
  return parts.filter((p, i) => !parts[i + 1]?.startsWith(`${p}.`)).join('.');
}

/** Letters, digits, `_`, `-` and single inner dots: safe as a layer name inside `${layer}.kernel`. */
function sanitize(name: string): string {
  return name.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/\.{2,}/g, '.').replace(/^\.+|\.+$/g, '');
}

/** The longest dotted prefix all names share with something left of each ("a.b.c", "a.b.d" → "a.b"). */
function sharedPrefix(names: readonly string[]): string {
  const split = names.map((n) => n.split('.'));
  const shortest = Math.min(...split.map((s) => s.length));
  let n = 0;
  while (n < shortest - 1 && split.every((s) => s[n] === split[0]![n])) n++;
  return names.length === 0 ? '' : split[0]!.slice(0, n).join('.');
}

function basesOf(steps: readonly Step[]): string[] {
  return steps.flatMap((s) => (s.kind === 'block' ? basesOf([...s.body, ...s.shortcut]) : s.base === '' ? [] : [s.base]));
}

function nodesOf(steps: readonly Step[]): number[] {
  return steps.flatMap((s) => (s.kind === 'block' ? [s.node, ...nodesOf([...s.body, ...s.shortcut])] : [s.node]));
}

/** "conv 6 5×5 pad 0, pool 2, BN, FC 120-84-10": the layers for a title. */
function describeLayers(layers: readonly LayerSpec[]): string {
  const parts: string[] = [];
  for (const l of layers) {
    if (l.kind === 'dense' && parts[parts.length - 1]?.startsWith('FC ')) parts[parts.length - 1] += `-${l.units}`;
    else if (l.kind === 'dense') parts.push(`FC ${l.units}`);
    else if (l.kind === 'conv2d') parts.push(`conv ${l.filters} ${l.kernelSize}×${l.kernelSize}${l.stride ? ` stride ${l.stride}` : ''}${l.padding !== undefined ? ` pad ${l.padding}` : ''}`);
    else if (l.kind === 'batchnorm') parts.push('BN');
    else if (l.kind === 'maxpool') parts.push(`pool ${l.size}`);
    else if (l.kind === 'globalavgpool') parts.push('global avg pool');
    else if (l.kind === 'residual') parts.push(`residual [${describeLayers(l.body)}${l.shortcut.kind === 'projection' ? ` | ${describeLayers(l.shortcut.layers)}` : ''}]`);
  }
  return parts.join(', ');
}
