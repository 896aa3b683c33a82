// A reader for ONNX models: a protobuf ModelProto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto)
// parsed here with ./protobuf, no ONNX package. The graph's initializers are the tensors; the nodes,
// their attributes and the graph's inputs and outputs come along for inspection. Files come from
// users and the internet: every length is checked before slicing, every tensor's element count
// against the limits before a float32 copy is allocated, its stored bytes against shape × dtype, and
// the nodes and other graph entries against bounds derived from the limits. Tensors kept in external
// data files (PyTorch 2's exporter writes them) are read from beside the model, never from outside
// its folder; sparse initializers and string tensors are refused with the reason.
import { closeSync, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, sep } from 'node:path';
import { DTYPE_BYTES, elementCount, toFloat32 } from './dtypes';
import { guardedRead, quote, readFileBytes } from './file-bytes';
import { DEFAULT_READ_LIMITS, type FileTensor, type ModelFileContents, ModelFileError, type ModelFormat, type ReadLimits, type TensorDtype } from './model-format';
import { FIXED32, FIXED64, LEN, messageFields, nestedFields, ProtobufError, repeatedCount, repeatedVarints, stringOf, VARINT, type WireField, type WireType } from './protobuf';

/** An attribute's value: null for the kinds this reader does not decode (sparse tensors, type protos). */
export type OnnxAttributeValue = number | number[] | string | string[] | FileTensor | FileTensor[] | OnnxGraph | OnnxGraph[] | null;

export interface OnnxNode {
  opType: string;
  name: string;
  /** '' for the default ONNX domain. */
  domain: string;
  /** '' for an optional input left out. */
  inputs: string[];
  outputs: string[];
  /** Without a prototype: an attribute may be called anything. */
  attributes: Record<string, OnnxAttributeValue>;
}

export interface OnnxValueInfo {
  name: string;
  /** The TensorProto data type (1 FLOAT, 7 INT64, ...); null for a value that is not a tensor. */
  elemType: number | null;
  /** A number per fixed dimension, its name for a symbolic one ("batch"), null for an unknown one. */
  shape: Array<number | string | null>;
  /** False when the file gives no shape (rank unknown); `shape` is then []. */
  hasShape: boolean;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  initializerNames: string[];
  initializers: FileTensor[];
}

export interface OnnxModel {
  /** The main graph's initializers, in file order. */
  tensors: FileTensor[];
  graph: OnnxGraph;
  /** The version of the default operator set ('' or 'ai.onnx'); null if the file imports none. */
  opsetVersion: number | null;
  irVersion: number | null;
  producer: string;
  producerVersion: string;
}

/** TensorProto.DataType names, for messages. */
const DATA_TYPE_NAMES = [
  'UNDEFINED', 'FLOAT', 'UINT8', 'INT8', 'UINT16', 'INT16', 'INT32', 'INT64', 'STRING', 'BOOL', 'FLOAT16', 'DOUBLE',
  'UINT32', 'UINT64', 'COMPLEX64', 'COMPLEX128', 'BFLOAT16', 'FLOAT8E4M3FN', 'FLOAT8E4M3FNUZ', 'FLOAT8E5M2', 'FLOAT8E5M2FNUZ',
  'UINT4', 'INT4', 'FLOAT4E2M1',
];

const DTYPES = new Map<number, TensorDtype>([
  [1, 'float32'], [2, 'uint8'], [3, 'int8'], [4, 'uint16'], [5, 'int16'], [6, 'int32'], [7, 'int64'],
  [9, 'bool'], [10, 'float16'], [11, 'float64'], [12, 'uint32'], [13, 'uint64'], [16, 'bfloat16'],
]);

// TensorProto's typed value fields, and the wire type of their elements.
const FLOAT_DATA = 4;
const INT32_DATA = 5;
const INT64_DATA = 7;
const DOUBLE_DATA = 10;
const UINT64_DATA = 11;
const TYPED_FIELDS = new Map<number, { name: string; wire: typeof VARINT | typeof FIXED32 | typeof FIXED64 }>([
  [FLOAT_DATA, { name: 'float_data', wire: FIXED32 }],
  [INT32_DATA, { name: 'int32_data', wire: VARINT }],
  [INT64_DATA, { name: 'int64_data', wire: VARINT }],
  [DOUBLE_DATA, { name: 'double_data', wire: FIXED64 }],
  [UINT64_DATA, { name: 'uint64_data', wire: VARINT }],
]);

