// The ONNX reader on models PyTorch exported (tests/fixtures/onnx/make_onnx_fixtures.py wrote them
// and recorded each initializer's sums, the nodes, and the logits PyTorch computes), and on models
// built here field by field with a small protobuf writer: every data type and attribute kind,
// detection by content, and hostile files, each refused with a ModelFileError that names the file.
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../core/compute/rng';
import { DEFAULT_READ_LIMITS, type FileTensor, ModelFileError, type ReadLimits } from '../../../core/formats/model-format';
import { npyFormat } from '../../../core/formats/npy';
import { type OnnxAttributeValue, type OnnxGraph, type OnnxModel, onnxFormat, readOnnxModel } from '../../../core/formats/onnx';
import { tensorSums } from '../../../core/formats/registry';
import { useTempFolder } from '../../support/temp-folder';

const FIXTURES = join(__dirname, '..', '..', 'fixtures', 'onnx');
const temp = useTempFolder('ticket-lab-onnx-');

interface ExpectedFile {
  opsetVersion: number;
  producer: string;
  producerVersion: string;
  initializers: Array<{ name: string; dims: number[]; dtype: string; sum: number; absSum: number }>;
  nodes: Array<{ opType: string; attributes: Record<string, number | number[]>; parameters: string[] }>;
  inputs: Array<{ name: string; elemType: number; shape: Array<number | string> }>;
  outputs: Array<{ name: string; elemType: number; shape: Array<number | string> }>;
  logits: number[][];
}
const expected = JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8')) as { inputs: Record<string, string>; files: Record<string, ExpectedFile> };
const FIXTURE_FILES = Object.keys(expected.files);

// ---------------------------------------------------------------------------------------------
// A protobuf writer: just enough to build ONNX models, honest or not.

type Bytes = Uint8Array | number[];

function cat(...parts: Bytes[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A varint; negative numbers as their 64-bit two's complement, as protobuf writes int64. */
function varint(value: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? low | 0x80 : low);
  } while (v > 0n);
  return out;
}

const key = (field: number, wire: number) => varint(field * 8 + wire);
const pbInt = (field: number, value: number | bigint) => cat(key(field, 0), varint(value));
const utf8 = (text: string) => new TextEncoder().encode(text);
const pbLen = (field: number, payload: Bytes | string) => {
  const bytes = typeof payload === 'string' ? utf8(payload) : Uint8Array.from(payload);
  return cat(key(field, 2), varint(bytes.length), bytes);
};
const pbF32 = (field: number, value: number) => cat(key(field, 5), le('f32', [value]));
const pbPackedInts = (field: number, values: Array<number | bigint>) => pbLen(field, cat(...values.map(varint)));

type Kind = 'f64' | 'f32' | 'u16' | 'i64' | 'u8';
/** Little-endian bytes of `values` stored as `kind`. */
function le(kind: Kind, values: Array<number | bigint>): Uint8Array {
  const size = { f64: 8, f32: 4, u16: 2, i64: 8, u8: 1 }[kind];
  const out = new Uint8Array(size * values.length);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => {
    if (kind === 'f64') view.setFloat64(size * i, Number(v), true);
    else if (kind === 'f32') view.setFloat32(size * i, Number(v), true);
    else if (kind === 'u16') view.setUint16(size * i, Number(v), true);
    else if (kind === 'i64') view.setBigInt64(size * i, BigInt(v), true);
    else view.setUint8(i, Number(v));
  });
  return out;
}

// ONNX messages (payloads; the caller puts each in its field).
const FLOAT = 1;
const UINT8 = 2;
const INT8 = 3;
const UINT16 = 4;
const INT16 = 5;
const INT32 = 6;
const INT64 = 7;
const STRING = 8;
const BOOL = 9;
const FLOAT16 = 10;
const DOUBLE = 11;
const UINT32 = 12;
const UINT64 = 13;
const COMPLEX64 = 14;
const BFLOAT16 = 16;

function tensorProto(t: { name?: string; dims?: Array<number | bigint>; type?: number; raw?: Bytes; fields?: Bytes[] }): Uint8Array {
  return cat(
    t.dims && t.dims.length > 0 ? pbPackedInts(1, t.dims) : [],
    t.type !== undefined ? pbInt(2, t.type) : [],
    t.name !== undefined ? pbLen(8, t.name) : [],
    t.raw !== undefined ? pbLen(9, t.raw) : [],
    ...(t.fields ?? []),
  );
}

/** A float32 initializer with raw_data. */
const floats = (name: string, dims: number[], values: number[]) => tensorProto({ name, dims, type: FLOAT, raw: le('f32', values) });

/** An attribute: name, value field(s), and the AttributeType unless left out. */
function attribute(name: string, type: number | undefined, ...values: Bytes[]): Uint8Array {
  return cat(pbLen(1, name), ...values, type !== undefined ? pbInt(20, type) : []);
}

function nodeProto(n: { op: string; name?: string; inputs?: string[]; outputs?: string[]; attributes?: Bytes[]; domain?: string; extra?: Bytes[] }): Uint8Array {
  return cat(
    ...(n.inputs ?? []).map((i) => pbLen(1, i)),
    ...(n.outputs ?? []).map((o) => pbLen(2, o)),
    n.name !== undefined ? pbLen(3, n.name) : [],
    pbLen(4, n.op),
    ...(n.attributes ?? []).map((a) => pbLen(5, a)),
    n.domain !== undefined ? pbLen(7, n.domain) : [],
    ...(n.extra ?? []),
  );
}

/** A ValueInfoProto of a tensor: numbers are dim_value, strings dim_param, null an empty dimension; shape null leaves the shape out. */
function valueInfo(name: string, elemType: number, shape: Array<number | string | null> | null): Uint8Array {
  const dims = (shape ?? []).map((d) => pbLen(1, d === null ? [] : typeof d === 'number' ? pbInt(1, d) : pbLen(2, d)));
  const tensorType = cat(pbInt(1, elemType), shape === null ? [] : pbLen(2, cat(...dims)));
  return cat(pbLen(1, name), pbLen(2, pbLen(1, tensorType)));
}

function graphProto(g: { name?: string; nodes?: Bytes[]; initializers?: Bytes[]; inputs?: Bytes[]; outputs?: Bytes[]; extra?: Bytes[] }): Uint8Array {
  return cat(
    ...(g.nodes ?? []).map((n) => pbLen(1, n)),
    pbLen(2, g.name ?? 'g'),
    ...(g.initializers ?? []).map((t) => pbLen(5, t)),
    ...(g.inputs ?? []).map((v) => pbLen(11, v)),
    ...(g.outputs ?? []).map((v) => pbLen(12, v)),
    ...(g.extra ?? []),
  );
}

