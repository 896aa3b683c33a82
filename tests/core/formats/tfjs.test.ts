// The TensorFlow.js model.json reader on models saved here by the installed TF.js (a dense and a conv
// layers model, one shard and several), on quantized manifests written by hand and checked against
// TF.js's own decodeWeights, and on hostile manifests and shards, each refused with a ModelFileError
// that names model.json and the shard or weight.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_READ_LIMITS, ModelFileError, type ReadLimits } from '../../../core/formats/model-format';
import { readTfjsModelTopology, tfjsFormat } from '../../../core/formats/tfjs';
import { type SavedTfjsModel as Saved, joinWeightData, saveTfjsModel } from '../../support/tfjs-files';

const root = mkdtempSync(join(tmpdir(), 'ticket-lab-tfjs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeAll(async () => {
  await tf.setBackend('cpu');
});

let folderNumber = 0;
/** A fresh folder for one model. */
function newFolder(): string {
  const folder = join(root, `m${++folderNumber}`);
  mkdirSync(folder);
  return folder;
}

function denseModel(): tf.Sequential {
  const model = tf.sequential();
  model.add(tf.layers.dense({ inputShape: [20], units: 16, activation: 'relu' }));
  model.add(tf.layers.dense({ units: 4 }));
  return model;
}

function convModel(): tf.Sequential {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, activation: 'relu' }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 3 }));
  return model;
}

/** The reader's tensors match the model's weights: names, shapes and exact values, in order. */
function expectSameWeights(path: string, model: tf.LayersModel, saved: Saved): void {
  const contents = tfjsFormat.read(path, DEFAULT_READ_LIMITS);
  expect(contents.format).toBe('tfjs');
  const specs = saved.artifacts.weightSpecs!;
  const weights = model.getWeights();
  expect(contents.tensors.map((t) => t.name)).toEqual(specs.map((s) => s.name));
  expect(contents.tensors.map((t) => t.name)).toEqual(model.weights.map((w) => w.originalName));
  expect(contents.tensors).toHaveLength(weights.length);
  contents.tensors.forEach((tensor, i) => {
    const weight = weights[i]!;
    expect(tensor.shape, tensor.name).toEqual(weight.shape);
    expect(tensor.dtype, tensor.name).toBe('float32');
    expect(tensor.values, tensor.name).toBeInstanceOf(Float32Array);
    expect(tensor.values, tensor.name).toEqual(weight.dataSync());
  });
}

// ---- hand-written manifests ----

interface Spec {
  name: string;
  shape: unknown;
  dtype: unknown;
  quantization?: unknown;
  group?: unknown;
}

/** model.json with `manifest` (and a topology) in a fresh folder, plus shard files; returns model.json's path. */
function writeModel(manifest: unknown, shards: Record<string, Uint8Array> = {}, extra: Record<string, unknown> = {}): string {
  const folder = newFolder();
  for (const [name, bytes] of Object.entries(shards)) {
    mkdirSync(join(folder, name, '..'), { recursive: true });
    writeFileSync(join(folder, name), bytes);
  }
  const path = join(folder, 'model.json');
  writeFileSync(path, JSON.stringify({ format: 'graph-model', modelTopology: { node: [] }, weightsManifest: manifest, ...extra }));
  return path;
}

/** One group of `weights` in weights.bin holding `bytes`. */
function oneGroup(weights: Spec[], bytes: Uint8Array, paths: unknown[] = ['weights.bin']): string {
  return writeModel([{ paths, weights }], { 'weights.bin': bytes });
}

function f32(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return joinWeightData(parts.map((p) => p.slice().buffer));
}

/** The ModelFileError reading `path` gives, its message starting with the path; fails the test otherwise. */
function refusal(path: string, limits: ReadLimits = DEFAULT_READ_LIMITS): string {
  try {
    tfjsFormat.read(path, limits);
  } catch (error) {
    expect(error).toBeInstanceOf(ModelFileError);
    const message = (error as Error).message;
    expect(message.startsWith(`${path}: `), message).toBe(true);
    return message;
  }
  throw new Error(`${path} was read, but should have been refused`);
}

const DENSE_SPECS: Spec[] = [{ name: 'fc1/kernel', shape: [2, 3], dtype: 'float32' }, { name: 'fc1/bias', shape: [3], dtype: 'float32' }];
const DENSE_BYTES = f32([1, 2, 3, 4, 5, 6, 0.5, -0.5, 0.25]);

