// Networks built from ONNX graphs PyTorch exported (tests/fixtures/onnx-graph/make_onnx_graph_fixtures.py
// wrote them, none a zoo architecture, and recorded the logits PyTorch computes): the TF.js network
// must give the same logits; its architecture must survive JSON; variants of the graphs built here
// by editing the parsed model (other ops PyTorch and other exporters write) must too; and what a
// layer cannot express is refused with an error naming the node and its op.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../core/compute/rng';
import type { ImageSplit, LoadedDataset } from '../../../core/data/datasets';
import { type FileTensor, ModelFileError } from '../../../core/formats/model-format';
import { type OnnxModel, type OnnxNode, readOnnxModel } from '../../../core/formats/onnx';
import { networkFromOnnxGraph } from '../../../core/formats/onnx-network';
import { modelInput, predictLogits } from '../../../core/formats/predict';
import { readModelFile } from '../../../core/formats/registry';
import { type ZooMatch, toPytorchTensors } from '../../../core/formats/zoo-match';
import { type Architecture, type LayerSpec, paramSpecs } from '../../../core/models/architectures';
import { initWeights } from '../../../core/models/weights';
import { sparsityBudget } from '../../../core/pruning/budget';
import { graspStrategy } from '../../../core/pruning/grasp';
import { denseMasks } from '../../../core/pruning/imp';
import { type MaskSet, countKept } from '../../../core/pruning/mask';
import { snipStrategy } from '../../../core/pruning/snip';
import type { PruningStrategy } from '../../../core/pruning/strategy';
import { synflowStrategy } from '../../../core/pruning/synflow';
import { convEngineUnsupported } from '../../../core/train/engine/conv-engine';
import { DEFAULT_OPTIMIZER } from '../../../core/train/optimizers';
import { trainMasked } from '../../../core/train/train';
import { useBackend } from '../../support/backends';
import { useTempFolder } from '../../support/temp-folder';

const FIXTURES = join(__dirname, '..', '..', 'fixtures', 'onnx-graph');
const temp = useTempFolder('ticket-lab-onnx-graph-');

interface Expected {
  file: string;
  input: string;
  opTypes: string[];
  logits: number[][];
}
const NAMES = ['mlp', 'affine', 'lenet5', 'convbn', 'resnet'] as const;
type Name = (typeof NAMES)[number];
const expected = (JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8')) as { models: Record<Name, Expected> }).models;

/** The fixture gunzipped into the temp folder, and its parsed model. */
function fixture(name: Name): { path: string; model: OnnxModel } {
  const path = join(temp(), `${name}.onnx`);
  writeFileSync(path, gunzipSync(readFileSync(join(FIXTURES, expected[name].file))));
  return { path, model: readOnnxModel(path) };
}

function inputOf(name: Name): FileTensor {
  return readModelFile(join(FIXTURES, expected[name].input)).tensors[0]!;
}

function logitsOf(match: ZooMatch, input: FileTensor): number[][] {
  return predictLogits(match, modelInput(input, match.inputShape, 'pytorch', 'input'));
}

function maxAbsError(a: number[][], b: number[][]): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  a.forEach((row, i) => {
    expect(row.length).toBe(b[i]!.length);
    row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b[i]![j]!))));
  });
  return worst;
}

/** The error building the model throws; fails unless it is a ModelFileError for `path` matching every pattern. */
function refusal(model: OnnxModel, path: string, ...patterns: RegExp[]): string {
  let error: unknown;
  try {
    networkFromOnnxGraph(model, path);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ModelFileError);
  const message = (error as Error).message;
  expect(message.startsWith(`${path}: cannot build a network from its ONNX graph: `)).toBe(true);
  for (const pattern of patterns) expect(message).toMatch(pattern);
  return message;
}

/** A deep copy to edit (typed arrays included). */
const copy = (model: OnnxModel): OnnxModel => structuredClone(model);
const nodeNamed = (model: OnnxModel, name: string): OnnxNode => model.graph.nodes.find((n) => n.name === name)!;
const initializer = (model: OnnxModel, name: string): FileTensor => model.graph.initializers.find((t) => t.name === name)!;

/** Every layer spec, those inside residual blocks included. */
function allLayers(layers: readonly LayerSpec[]): LayerSpec[] {
  return layers.flatMap((l) => (l.kind === 'residual' ? [l, ...allLayers(l.body), ...(l.shortcut.kind === 'projection' ? allLayers(l.shortcut.layers) : [])] : [l]));
}