function modelProto(graph: Bytes, m: { irVersion?: number; opset?: number; opsetDomain?: string; extra?: Bytes[] } = {}): Uint8Array {
  return cat(
    pbInt(1, m.irVersion ?? 8),
    pbLen(2, 'ticket-lab-test'),
    pbLen(3, '0.1'),
    pbLen(7, graph),
    pbLen(8, cat(pbLen(1, m.opsetDomain ?? ''), pbInt(2, m.opset ?? 17))),
    ...(m.extra ?? []),
  );
}

/** A model whose graph holds just these initializers. */
const withInitializers = (...tensors: Bytes[]) => modelProto(graphProto({ initializers: tensors }));

let fileNumber = 0;
function write(bytes: Uint8Array, name = `m${++fileNumber}.onnx`): string {
  const path = join(temp(), name);
  writeFileSync(path, bytes);
  return path;
}

const read = (bytes: Uint8Array, limits: ReadLimits = DEFAULT_READ_LIMITS): OnnxModel => readOnnxModel(write(bytes), limits);

/** The ModelFileError reading `bytes` gives; fails the test if it reads or throws anything else. */
function refusal(bytes: Uint8Array, limits: ReadLimits = DEFAULT_READ_LIMITS): string {
  const path = write(bytes);
  let message: string | undefined;
  for (const reader of [() => onnxFormat.read(path, limits), () => readOnnxModel(path, limits)]) {
    try {
      reader();
    } catch (error) {
      expect(error).toBeInstanceOf(ModelFileError);
      const text = (error as Error).message;
      expect(text.startsWith(`${path}: `)).toBe(true);
      message ??= text;
      expect(text).toBe(message);
      continue;
    }
    throw new Error(`${path} was read, but should have been refused`);
  }
  return message!;
}

const tight = (limits: Partial<ReadLimits>): ReadLimits => ({ ...DEFAULT_READ_LIMITS, ...limits });
const fixture = (name: string) => join(FIXTURES, name);
const attrs = (value: Record<string, OnnxAttributeValue>) => ({ ...value });

// ---------------------------------------------------------------------------------------------
// A tiny interpreter for the fixtures' operators, in float64: the logits it computes from the
// tensors and attributes read must be the ones PyTorch computed.

interface Value { shape: number[]; data: Float64Array }

function run(model: OnnxModel, input: FileTensor): Value {
  const env = new Map<string, Value>();
  for (const t of model.tensors) env.set(t.name, { shape: t.shape, data: Float64Array.from(t.values) });
  env.set(model.graph.inputs[0]!.name, { shape: input.shape, data: Float64Array.from(input.values) });
  const get = (name: string | undefined) => env.get(name!)!;
  const ints = (value: OnnxAttributeValue | undefined, fallback: number[]) => (value === undefined ? fallback : (value as number[]));
  for (const node of model.graph.nodes) {
    const x = get(node.inputs[0]);
    const a = node.attributes;
    let y: Value;
    switch (node.opType) {
      case 'Gemm': {
        const [w, b] = [get(node.inputs[1]), get(node.inputs[2])];
        expect(a.transA ?? 0).toBe(0);
        const transB = a.transB === 1;
        const [m, k] = x.shape as [number, number];
        const n = transB ? w.shape[0]! : w.shape[1]!;
        y = { shape: [m, n], data: new Float64Array(m * n) };
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let p = 0; p < k; p++) s += x.data[i * k + p]! * w.data[transB ? j * k + p : p * n + j]!;
            y.data[i * n + j] = (a.alpha as number) * s + (a.beta as number) * b.data[j]!;
          }
        }
        break;
      }
      case 'Relu':
        y = { shape: x.shape, data: x.data.map((v) => Math.max(0, v)) };
        break;
      case 'Flatten': {
        const axis = a.axis as number;
        const outer = x.shape.slice(0, axis).reduce((p, d) => p * d, 1);
        y = { shape: [outer, x.data.length / outer], data: x.data };
        break;
      }
      case 'Conv':
      case 'MaxPool': {
        const conv = node.opType === 'Conv';
        const w = conv ? get(node.inputs[1]) : undefined;
        const bias = conv ? get(node.inputs[2]) : undefined;
        const [kh, kw] = a.kernel_shape as [number, number];
        const [pt, pl, pb, pr] = ints(a.pads, [0, 0, 0, 0]) as [number, number, number, number];
        const [sh, sw] = ints(a.strides, [1, 1]) as [number, number];
        expect(ints(a.dilations, [1, 1])).toEqual([1, 1]);
        if (conv) expect(a.group).toBe(1);
        const [batch, channels, h, wd] = x.shape as [number, number, number, number];
        const outC = conv ? w!.shape[0]! : channels;
        const oh = Math.floor((h + pt + pb - kh) / sh) + 1;
        const ow = Math.floor((wd + pl + pr - kw) / sw) + 1;
        y = { shape: [batch, outC, oh, ow], data: new Float64Array(batch * outC * oh * ow) };
        for (let bi = 0; bi < batch; bi++) {
          for (let o = 0; o < outC; o++) {
            for (let i = 0; i < oh; i++) {
              for (let j = 0; j < ow; j++) {
                let acc = conv ? bias!.data[o]! : -Infinity;
                for (let c = conv ? 0 : o; c < (conv ? channels : o + 1); c++) {
                  for (let u = 0; u < kh; u++) {
                    for (let v = 0; v < kw; v++) {
                      const r = i * sh + u - pt;
                      const q = j * sw + v - pl;
                      if (r < 0 || r >= h || q < 0 || q >= wd) continue;
                      const xv = x.data[((bi * channels + c) * h + r) * wd + q]!;
                      acc = conv ? acc + xv * w!.data[((o * channels + c) * kh + u) * kw + v]! : Math.max(acc, xv);
                    }
                  }
                }
                y.data[((bi * outC + o) * oh + i) * ow + j] = acc;
              }
            }
          }
        }
        break;
      }
      default:
        throw new Error(`no interpreter for ${node.opType}`);
    }
    env.set(node.outputs[0]!, y);
  }
  return get(model.graph.outputs[0]!.name);
}

// ---------------------------------------------------------------------------------------------