/** The typed field onnx.proto keeps each dtype's values in, when they are not in raw_data. */
function typedFieldOf(dtype: TensorDtype): number {
  switch (dtype) {
    case 'float32': return FLOAT_DATA;
    case 'float64': return DOUBLE_DATA;
    case 'int64': return INT64_DATA;
    case 'uint32': case 'uint64': return UINT64_DATA;
    default: return INT32_DATA;
  }
}

/** The values int32_data may hold for each dtype it carries (16-bit floats as their bit patterns, signed or not). */
const INT32_DATA_RANGE: Partial<Record<TensorDtype, [number, number]>> = {
  int32: [-(2 ** 31), 2 ** 31 - 1], int16: [-32768, 32767], int8: [-128, 127],
  uint16: [0, 65535], uint8: [0, 255], bool: [0, 1], float16: [-32768, 65535], bfloat16: [-32768, 65535],
};

// AttributeProto.AttributeType, and the field each kind's value is in.
const ATTRIBUTE_KINDS = new Map<number, { name: string; field: number }>([
  [1, { name: 'FLOAT', field: 2 }], [2, { name: 'INT', field: 3 }], [3, { name: 'STRING', field: 4 }],
  [4, { name: 'TENSOR', field: 5 }], [5, { name: 'GRAPH', field: 6 }], [6, { name: 'FLOATS', field: 7 }],
  [7, { name: 'INTS', field: 8 }], [8, { name: 'STRINGS', field: 9 }], [9, { name: 'TENSORS', field: 10 }],
  [10, { name: 'GRAPHS', field: 11 }],
]);

/** ModelProto's fields and wire types: detection accepts nothing else in a file's first bytes. */
const MODEL_FIELDS = new Map<number, WireType>([
  [1, VARINT], [2, LEN], [3, LEN], [4, LEN], [5, VARINT], [6, LEN], [7, LEN], [8, LEN], [14, LEN], [20, LEN], [25, LEN], [26, LEN],
]);
/** IR versions run from 1 (2017) to 11 (2025); a little room for the next ones. */
const MAX_IR_VERSION = 32;
/** Nodes per tensor the limits allow (1,000,000 with the default maxTensors), and graph entries per node. */
const NODES_PER_TENSOR = 10;
const ENTRIES_PER_NODE = 16;
const EXTERNAL = 1;

const int64 = (v: bigint): number => Number(BigInt.asIntN(64, v));

class OnnxReader {
  private readonly elementCap: number;
  private readonly maxNodes: number;
  private readonly maxEntries: number;
  private tensors = 0;
  private elements = 0;
  private nodes = 0;
  private entries = 0;

  constructor(private readonly path: string, private readonly limits: ReadLimits) {
    // Capped so that elements × 8 bytes stays an exact integer even with limits of Infinity.
    this.elementCap = Math.min(limits.maxTotalElements, Math.floor(Number.MAX_SAFE_INTEGER / 8));
    this.maxNodes = NODES_PER_TENSOR * limits.maxTensors;
    this.maxEntries = ENTRIES_PER_NODE * this.maxNodes;
  }

  private refuse(reason: string): never {
    throw new ModelFileError(this.path, reason);
  }

  /** Counts names, attributes, dimensions and list values, which cost memory as nodes do. */
  private entry(n = 1): void {
    this.entries += n;
    if (this.entries > this.maxEntries) {
      this.refuse(`the graph has more than ${this.maxEntries} entries (names, attributes, dimensions, list values), more than this reader accepts (${ENTRIES_PER_NODE * NODES_PER_TENSOR} per tensor of maxTensors); raise maxTensors if the file is trusted.`);
    }
  }

  private expect(f: WireField, wire: WireType, what: string): void {
    if (f.wireType !== wire) this.refuse(`${what} has wire type ${f.wireType} at byte ${f.offset}, not ${wire}; the file is damaged or not ONNX.`);
  }

  private int(f: WireField, what: string): number {
    this.expect(f, VARINT, what);
    return int64(f.varint);
  }

  private string(f: WireField, what: string): string {
    this.expect(f, LEN, what);
    return stringOf(f);
  }