describe('tfjs reader on models saved by TF.js', () => {
  it('is the tfjs format', () => {
    expect(tfjsFormat.id).toBe('tfjs');
    expect(tfjsFormat.title).toBe('TensorFlow.js model.json');
  });

  it('reads a dense layers model: names, [in, out] kernels and values as TF.js has them', async () => {
    const model = denseModel();
    const saved = await saveTfjsModel(model, newFolder());
    expectSameWeights(saved.path, model, saved);
    const contents = tfjsFormat.read(saved.path, DEFAULT_READ_LIMITS);
    expect(contents.tensors.map((t) => t.shape)).toEqual([[20, 16], [16], [16, 4], [4]]);
    expect(contents.tensors[0]!.name).toMatch(/^dense_Dense\d+\/kernel$/);
    expect(readTfjsModelTopology(saved.path)).toMatchObject({ format: 'layers-model', modelTopology: { class_name: 'Sequential' } });
  });

  it('reads a conv layers model with [kh, kw, in, out] kernels', async () => {
    const model = convModel();
    const saved = await saveTfjsModel(model, newFolder());
    expectSameWeights(saved.path, model, saved);
    const contents = tfjsFormat.read(saved.path, DEFAULT_READ_LIMITS);
    expect(contents.tensors.map((t) => t.shape)).toEqual([[3, 3, 1, 4], [4], [36, 3], [3]]);
  });

  it('reads a model split over shard files, weights straddling them, one in a subfolder', async () => {
    const model = denseModel();
    const saved = await saveTfjsModel(model, newFolder(), ['group1-shard1of2.bin', 'shards/group1-shard2of2.bin']);
    // 1,616 bytes cut at 808: inside the first kernel's 1,280 bytes, so one weight spans both files.
    expect(saved.bytes.length).toBe(4 * (20 * 16 + 16 + 16 * 4 + 4));
    expectSameWeights(saved.path, model, saved);

    const conv = convModel();
    const three = await saveTfjsModel(conv, newFolder(), ['a.bin', 'b.bin', './c.bin']);
    expectSameWeights(three.path, conv, three);
  });

  it('reads weights spread over several manifest groups, each group sliced on its own', () => {
    const path = writeModel([
      { paths: ['group1-shard1of1.bin'], weights: DENSE_SPECS },
      { paths: ['group2-shard1of2.bin', 'group2-shard2of2.bin'], weights: [{ name: 'fc2/kernel', shape: [3, 1], dtype: 'float32' }] },
      { paths: [], weights: [{ name: 'empty', shape: [0, 5], dtype: 'float32' }] },
    ], {
      'group1-shard1of1.bin': DENSE_BYTES,
      'group2-shard1of2.bin': f32([7, 8]).subarray(0, 6),
      'group2-shard2of2.bin': concat(f32([7, 8]).subarray(6), f32([9])),
    });
    const contents = tfjsFormat.read(path, DEFAULT_READ_LIMITS);
    expect(contents.tensors.map((t) => [t.name, t.shape, Array.from(t.values)])).toEqual([
      ['fc1/kernel', [2, 3], [1, 2, 3, 4, 5, 6]],
      ['fc1/bias', [3], [0.5, -0.5, 0.25]],
      ['fc2/kernel', [3, 1], [7, 8, 9]],
      ['empty', [0, 5], []],
    ]);
  });
});