describe('ONNX models exported by PyTorch', () => {
  it.each(FIXTURE_FILES)('%s: initializers with their names, shapes and sums', (file) => {
    const want = expected.files[file]!;
    const model = readOnnxModel(fixture(file), DEFAULT_READ_LIMITS);
    expect(model.producer).toBe(want.producer);
    expect(model.producerVersion).toBe(want.producerVersion);
    expect(model.opsetVersion).toBe(want.opsetVersion);
    expect(model.tensors.map((t) => t.name)).toEqual(want.initializers.map((t) => t.name));
    expect(model.graph.initializerNames).toEqual(want.initializers.map((t) => t.name));
    for (const [i, t] of model.tensors.entries()) {
      const w = want.initializers[i]!;
      expect(t.shape, t.name).toEqual(w.dims);
      expect(t.dtype, t.name).toBe(w.dtype);
      expect(t.values, t.name).toBeInstanceOf(Float32Array);
      const sums = tensorSums(t);
      expect(Math.abs(sums.sum - w.sum), t.name).toBeLessThan(1e-4);
      expect(Math.abs(sums.absSum - w.absSum), t.name).toBeLessThan(1e-4);
    }
    // The format's read gives the same tensors.
    const contents = onnxFormat.read(fixture(file), DEFAULT_READ_LIMITS);
    expect(contents.format).toBe('onnx');
    expect(contents.tensors).toEqual(model.tensors);
  });

  it.each(FIXTURE_FILES)('%s: the nodes in order with their attributes and weights, wired input to output', (file) => {
    const want = expected.files[file]!;
    const { graph } = readOnnxModel(fixture(file), DEFAULT_READ_LIMITS);
    expect(graph.nodes.map((n) => n.opType)).toEqual(want.nodes.map((n) => n.opType));
    for (const [i, node] of graph.nodes.entries()) {
      expect(attrs(node.attributes), node.opType).toEqual(want.nodes[i]!.attributes);
      expect(node.inputs.filter((name) => graph.initializerNames.includes(name))).toEqual(want.nodes[i]!.parameters);
      expect(node.domain).toBe('');
      expect(node.name).not.toBe('');
      // A chain: each node reads what the one before wrote.
      expect(node.inputs[0]).toBe(i === 0 ? graph.inputs[0]!.name : graph.nodes[i - 1]!.outputs[0]);
    }
    expect(graph.nodes[graph.nodes.length - 1]!.outputs).toEqual([graph.outputs[0]!.name]);
    expect(graph.inputs).toEqual(want.inputs.map((v) => ({ ...v, hasShape: true })));
    expect(graph.outputs).toEqual(want.outputs.map((v) => ({ ...v, hasShape: true })));
  });

  it('reads the attributes the exporter wrote: Conv, MaxPool, Flatten and Gemm', () => {
    const conv = readOnnxModel(fixture('conv.onnx'), DEFAULT_READ_LIMITS).graph.nodes;
    expect(conv.map((n) => n.opType)).toEqual(['Conv', 'Relu', 'MaxPool', 'Flatten', 'Gemm']);
    expect(attrs(conv[0]!.attributes)).toEqual({ dilations: [1, 1], group: 1, kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] });
    expect(attrs(conv[2]!.attributes)).toEqual({ ceil_mode: 0, kernel_shape: [2, 2], pads: [0, 0, 0, 0], strides: [2, 2] });
    expect(conv[3]!.attributes.axis).toBe(1);
    expect(attrs(conv[4]!.attributes)).toEqual({ alpha: 1, beta: 1, transB: 1 });
    const mlp = readOnnxModel(fixture('mlp.onnx'), DEFAULT_READ_LIMITS);
    expect(mlp.graph.nodes.map((n) => [n.opType, n.attributes.transB])).toEqual([['Gemm', 1], ['Relu', undefined], ['Gemm', 1]]);
    expect(mlp.graph.inputs).toEqual([{ name: 'input', elemType: 1, shape: [2, 20], hasShape: true }]);
    // Exported with a dynamic batch axis: the dimension's name, not a number.
    const folded = readOnnxModel(fixture('mlp_folded.onnx'), DEFAULT_READ_LIMITS);
    expect(folded.opsetVersion).toBe(13);
    expect(folded.graph.inputs[0]!.shape).toEqual(['batch', 20]);
    expect(folded.graph.outputs[0]!.shape).toEqual(['batch', 4]);
  });

  it.each(FIXTURE_FILES)('%s: the graph run on the read weights gives the logits PyTorch computed', (file) => {
    const input = npyFormat.read(fixture(expected.inputs[file]!), DEFAULT_READ_LIMITS).tensors[0]!;
    const logits = run(readOnnxModel(fixture(file), DEFAULT_READ_LIMITS), input);
    const want = expected.files[file]!.logits;
    expect(logits.shape).toEqual([want.length, want[0]!.length]);
    want.flat().forEach((v, i) => expect(Math.abs(logits.data[i]! - v)).toBeLessThan(1e-4));
  });
});