/** Random images of one shape with labels 0–9: enough to take training steps and score weights. */
function randomDataset(shape: [number, number, number], counts: [number, number, number], seed: number): LoadedDataset {
  const split = (count: number, stream: string): ImageSplit => {
    const rng = Rng.stream(seed, stream);
    return { images: Uint8Array.from({ length: count * shape[0] * shape[1] * shape[2] }, () => rng.int(256)), labels: Uint8Array.from({ length: count }, () => rng.int(10)), count };
  };
  return {
    id: 'random', source: 'test', digest: 'none', imageShape: shape, numClasses: 10, normalization: { mean: 0.5, std: 0.25 },
    split: { seed: 0, validationSize: counts[1] }, train: split(counts[0], 'train'), validation: split(counts[1], 'validation'), test: split(counts[2], 'test'),
  };
}

beforeAll(async () => {
  await useBackend('cpu');
});

describe('networks built from ONNX graphs that torch.onnx.export wrote', () => {
  const shapes: Record<Name, [number, number, number]> = { mlp: [28, 28, 1], affine: [1, 1, 20], lenet5: [28, 28, 1], convbn: [32, 32, 3], resnet: [8, 8, 3] };
  const classes: Record<Name, number> = { mlp: 10, affine: 5, lenet5: 10, convbn: 10, resnet: 10 };

  it.each(NAMES)('%s: gives the logits PyTorch computes (|error| < 1e-4), with the specs paramSpecs gives and the file\'s names', (name) => {
    const { path, model } = fixture(name);
    expect(model.graph.nodes.map((n) => n.opType)).toEqual(expected[name].opTypes);
    const match = networkFromOnnxGraph(model, path);
    expect(match.matchedBy).toBe('graph');
    expect(match.inputShape).toEqual(shapes[name]);
    expect(match.numClasses).toBe(classes[name]);
    expect(match.arch.id).toMatch(new RegExp(`^onnx:${name}-[0-9a-f]{6}$`));
    expect(match.specs).toEqual(paramSpecs(match.arch, match.inputShape, match.numClasses));
    expect(match.weights.map((w) => [w.name, w.shape])).toEqual(match.specs.map((s) => [s.name, s.shape]));
    // Every initializer of the file becomes one tensor of the network, under its own name.
    expect(Object.values(match.sourceNames).sort()).toEqual(model.graph.initializerNames.slice().sort());
    for (const [spec, file] of Object.entries(match.sourceNames)) expect(spec.replace(/\.(kernel|bias|gamma|beta|runningMean|runningVar)$/, '')).toBe(file.replace(/\.(weight|bias|running_mean|running_var)$/, ''));
    expect(maxAbsError(logitsOf(match, inputOf(name)), expected[name].logits)).toBeLessThan(1e-4);
  });

  it('lenet5: the valid 5×5 convs pad 0, and ReLU after max pooling becomes the conv\'s activation', () => {
    const { path, model } = fixture('lenet5');
    const { arch } = networkFromOnnxGraph(model, path);
    expect(arch.layers.map((l) => l.kind)).toEqual(['conv2d', 'maxpool', 'conv2d', 'maxpool', 'flatten', 'dense', 'dense', 'dense']);
    expect(arch.layers.filter((l) => l.kind === 'conv2d')).toEqual([
      { kind: 'conv2d', name: 'conv1', filters: 6, kernelSize: 5, activation: 'relu', role: 'conv', padding: 0 },
      { kind: 'conv2d', name: 'conv2', filters: 16, kernelSize: 5, activation: 'relu', role: 'conv', padding: 0 },
    ]);
    expect(arch.layers.filter((l) => l.kind === 'dense').map((l) => l.kind === 'dense' && [l.name, l.role, l.activation])).toEqual([
      ['fc1', 'fc', 'relu'], ['fc2', 'fc', 'relu'], ['fc3', 'output', 'linear'],
    ]);
    expect(arch.title).toBe('ONNX graph (conv 6 5×5 pad 0, pool 2, conv 16 5×5 pad 0, pool 2, FC 120-84-10)');
    expect(arch.lthTraining).toMatchObject({ optimizer: 'adam', learningRate: 3e-4, batchSize: 60, iterations: 25_000 });
  });

  it('convbn: BatchNormalization takes the ReLU; a padding of floor(k/2) stays the zoo\'s default, any other is explicit', () => {
    const { path, model } = fixture('convbn');
    const { arch } = networkFromOnnxGraph(model, path);
    expect(arch.layers.slice(0, 2)).toEqual([
      { kind: 'conv2d', name: '0', filters: 8, kernelSize: 3, activation: 'linear', role: 'conv', bias: false },
      { kind: 'batchnorm', name: '1', activation: 'relu' },
    ]);
    const convs = arch.layers.filter((l) => l.kind === 'conv2d');
    expect(convs.map((l) => l.kind === 'conv2d' && [l.stride, l.padding])).toEqual([[undefined, undefined], [2, undefined], [undefined, 0]]);
  });

  it('resnet: the Add of two branches and its Relu become residual blocks named as the file names them (identity and projection shortcuts)', () => {
    const { path, model } = fixture('resnet');
    const { arch, specs } = networkFromOnnxGraph(model, path);
    const blocks = arch.layers.filter((l) => l.kind === 'residual');
    expect(blocks.map((b) => b.kind === 'residual' && [b.name, b.body.map((l) => l.kind === 'conv2d' || l.kind === 'batchnorm' ? l.name : l.kind), b.shortcut.kind])).toEqual([
      ['layer1.0', ['conv1', 'bn1', 'conv2', 'bn2'], 'identity'],
      ['layer2.0', ['conv1', 'bn1', 'conv2', 'bn2'], 'projection'],
    ]);
    expect(specs.map((s) => s.name)).toContain('layer2.0.shortcut.0.kernel');
    expect(arch.layers[arch.layers.length - 2]).toEqual({ kind: 'globalavgpool' });
    // Every conv pads floor(k/2): the WebGPU conv step engine runs it.
    expect(convEngineUnsupported(arch)).toBeNull();
    // Not with a ReLU of the body's own before the sum (the engine fuses the block's into that BatchNorm).
    const edited = copy(model);
    const add = edited.graph.nodes.findIndex((n) => n.name === '/layer1/layer1.0/Add');
    edited.graph.nodes[add]!.inputs[0] = 'inner';
    edited.graph.nodes.splice(add, 0, { opType: 'Relu', name: 'inner', domain: '', inputs: ['/layer1/layer1.0/bn2/BatchNormalization_output_0'], outputs: ['inner'], attributes: {} });
    const inner = networkFromOnnxGraph(edited, path).arch;
    expect(allLayers(inner.layers).find((l) => l.kind === 'batchnorm' && l.name === 'bn2')).toEqual({ kind: 'batchnorm', name: 'bn2', activation: 'relu' });
    expect(convEngineUnsupported(inner)).toBe('layer1.0: a ReLU before the block\'s sum');
  });

  it.each(NAMES)('%s: the architecture survives JSON (as the store keeps it) and predicts the same', (name) => {
    const { path, model } = fixture(name);
    const match = networkFromOnnxGraph(model, path);
    const arch = JSON.parse(JSON.stringify(match.arch)) as Architecture;
    expect(arch).toEqual(match.arch);
    expect(paramSpecs(arch, match.inputShape, match.numClasses)).toEqual(match.specs);
    expect(logitsOf({ ...match, arch }, inputOf(name))).toEqual(logitsOf(match, inputOf(name)));
  });

  it.each(['mlp', 'affine', 'lenet5', 'convbn', 'resnet'] as const)('%s: the weights go back to the file\'s names and layouts exactly (how masks are exported)', (name) => {
    const { path, model } = fixture(name);
    const match = networkFromOnnxGraph(model, path);
    const back = toPytorchTensors(match.specs, match.weights, { inputChannels: match.inputShape[2], sourceNames: match.sourceNames, ...(match.kernelLayouts ? { kernelLayouts: match.kernelLayouts } : {}) });
    expect(back.map((t) => t.name).sort()).toEqual(model.graph.initializerNames.slice().sort());
    for (const t of back) {
      const file = initializer(model, t.name);
      expect(t.shape).toEqual(file.shape);
      expect(Buffer.from(t.values.buffer).equals(Buffer.from(file.values.buffer))).toBe(true);
    }
  });

  it('names layers by the node\'s module scope where the weights have no module names, and blocks whose layers share none block<k>', () => {
    const { path, model } = fixture('resnet');
    /** The model with its initializers renamed (as constant folding names them, onnx::Conv_12) and, given `nodeName`, its nodes. */
    const renamed = (nodeName?: (i: number) => string) => {
      const edited = copy(model);
      const names = new Map(edited.graph.initializerNames.map((n, i) => [n, `onnx::W_${i}`]));
      for (const t of edited.graph.initializers) t.name = names.get(t.name)!;
      edited.graph.initializerNames = edited.graph.initializers.map((t) => t.name);
      edited.graph.nodes.forEach((n, i) => {
        n.inputs = n.inputs.map((x) => names.get(x) ?? x);
        if (nodeName) n.name = nodeName(i);
      });
      return edited;
    };
    const original = networkFromOnnxGraph(model, path);
    const byScope = networkFromOnnxGraph(renamed(), path);
    expect(byScope.specs.map((s) => s.name)).toEqual(original.specs.map((s) => s.name));
    expect(byScope.sourceNames['layer2.0.shortcut.0.kernel']).toBe(`onnx::W_${model.graph.initializerNames.indexOf('layer2.0.shortcut.0.weight')}`);
    const byNode = networkFromOnnxGraph(renamed((i) => `node ${i}`), path);
    expect(byNode.arch.layers.map((l) => (l.kind === 'residual' || l.kind === 'conv2d' ? l.name : l.kind))).toEqual(['node_0', 'batchnorm', 'block0', 'block1', 'globalavgpool', 'dense']);
    expect(byNode.specs.map((s) => s.name)).toContain('block1.node_15.kernel');
    expect(new Set(byNode.specs.map((s) => s.name)).size).toBe(byNode.specs.length);
    expect(maxAbsError(logitsOf(byNode, inputOf('resnet')), expected.resnet.logits)).toBeLessThan(1e-4);
  });

  it('an export of the same structure gets the same id; another file name or structure, another', () => {
    const { path, model } = fixture('lenet5');
    const id = networkFromOnnxGraph(model, path).arch.id;
    const reweighted = copy(model);
    initializer(reweighted, 'fc1.weight').values.fill(0.5);
    expect(networkFromOnnxGraph(reweighted, path).arch.id).toBe(id);
    expect(networkFromOnnxGraph(model, join(temp(), 'other.onnx')).arch.id).toMatch(/^onnx:other-/);
    const padded = copy(model);
    nodeNamed(padded, '/conv1/Conv').attributes.pads = [1, 1, 1, 1];
    expect(networkFromOnnxGraph(padded, path).arch.id).not.toBe(id);
  });
});