  model(bytes: Uint8Array): OnnxModel {
    if (bytes.length === 0) this.refuse('the file is empty; an ONNX model holds at least a graph.');
    let irVersion: number | null = null;
    let opsetVersion: number | null = null;
    let producer = '';
    let producerVersion = '';
    let graph: WireField | undefined;
    for (const f of messageFields(bytes)) {
      switch (f.field) {
        case 1: irVersion = this.int(f, 'ModelProto.ir_version'); break;
        case 2: producer = this.string(f, 'ModelProto.producer_name'); break;
        case 3: producerVersion = this.string(f, 'ModelProto.producer_version'); break;
        case 7:
          this.expect(f, LEN, 'ModelProto.graph');
          if (graph !== undefined) this.refuse(`the file holds a second graph at byte ${f.offset}; an ONNX model has one.`);
          graph = f;
          break;
        case 8: {
          this.expect(f, LEN, 'ModelProto.opset_import');
          this.entry();
          let domain = '';
          let version: number | null = null;
          for (const g of nestedFields(f)) {
            if (g.field === 1) domain = this.string(g, 'OperatorSetIdProto.domain');
            else if (g.field === 2) version = this.int(g, 'OperatorSetIdProto.version');
          }
          if (domain === '' || domain === 'ai.onnx') opsetVersion = version;
          break;
        }
        // domain, model_version, doc_string, metadata_props, training_info, functions: not needed.
        default: break;
      }
    }
    if (graph === undefined) this.refuse('the file has no graph (ModelProto field 7); it is not an ONNX model, or it is damaged.');
    const main = this.graph(graph, 'the graph');
    return { tensors: main.initializers, graph: main, opsetVersion, irVersion, producer, producerVersion };
  }

  private graph(field: WireField, where: string): OnnxGraph {
    let name = '';
    const nodes: OnnxNode[] = [];
    const initializers: FileTensor[] = [];
    const inputs: OnnxValueInfo[] = [];
    const outputs: OnnxValueInfo[] = [];
    for (const f of nestedFields(field)) {
      switch (f.field) {
        case 1: nodes.push(this.node(f, `${where}, node ${nodes.length}`)); break;
        case 2: name = this.string(f, 'GraphProto.name'); break;
        case 5: this.expect(f, LEN, 'GraphProto.initializer'); initializers.push(this.tensor(f, `${where}: initializer`)); break;
        case 11: inputs.push(this.valueInfo(f)); break;
        case 12: outputs.push(this.valueInfo(f)); break;
        case 15: this.refuse(`${where} holds sparse initializers (GraphProto field 15), which this reader does not read; store the tensors dense.`);
        // doc_string, value_info, quantization_annotation, metadata_props: not needed.
        default: break;
      }
    }
    const seen = new Set<string>();
    for (const t of initializers) {
      if (seen.has(t.name)) this.refuse(`${where} has two initializers named ${quote(t.name)}.`);
      seen.add(t.name);
    }
    return { name, nodes, inputs, outputs, initializerNames: initializers.map((t) => t.name), initializers };
  }

  private node(field: WireField, where: string): OnnxNode {
    this.expect(field, LEN, 'GraphProto.node');
    if (++this.nodes > this.maxNodes) {
      this.refuse(`the graph has more than ${this.maxNodes} nodes, more than this reader accepts (${NODES_PER_TENSOR} per tensor of maxTensors); raise maxTensors if the file is trusted.`);
    }
    this.entry();
    const node: OnnxNode = { opType: '', name: '', domain: '', inputs: [], outputs: [], attributes: Object.create(null) as Record<string, OnnxAttributeValue> };
    const attributes: WireField[] = [];
    for (const f of nestedFields(field)) {
      switch (f.field) {
        case 1: this.entry(); node.inputs.push(this.string(f, 'NodeProto.input')); break;
        case 2: this.entry(); node.outputs.push(this.string(f, 'NodeProto.output')); break;
        case 3: node.name = this.string(f, 'NodeProto.name'); break;
        case 4: node.opType = this.string(f, 'NodeProto.op_type'); break;
        case 5: this.expect(f, LEN, 'NodeProto.attribute'); this.entry(); attributes.push(f); break;
        case 7: node.domain = this.string(f, 'NodeProto.domain'); break;
        default: break;
      }
    }
    // Decoded once the node's name is known, for messages.
    const named = `${where} (${node.name === '' ? '' : `${quote(node.name)}, `}${quote(node.opType)})`;
    for (const f of attributes) {
      const [name, value] = this.attribute(f, named);
      if (Object.hasOwn(node.attributes, name)) this.refuse(`${named} has two attributes named ${quote(name)}.`);
      node.attributes[name] = value;
    }
    return node;
  }