describe('ONNX models built field by field', () => {
  it('converts every data type, from raw_data and from the typed fields, packed or not', () => {
    const model = read(withInitializers(
      tensorProto({ name: 'f32_raw', dims: [2], type: FLOAT, raw: le('f32', [1.5, -2]) }),
      // float_data packed, then unpacked: the values follow one another.
      tensorProto({ name: 'f32_typed', dims: [3], type: FLOAT, fields: [pbLen(4, le('f32', [0.5, -3])), pbF32(4, 7)] }),
      tensorProto({ name: 'f64_raw', dims: [2], type: DOUBLE, raw: le('f64', [1.25, -1e300]) }),
      tensorProto({ name: 'f64_typed', dims: [2], type: DOUBLE, fields: [pbLen(10, le('f64', [0.125, 3]))] }),
      tensorProto({ name: 'i64_raw', dims: [2], type: INT64, raw: le('i64', [-5n, 2n ** 40n]) }),
      tensorProto({ name: 'i64_typed', dims: [3], type: INT64, fields: [pbPackedInts(7, [-5, 2 ** 40]), pbInt(7, 3)] }),
      tensorProto({ name: 'i32', dims: [2], type: INT32, fields: [pbPackedInts(5, [-7, 123456])] }),
      tensorProto({ name: 'i16', dims: [2], type: INT16, fields: [pbPackedInts(5, [-32768, 32767])] }),
      tensorProto({ name: 'i8', dims: [2], type: INT8, fields: [pbPackedInts(5, [-128, 127])] }),
      tensorProto({ name: 'i8_raw', dims: [2], type: INT8, raw: [0x80, 0x7f] }),
      tensorProto({ name: 'u16', dims: [2], type: UINT16, fields: [pbPackedInts(5, [65535, 0])] }),
      tensorProto({ name: 'u8', dims: [2], type: UINT8, raw: [255, 0] }),
      tensorProto({ name: 'bool', dims: [3], type: BOOL, fields: [pbPackedInts(5, [0, 1, 1])] }),
      // 16-bit floats in int32_data are their bit patterns: 1, -2 (and 0xc000 written as the signed -16384).
      tensorProto({ name: 'f16', dims: [3], type: FLOAT16, fields: [pbPackedInts(5, [0x3c00, 0xc000, -16384])] }),
      tensorProto({ name: 'f16_raw', dims: [2], type: FLOAT16, raw: le('u16', [0x3555, 0x7c00]) }),
      tensorProto({ name: 'bf16', dims: [2], type: BFLOAT16, fields: [pbPackedInts(5, [0x3f80, 0xc040])] }),
      tensorProto({ name: 'u32', dims: [1], type: UINT32, fields: [pbPackedInts(11, [3_000_000_000])] }),
      tensorProto({ name: 'u64', dims: [2], type: UINT64, fields: [pbPackedInts(11, [2n ** 53n, 2n ** 64n - 1n])] }),
      tensorProto({ name: 'scalar', type: FLOAT, raw: le('f32', [42]) }),
      tensorProto({ name: 'empty', dims: [0, 3], type: FLOAT }),
    ));
    const want: Array<[string, string, number[], number[]]> = [
      ['f32_raw', 'float32', [2], [1.5, -2]],
      ['f32_typed', 'float32', [3], [0.5, -3, 7]],
      ['f64_raw', 'float64', [2], [1.25, -Infinity]],
      ['f64_typed', 'float64', [2], [0.125, 3]],
      ['i64_raw', 'int64', [2], [-5, 2 ** 40]],
      ['i64_typed', 'int64', [3], [-5, 2 ** 40, 3]],
      ['i32', 'int32', [2], [-7, 123456]],
      ['i16', 'int16', [2], [-32768, 32767]],
      ['i8', 'int8', [2], [-128, 127]],
      ['i8_raw', 'int8', [2], [-128, 127]],
      ['u16', 'uint16', [2], [65535, 0]],
      ['u8', 'uint8', [2], [255, 0]],
      ['bool', 'bool', [3], [0, 1, 1]],
      ['f16', 'float16', [3], [1, -2, -2]],
      ['f16_raw', 'float16', [2], [0.333251953125, Infinity]],
      ['bf16', 'bfloat16', [2], [1, -3]],
      ['u32', 'uint32', [1], [3_000_000_000]],
      ['u64', 'uint64', [2], [2 ** 53, 2 ** 64]],
      ['scalar', 'float32', [], [42]],
      ['empty', 'float32', [0, 3], []],
    ];
    expect(model.tensors.map((t) => t.name)).toEqual(want.map(([name]) => name));
    for (const [i, [name, dtype, shape, values]] of want.entries()) {
      const t = model.tensors[i]!;
      expect(t.dtype, name).toBe(dtype);
      expect(t.shape, name).toEqual(shape);
      expect(Array.from(t.values), name).toEqual(values);
    }
  });

  it('reads every attribute kind, with or without its type, and keeps odd names as plain keys', () => {
    const subgraph = graphProto({
      name: 'body',
      nodes: [nodeProto({ op: 'Add', inputs: ['x', 'bias'], outputs: ['y'] })],
      initializers: [floats('bias', [1], [0.5])],
      inputs: [valueInfo('x', FLOAT, [1])],
      outputs: [valueInfo('y', FLOAT, [1])],
    });
    const node = nodeProto({
      op: 'Custom',
      name: 'n0',
      domain: 'org.example',
      inputs: ['a', '', 'c'],
      outputs: ['out'],
      attributes: [
        attribute('alpha', 1, pbF32(2, 0.25)),
        attribute('axis', 2, pbInt(3, -1)),
        attribute('mode', 3, pbLen(4, 'constant')),
        attribute('value', 4, pbLen(5, floats('', [2], [1, 2]))),
        attribute('then_branch', 5, pbLen(6, subgraph)),
        attribute('scales', 6, pbLen(7, le('f32', [1, 0.5])), pbF32(7, 2)),
        attribute('pads', 7, pbPackedInts(8, [-1, 2 ** 40, 0]), pbInt(8, 127), pbInt(8, 128)),
        attribute('names', 8, pbLen(9, 'a'), pbLen(9, '')),
        attribute('tensors', 9, pbLen(10, floats('t0', [1], [3])), pbLen(10, floats('t1', [1], [4]))),
        attribute('graphs', 10, pbLen(11, graphProto({ name: 'g0' })), pbLen(11, graphProto({ name: 'g1' }))),
        // No type (files before IR version 2): the field that is set tells.
        attribute('old_int', undefined, pbInt(3, 5)),
        attribute('old_floats', undefined, pbLen(7, le('f32', [1.5]))),
        // A set type with its value left out is the default; a kind this reader does not decode is null.
        attribute('zero', 2),
        attribute('sparse', 11, pbLen(22, [])),
        attribute('__proto__', 2, pbInt(3, 9)),
        attribute('constructor', 3, pbLen(4, 'x')),
      ],
    });
    const model = read(modelProto(graphProto({ nodes: [node] })));
    const n = model.graph.nodes[0]!;
    expect([n.opType, n.name, n.domain, n.inputs, n.outputs]).toEqual(['Custom', 'n0', 'org.example', ['a', '', 'c'], ['out']]);
    const a = n.attributes;
    expect(Object.keys(a)).toEqual(['alpha', 'axis', 'mode', 'value', 'then_branch', 'scales', 'pads', 'names', 'tensors', 'graphs', 'old_int', 'old_floats', 'zero', 'sparse', '__proto__', 'constructor']);
    expect([a.alpha, a.axis, a.mode, a.scales, a.pads, a.names, a.old_int, a.old_floats, a.zero, a.sparse]).toEqual([
      0.25, -1, 'constant', [1, 0.5, 2], [-1, 2 ** 40, 0, 127, 128], ['a', ''], 5, [1.5], 0, null,
    ]);
    expect(a.__proto__).toBe(9);
    expect(a.constructor).toBe('x');
    expect(Object.getPrototypeOf(a)).toBe(null);
    const value = a.value as FileTensor;
    expect([value.name, value.shape, value.dtype, Array.from(value.values)]).toEqual(['', [2], 'float32', [1, 2]]);
    expect((a.tensors as FileTensor[]).map((t) => [t.name, Array.from(t.values)])).toEqual([['t0', [3]], ['t1', [4]]]);
    const body = a.then_branch as OnnxGraph;
    expect(body.name).toBe('body');
    expect(body.nodes.map((x) => [x.opType, x.inputs, x.outputs])).toEqual([['Add', ['x', 'bias'], ['y']]]);
    expect(body.initializerNames).toEqual(['bias']);
    expect(Array.from(body.initializers[0]!.values)).toEqual([0.5]);
    expect(body.inputs).toEqual([{ name: 'x', elemType: FLOAT, shape: [1], hasShape: true }]);
    expect((a.graphs as OnnxGraph[]).map((g) => g.name)).toEqual(['g0', 'g1']);
    // A subgraph's initializers are its own, not the model's.
    expect(model.tensors).toEqual([]);
  });

  it('reads value infos with fixed, named and unknown dimensions, no shape, or no tensor type', () => {
    const sequence = cat(pbLen(1, 'seq'), pbLen(2, pbLen(4, pbLen(1, pbLen(1, pbInt(1, FLOAT))))));
    const model = read(modelProto(graphProto({
      inputs: [valueInfo('x', FLOAT, ['batch', 3, null]), valueInfo('scalar', INT64, []), valueInfo('unranked', FLOAT16, null), sequence],
      outputs: [valueInfo('y', DOUBLE, [1])],
    })));
    expect(model.graph.inputs).toEqual([
      { name: 'x', elemType: FLOAT, shape: ['batch', 3, null], hasShape: true },
      { name: 'scalar', elemType: INT64, shape: [], hasShape: true },
      { name: 'unranked', elemType: FLOAT16, shape: [], hasShape: false },
      { name: 'seq', elemType: null, shape: [], hasShape: false },
    ]);
    expect(model.graph.outputs).toEqual([{ name: 'y', elemType: DOUBLE, shape: [1], hasShape: true }]);
    expect(model.irVersion).toBe(8);
    expect(model.producer).toBe('ticket-lab-test');
    expect(model.producerVersion).toBe('0.1');
  });

  it('skips unknown fields of every wire type at every level, and reads the default opset only', () => {
    const unknown = cat(pbInt(900, 2n ** 64n - 1n), key(901, 1), le('f64', [1]), pbLen(902, [1, 2, 3]), pbF32(903, 1));
    const model = read(modelProto(graphProto({
      nodes: [nodeProto({ op: 'Relu', inputs: ['w'], outputs: ['y'], attributes: [cat(attribute('k', 2, pbInt(3, 4)), unknown)], extra: [unknown] })],
      initializers: [cat(floats('w', [2], [1, -1]), unknown, pbLen(12, 'a doc string'))],
      inputs: [cat(valueInfo('w', FLOAT, [2]), unknown)],
      extra: [unknown, pbLen(13, valueInfo('y', FLOAT, [2])), pbLen(10, 'doc')],
    }), { opsetDomain: 'ai.onnx', opset: 12, extra: [unknown, pbLen(8, cat(pbLen(1, 'com.microsoft'), pbInt(2, 1))), pbLen(14, cat(pbLen(1, 'k'), pbLen(2, 'v')))] }));
    expect(model.opsetVersion).toBe(12);
    expect(model.graph.nodes[0]!.attributes.k).toBe(4);
    expect(model.tensors.map((t) => [t.name, Array.from(t.values)])).toEqual([['w', [1, -1]]]);
    expect(model.graph.inputs[0]!.shape).toEqual([2]);
    // No opset import at all.
    expect(read(cat(pbInt(1, 3), pbLen(7, graphProto({})))).opsetVersion).toBe(null);
  });

  it('reads a 10-byte varint (the largest 64-bit value) and nesting well within the bound', () => {
    expect(read(modelProto(graphProto({}), { irVersion: -1 })).irVersion).toBe(-1);
    let graph = graphProto({ name: 'leaf', initializers: [floats('w', [1], [1])] });
    for (let level = 0; level < 15; level++) graph = graphProto({ name: `level${level}`, nodes: [nodeProto({ op: 'If', attributes: [attribute('then_branch', 5, pbLen(6, graph))] })] });
    let g = read(modelProto(graph)).graph;
    for (let level = 14; level >= 0; level--) {
      expect(g.name).toBe(`level${level}`);
      g = g.nodes[0]!.attributes.then_branch as OnnxGraph;
    }
    expect(g.name).toBe('leaf');
  });
});

