// Writing a PyTorch state dict as torch.save writes it (torch >= 1.6, the zip layout), so that
// `torch.load(path)` and `torch.load(path, weights_only=True)` give an OrderedDict of float32 CPU
// tensors. The layout (torch/serialization.py `_save`, caffe2/serialize/inline_container.cc):
//  - a stored (not deflated) zip whose records sit in one folder, `archive/`: `data.pkl` (the
//    pickle), `data/<key>` (each storage's raw little-endian bytes), then `version` ("3\n");
//  - each record's local header carries an extra field 'FB' padded with 'Z' bytes so that its data
//    starts at a multiple of 64 bytes, as PyTorchStreamWriter aligns them (for mmap-ed reading);
//  - data.pkl is a protocol-2 pickle: OrderedDict() then SETITEMS of name →
//    torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict()), where the
//    storage is a persistent id ('storage', torch.FloatStorage, key, 'cpu', numel).
// Only the opcodes and globals that torch's weights_only unpickler allows are used; no memo.
import { endianness } from 'node:os';
import { type OutTensor, storedZip, writeFileAtomically } from './writers';

/** The folder of the records; torch names it after the file's stem, and any name loads. */
const ARCHIVE = 'archive';
/** PyTorchStreamWriter's kFieldAlignment: every record's data starts at a multiple of this. */
const ALIGNMENT = 64;
/** torch.save's file-format version (kProducedFileFormatVersion for torch.save files). */
const FILE_FORMAT_VERSION = '3\n';
/** Python's pickler writes SETITEMS in batches of this many items. */
const BATCH = 1000;

// ---- Pickle (protocol 2) ----

const OP = {
  MARK: 0x28, // (
  STOP: 0x2e, // .
  BININT: 0x4a, // J
  BININT1: 0x4b, // K
  BININT2: 0x4d, // M
  BINPERSID: 0x51, // Q
  REDUCE: 0x52, // R
  BINUNICODE: 0x58, // X
  GLOBAL: 0x63, // c
  SETITEM: 0x73, // s
  TUPLE: 0x74, // t
  SETITEMS: 0x75, // u
  EMPTY_TUPLE: 0x29, // )
  PROTO: 0x80,
  LONG1: 0x8a,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWFALSE: 0x89,
} as const;

/** Appends pickle opcodes to a growing list of chunks. */
class PickleBuilder {
  private readonly chunks: Buffer[] = [];
  private pending: number[] = [];

  op(...codes: number[]): this {
    this.pending.push(...codes);
    return this;
  }

  private bytes(chunk: Buffer): void {
    this.flush();
    this.chunks.push(chunk);
  }

  private flush(): void {
    if (this.pending.length > 0) {
      this.chunks.push(Buffer.from(this.pending));
      this.pending = [];
    }
  }

  /** GLOBAL 'module\nname\n' (protocol 2 has no STACK_GLOBAL). */
  global(module: string, name: string): this {
    this.op(OP.GLOBAL);
    this.bytes(Buffer.from(`${module}\n${name}\n`, 'utf8'));
    return this;
  }

  /** A str, as BINUNICODE (u32 length, UTF-8). */
  str(text: string): this {
    const utf8 = Buffer.from(text, 'utf8');
    const head = Buffer.alloc(5);
    head[0] = OP.BINUNICODE;
    head.writeUInt32LE(utf8.length, 1);
    this.bytes(head);
    this.bytes(utf8);
    return this;
  }

  /** A non-negative int with the shortest opcode Python's pickler would choose. */
  int(n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`cannot pickle ${n} as a non-negative integer`);
    if (n < 0x100) return this.op(OP.BININT1, n);
    if (n < 0x10000) return this.op(OP.BININT2, n & 0xff, n >>> 8);
    if (n < 0x80000000) {
      const b = Buffer.alloc(5);
      b[0] = OP.BININT;
      b.writeInt32LE(n, 1);
      this.bytes(b);
      return this;
    }
    // LONG1: a length byte, then the two's-complement little-endian bytes (a top bit set needs a 0 byte).
    const digits: number[] = [];
    let v = BigInt(n);
    while (v > 0n) {
      digits.push(Number(v & 0xffn));
      v >>= 8n;
    }
    if (digits[digits.length - 1]! >= 0x80) digits.push(0);
    return this.op(OP.LONG1, digits.length, ...digits);
  }

  /** A tuple of ints, as Python pickles a tuple of that length. */
  intTuple(items: readonly number[]): this {
    if (items.length === 0) return this.op(OP.EMPTY_TUPLE);
    if (items.length > 3) this.op(OP.MARK);
    for (const item of items) this.int(item);
    return this.op(items.length === 1 ? OP.TUPLE1 : items.length === 2 ? OP.TUPLE2 : items.length === 3 ? OP.TUPLE3 : OP.TUPLE);
  }

  /** collections.OrderedDict() on the stack. */
  orderedDict(): this {
    return this.global('collections', 'OrderedDict').op(OP.EMPTY_TUPLE, OP.REDUCE);
  }

  build(): Buffer {
    this.flush();
    return Buffer.concat(this.chunks);
  }
}