  private attribute(field: WireField, where: string): [string, OnnxAttributeValue] {
    let name = '';
    let kind = 0;
    const values = new Map<number, WireField[]>();
    for (const f of nestedFields(field)) {
      if (f.field === 1) name = this.string(f, 'AttributeProto.name');
      else if (f.field === 20) kind = this.int(f, 'AttributeProto.type');
      else if (f.field >= 2 && f.field <= 11) {
        this.entry();
        const list = values.get(f.field);
        if (list === undefined) values.set(f.field, [f]);
        else list.push(f);
      }
    }
    const what = `${where}: attribute ${quote(name)}`;
    if (kind === 0) {
      // Files before IR version 2 leave the type out: the field that is set tells.
      const found = [...ATTRIBUTE_KINDS].find(([, k]) => values.has(k.field));
      if (found === undefined) return [name, null];
      kind = found[0];
    }
    const known = ATTRIBUTE_KINDS.get(kind);
    if (known === undefined) return [name, null];
    const fields = values.get(known.field) ?? [];
    const last = fields[fields.length - 1];
    switch (kind) {
      case 1: {
        if (last === undefined) return [name, 0];
        this.expect(last, FIXED32, `${what} (FLOAT)`);
        return [name, new DataView(last.bytes.buffer, last.bytes.byteOffset, 4).getFloat32(0, true)];
      }
      case 2: return [name, last === undefined ? 0 : this.int(last, `${what} (INT)`)];
      case 3: {
        if (last === undefined) return [name, ''];
        this.expect(last, LEN, `${what} (STRING)`);
        // Attribute strings are bytes in onnx.proto: undecodable ones read with replacement characters.
        return [name, stringOf(last, false)];
      }
      case 4:
        if (last === undefined) this.refuse(`${what} is a TENSOR attribute without a tensor.`);
        this.expect(last, LEN, `${what} (TENSOR)`);
        return [name, this.tensor(last, `${what}: tensor`)];
      case 5:
        if (last === undefined) this.refuse(`${what} is a GRAPH attribute without a graph.`);
        this.expect(last, LEN, `${what} (GRAPH)`);
        return [name, this.graph(last, `${what}: graph`)];
      case 6: {
        const out: number[] = [];
        for (const f of fields) {
          const n = repeatedCount(f, FIXED32);
          this.entry(n);
          const view = new DataView(f.bytes.buffer, f.bytes.byteOffset, f.bytes.length);
          for (let i = 0; i < n; i++) out.push(view.getFloat32(4 * i, true));
        }
        return [name, out];
      }
      case 7: {
        const out: number[] = [];
        for (const f of fields) {
          this.entry(repeatedCount(f, VARINT));
          for (const v of repeatedVarints(f)) out.push(int64(v));
        }
        return [name, out];
      }
      case 8: return [name, fields.map((f) => { this.expect(f, LEN, `${what} (STRINGS)`); return stringOf(f, false); })];
      case 9: return [name, fields.map((f, i) => { this.expect(f, LEN, `${what} (TENSORS)`); return this.tensor(f, `${what}: tensor ${i}`); })];
      default: return [name, fields.map((f, i) => { this.expect(f, LEN, `${what} (GRAPHS)`); return this.graph(f, `${what}: graph ${i}`); })];
    }
  }

  private valueInfo(field: WireField): OnnxValueInfo {
    this.expect(field, LEN, 'ValueInfoProto');
    this.entry();
    const info: OnnxValueInfo = { name: '', elemType: null, shape: [], hasShape: false };
    for (const f of nestedFields(field)) {
      if (f.field === 1) info.name = this.string(f, 'ValueInfoProto.name');
      else if (f.field === 2) {
        this.expect(f, LEN, 'ValueInfoProto.type');
        for (const t of nestedFields(f)) {
          // tensor_type, or sparse_tensor_type, which has the same layout; sequences, maps and optionals are not tensors.
          if (t.field !== 1 && t.field !== 8) continue;
          this.expect(t, LEN, 'TypeProto.tensor_type');
          for (const u of nestedFields(t)) {
            if (u.field === 1) info.elemType = this.int(u, 'TypeProto.Tensor.elem_type');
            else if (u.field === 2) {
              this.expect(u, LEN, 'TypeProto.Tensor.shape');
              info.hasShape = true;
              for (const s of nestedFields(u)) {
                if (s.field !== 1) continue;
                this.expect(s, LEN, 'TensorShapeProto.dim');
                this.entry();
                let dim: number | string | null = null;
                for (const d of nestedFields(s)) {
                  if (d.field === 1) dim = this.int(d, 'Dimension.dim_value');
                  else if (d.field === 2) dim = this.string(d, 'Dimension.dim_param');
                }
                info.shape.push(dim);
              }
            }
          }
        }
      }
    }
    return info;
  }