describe('ONNX detection', () => {
  const head = (bytes: Uint8Array) => bytes.subarray(0, 64);

  it('detects ONNX models by content, whatever their name', () => {
    for (const file of FIXTURE_FILES) {
      const bytes = readFileSync(fixture(file));
      expect(onnxFormat.detect(head(bytes), file), file).toBe(true);
      expect(onnxFormat.detect(head(bytes), 'weights.bin'), file).toBe(true);
    }
    const small = withInitializers(floats('w', [1], [1]));
    expect(small.length).toBeLessThan(64);
    expect(onnxFormat.detect(small, 'x')).toBe(true);
    // A truncated model is still ONNX: reading it says what is wrong.
    expect(onnxFormat.detect(head(readFileSync(fixture('conv.onnx'))).subarray(0, 20), 'x')).toBe(true);
    expect(onnxFormat.id).toBe('onnx');
    expect(onnxFormat.title).toBe('ONNX');
  });

  it('takes a model without ir_version only when it is named .onnx', () => {
    const bare = cat(pbLen(2, 'producer'), pbLen(7, graphProto({ nodes: [nodeProto({ op: 'Relu', inputs: ['x'], outputs: ['y'] })] })));
    expect(onnxFormat.detect(head(bare), 'model.onnx')).toBe(true);
    expect(onnxFormat.detect(head(bare), 'MODEL.ONNX')).toBe(true);
    expect(onnxFormat.detect(head(bare), 'model.bin')).toBe(false);
    expect(read(bare).graph.nodes[0]!.opType).toBe('Relu');
  });

  it('does not claim safetensors, NumPy, zip, pickle, JSON, text or noise', () => {
    const safetensors = (length: number) => cat(le('i64', [BigInt(length)]), utf8('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'));
    const npy = utf8("\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }");
    npy[0] = 0x93;
    const zip = Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0, 0, 8, 0, 0x7b, 0, 0, 0, 0, 0]);
    const pickle = Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]);
    const json = utf8('{"format": "graph-model", "modelTopology": {}}');
    const text = utf8('Bob wrote this file: "a model", he said.\n');
    const colon = utf8(': not a graph, just text that starts with a colon');
    let state = 12345;
    const noise = Uint8Array.from({ length: 64 }, () => (state = (state * 1103515245 + 12345) % 2 ** 31) >> 23);
    const cases: Array<[string, Uint8Array]> = [
      ['safetensors', safetensors(56)], ['safetensors 0x108', safetensors(0x108)], ['safetensors 0x0208', safetensors(0x0208)],
      ['npy', npy], ['zip', zip], ['pickle', pickle], ['json', json], ['text', text], ['colon', colon], ['noise', noise],
      ['empty', new Uint8Array(0)], ['ir_version only', Uint8Array.from([0x08, 0x07])], ['ir_version 0', cat(pbInt(1, 0), pbLen(2, 'pytorch'))],
      ['ir_version 200', cat(pbInt(1, 200), pbLen(2, 'pytorch'))], ['unknown field after ir_version', cat(pbInt(1, 7), pbLen(9, 'x'))],
      ['wrong wire type after ir_version', cat(pbInt(1, 7), pbInt(2, 1))], ['group after ir_version', cat(pbInt(1, 7), key(2, 3))],
    ];
    for (const [what, bytes] of cases) {
      expect(onnxFormat.detect(head(bytes), 'model.onnx'), what).toBe(false);
      expect(onnxFormat.detect(head(bytes), 'x.bin'), what).toBe(false);
    }
  });
});