describe('other ways to write the same graphs', () => {
  it('Gemm with transB = 0 (the weight stored [in, out])', () => {
    const { path, model } = fixture('mlp');
    const edited = copy(model);
    for (const node of edited.graph.nodes.filter((n) => n.opType === 'Gemm')) {
      const w = initializer(edited, node.inputs[1]!);
      const [out, inputs] = w.shape as [number, number];
      const t = new Float32Array(w.values.length);
      for (let o = 0; o < out; o++) for (let i = 0; i < inputs; i++) t[i * out + o] = w.values[o * inputs + i]!;
      Object.assign(w, { shape: [inputs, out], values: t });
      node.attributes.transB = 0;
    }
    expect(maxAbsError(logitsOf(networkFromOnnxGraph(edited, path), inputOf('mlp')), expected.mlp.logits)).toBeLessThan(1e-4);
  });

  it('Identity and inference Dropout between layers, and a final Softmax, which is dropped and said so', () => {
    const { path, model } = fixture('mlp');
    const edited = copy(model);
    const nodes = edited.graph.nodes;
    const relu = nodes.findIndex((n) => n.opType === 'Relu');
    const next = nodes[relu + 1]!;
    next.inputs[0] = 'dropped';
    nodes.splice(relu + 1, 0,
      { opType: 'Identity', name: 'same', domain: '', inputs: [nodes[relu]!.outputs[0]!], outputs: ['same'], attributes: {} },
      { opType: 'Dropout', name: 'drop', domain: '', inputs: ['same'], outputs: ['dropped', 'unused mask'], attributes: { ratio: 0.5 } },
    );
    nodes[nodes.length - 1]!.outputs[0] = 'scores';
    nodes.push({ opType: 'Softmax', name: 'probabilities', domain: '', inputs: ['scores'], outputs: ['logits'], attributes: { axis: 1 } });
    const match = networkFromOnnxGraph(edited, path);
    expect(match.arch.title).toMatch(/final Softmax dropped: Ticket Lab works on logits/);
    expect(maxAbsError(logitsOf(match, inputOf('mlp')), expected.mlp.logits)).toBeLessThan(1e-4);
    // A softmax before the last layer changes what the layers after it see: refused.
    const early = copy(model);
    const first = early.graph.nodes[0]!;
    early.graph.nodes[1]!.inputs[0] = 'soft';
    early.graph.nodes.splice(1, 0, { opType: 'LogSoftmax', name: 'early', domain: '', inputs: [first.outputs[0]!], outputs: ['soft'], attributes: {} });
    refusal(early, path, /node 1 \("early", LogSoftmax\) is not the graph's last node over the classes/);
  });

  it('global average pooling as GlobalAveragePool, ReduceMean over height and width, and x.size(0) from Shape and Gather', () => {
    const { path, model } = fixture('resnet');
    const pool = (op: OnnxNode) => {
      const edited = copy(model);
      const at = edited.graph.nodes.findIndex((n) => n.opType === 'AveragePool');
      edited.graph.nodes[at] = { ...op, outputs: edited.graph.nodes[at]!.outputs };
      return edited;
    };
    const global = pool({ opType: 'GlobalAveragePool', name: 'gap', domain: '', inputs: ['/Pad_output_0'], outputs: [], attributes: {} });
    const mean = pool({ opType: 'ReduceMean', name: 'mean', domain: '', inputs: ['/Pad_output_0'], outputs: [], attributes: { axes: [-1, 2], keepdims: 1 } });
    // x.view(x.size(0), -1) with a dynamic batch: Shape → Gather(0) in place of the traced constant 2.
    const dynamic = copy(model);
    const at = dynamic.graph.nodes.findIndex((n) => n.name === '/Constant_1');
    dynamic.graph.nodes.splice(at, 1,
      { opType: 'Shape', name: 'shape', domain: '', inputs: ['/AveragePool_output_0'], outputs: ['dims'], attributes: {} },
      { opType: 'Constant', name: 'zero', domain: '', inputs: [], outputs: ['zero'], attributes: { value_int: 0 } },
      { opType: 'Gather', name: 'batch', domain: '', inputs: ['dims', 'zero'], outputs: ['/Constant_1_output_0'], attributes: { axis: 0 } },
    );
    for (const edited of [global, mean, dynamic]) {
      const match = networkFromOnnxGraph(edited, path);
      expect(allLayers(match.arch.layers).filter((l) => l.kind === 'globalavgpool')).toHaveLength(1);
      expect(maxAbsError(logitsOf(match, inputOf('resnet')), expected.resnet.logits)).toBeLessThan(1e-4);
    }
  });

  it('a 3072-feature MLP takes 32×32×3 images and reads a PyTorch-flattened (c, h, w) input as its own reference does', () => {
    const rng = Rng.stream(7, 'mlp3072');
    const random = (n: number, scale: number) => Float32Array.from({ length: n }, () => rng.normal() * scale);
    const [inputs, hidden, out] = [3072, 6, 4];
    const tensor = (name: string, shape: number[], values: Float32Array): FileTensor => ({ name, shape, dtype: 'float32', values });
    const initializers = [
      tensor('fc1.weight', [hidden, inputs], random(hidden * inputs, 0.05)), tensor('fc1.bias', [hidden], random(hidden, 0.1)),
      tensor('fc2.weight', [out, hidden], random(out * hidden, 0.5)), tensor('fc2.bias', [out], random(out, 0.1)),
    ];
    const gemm = (name: string, x: string, y: string): OnnxNode => ({ opType: 'Gemm', name, domain: '', inputs: [x, `${name}.weight`, `${name}.bias`], outputs: [y], attributes: { transB: 1 } });
    const model: OnnxModel = {
      tensors: initializers, opsetVersion: 13, irVersion: 7, producer: 'test', producerVersion: '',
      graph: {
        name: 'mlp3072', initializers, initializerNames: initializers.map((t) => t.name),
        inputs: [{ name: 'x', elemType: 1, shape: ['batch', inputs], hasShape: true }],
        outputs: [{ name: 'y', elemType: 1, shape: ['batch', out], hasShape: true }],
        nodes: [gemm('fc1', 'x', 'h'), { opType: 'Relu', name: 'relu', domain: '', inputs: ['h'], outputs: ['hr'], attributes: {} }, gemm('fc2', 'hr', 'y')],
      },
    };
    const match = networkFromOnnxGraph(model, join(temp(), 'mlp3072.onnx'));
    expect(match.inputShape).toEqual([32, 32, 3]);
    expect(match.arch.lthTraining).toMatchObject({ learningRate: 1.2e-3, iterations: 50_000 });
    const x = tensor('x', [2, inputs], random(2 * inputs, 1));
    // y = W2·relu(W1·x + b1) + b2 in float64, x as PyTorch holds it.
    const dense = (v: Float64Array, w: Float32Array, b: Float32Array, relu: boolean) =>
      Float64Array.from(b, (bias, o) => {
        let s = bias;
        for (let i = 0; i < v.length; i++) s += w[o * v.length + i]! * v[i]!;
        return relu ? Math.max(0, s) : s;
      });
    const reference = [0, 1].map((n) => {
      const h = dense(Float64Array.from(x.values.subarray(n * inputs, (n + 1) * inputs)), initializers[0]!.values, initializers[1]!.values, true);
      return Array.from(dense(h, initializers[2]!.values, initializers[3]!.values, false));
    });
    expect(maxAbsError(logitsOf(match, x), reference)).toBeLessThan(1e-4);
  });
});

describe('what a network layer cannot express is refused, naming the node and its op', () => {
  it('an op outside the list, and a node from another domain', () => {
    const { path, model } = fixture('lenet5');
    const lstm = copy(model);
    nodeNamed(lstm, '/conv1/Conv').opType = 'LSTM';
    refusal(lstm, path, /node 0 \("\/conv1\/Conv", LSTM\) is not an op Ticket Lab builds networks from \(Conv, Gemm, MatMul/);
    const sigmoid = copy(model);
    nodeNamed(sigmoid, '/Relu_2').opType = 'Sigmoid';
    refusal(sigmoid, path, /node 9 \("\/Relu_2", Sigmoid\) is not an op/);
    const custom = copy(model);
    nodeNamed(custom, '/Relu').domain = 'com.microsoft';
    refusal(custom, path, /node 1 \("\/Relu", Relu\) is from the operator domain "com\.microsoft"/);
  });

  it('Conv: dilation, groups, uneven padding, a kernel that is not square', () => {
    const { path, model } = fixture('lenet5');
    const edit = (change: (conv: OnnxNode, m: OnnxModel) => void) => {
      const edited = copy(model);
      change(nodeNamed(edited, '/conv2/Conv'), edited);
      return edited;
    };
    refusal(edit((c) => (c.attributes.dilations = [2, 2])), path, /node 3 \("\/conv2\/Conv", Conv\) has dilations \[2, 2\]/);
    refusal(edit((c) => (c.attributes.group = 2)), path, /node 3 .* has group 2/);
    refusal(edit((c) => (c.attributes.pads = [0, 0, 1, 1])), path, /node 3 .* has pads \[0, 0, 1, 1\]; Ticket Lab's conv layers pad every side equally/);
    refusal(edit((c) => (c.attributes.strides = [1, 2])), path, /has strides \[1, 2\]/);
    refusal(edit((_, m) => (initializer(m, 'conv2.weight').shape = [16, 6, 25, 1])), path, /node 3 .* has a 25×1 kernel/);
  });

  it('MaxPool with overlapping windows or pads; Gemm with alpha or transA; BatchNormalization with another epsilon', () => {
    const lenet = fixture('lenet5');
    const overlapping = copy(lenet.model);
    nodeNamed(overlapping, '/MaxPool').attributes.strides = [1, 1];
    refusal(overlapping, lenet.path, /node 2 \("\/MaxPool", MaxPool\) pools 2×2 windows at strides \[1, 1\]/);
    const padded = copy(lenet.model);
    nodeNamed(padded, '/MaxPool').attributes.pads = [1, 1, 1, 1];
    refusal(padded, lenet.path, /node 2 .* pads or dilates its windows/);
    const scaled = copy(lenet.model);
    nodeNamed(scaled, '/fc2/Gemm').attributes.alpha = 2;
    refusal(scaled, lenet.path, /node 10 \("\/fc2\/Gemm", Gemm\) has alpha 2 and beta 1/);
    const transposed = copy(lenet.model);
    nodeNamed(transposed, '/fc2/Gemm').attributes.transA = 1;
    refusal(transposed, lenet.path, /node 10 .* has transA = 1/);
    const convbn = fixture('convbn');
    const epsilon = copy(convbn.model);
    nodeNamed(epsilon, '/1/BatchNormalization').attributes.epsilon = 1e-3;
    refusal(epsilon, convbn.path, /node 1 \("\/1\/BatchNormalization", BatchNormalization\) has epsilon 0\.001/);
  });

  it('a Reshape that is not a flatten, a Relu with no layer before it, an Add of branches with no Relu after', () => {
    const lenet = fixture('lenet5');
    const reshape = copy(lenet.model);
    const shape = nodeNamed(reshape, '/Constant').attributes.value as FileTensor;
    Object.assign(shape, { shape: [3], values: Float32Array.of(-1, 16, 16) });
    refusal(reshape, lenet.path, /node 7 \("\/Reshape", Reshape\) reshapes \[n, 16, 4, 4\] to \[-1, 16, 16\]/);
    const mlp = fixture('mlp');
    const early = copy(mlp.model);
    early.graph.nodes[0]!.inputs[0] = 'r';
    early.graph.nodes.unshift({ opType: 'Relu', name: 'first', domain: '', inputs: ['input'], outputs: ['r'], attributes: {} });
    refusal(early, mlp.path, /node 0 \("first", Relu\) follows no Conv, Gemm, MatMul or BatchNormalization/);
    const resnet = fixture('resnet');
    const bare = copy(resnet.model);
    const relu = nodeNamed(bare, '/layer1/layer1.0/Relu_1');
    relu.opType = 'Identity';
    refusal(bare, resnet.path, /node 10 \("\/layer2\/layer2\.0\/conv1\/Conv", Conv\) reads the Add of two branches/);
  });

  it('graphs of more than one input or output', () => {
    const { path, model } = fixture('mlp');
    const outputs = copy(model);
    outputs.graph.outputs.push({ ...outputs.graph.outputs[0]!, name: '/1/Relu_output_0' });
    refusal(outputs, path, /has 2 outputs/);
    const inputs = copy(model);
    inputs.graph.inputs.push({ name: 'mask', elemType: 1, shape: [2, 784], hasShape: true });
    refusal(inputs, path, /takes 2 inputs besides its initializers/);
  });
});

describe('explicit conv padding', () => {
  it('sets the output size as PyTorch does: floor((h + 2p − k) / stride) + 1', () => {
    const arch = (padding: number | undefined, stride?: number): Architecture => ({
      id: 'padded', title: '', lthRates: { conv: 0.15, fc: 0.2, output: 0.1 }, lthScope: 'layer',
      lthTraining: { optimizer: 'adam', learningRate: 1e-3, momentum: 0, weightDecay: 0, batchSize: 8, iterations: 1 },
      layers: [
        { kind: 'conv2d', name: 'c', filters: 2, kernelSize: 3, activation: 'relu', role: 'conv', ...(padding === undefined ? {} : { padding }), ...(stride ? { stride } : {}) },
        { kind: 'flatten' },
        { kind: 'dense', name: 'fc', units: 10, activation: 'linear', role: 'output' },
      ],
    });
    const fanIn = (a: Architecture) => paramSpecs(a, [9, 9, 1], 10).find((s) => s.name === 'fc.kernel')!.shape[0];
    expect([fanIn(arch(undefined)), fanIn(arch(0)), fanIn(arch(1)), fanIn(arch(2)), fanIn(arch(0, 2)), fanIn(arch(undefined, 2))]).toEqual([
      9 * 9 * 2, 7 * 7 * 2, 9 * 9 * 2, 11 * 11 * 2, 4 * 4 * 2, 5 * 5 * 2,
    ]);
    expect(() => paramSpecs(arch(0), [2, 2, 1], 10)).toThrow(/shrinks its input below 1×1/);
  });

  it('is refused by the conv step engine (its kernels pad floor(k/2)), so such nets train with TF.js autodiff', () => {
    const lenet = fixture('lenet5');
    expect(convEngineUnsupported(networkFromOnnxGraph(lenet.model, lenet.path).arch)).toBe('conv1: padding 0, not 2');
    const convbn = fixture('convbn');
    expect(convEngineUnsupported(networkFromOnnxGraph(convbn.model, convbn.path).arch)).toBe('6: padding 0, not 1');
  });

  it('trains: LeNet-5 with valid convs takes masked Adam steps on TF.js autodiff, pruned weights staying zero', async () => {
    const { path, model } = fixture('lenet5');
    const { arch, specs, inputShape } = networkFromOnnxGraph(model, path);
    const dataset = randomDataset(inputShape, [32, 8, 8], 5);
    const rng = Rng.stream(6, 'masks');
    const masks: MaskSet = specs.filter((s) => s.prunable).map((s) => ({ name: s.name, shape: s.shape, bits: Uint8Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => (rng.next() < 0.5 ? 0 : 1)) }));
    const weights = initWeights(specs, 3);
    const result = await trainMasked({
      arch, specs, dataset, weights, masks, dataSeed: 1,
      schedule: { iterations: 3, batchSize: 8, evalEvery: 3, optimizer: { ...DEFAULT_OPTIMIZER, name: 'adam', learningRate: 1e-3 } },
    });
    expect(result.steps).toBe(3);
    expect(Number.isFinite(result.final.validation.loss)).toBe(true);
    const moved = masks.map((mask) => {
      const before = weights.find((w) => w.name === mask.name)!.values;
      const after = result.finalWeights.find((w) => w.name === mask.name)!.values;
      let count = 0;
      for (let i = 0; i < mask.bits.length; i++) {
        if (mask.bits[i]) count += after[i] !== before[i] ? 1 : 0;
        else expect(after[i]).toBe(0);
      }
      return [mask.name, count / mask.bits.reduce((a, b) => a + b, 0)] as const;
    });
    // Adam moves every kept weight that has a gradient: all of the padded convs' (every kernel entry
    // sees some pixel), most of the dense layers' (a unit ReLU silences on every image has none).
    expect(moved.map(([name, fraction]) => [name, fraction > (name.startsWith('conv') ? 0.99 : 0.3)])).toEqual(moved.map(([name]) => [name, true]));
  });
});

describe('pruning networks built from graphs', () => {
  it.each(['lenet5', 'resnet'] as const)('%s: SNIP, GraSP and SynFlow score through it and keep the budget', async (name) => {
    const { path, model } = fixture(name);
    const { arch, specs, inputShape, weights } = networkFromOnnxGraph(model, path);
    const dataset = randomDataset(inputShape, [60, 8, 8], 9);
    const masks = denseMasks(specs);
    const kernels = masks.map((m) => m.name);
    const budget = sparsityBudget(masks, 0.5, 'global', kernels);
    const total = masks.reduce((n, m) => n + m.bits.length, 0);
    for (const strategy of [snipStrategy, graspStrategy, synflowStrategy] as Array<PruningStrategy<unknown>>) {
      const params = strategy.params.parse(strategy === synflowStrategy ? { rounds: 3 } : { examplesPerClass: 2 });
      const pruned = await strategy.prune({ weights, masks, budget, params, seed: 4, context: { arch, specs, dataset } });
      expect([strategy.id, pruned.reduce((n, m) => n + countKept(m.bits), 0)]).toEqual([strategy.id, total / 2]);
    }
  });
});

describe('on the WebGPU conv step engine', () => {
  it('resnet: a network built from a graph whose convs pad floor(k/2) trains there as on TF.js autodiff', async () => {
    await useBackend('webgpu');
    try {
      const { path, model } = fixture('resnet');
      const { arch, specs, inputShape, weights } = networkFromOnnxGraph(model, path);
      const dataset = randomDataset(inputShape, [24, 6, 6], 8);
      const masks = denseMasks(specs);
      const train = () =>
        trainMasked({
          arch, specs, dataset, weights, masks, dataSeed: 2,
          schedule: { iterations: 3, batchSize: 6, evalEvery: 3, optimizer: { ...DEFAULT_OPTIMIZER, name: 'sgd', learningRate: 0.05, momentum: 0.9 } },
        });
      const engine = await train();
      process.env.TICKET_LAB_CONV_ENGINE = 'off';
      const autodiff = await train().finally(() => delete process.env.TICKET_LAB_CONV_ENGINE);
      const worst = engine.finalWeights.map((t, i) => {
        const reference = autodiff.finalWeights[i]!.values;
        const scale = Math.max(1e-3, ...Array.from(reference, Math.abs));
        const moved = Math.max(...Array.from(reference, (v, k) => Math.abs(v - weights[i]!.values[k]!)));
        return [t.name, Math.max(...Array.from(t.values, (v, k) => Math.abs(v - reference[k]!))) / scale, moved] as const;
      });
      // The same steps: agreement to float32 summation order; and the steps did move the weights.
      expect(worst.filter(([, error]) => error > 2e-4)).toEqual([]);
      // Not bit for bit: the engine ran, not autodiff twice (which repeats itself exactly).
      expect(Math.max(...worst.map(([, error]) => error))).toBeGreaterThan(0);
      expect(worst.find(([name]) => name === 'layer2.0.shortcut.0.kernel')![2]).toBeGreaterThan(1e-4);
    } finally {
      await useBackend('cpu');
    }
  }, 120_000);
});