  private tensor(field: WireField, role: string): FileTensor {
    if (this.tensors >= this.limits.maxTensors) {
      this.refuse(`the file holds more than ${this.limits.maxTensors} tensors, more than this reader accepts; raise maxTensors if the file is trusted.`);
    }
    let name = '';
    let dataType: number | null = null;
    let raw: WireField | undefined;
    let segment = false;
    let strings = false;
    let location = 0;
    let external: Map<string, string> | null = null;
    const dimFields: WireField[] = [];
    const typed = new Map<number, WireField[]>();
    let typedCount = 0;
    for (const f of nestedFields(field)) {
      const typedField = TYPED_FIELDS.get(f.field);
      if (typedField !== undefined) {
        const n = repeatedCount(f, typedField.wire);
        if (n === 0) continue;
        typedCount += n;
        // Counted as they come: an unpacked field costs a reference per value.
        if (typedCount > this.elementCap - this.elements) {
          this.refuse(`${role} ${name === '' ? `at byte ${field.offset}` : quote(name)} stores more than the ${this.limits.maxTotalElements} elements this reader accepts in all; raise maxTotalElements if the file is trusted.`);
        }
        const list = typed.get(f.field);
        if (list === undefined) typed.set(f.field, [f]);
        else list.push(f);
        continue;
      }
      switch (f.field) {
        case 1: this.entry(repeatedCount(f, VARINT)); dimFields.push(f); break;
        case 2: dataType = this.int(f, 'TensorProto.data_type'); break;
        case 3: segment = true; break;
        case 6: strings = true; break;
        case 8: name = this.string(f, 'TensorProto.name'); break;
        case 9: this.expect(f, LEN, 'TensorProto.raw_data'); raw = f; break;
        case 13: {
          this.expect(f, LEN, 'TensorProto.external_data');
          this.entry();
          // StringStringEntryProto: key = 1, value = 2 (location, offset, length, checksum).
          let key = '';
          let value = '';
          for (const e of nestedFields(f)) {
            if (e.field === 1) key = this.string(e, 'StringStringEntryProto.key');
            else if (e.field === 2) value = this.string(e, 'StringStringEntryProto.value');
          }
          (external ??= new Map()).set(key, value);
          break;
        }
        case 14: location = this.int(f, 'TensorProto.data_location'); break;
        default: break;
      }
    }

    const what = `${role} ${quote(name)}`;
    if (location !== 0 && location !== EXTERNAL) this.refuse(`${what} has data_location ${location}, which onnx.proto does not define.`);
    if ((location === EXTERNAL) !== (external !== null)) this.refuse(`${what} has external_data entries and data_location ${location}: they disagree.`);
    if (segment) this.refuse(`${what} is one segment of a larger tensor, which this reader does not join.`);
    const dtype = dataType === null ? undefined : DTYPES.get(dataType);
    if (dtype === undefined) {
      const typeName = dataType === null ? 'no data type' : `data type ${DATA_TYPE_NAMES[dataType] ?? dataType}`;
      this.refuse(`${what} has ${typeName}, which this reader does not read (it reads ${[...DTYPES.keys()].map((k) => DATA_TYPE_NAMES[k]).join(', ')}).`);
    }

    const stored: bigint[] = [];
    for (const f of dimFields) {
      for (const v of repeatedVarints(f)) {
        const d = BigInt.asIntN(64, v);
        if (d < 0n) this.refuse(`${what} has the dimension ${d}, which is negative.`);
        stored.push(d);
      }
    }
    // Past 2^53 a dimension is no safe integer, and elementCount refuses it.
    const dims = stored.map(Number);
    const shape = `[${stored.join(', ')}]`;
    const count = elementCount(dims, this.elementCap - this.elements);
    if (count === null) {
      this.refuse(`${what} with shape ${shape} brings the file past ${this.limits.maxTotalElements} elements, more than this reader accepts; raise maxTotalElements if the file is trusted.`);
    }
    const typeName = DATA_TYPE_NAMES[dataType!]!;

    let values: Float32Array;
    if (external !== null) {
      if (raw !== undefined || typed.size > 0 || strings) this.refuse(`${what} has external data and values in the file; a tensor keeps its values in one place.`);
      values = toFloat32(this.externalBytes(external, count * DTYPE_BYTES[dtype], what), 0, count, dtype);
    } else if (raw !== undefined) {
      if (typed.size > 0 || strings) this.refuse(`${what} has both raw_data and typed value fields; a tensor keeps its values in one.`);
      const needed = count * DTYPE_BYTES[dtype];
      if (raw.bytes.length !== needed) this.refuse(`${what} has ${raw.bytes.length} bytes of raw_data, but shape ${shape} of ${typeName} needs ${needed}.`);
      values = toFloat32(raw.bytes, 0, count, dtype);
    } else {
      const own = typedFieldOf(dtype);
      const other = [...typed.keys()].find((k) => k !== own);
      if (other !== undefined || strings) {
        const found = strings ? 'string_data' : TYPED_FIELDS.get(other!)!.name;
        this.refuse(`${what} stores its values in ${found}, but a ${typeName} tensor keeps them in ${TYPED_FIELDS.get(own)!.name} or raw_data.`);
      }
      if (typedCount !== count) {
        this.refuse(`${what} has ${typedCount} values in ${TYPED_FIELDS.get(own)!.name}, but shape ${shape} needs ${count}.`);
      }
      values = this.typedValues(typed.get(own) ?? [], count, dtype, what);
    }
    this.tensors++;
    this.elements += count;
    return { name, shape: dims, dtype, values };
  }