describe('ONNX reader on hostile files', () => {
  const weights = floats('fc.weight', [2, 2], [1, 2, 3, 4]);

  it('refuses a truncated file, wherever it ends', () => {
    const bytes = readFileSync(fixture('conv.onnx'));
    for (const length of [1, 3, 20, 200, bytes.length / 2, bytes.length - 1]) {
      expect(refusal(bytes.subarray(0, Math.floor(length)))).toMatch(/: the file is truncated or damaged at byte \d+: (field \d+ claims \d+ bytes, but only \d+ are left in its message|the data ends inside a varint)\.$/);
    }
    expect(refusal(new Uint8Array(0))).toMatch(/the file is empty/);
  });

  it('refuses a length-delimited field that runs past the end of its message, before slicing', () => {
    // The node's name claims 100 bytes; the node holds 3 after the length.
    const node = cat(key(3, 2), varint(100), utf8('abc'));
    expect(refusal(modelProto(graphProto({ nodes: [node] })))).toMatch(/truncated or damaged at byte \d+: field 3 claims 100 bytes, but only 3 are left in its message/);
    // A length of 2^63: checked as a 64-bit number, never sliced.
    expect(refusal(cat(pbInt(1, 7), key(7, 2), varint(2n ** 63n), [1, 2]))).toMatch(/field 7 claims 9223372036854775808 bytes, but only 2 are left/);
    // A packed field whose bytes end inside a varint.
    expect(refusal(withInitializers(cat(pbLen(1, [0x80]), pbInt(2, FLOAT), pbLen(8, 'w'))))).toMatch(/the packed data ends inside a varint/);
    expect(refusal(withInitializers(tensorProto({ name: 'w', dims: [2], type: FLOAT, fields: [pbLen(4, [0, 0, 0, 0, 0])] })))).toMatch(/packed field 4 is 5 bytes, not a multiple of 4/);
  });

  it('refuses varints longer than 10 bytes or wider than 64 bits', () => {
    expect(refusal(cat(key(1, 0), Array(10).fill(0xff), [0x01]))).toMatch(/damaged or not ONNX at byte 1: a varint runs longer than 10 bytes/);
    expect(refusal(cat(key(1, 0), Array(9).fill(0xff), [0x02]))).toMatch(/a varint is wider than 64 bits/);
    expect(refusal(withInitializers(tensorProto({ name: 'w', dims: [1], type: FLOAT, fields: [pbLen(1, [...Array(10).fill(0x80), 0])] })))).toMatch(/a varint runs longer than 10 bytes/);
    expect(refusal(cat(Array(6).fill(0xff), [0x01]))).toMatch(/the tag \d+ is wider than 32 bits/);
  });

  it('refuses groups (wire types 3 and 4), undefined wire types and field number 0', () => {
    expect(refusal(cat(pbInt(1, 7), key(7, 3), key(7, 4)))).toMatch(/at byte 2: field 7 is a group \(wire type 3\), which this reader does not accept/);
    expect(refusal(modelProto(graphProto({ nodes: [cat(nodeProto({ op: 'Relu' }), key(5, 4))] })))).toMatch(/field 5 is a group \(wire type 4\)/);
    expect(refusal(cat(pbInt(1, 7), key(7, 6)))).toMatch(/field 7 has wire type 6, which protobuf does not define/);
    expect(refusal(cat(pbInt(1, 7), [0x02, 0x00]))).toMatch(/field number 0 is not a valid field number/);
  });

  it('refuses messages nested past the bound, found as they are read', () => {
    let graph = graphProto({ name: 'leaf' });
    for (let level = 0; level < 30; level++) graph = graphProto({ nodes: [nodeProto({ op: 'If', attributes: [attribute('then_branch', 5, pbLen(6, graph))] })] });
    expect(refusal(modelProto(graph))).toMatch(/damaged or not ONNX at byte \d+: messages are nested more than 64 levels deep/);
  });

  it('refuses raw_data whose length does not match shape × dtype, and typed values that do not match the shape', () => {
    expect(refusal(withInitializers(tensorProto({ name: 'fc.weight', dims: [2, 3], type: FLOAT, raw: le('f32', [1, 2, 3, 4, 5]) })))).toMatch(/initializer "fc\.weight" has 20 bytes of raw_data, but shape \[2, 3\] of FLOAT needs 24/);
    expect(refusal(withInitializers(tensorProto({ name: 'h', dims: [2], type: FLOAT16, raw: le('f32', [1, 2]) })))).toMatch(/"h" has 8 bytes of raw_data, but shape \[2\] of FLOAT16 needs 4/);
    expect(refusal(withInitializers(tensorProto({ name: 'w', dims: [3], type: FLOAT, fields: [pbLen(4, le('f32', [1, 2]))] })))).toMatch(/"w" has 2 values in float_data, but shape \[3\] needs 3/);
    expect(refusal(withInitializers(tensorProto({ name: 'w', dims: [2], type: FLOAT })))).toMatch(/"w" has 0 values in float_data, but shape \[2\] needs 2/);
    expect(refusal(withInitializers(tensorProto({ name: 'w', dims: [2], type: FLOAT, fields: [pbPackedInts(7, [1, 2])] })))).toMatch(/"w" stores its values in int64_data, but a FLOAT tensor keeps them in float_data or raw_data/);
    expect(refusal(withInitializers(tensorProto({ name: 'w', dims: [1], type: FLOAT, raw: le('f32', [1]), fields: [pbF32(4, 1)] })))).toMatch(/"w" has both raw_data and typed value fields/);
    expect(refusal(withInitializers(tensorProto({ name: 'b', dims: [1], type: BOOL, fields: [pbPackedInts(5, [2])] })))).toMatch(/"b" holds the value 2 in int32_data, out of range for its type/);
    expect(refusal(withInitializers(tensorProto({ name: 'u', dims: [1], type: UINT32, fields: [pbPackedInts(11, [2 ** 32])] })))).toMatch(/"u" holds the value 4294967296 in uint64_data, out of range for UINT32/);
  });

  it('refuses a negative dimension, and a huge shape before allocating anything', () => {
    expect(refusal(withInitializers(tensorProto({ name: 'w', dims: [2, -3], type: FLOAT, raw: le('f32', [1]) })))).toMatch(/initializer "w" has the dimension -3, which is negative/);
    // 2^62 elements under the default limits: an allocation first would throw a RangeError instead.
    expect(refusal(withInitializers(tensorProto({ name: 'w', dims: [2 ** 31, 2 ** 31], type: FLOAT, raw: le('f32', [1]) })))).toMatch(/"w" with shape \[2147483648, 2147483648\] brings the file past \d+ elements/);
    expect(refusal(withInitializers(tensorProto({ name: 'w', dims: [2n ** 63n - 1n], type: FLOAT, raw: le('f32', [1]) })))).toMatch(/"w" with shape \[9223372036854775807\] brings the file past/);
    // Tight limits count over all tensors of the file, attribute tensors included.
    const file = withInitializers(floats('a', [2, 3], [1, 2, 3, 4, 5, 6]), floats('b', [4], [1, 2, 3, 4]));
    expect(refusal(file, tight({ maxTotalElements: 9 }))).toMatch(/initializer "b" with shape \[4\] brings the file past 9 elements/);
    expect(read(file, tight({ maxTotalElements: 10 })).tensors).toHaveLength(2);
    const constant = (n: number) => nodeProto({ op: 'Constant', outputs: ['c'], attributes: [attribute('value', 4, pbLen(5, floats('', [n], Array(n).fill(1))))] });
    expect(refusal(modelProto(graphProto({ nodes: [constant(11)] })), tight({ maxTotalElements: 10 }))).toMatch(/the graph, node 0 \("Constant"\): attribute "value": tensor "" with shape \[11\] brings the file past 10 elements/);
    // The nodes come before the initializers here: the constant's 8 elements are counted first.
    const both = modelProto(graphProto({ nodes: [constant(8)], initializers: [floats('a', [3], [1, 2, 3])] }));
    expect(refusal(both, tight({ maxTotalElements: 10 }))).toMatch(/initializer "a" with shape \[3\] brings the file past 10 elements/);
    expect(read(both, tight({ maxTotalElements: 11 })).tensors).toHaveLength(1);
    // Typed values are counted as they come, before the shape is known.
    const unpacked = Array.from({ length: 20 }, () => pbF32(4, 1));
    expect(refusal(withInitializers(tensorProto({ dims: [20], type: FLOAT, fields: [...unpacked, pbLen(8, 'w')] })), tight({ maxTotalElements: 10 }))).toMatch(/initializer at byte \d+ stores more than the 10 elements this reader accepts/);
  });

  it('reads initializers kept in an external data file beside the model, and refuses data outside its folder or range', () => {
    const entry = (k: string, v: string) => pbLen(13, cat(pbLen(1, k), pbLen(2, v)));
    const external = (name: string, dims: number[], entries: Array<[string, string]>, extra: Bytes[] = [pbInt(14, 1)]) =>
      tensorProto({ name, dims, type: FLOAT, fields: [...entries.map(([k, v]) => entry(k, v)), ...extra] });
    // PyTorch 2's exporter: the weights one after another in model.onnx.data, each with its offset and length.
    writeFileSync(join(temp(), 'weights.bin'), Buffer.from(new Float32Array([9, 1, 2, 3, 4, 5, 6]).buffer));
    const model = read(withInitializers(
      external('fc.weight', [2, 2], [['location', 'weights.bin'], ['offset', '4'], ['length', '16']]),
      external('fc.bias', [2], [['location', 'weights.bin'], ['offset', '20']]),
      floats('inline', [1], [7]),
    ));
    expect(model.tensors.map((t) => [t.name, [...t.values]])).toEqual([['fc.weight', [1, 2, 3, 4]], ['fc.bias', [5, 6]], ['inline', [7]]]);

    const one = (entries: Array<[string, string]>, extra?: Bytes[]) => refusal(withInitializers(external('w', [2], entries, extra)));
    expect(one([['location', '../weights.bin']])).toMatch(/initializer "w" keeps its data at "\.\.\/weights\.bin", outside the model's folder/);
    expect(one([['location', '/etc/passwd']])).toMatch(/keeps its data at "\/etc\/passwd", outside the model's folder/);
    symlinkSync('/etc/hostname', join(temp(), 'link.bin'));
    expect(one([['location', 'link.bin']])).toMatch(/keeps its data at "link\.bin", a link out of the model's folder/);
    expect(one([['location', 'missing.bin']])).toMatch(/keeps its data in "missing\.bin", which cannot be read \(ENOENT\)/);
    expect(one([['location', 'weights.bin'], ['offset', '24']])).toMatch(/"w" needs bytes 24 to 32 of "weights\.bin", which has 28/);
    expect(one([['location', 'weights.bin'], ['length', '12']])).toMatch(/"w" has 12 bytes of external data, but its shape and type need 8/);
    expect(one([['location', 'weights.bin'], ['offset', '-4']])).toMatch(/external data offset "-4", not a byte count/);
    expect(one([['offset', '0']])).toMatch(/"w" has external data without a location/);
    expect(one([['location', 'weights.bin']], [pbInt(14, 1), pbLen(9, le('f32', [1, 2]))])).toMatch(/"w" has external data and values in the file/);
    expect(one([['location', 'weights.bin']], [])).toMatch(/"w" has external_data entries and data_location 0: they disagree/);
    expect(refusal(withInitializers(tensorProto({ name: 'w', dims: [1], type: FLOAT, fields: [pbInt(14, 1)] })))).toMatch(/"w" has external_data entries and data_location 1: they disagree/);
    expect(refusal(withInitializers(tensorProto({ name: 'w', dims: [1], type: FLOAT, fields: [pbInt(14, 7)] })))).toMatch(/"w" has data_location 7, which onnx.proto does not define/);
  });

  it('refuses data types it does not read, naming the tensor', () => {
    expect(refusal(withInitializers(tensorProto({ name: 'labels', dims: [1], type: STRING, fields: [pbLen(6, 'cat')] })))).toMatch(/initializer "labels" has data type STRING, which this reader does not read \(it reads FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, BOOL, FLOAT16, DOUBLE, UINT32, UINT64, BFLOAT16\)/);
    expect(refusal(withInitializers(tensorProto({ name: 'z', dims: [1], type: COMPLEX64, raw: le('f32', [1, 0]) })))).toMatch(/"z" has data type COMPLEX64/);
    expect(refusal(withInitializers(tensorProto({ name: 'q', dims: [1], type: 99, raw: [1] })))).toMatch(/"q" has data type 99/);
    expect(refusal(withInitializers(tensorProto({ name: 'n', dims: [1], raw: [1] })))).toMatch(/"n" has no data type/);
    expect(refusal(withInitializers(tensorProto({ name: 's', dims: [1], type: FLOAT, fields: [pbPackedInts(3, [0, 1])] })))).toMatch(/"s" is one segment of a larger tensor/);
  });

  it('refuses more tensors than maxTensors, and more nodes or graph entries than the limits allow', () => {
    const three = withInitializers(floats('a', [1], [1]), floats('b', [1], [2]), floats('c', [1], [3]));
    expect(refusal(three, tight({ maxTensors: 2 }))).toMatch(/the file holds more than 2 tensors/);
    expect(read(three, tight({ maxTensors: 3 })).tensors).toHaveLength(3);
    // Ten nodes per tensor of maxTensors; sixteen entries per node.
    const nodes = (n: number) => modelProto(graphProto({ nodes: Array.from({ length: n }, () => nodeProto({ op: 'Relu' })) }));
    expect(read(nodes(10), tight({ maxTensors: 1 })).graph.nodes).toHaveLength(10);
    expect(refusal(nodes(11), tight({ maxTensors: 1 }))).toMatch(/the graph has more than 10 nodes, more than this reader accepts \(10 per tensor of maxTensors\); raise maxTensors/);
    const longList = modelProto(graphProto({ nodes: [nodeProto({ op: 'Pad', attributes: [attribute('pads', 7, pbPackedInts(8, Array(200).fill(1)))] })] }));
    expect(refusal(longList, tight({ maxTensors: 1 }))).toMatch(/the graph has more than 160 entries/);
  });

  it('refuses a missing or second graph, wrong wire types, duplicate names, sparse initializers and bad UTF-8', () => {
    expect(refusal(cat(pbInt(1, 7), pbLen(2, 'pytorch')))).toMatch(/the file has no graph/);
    expect(refusal(cat(modelProto(graphProto({})), pbLen(7, graphProto({}))))).toMatch(/the file holds a second graph/);
    expect(refusal(cat(pbLen(1, 'seven'), pbLen(7, graphProto({}))))).toMatch(/ModelProto\.ir_version has wire type 2 at byte 2, not 0/);
    expect(refusal(modelProto(cat(pbLen(2, 'g'), pbInt(1, 3))))).toMatch(/GraphProto\.node has wire type 0/);
    expect(refusal(withInitializers(weights, weights))).toMatch(/the graph has two initializers named "fc\.weight"/);
    const twice = nodeProto({ op: 'Conv', name: 'c', attributes: [attribute('group', 2, pbInt(3, 1)), attribute('group', 2, pbInt(3, 2))] });
    expect(refusal(modelProto(graphProto({ nodes: [twice] })))).toMatch(/the graph, node 0 \("c", "Conv"\) has two attributes named "group"/);
    expect(refusal(modelProto(graphProto({ nodes: [nodeProto({ op: 'Gemm', attributes: [attribute('alpha', 1, pbInt(2, 1))] })] })))).toMatch(/node 0 \("Gemm"\): attribute "alpha" \(FLOAT\) has wire type 0/);
    expect(refusal(modelProto(graphProto({ extra: [pbLen(15, [])] })))).toMatch(/the graph holds sparse initializers/);
    expect(refusal(modelProto(graphProto({ nodes: [nodeProto({ op: 'Relu', inputs: ['\u00ff'] }).map((b) => (b === 0xc3 ? 0xff : b))] })))).toMatch(/field 1 is not valid UTF-8/);
  });

  it('refuses a file over maxFileBytes, and a missing file', () => {
    expect(refusal(readFileSync(fixture('mlp.onnx')), tight({ maxFileBytes: 1000 }))).toMatch(/the file is \d+ bytes, more than the 1000 this reader accepts/);
    const missing = join(temp(), 'missing.onnx');
    expect(() => readOnnxModel(missing, DEFAULT_READ_LIMITS)).toThrow(/missing\.onnx: cannot read the file \(ENOENT\)/);
    expect(() => onnxFormat.read(missing, DEFAULT_READ_LIMITS)).toThrow(ModelFileError);
  });

  it.each(FIXTURE_FILES)('%s mutated 400 times: each read succeeds or fails with a ModelFileError naming the file', (file) => {
    const original = readFileSync(fixture(file));
    const rng = Rng.stream(11, `onnx-fuzz-${file}`);
    const path = join(temp(), `fuzz-${file}`);
    let rejected = 0;
    for (let m = 0; m < 400; m++) {
      const bytes = Uint8Array.from(original);
      const kind = rng.int(3);
      if (kind === 0) for (let k = 1 + rng.int(4); k > 0; k--) bytes[rng.int(Math.min(bytes.length, 400))]! ^= 1 << rng.int(8);
      else if (kind === 1) bytes.fill(0xff, rng.int(400), rng.int(400) + 1 + rng.int(10));
      writeFileSync(path, kind === 2 ? bytes.subarray(0, rng.int(bytes.length)) : bytes);
      try {
        readOnnxModel(path, DEFAULT_READ_LIMITS);
      } catch (error) {
        rejected++;
        if (!(error instanceof ModelFileError)) throw new Error(`mutation ${m} escaped as ${(error as Error).name}: ${(error as Error).message}`);
        expect((error as Error).message.startsWith(`${path}: `)).toBe(true);
      }
    }
    expect(rejected).toBeGreaterThan(100);
  });
});