describe('tfjs reader on hand-written manifests', () => {
  it('dequantizes uint8, uint16 and float16 as TF.js decodeWeights does, and reads int32, bool and scalars', async () => {
    const u8 = Uint8Array.from([0, 1, 2, 255]);
    const u16 = new Uint8Array(Uint16Array.from([0, 4, 65535]).buffer);
    // 1, -2, 0.333251953125, +infinity, the smallest subnormal 2^-24, 0.5.
    const f16 = new Uint8Array(Uint16Array.from([0x3c00, 0xc000, 0x3555, 0x7c00, 0x0001, 0x3800]).buffer);
    const roundedInt = Uint8Array.from([1, 2, 5]);
    const i32 = new Uint8Array(Int32Array.from([-7, 123456]).buffer);
    const bool = Uint8Array.from([0, 1, 1]);
    const specs: Spec[] = [
      { name: 'q8', shape: [2, 2], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.5, min: -1 } },
      { name: 'q16', shape: [3], dtype: 'float32', quantization: { dtype: 'uint16', scale: 0.1, min: 10 } },
      { name: 'h', shape: [2, 3], dtype: 'float32', quantization: { dtype: 'float16' } },
      { name: 'qi', shape: [3], dtype: 'int32', quantization: { dtype: 'uint8', scale: 0.3, min: 0 } },
      { name: 'i', shape: [2], dtype: 'int32' },
      { name: 'b', shape: [3], dtype: 'bool' },
      { name: 'scalar', shape: [], dtype: 'float32' },
    ];
    const bytes = concat(u8, u16, f16, roundedInt, i32, bool, f32([42]));
    const contents = tfjsFormat.read(oneGroup(specs, bytes), DEFAULT_READ_LIMITS);

    const fround = (values: number[]) => values.map(Math.fround);
    expect(contents.tensors.map((t) => [t.name, t.dtype, t.shape, Array.from(t.values)])).toEqual([
      ['q8', 'uint8', [2, 2], [-1, -0.5, 0, 126.5]],
      ['q16', 'uint16', [3], fround([10, 4 * 0.1 + 10, 65535 * 0.1 + 10])],
      ['h', 'float16', [2, 3], [1, -2, 0.333251953125, Infinity, 2 ** -24, 0.5]],
      ['qi', 'uint8', [3], [0, 1, 2]],
      ['i', 'int32', [2], [-7, 123456]],
      ['b', 'bool', [3], [0, 1, 1]],
      ['scalar', 'float32', [], [42]],
    ]);

    // TF.js itself, on the same bytes and specs.
    const decoded = tf.io.decodeWeights(bytes.slice().buffer, specs as tf.io.WeightsManifestEntry[]);
    for (const tensor of contents.tensors) {
      expect(Array.from(tensor.values), tensor.name).toEqual(Array.from(decoded[tensor.name]!.dataSync()));
    }
  });

  it('skips optimizer state but checks its bytes, as TF.js model loading does', () => {
    const specs: Spec[] = [
      DENSE_SPECS[0]!,
      { name: 'fc1/kernel/m', shape: [2, 3], dtype: 'float32', group: 'optimizer' },
      { ...DENSE_SPECS[1]!, group: 'model' },
    ];
    const path = oneGroup(specs, concat(f32([1, 2, 3, 4, 5, 6]), f32([0, 0, 0, 0, 0, 0]), f32([7, 8, 9])));
    expect(tfjsFormat.read(path, DEFAULT_READ_LIMITS).tensors.map((t) => [t.name, Array.from(t.values)])).toEqual([
      ['fc1/kernel', [1, 2, 3, 4, 5, 6]],
      ['fc1/bias', [7, 8, 9]],
    ]);
  });

  it('gives the topology and its kind, from format or, when absent, from the topology', () => {
    const graph = writeModel([], {}, { format: 'graph-model', modelTopology: { node: [{ name: 'x', op: 'Placeholder' }] } });
    expect(readTfjsModelTopology(graph)).toEqual({ format: 'graph-model', modelTopology: { node: [{ name: 'x', op: 'Placeholder' }] } });
    const oldGraph = writeModel([], {}, { format: undefined, modelTopology: { node: [], versions: { producer: 1 } } });
    expect(readTfjsModelTopology(oldGraph).format).toBe('graph-model');
    const keras = writeModel([], {}, { format: undefined, modelTopology: { keras_version: '2.1', model_config: { class_name: 'Sequential' } } });
    expect(readTfjsModelTopology(keras).format).toBe('layers-model');

    for (const extra of [{ modelTopology: undefined }, { format: 'saved-model' }, { format: undefined, modelTopology: { something: 1 } }]) {
      const path = writeModel([], {}, extra);
      expect(() => readTfjsModelTopology(path)).toThrow(ModelFileError);
      expect(() => readTfjsModelTopology(path)).toThrow(path);
    }
    // The weights alone still read without a topology.
    expect(tfjsFormat.read(writeModel([], {}, { modelTopology: undefined }), DEFAULT_READ_LIMITS).tensors).toEqual([]);
  });

  it('detects JSON objects in *.json files, and nothing else', () => {
    const text = (s: string) => new TextEncoder().encode(s);
    const json = text('{"modelTopology": {"class_name": "Sequential", "config": {"name": "sequential_1", "layers": []}}}').subarray(0, 64);
    expect(tfjsFormat.detect(json, 'model.json')).toBe(true);
    expect(tfjsFormat.detect(json, 'mnist-cnn.JSON')).toBe(true);
    expect(tfjsFormat.detect(text(' \r\n\t{"weightsManifest": []}'), 'x.json')).toBe(true);
    expect(tfjsFormat.detect(concat(Uint8Array.from([0xef, 0xbb, 0xbf]), text('\n{}')), 'x.json')).toBe(true);
    expect(tfjsFormat.detect(text('{"name": "caf\u00e9"}'), 'x.json')).toBe(true);

    expect(tfjsFormat.detect(json, 'model.txt')).toBe(false);
    expect(tfjsFormat.detect(json, 'model.json.bin')).toBe(false);
    expect(tfjsFormat.detect(text('[{"paths": []}]'), 'weights_manifest.json')).toBe(false);
    expect(tfjsFormat.detect(text('   '), 'x.json')).toBe(false);
    expect(tfjsFormat.detect(new Uint8Array(0), 'x.json')).toBe(false);
    // A safetensors file whose header is 123 bytes starts with '{' (0x7b): its zero bytes give it away.
    const header = text(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`.padEnd(123, ' '));
    const safetensors = concat(Uint8Array.from([123, 0, 0, 0, 0, 0, 0, 0]), header);
    expect(tfjsFormat.detect(safetensors.subarray(0, 64), 'weights.json')).toBe(false);
    expect(tfjsFormat.detect(Uint8Array.from([0x7b, 0x00, 0x01]), 'x.json')).toBe(false);
  });
});

describe('tfjs reader on hostile files', () => {
  it('refuses shard paths that leave model.json\'s folder: "..", absolute, URLs, symlinks', () => {
    const outside = mkdtempSync(join(tmpdir(), 'ticket-lab-tfjs-outside-'));
    try {
      writeFileSync(join(outside, 'weights.bin'), DENSE_BYTES);
      for (const [listed, why] of [
        ['../weights.bin', '".."'],
        ['shards/../../weights.bin', '".."'],
        ['..\\weights.bin', '".."'],
        [join(outside, 'weights.bin'), 'absolute'],
        ['/etc/passwd', 'absolute'],
        ['C:\\weights.bin', 'absolute'],
        ['file:///etc/passwd', 'URL'],
        ['https://example.com/weights.bin', 'URL'],
        ['', 'empty'],
      ]) {
        const message = refusal(oneGroup(DENSE_SPECS, DENSE_BYTES, [listed]));
        expect(message, listed).toContain(why!);
        if (listed !== '') expect(message, listed).toContain(JSON.stringify(listed));
      }
      expect(refusal(oneGroup(DENSE_SPECS, DENSE_BYTES, [7]))).toContain('not a string');

      const linked = oneGroup(DENSE_SPECS, new Uint8Array(0), ['link.bin']);
      symlinkSync(join(outside, 'weights.bin'), join(linked, '..', 'link.bin'));
      expect(refusal(linked)).toMatch(/shard "link.bin".*outside model.json's folder/);

      // A link that stays inside the folder reads.
      const inside = oneGroup(DENSE_SPECS, DENSE_BYTES, ['alias.bin']);
      symlinkSync('weights.bin', join(inside, '..', 'alias.bin'));
      expect(tfjsFormat.read(inside, DEFAULT_READ_LIMITS).tensors).toHaveLength(2);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('refuses a missing shard, a shard listed twice and a shard that is a folder', () => {
    expect(refusal(oneGroup(DENSE_SPECS, DENSE_BYTES, ['weights.bin', 'group1-shard2of2.bin']))).toMatch(/shard "group1-shard2of2.bin".*ENOENT/);
    expect(refusal(oneGroup(DENSE_SPECS, DENSE_BYTES, ['weights.bin', './weights.bin']))).toMatch(/shard "\.\/weights.bin".*listed before/);
    const folderShard = writeModel([{ paths: ['sub'], weights: DENSE_SPECS }], { 'sub/x.bin': DENSE_BYTES });
    expect(refusal(folderShard)).toMatch(/shard "sub".*not a file/);
  });

  it('refuses shards shorter or longer than the manifest says, naming the weight and shards', async () => {
    const short = oneGroup(DENSE_SPECS, DENSE_BYTES.subarray(0, DENSE_BYTES.length - 1));
    expect(refusal(short)).toMatch(/weight "fc1\/bias" needs bytes 24 to 36 .* shards \("weights.bin"\) hold only 35 bytes/);
    const long = oneGroup(DENSE_SPECS, concat(DENSE_BYTES, Uint8Array.from([0])));
    expect(refusal(long)).toMatch(/shards of weightsManifest\[0\] \("weights.bin"\) hold 37 bytes, but its weights need 36/);
    const empty = oneGroup(DENSE_SPECS, new Uint8Array(0));
    expect(refusal(empty)).toContain('"fc1/kernel" needs bytes 0 to 24');

    // A real model whose second shard lost its last byte.
    const model = denseModel();
    const saved = await saveTfjsModel(model, newFolder(), ['group1-shard1of2.bin', 'group1-shard2of2.bin']);
    writeFileSync(join(saved.folder, 'group1-shard2of2.bin'), saved.bytes.subarray(808, saved.bytes.length - 1));
    expect(refusal(saved.path)).toMatch(/\/bias" needs bytes 1600 to 1616 .* \("group1-shard1of2.bin", "group1-shard2of2.bin"\) hold only 1615 bytes/);
  });

  it('refuses huge shapes against the limits before reading a shard or allocating', () => {
    // No shard file exists: the refusal must come from the manifest alone.
    const huge = writeModel([{ paths: ['missing.bin'], weights: [{ name: 'big', shape: [2 ** 26, 2 ** 26], dtype: 'float32' }] }]);
    expect(refusal(huge)).toMatch(/weight "big" with shape \[67108864,67108864\] brings the model past \d+ elements/);
    const overflow = writeModel([{ paths: ['missing.bin'], weights: [{ name: 'big', shape: [2 ** 40, 2 ** 40, 2 ** 40], dtype: 'float32' }] }]);
    expect(refusal(overflow)).toContain('"big"');

    const tight: ReadLimits = { ...DEFAULT_READ_LIMITS, maxTotalElements: 8 };
    expect(refusal(oneGroup(DENSE_SPECS, DENSE_BYTES), tight)).toMatch(/weight "fc1\/bias" .* past 8 elements/);
    const fewBytes: ReadLimits = { ...DEFAULT_READ_LIMITS, maxFileBytes: 30 };
    expect(refusal(oneGroup(DENSE_SPECS, DENSE_BYTES), fewBytes)).toMatch(/weight "fc1\/bias" .* past 30 bytes/);
    // Optimizer state is not allocated, but its bytes still count.
    const optimizer = writeModel([{ paths: ['missing.bin'], weights: [{ name: 'm', shape: [2 ** 30, 2 ** 30], dtype: 'float32', group: 'optimizer' }] }]);
    expect(refusal(optimizer)).toMatch(/weight "m" .* bytes/);
  });

  it('refuses shards larger in total than maxFileBytes before reading them', () => {
    const path = writeModel([{ paths: ['a.bin', 'b.bin'], weights: [{ name: 'w', shape: [4], dtype: 'float32' }] }], {
      'a.bin': new Uint8Array(20),
      'b.bin': new Uint8Array(20),
    });
    expect(refusal(path, { ...DEFAULT_READ_LIMITS, maxFileBytes: 30 })).toMatch(/shards up to shard "b.bin" .* 40 bytes, more than the 30/);
  });

  it('refuses bad dtypes, quantizations, names and shapes, naming the weight', () => {
    const bad = (spec: Spec, bytes: Uint8Array = f32([1, 2])) => refusal(oneGroup([spec], bytes));
    expect(bad({ name: 'w', shape: [2], dtype: 'float64' })).toMatch(/weight "w" has dtype "float64", which this reader does not know/);
    expect(bad({ name: 'w', shape: [2], dtype: 'string' })).toMatch(/weight "w" has dtype string/);
    expect(bad({ name: 'w', shape: [1], dtype: 'complex64' })).toMatch(/weight "w" has dtype complex64/);
    expect(bad({ name: 'w', shape: [2], dtype: 'constructor' })).toContain('does not know');
    expect(bad({ name: 'w', shape: [2], dtype: 7 })).toContain('does not know');
    expect(bad({ name: 'w', shape: [8], dtype: 'float32', quantization: { dtype: 'int4', scale: 1, min: 0 } })).toMatch(/weight "w" is quantized as "int4"/);
    expect(bad({ name: 'w', shape: [8], dtype: 'float32', quantization: { dtype: 'uint8', scale: 1 } })).toMatch(/weight "w" .* scale 1 and min undefined/);
    expect(bad({ name: 'w', shape: [8], dtype: 'float32', quantization: { dtype: 'uint8', scale: 'x', min: 0 } })).toContain('finite numbers');
    expect(bad({ name: 'w', shape: [8], dtype: 'bool', quantization: { dtype: 'uint8', scale: 1, min: 0 } })).toContain('not bool');
    expect(bad({ name: 'w', shape: [4], dtype: 'int32', quantization: { dtype: 'float16' } })).toContain('not int32');
    expect(bad({ name: 'w', shape: [4], dtype: 'float32', quantization: 'uint8' })).toContain('not an object');
    expect(bad({ name: 'w', shape: [-2], dtype: 'float32' })).toMatch(/weight "w" has shape \[-2\]/);
    expect(bad({ name: 'w', shape: [1.5], dtype: 'float32' })).toContain('not a non-negative integer');
    expect(bad({ name: 'w', shape: '2', dtype: 'float32' })).toContain('not an array');
    expect(bad({ name: 'w', shape: [2], dtype: 'float32', group: 3 })).toContain('group 3');
    expect(bad({ name: 5 as unknown as string, shape: [2], dtype: 'float32' })).toContain('named 5');
    expect(refusal(oneGroup([{ name: 'w', shape: [1], dtype: 'float32' }, { name: 'w', shape: [1], dtype: 'float32' }], f32([1, 2])))).toContain('"w" is listed twice');
  });

  it('refuses model.json that is not JSON, not an object, or lacks a weightsManifest', () => {
    const folder = newFolder();
    const cases: Array<[string, string | Uint8Array, string | RegExp]> = [
      ['garbage.json', 'this is not json', 'not valid UTF-8 JSON'],
      ['truncated.json', '{"weightsManifest": [', 'not valid UTF-8 JSON'],
      ['latin1.json', Uint8Array.from([0x7b, 0x22, 0xe9, 0x22, 0x3a, 0x31, 0x7d]), 'not valid UTF-8 JSON'],
      ['array.json', '[{"paths": [], "weights": []}]', 'an array'],
      ['number.json', '42', 'the JSON is 42'],
      ['null.json', 'null', 'the JSON is null'],
      ['none.json', '{"modelTopology": {}}', 'has no weightsManifest'],
      ['object.json', '{"weightsManifest": {"paths": []}}', 'weightsManifest is {"paths":[]}, not an array'],
      ['group.json', '{"weightsManifest": [7]}', 'weightsManifest[0] is 7'],
      ['paths.json', '{"weightsManifest": [{"paths": "w.bin", "weights": []}]}', 'has paths "w.bin"'],
      ['weights.json', '{"weightsManifest": [{"paths": [], "weights": {}}]}', 'has weights {}'],
      ['entry.json', '{"weightsManifest": [{"paths": [], "weights": [null]}]}', 'lists the weight null'],
    ];
    for (const [name, content, expected] of cases) {
      const path = join(folder, name);
      writeFileSync(path, content);
      expect(refusal(path), name).toMatch(expected);
    }
    expect(refusal(join(folder, 'absent.json'))).toContain('ENOENT');
    expect(refusal(folder)).toContain('not a file');
    const big = join(folder, 'big.json');
    writeFileSync(big, JSON.stringify({ weightsManifest: [], padding: 'x'.repeat(200) }));
    expect(refusal(big, { ...DEFAULT_READ_LIMITS, maxHeaderBytes: 100 })).toMatch(/model.json is \d+ bytes, more than the 100/);
  });

  it('refuses more weights than maxTensors before checking them', async () => {
    const model = denseModel();
    const saved = await saveTfjsModel(model, newFolder());
    expect(refusal(saved.path, { ...DEFAULT_READ_LIMITS, maxTensors: 3 })).toMatch(/lists 4 weights, more than the 3/);
    expect(tfjsFormat.read(saved.path, { ...DEFAULT_READ_LIMITS, maxTensors: 4 }).tensors).toHaveLength(4);
    // Counted over all groups.
    const twoGroups = writeModel([{ paths: [], weights: [{}, {}] }, { paths: [], weights: [{}, {}] }]);
    expect(refusal(twoGroups, { ...DEFAULT_READ_LIMITS, maxTensors: 3 })).toContain('lists 4 weights');
  });
});