  /**
   * A tensor's bytes from an external data file (PyTorch 2's exporter writes `model.onnx.data` beside
   * the model): `location` is relative to the model's folder and must stay inside it; `offset` and
   * `length` must lie within the file, and the length be what the shape needs. Only those bytes are read.
   */
  private externalBytes(entries: Map<string, string>, needed: number, what: string): Uint8Array {
    const location = entries.get('location');
    if (!location) this.refuse(`${what} has external data without a location.`);
    if (isAbsolute(location) || location.split(/[\\/]/).includes('..')) {
      this.refuse(`${what} keeps its data at ${quote(location)}, outside the model's folder; external data must sit beside the model.`);
    }
    const folder = realpathOr(dirname(this.path));
    const file = join(folder, location);
    const resolved = realpathOr(file);
    if (resolved !== file && !resolved.startsWith(folder + sep)) this.refuse(`${what} keeps its data at ${quote(location)}, a link out of the model's folder.`);
    const number = (key: string, fallback: number | null): number | null => {
      const text = entries.get(key);
      if (text === undefined) return fallback;
      if (!/^\d{1,15}$/.test(text)) this.refuse(`${what} has external data ${key} ${quote(text)}, not a byte count.`);
      return Number(text);
    };
    const offset = number('offset', 0)!;
    const length = number('length', null);
    if (length !== null && length !== needed) this.refuse(`${what} has ${length} bytes of external data, but its shape and type need ${needed}.`);
    let fd: number;
    try {
      fd = openSync(resolved, 'r');
    } catch (error) {
      this.refuse(`${what} keeps its data in ${quote(location)}, which cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}).`);
    }
    try {
      const stats = fstatSync(fd);
      if (!stats.isFile()) this.refuse(`${what} keeps its data in ${quote(location)}, which is not a regular file.`);
      if (offset + needed > stats.size) this.refuse(`${what} needs bytes ${offset} to ${offset + needed} of ${quote(location)}, which has ${stats.size}.`);
      const bytes = new Uint8Array(needed);
      for (let read = 0; read < needed; ) {
        const n = readSync(fd, bytes, read, needed - read, offset + read);
        if (n === 0) this.refuse(`${quote(location)} ended early while reading ${what}.`);
        read += n;
      }
      return bytes;
    } finally {
      closeSync(fd);
    }
  }