/** torch's contiguous strides: each the product of the later sizes, a size 0 counting as 1 (torch.zeros(0, 3).stride() is (3, 1)). */
function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    strides[k] = step;
    step *= Math.max(shape[k]!, 1);
  }
  return strides;
}

/** data.pkl: the OrderedDict of tensors, tensor i on storage key `${i}`. */
function statePickle(tensors: readonly OutTensor[]): Buffer {
  const p = new PickleBuilder();
  p.op(OP.PROTO, 2).orderedDict();
  const item = (t: OutTensor, key: number) => {
    p.str(t.name);
    p.global('torch._utils', '_rebuild_tensor_v2').op(OP.MARK);
    // The persistent id ('storage', torch.FloatStorage, key, 'cpu', numel), resolved by torch's persistent_load.
    p.op(OP.MARK).str('storage').global('torch', 'FloatStorage').str(String(key)).str('cpu').int(t.values.length).op(OP.TUPLE, OP.BINPERSID);
    p.int(0).intTuple(t.shape).intTuple(contiguousStrides(t.shape)).op(OP.NEWFALSE).orderedDict();
    p.op(OP.TUPLE, OP.REDUCE);
  };
  // As Python's pickler batches dict items: SETITEMS of up to 1000 after a MARK, a lone item as SETITEM.
  for (let start = 0; start < tensors.length; start += BATCH) {
    const batch = tensors.slice(start, start + BATCH);
    if (batch.length === 1) {
      item(batch[0]!, start);
      p.op(OP.SETITEM);
    } else {
      p.op(OP.MARK);
      batch.forEach((t, i) => item(t, start + i));
      p.op(OP.SETITEMS);
    }
  }
  return p.op(OP.STOP).build();
}

// ---- The zip, as PyTorchStreamWriter lays it out ----

/** Little-endian float32 bytes of `values` (a copy). */
function floatBytes(values: Float32Array): Buffer {
  if (endianness() === 'LE') return Buffer.from(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const out = Buffer.alloc(4 * values.length);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i]!, 4 * i);
  return out;
}

/** Throws unless every tensor has a unique name and a shape of non-negative integers that matches its values. */
function check(tensors: readonly OutTensor[]): void {
  const names = new Set<string>();
  for (const t of tensors) {
    if (/\p{Cs}/u.test(t.name)) throw new Error(`tensor name ${JSON.stringify(t.name)} holds a lone UTF-16 surrogate, which UTF-8 cannot encode`);
    if (names.has(t.name)) throw new Error(`two tensors are named ${JSON.stringify(t.name)}; a state dict's keys are unique`);
    names.add(t.name);
    let count = 1;
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new Error(`tensor ${JSON.stringify(t.name)} has the shape [${t.shape.join(', ')}], not non-negative integers`);
      count *= d;
    }
    if (count !== t.values.length) {
      throw new Error(`tensor ${JSON.stringify(t.name)} has the shape [${t.shape.join(', ')}] (${count} elements) but ${t.values.length} values`);
    }
  }
}

/** A torch.save zip of an OrderedDict of float32 CPU tensors: `torch.load(path, weights_only=True)` loads it. */
export function ptStateDictBytes(tensors: readonly OutTensor[]): Buffer {
  check(tensors);
  const records = [{ name: `${ARCHIVE}/data.pkl`, data: statePickle(tensors) }];
  tensors.forEach((t, i) => records.push({ name: `${ARCHIVE}/data/${i}`, data: floatBytes(t.values) }));
  records.push({ name: `${ARCHIVE}/version`, data: Buffer.from(FILE_FORMAT_VERSION, 'latin1') });
  return storedZip(records, ALIGNMENT);
}

/** Writes `tensors` to `path` as a torch.save state dict, through a temporary file and a rename. */
export function writePtStateDict(path: string, tensors: readonly OutTensor[]): void {
  writeFileAtomically(path, ptStateDictBytes(tensors));
}