  /** The values of a typed field, written as little-endian `dtype` bytes and converted as raw_data would be. */
  private typedValues(fields: WireField[], count: number, dtype: TensorDtype, what: string): Float32Array {
    const size = DTYPE_BYTES[dtype];
    const bytes = new Uint8Array(count * size);
    if (dtype === 'float32' || dtype === 'float64') {
      // Packed or not, the fields' bytes are the little-endian values one after another.
      let at = 0;
      for (const f of fields) {
        bytes.set(f.bytes, at);
        at += f.bytes.length;
      }
      return toFloat32(bytes, 0, count, dtype);
    }
    const view = new DataView(bytes.buffer);
    const range = INT32_DATA_RANGE[dtype];
    let i = 0;
    for (const f of fields) {
      for (const v of repeatedVarints(f)) {
        if (dtype === 'int64') view.setBigInt64(8 * i, BigInt.asIntN(64, v), true);
        else if (dtype === 'uint64') view.setBigUint64(8 * i, v, true);
        else if (dtype === 'uint32') {
          if (v > 0xffffffffn) this.refuse(`${what} holds the value ${v} in uint64_data, out of range for UINT32.`);
          view.setUint32(4 * i, Number(v), true);
        } else {
          const n = int64(v);
          if (range === undefined || n < range[0] || n > range[1]) this.refuse(`${what} holds the value ${n} in int32_data, out of range for its type.`);
          if (size === 4) view.setInt32(4 * i, n, true);
          else if (size === 2) view.setUint16(2 * i, n & 0xffff, true);
          else view.setUint8(i, n & 0xff);
        }
        i++;
      }
    }
    return toFloat32(bytes, 0, count, dtype);
  }
}

/** The path with links resolved, or as given when it does not resolve (the open that follows then says why). */
function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function readChecked(path: string, limits: ReadLimits): OnnxModel {
  const bytes = readFileBytes(path, limits);
  try {
    return new OnnxReader(path, limits).model(bytes);
  } catch (error) {
    if (!(error instanceof ProtobufError)) throw error;
    const what = error.truncated ? 'the file is truncated or damaged' : 'the file is damaged or not ONNX';
    throw new ModelFileError(path, `${what} at byte ${error.offset}: ${error.message}`, { cause: error });
  }
}

/** The ONNX model at `path`: its initializers as tensors, and its graph for inspection. */
export function readOnnxModel(path: string, limits: ReadLimits = DEFAULT_READ_LIMITS): OnnxModel {
  let model: OnnxModel | undefined;
  guardedRead(path, 'ONNX', () => {
    model = readChecked(path, limits);
    return { format: 'onnx', tensors: model.tensors };
  });
  return model!;
}

function read(path: string, limits: ReadLimits): ModelFileContents {
  return guardedRead(path, 'ONNX', () => ({ format: 'onnx', tensors: readChecked(path, limits).tensors }));
}

/** Whether every byte is printable ASCII or whitespace: text, not a protobuf. */
function isText(head: Uint8Array): boolean {
  return head.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x09 || b === 0x0a || b === 0x0d);
}

function detect(head: Uint8Array, fileName: string): boolean {
  if (head.length < 3) return false;
  // Protobuf writers put fields in number order, so a ModelProto starts with ir_version (tag 0x08),
  // a small number. Without it, only a file named .onnx whose first field is a ModelProto field can be one.
  const startsWithIrVersion = head[0] === 0x08 && head[1]! >= 1 && head[1]! <= MAX_IR_VERSION;
  if (!startsWithIrVersion) {
    if (!fileName.toLowerCase().endsWith('.onnx') || isText(head)) return false;
    // An ir_version out of range (tag 0x08) tells against the file too.
    const first = head[0]! < 0x80 && head[0] !== 0x08 ? MODEL_FIELDS.get(head[0]! >> 3) : undefined;
    if (first !== (head[0]! & 7)) return false;
  }
  // Every field in the head must be a ModelProto field of the right wire type; the last one may run
  // past the head (it is the file's first bytes only).
  try {
    for (const f of messageFields(head)) {
      if (MODEL_FIELDS.get(f.field) !== f.wireType) return false;
    }
  } catch (error) {
    return error instanceof ProtobufError && error.truncated;
  }
  return true;
}

export const onnxFormat: ModelFormat = {
  id: 'onnx',
  title: 'ONNX',
  detect,
  read,
};
