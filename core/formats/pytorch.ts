// A reader for PyTorch checkpoints written by torch.save (.pt, .pth, pytorch_model.bin), without
// ever executing their pickle: pickle.ts interprets it, and only the globals a state dict needs are
// allowed (the policy of torch.load(weights_only=True)). Two layouts (torch/serialization.py):
//  - zip (torch >= 1.6, the default): `<archive>/data.pkl` is the pickle, each storage is the raw
//    bytes of `<archive>/data/<key>`, `<archive>/byteorder` ('little' or 'big', torch >= 2.1) tells
//    their byte order; `<archive>` is whatever folder holds data.pkl.
//  - legacy (torch < 1.6, or _use_new_zipfile_serialization=False): pickles of the magic number, the
//    protocol version and sys_info, then the object's pickle, then a pickle of the storage keys, then
//    each storage as an 8-byte element count and its little-endian bytes.
// Tensors are rebuilt from (storage, offset, size, stride): views with any strides and offsets are
// gathered into C order, after every index is checked to stay inside its storage.
import { basename } from 'node:path';
import { DataFormatError } from '../api/errors';
import { ZipArchive, type ZipEntry, type ZipLimits } from '../data/zip';
import { DTYPE_BYTES, elementCount, toFloat32 } from './dtypes';
import { guardedRead, quote, readFileBytes, zipReason } from './file-bytes';
import { ModelFileError, type FileTensor, type ModelFileContents, type ModelFormat, type ReadLimits, type TensorDtype } from './model-format';
import { type PickleCallable, PickleError, PickleGlobalError, type PickleLimits, PickleSizeError, PyDict, PyGlobal, PyTuple, pyTypeName, unpickleAt } from './pickle';

const ZIP_LOCAL_HEADER = [0x50, 0x4b, 0x03, 0x04]; // "PK\x03\x04"
/** torch.save's magic number 0x1950a86a20f9469cfc6c, as the LONG1 opcode of its first pickle writes it. */
const MAGIC_LONG1 = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const MAGIC_NUMBER = 0x1950a86a20f9469cfc6cn;
const PROTOCOL_VERSION = 1001n;
/** The tar-based layout of PyTorch before 0.4 starts with a tar member named sys_info. */
const OLD_TAR_HEAD = [...'sys_info'].map((c) => c.charCodeAt(0)).concat(0);
const TORCH_SUFFIXES = /\.(pt|pth|bin|ckpt)$/i;
const HINT = 'Save the weights alone with torch.save(model.state_dict(), path), or as safetensors.';
/** Containers inside a checkpoint nest a few levels (checkpoint, state dict, optimizer state); more is crafted. */
const MAX_NESTING = 64;
/** More dimensions than any real tensor has (torch itself caps them at 64); more is crafted. */
const MAX_DIMENSIONS = 64;
const MAX_KEY_LENGTH = 256;

/** Storage classes as torch.save names them (torch.<Name>, or torch.cuda.<Name> in old files). */
const STORAGE_DTYPES = new Map<string, TensorDtype>([
  ['DoubleStorage', 'float64'], ['FloatStorage', 'float32'], ['HalfStorage', 'float16'], ['BFloat16Storage', 'bfloat16'],
  ['LongStorage', 'int64'], ['IntStorage', 'int32'], ['ShortStorage', 'int16'], ['CharStorage', 'int8'],
  ['ByteStorage', 'uint8'], ['BoolStorage', 'bool'],
]);
/** torch.<dtype> globals, the dtype argument of _rebuild_tensor_v3 (torch >= 2.1, for dtypes without a storage class). */
const TORCH_DTYPES = new Map<string, TensorDtype>([
  ['float64', 'float64'], ['double', 'float64'], ['float32', 'float32'], ['float', 'float32'], ['float16', 'float16'], ['half', 'float16'],
  ['bfloat16', 'bfloat16'], ['int64', 'int64'], ['long', 'int64'], ['int32', 'int32'], ['int', 'int32'], ['int16', 'int16'], ['short', 'int16'],
  ['int8', 'int8'], ['uint8', 'uint8'], ['bool', 'bool'], ['uint16', 'uint16'], ['uint32', 'uint32'], ['uint64', 'uint64'],
]);
const UNTYPED_STORAGES = ['torch.UntypedStorage', 'torch.storage.UntypedStorage'];

function startsWith(bytes: Uint8Array, prefix: readonly number[], at = 0): boolean {
  return bytes.length >= at + prefix.length && prefix.every((b, i) => bytes[at + i] === b);
}

function refuse(path: string, reason: string, cause?: unknown): never {
  throw new ModelFileError(path, reason, cause === undefined ? undefined : { cause });
}

// ---- What the allow-listed globals build ----

/** A storage: `byteLength` bytes of `dtype` elements, its bytes fetched (and checked) on first use. */
class Storage {
  private bytes: Uint8Array | undefined;
  constructor(readonly key: string, readonly dtype: TensorDtype, readonly byteLength: number, private readonly load: () => Uint8Array) {}

  data(): Uint8Array {
    this.bytes ??= this.load();
    return this.bytes;
  }
}

/** A tensor as _rebuild_tensor_v2 describes it: a view of `storage`, offset and strides in elements of `dtype`. */
class TensorRef {
  constructor(
    readonly storage: Storage,
    readonly dtype: TensorDtype,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}

function isInt(value: unknown): value is bigint {
  return typeof value === 'bigint';
}

/** A non-negative int of the pickle as a number, or null. */
function index(value: unknown): number | null {
  return isInt(value) && value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : null;
}

function showInt(value: unknown): string {
  if (isInt(value)) {
    const text = value.toString();
    return text.length > 24 ? `${text.slice(0, 24)}…` : text;
  }
  return `a ${pyTypeName(value)}`;
}

/** A size or stride argument: a tuple of non-negative ints (a torch.Size is rebuilt as a tuple). */
function dims(path: string, value: unknown, what: string): number[] {
  if (!(value instanceof PyTuple)) return refuse(path, `a tensor's ${what} is a ${pyTypeName(value)}, not a tuple of integers.`);
  if (value.items.length > MAX_DIMENSIONS) refuse(path, `a tensor's ${what} has ${value.items.length} dimensions, more than the ${MAX_DIMENSIONS} this reader accepts.`);
  return value.items.map((item) => {
    const n = index(item);
    if (n === null) refuse(path, `a tensor's ${what} holds ${showInt(item)}, not a non-negative integer.`);
    return n;
  });
}

interface Context {
  path: string;
  /** The file's stem, naming a checkpoint that is one bare tensor. */
  stem: string;
  /** maxHeaderBytes, for messages. */
  maxPickleBytes: number;
  /** Resolves a BINPERSID id into a Storage (the zip and legacy layouts differ). */
  persistentLoad(id: unknown): unknown;
}

/** The allow-list: every global a torch state dict (or a checkpoint dict around one) needs, and nothing else. */
function allowedGlobals(path: string): Map<string, PickleCallable> {
  const globals = new Map<string, PickleCallable>();
  const notCallable = (name: string): PickleCallable => () => refuse(path, `the pickle calls ${name}, which torch.save only names (as a type), never calls; the file is crafted or damaged.`);

  globals.set('collections.OrderedDict', (args) => {
    if (args.length !== 0) refuse(path, `the pickle builds an OrderedDict from ${args.length} arguments; torch.save writes it empty, then sets its items.`);
    return new PyDict('OrderedDict');
  });
  globals.set('torch.Size', (args) => {
    if (args.length !== 1) refuse(path, `the pickle builds a torch.Size from ${args.length} arguments, not one tuple.`);
    dims(path, args[0], 'torch.Size');
    return args[0];
  });

  const rebuild = (name: string, counts: number[], typed: boolean): PickleCallable => (args) => {
    if (!counts.includes(args.length)) refuse(path, `the pickle calls ${name} with ${args.length} arguments; it takes ${counts.join(' or ')}.`);
    const [storage, offsetArg, sizeArg, strideArg, requiresGrad] = args;
    if (!(storage instanceof Storage)) return refuse(path, `the pickle calls ${name} on a ${pyTypeName(storage)}, not a storage.`);
    const offset = index(offsetArg);
    if (offset === null) return refuse(path, `a tensor's storage offset is ${showInt(offsetArg)}, not a non-negative integer.`);
    const size = dims(path, sizeArg, 'size');
    const stride = dims(path, strideArg, 'stride');
    if (stride.length !== size.length) refuse(path, `a tensor has ${size.length} dimensions but ${stride.length} strides.`);
    if (args.length > 4 && typeof requiresGrad !== 'boolean') refuse(path, `a tensor's requires_grad is a ${pyTypeName(requiresGrad)}, not a bool.`);
    let dtype = storage.dtype;
    if (!typed) {
      const dtypeArg = args[6];
      const named = dtypeArg instanceof PyGlobal && dtypeArg.module === 'torch' ? TORCH_DTYPES.get(dtypeArg.name) : undefined;
      if (named === undefined) return refuse(path, `a tensor has the dtype ${pyTypeName(dtypeArg)}, which this reader does not support.`);
      dtype = named;
    }
    return new TensorRef(storage, dtype, offset, size, stride);
  };
  globals.set('torch._utils._rebuild_tensor', rebuild('torch._utils._rebuild_tensor', [4], true));
  globals.set('torch._utils._rebuild_tensor_v2', rebuild('torch._utils._rebuild_tensor_v2', [6, 7], true));
  globals.set('torch._utils._rebuild_tensor_v3', rebuild('torch._utils._rebuild_tensor_v3', [7, 8], false));

  const parameter = (name: string, count: number): PickleCallable => (args) => {
    if (args.length !== count) refuse(path, `the pickle calls ${name} with ${args.length} arguments; it takes ${count}.`);
    if (!(args[0] instanceof TensorRef)) refuse(path, `the pickle calls ${name} on a ${pyTypeName(args[0])}, not a tensor.`);
    return args[0];
  };
  globals.set('torch._utils._rebuild_parameter', parameter('torch._utils._rebuild_parameter', 3));
  globals.set('torch._utils._rebuild_parameter_with_state', parameter('torch._utils._rebuild_parameter_with_state', 4));

  for (const name of STORAGE_DTYPES.keys()) {
    globals.set(`torch.${name}`, notCallable(`torch.${name}`));
    globals.set(`torch.cuda.${name}`, notCallable(`torch.cuda.${name}`));
  }
  for (const name of UNTYPED_STORAGES) globals.set(name, notCallable(name));
  for (const name of TORCH_DTYPES.keys()) globals.set(`torch.${name}`, notCallable(`torch.${name}`));
  return globals;
}

/** The element type a persistent id's storage type names. */
function storageDtype(path: string, type: unknown): TensorDtype {
  if (type instanceof PyGlobal) {
    if (UNTYPED_STORAGES.includes(type.fullName)) return 'uint8';
    const dtype = type.module === 'torch' || type.module === 'torch.cuda' ? STORAGE_DTYPES.get(type.name) : undefined;
    if (dtype !== undefined) return dtype;
  }
  return refuse(path, `a storage has the type ${pyTypeName(type)}, which this reader does not support.`);
}

function keyText(value: unknown): string | null {
  if (value instanceof Uint8Array) value = Buffer.from(value).toString('latin1'); // Python 2 pickles: torch decodes them as ASCII
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_KEY_LENGTH ? value : null;
}

/** The fields of a ('storage', type, key, location, numel[, view]) persistent id, checked. */
function storageId(path: string, id: unknown, length: number): { dtype: TensorDtype; key: string; numel: number; items: readonly unknown[] } {
  if (!(id instanceof PyTuple)) return refuse(path, `the pickle has a persistent id that is a ${pyTypeName(id)}, not torch's storage tuple.`);
  const items = id.items;
  const kind = keyText(items[0]);
  if (kind === 'module') refuse(path, `the file holds a whole pickled nn.Module, not a state dict. ${HINT}`);
  if (kind !== 'storage') refuse(path, `the pickle has a persistent id of kind ${kind === null ? pyTypeName(items[0]) : quote(kind)}; torch.save writes only 'storage' ids.`);
  if (items.length !== length) refuse(path, `a storage's persistent id has ${items.length} fields, not the ${length} of this layout.`);
  const dtype = storageDtype(path, items[1]);
  const key = keyText(items[2]);
  if (key === null) return refuse(path, `a storage's key is ${typeof items[2] === 'string' ? quote(items[2]) : `a ${pyTypeName(items[2])}`}, not a short string.`);
  if (keyText(items[3]) === null) refuse(path, `storage ${quote(key)} has the location ${pyTypeName(items[3])}, not a device string like 'cpu'.`);
  const numel = index(items[4]);
  if (numel === null) return refuse(path, `storage ${quote(key)} has ${showInt(items[4])} elements, not a non-negative integer.`);
  return { dtype, key, numel, items };
}

/** The bytes of `numel` elements of `dtype`, or null past 2^53. */
function storageBytes(numel: number, dtype: TensorDtype): number | null {
  const bytes = numel * DTYPE_BYTES[dtype];
  return Number.isSafeInteger(bytes) ? bytes : null;
}

// ---- From the unpickled object to named tensors ----

function keyName(key: unknown): string | null {
  if (typeof key === 'string') return key;
  if (typeof key === 'bigint') return key.toString();
  return null;
}

/**
 * The tensors of a checkpoint with their names: a state dict's keys; a dict whose tensors all sit in
 * one dict entry ({'epoch': 3, 'state_dict': {...}}) is unwrapped to that entry; anything else nested
 * is named with dots ('model.fc1.weight'). Non-tensor leaves (epochs, strings, hyper-parameters) are
 * skipped. `visits` bounds the walk: a pickle can share one container under many keys.
 */
function namedTensors(context: Context, root: unknown, limits: ReadLimits, visits: number): { name: string; tensor: TensorRef }[] {
  const path = context.path;
  if (root instanceof TensorRef) return [{ name: context.stem, tensor: root }];
  if (!(root instanceof PyDict)) refuse(path, `the checkpoint holds a ${pyTypeName(root)}, not a state dict (a dict of tensors). ${HINT}`);

  let steps = 0;
  const step = () => {
    if (++steps > visits) refuse(path, 'the checkpoint shares its containers so many times that walking it would not end; the file is crafted.');
  };
  const children = (value: unknown): Iterable<[unknown, unknown]> | null => {
    if (value instanceof PyDict) return value.entries;
    if (Array.isArray(value)) return value.entries();
    if (value instanceof PyTuple) return value.items.entries();
    return null;
  };

  // Whether a value holds a tensor at any depth; containers already seen (or being seen: a cycle) answer from the cache.
  const holds = new Map<unknown, boolean>();
  const holdsTensor = (value: unknown, depth: number): boolean => {
    if (value instanceof TensorRef) return true;
    const kids = children(value);
    if (kids === null) return false;
    const known = holds.get(value);
    if (known !== undefined) return known;
    if (depth > MAX_NESTING) refuse(path, `the checkpoint nests containers more than ${MAX_NESTING} deep; the file is crafted.`);
    holds.set(value, false);
    let found = false;
    for (const [, child] of kids) {
      step();
      if (holdsTensor(child, depth + 1)) {
        found = true;
        break;
      }
    }
    holds.set(value, found);
    return found;
  };

  let top: PyDict = root;
  for (;;) {
    const holding = [...top.entries.values()].filter((v) => holdsTensor(v, 1));
    const only = holding[0];
    if (holding.length !== 1 || !(only instanceof PyDict)) break;
    top = only;
  }

  const found: { name: string; tensor: TensorRef }[] = [];
  const names = new Set<string>();
  const ancestors = new Set<unknown>();
  const walk = (value: unknown, name: string | null, depth: number): void => {
    step();
    if (value instanceof TensorRef) {
      if (name === null) refuse(path, 'a tensor is stored under a dict key that is neither a string nor an integer.');
      if (names.has(name)) refuse(path, `two tensors are named ${quote(name)} (a key with dots clashes with a nested dict).`);
      if (found.length >= limits.maxTensors) refuse(path, `the checkpoint holds more than ${limits.maxTensors} tensors, more than this reader accepts; raise maxTensors if the file is trusted.`);
      names.add(name);
      found.push({ name, tensor: value });
      return;
    }
    const kids = children(value);
    if (kids === null) return;
    if (depth > MAX_NESTING) refuse(path, `the checkpoint nests containers more than ${MAX_NESTING} deep; the file is crafted.`);
    if (ancestors.has(value)) refuse(path, 'the checkpoint contains itself (a container inside its own entries); the file is crafted.');
    ancestors.add(value);
    for (const [key, child] of kids) {
      const part = keyName(key);
      walk(child, part === null || name === null ? null : name === '' ? part : `${name}.${part}`, depth + 1);
    }
    ancestors.delete(value);
  };
  walk(top, '', 0);
  return found;
}

/** Checks every tensor's view against its storage and the element budget, then converts them all. */
function convert(context: Context, named: { name: string; tensor: TensorRef }[], limits: ReadLimits, littleEndian: boolean): FileTensor[] {
  const path = context.path;
  const counts: number[] = [];
  let left = limits.maxTotalElements;
  for (const { name, tensor } of named) {
    const count = elementCount(tensor.size, left);
    if (count === null) {
      refuse(path, `tensor ${quote(name)} with shape [${tensor.size.join(', ')}] brings the file past ${limits.maxTotalElements} elements, more than this reader accepts; raise maxTotalElements if the file is trusted.`);
    }
    left -= count;
    counts.push(count);
    if (count === 0) continue;
    // The last element a view reaches (strides are non-negative, so the first is `offset`), checked term by term.
    const elements = Math.floor(tensor.storage.byteLength / DTYPE_BYTES[tensor.dtype]);
    let last = tensor.offset;
    let inside = last < elements;
    for (let k = 0; inside && k < tensor.size.length; k++) {
      const reach = (tensor.size[k]! - 1) * tensor.stride[k]!;
      inside = reach < elements - last;
      last += reach;
    }
    if (!inside) {
      refuse(path, `tensor ${quote(name)} (offset ${tensor.offset}, shape [${tensor.size.join(', ')}], strides [${tensor.stride.join(', ')}]) reaches past the ${elements} ${tensor.dtype} elements of storage ${quote(tensor.storage.key)}; the file is damaged or crafted.`);
    }
  }
  return named.map(({ name, tensor }, i) => ({ name, shape: tensor.size, dtype: tensor.dtype, values: gather(tensor, counts[i]!, littleEndian) }));
}

/** The view's elements in C order (row-major), whatever its strides. */
function gather(tensor: TensorRef, count: number, littleEndian: boolean): Float32Array {
  const { size, stride, offset, dtype } = tensor;
  if (count === 0) return new Float32Array(0);
  const bytes = tensor.storage.data();
  const width = DTYPE_BYTES[dtype];
  let contiguous = true;
  let expected = 1;
  let span = 1;
  for (let k = size.length - 1; k >= 0; k--) {
    if (size[k]! !== 1 && stride[k]! !== expected) contiguous = false;
    expected *= size[k]!;
    span += (size[k]! - 1) * stride[k]!;
  }
  if (contiguous) return toFloat32(bytes, offset * width, count, dtype, littleEndian);

  // Convert the span the view covers once when it is not much larger than the view (a transpose, a
  // slice); a sparse view (huge strides) reads element by element instead, to bound the temporary.
  const source = span <= 4 * count ? toFloat32(bytes, offset * width, span, dtype, littleEndian) : null;
  const out = new Float32Array(count);
  const n = size.length;
  const at = new Float64Array(n);
  let src = 0;
  for (let i = 0; i < count; i++) {
    out[i] = source ? source[src]! : toFloat32(bytes, (offset + src) * width, 1, dtype, littleEndian)[0]!;
    // Step the multi-index in C order, carrying into earlier axes, and track the source element.
    for (let k = n - 1; k >= 0; k--) {
      at[k] = at[k]! + 1;
      src += stride[k]!;
      if (at[k]! < size[k]!) break;
      src -= stride[k]! * size[k]!;
      at[k] = 0;
    }
  }
  return out;
}

/** Runs one pickle of the file, turning the VM's refusals into messages about the file. */
function runPickle(context: Context, bytes: Uint8Array, start: number, what: string, limits: Partial<PickleLimits>): { value: unknown; end: number } {
  try {
    return unpickleAt(bytes, start, { globals: allowedGlobals(context.path), persistentLoad: (id) => context.persistentLoad(id), limits });
  } catch (error) {
    if (error instanceof PickleGlobalError) {
      return refuse(context.path, `${what} calls ${quote(`${error.module}.${error.qualifiedName}`)}, which a state dict never needs; Ticket Lab does not run code from model files (the policy of torch.load(weights_only=True)). ${HINT}`, error);
    }
    if (error instanceof PickleSizeError) {
      return refuse(context.path, `the pickles of the file are longer than the ${context.maxPickleBytes} bytes this reader accepts (${what} is cut off); raise maxHeaderBytes if the file is trusted.`, error);
    }
    if (error instanceof PickleError) return refuse(context.path, `${what} cannot be read: ${error.message}.`, error);
    throw error;
  }
}

function pickleLimits(limits: ReadLimits, maxBytes: number): Partial<PickleLimits> {
  return {
    maxBytes,
    // A state dict memoizes about ten values a tensor; generous room for the dicts around it.
    maxMemo: Math.min(limits.maxTensors, 2 ** 26) * 32 + 65_536,
  };
}

// ---- The zip layout ----


function zipLimits(limits: ReadLimits): ZipLimits {
  // Storages hold at most 8 bytes an element of the element budget; data.pkl at most maxHeaderBytes;
  // the small records (version, byteorder, …) a generous 4 KiB each.
  const data = Math.min(limits.maxTotalElements, Math.floor(Number.MAX_SAFE_INTEGER / 16)) * 8;
  const header = Math.min(limits.maxHeaderBytes, 2 ** 32);
  const entries = limits.maxTensors + 64;
  return {
    maxArchiveBytes: limits.maxFileBytes,
    maxEntries: entries,
    maxEntryBytes: Math.max(data, header),
    maxTotalBytes: data + header + Math.min(entries, 2 ** 32) * 4096,
  };
}

function readZip(path: string, bytes: Buffer, limits: ReadLimits): ModelFileContents {
  const zipError = (error: unknown): never => {
    if (error instanceof DataFormatError) refuse(path, zipReason(error, path), error);
    throw error;
  };
  let archive: ZipArchive;
  try {
    archive = ZipArchive.fromBytes(bytes, path, zipLimits(limits));
  } catch (error) {
    return zipError(error);
  }
  const readEntry = (entry: ZipEntry): Uint8Array => {
    try {
      return archive.read(entry);
    } catch (error) {
      return zipError(error);
    }
  };

  const files = archive.entries.filter((e) => !e.isDirectory);
  const pickles = files.filter((e) => e.segments.length <= 2 && e.segments[e.segments.length - 1] === 'data.pkl');
  if (pickles.length === 0) {
    const npy = files.some((e) => e.name.endsWith('.npy'));
    refuse(path, npy
      ? 'the archive holds .npy arrays but no data.pkl: it is a NumPy .npz, not a torch.save checkpoint.'
      : 'the archive holds no <archive>/data.pkl, so it is not a checkpoint written by torch.save.');
  }
  if (pickles.length > 1) refuse(path, `the archive holds ${pickles.length} data.pkl files (${pickles.slice(0, 3).map((e) => quote(e.name)).join(', ')}); a torch.save checkpoint has one.`);
  const pickle = pickles[0]!;
  const folder = pickle.segments.slice(0, -1);
  const records = new Map<string, ZipEntry>();
  for (const entry of files) {
    if (entry.segments.length > folder.length && folder.every((s, i) => entry.segments[i] === s)) {
      records.set(entry.segments.slice(folder.length).join('/'), entry);
    }
  }
  if (records.has('constants.pkl') || [...records.keys()].some((name) => name.startsWith('code/'))) {
    refuse(path, `the archive is a TorchScript module (torch.jit.save), which holds code, not a state dict. ${HINT}`);
  }

  let littleEndian = true;
  const order = records.get('byteorder');
  if (order !== undefined) {
    if (order.size > 16) refuse(path, `the byteorder record is ${order.size} bytes; torch writes 'little' or 'big'.`);
    const text = Buffer.from(readEntry(order)).toString('latin1');
    if (text !== 'little' && text !== 'big') refuse(path, `the byteorder record says ${quote(text)}; torch writes 'little' or 'big'.`);
    littleEndian = text === 'little';
  }

  if (pickle.size > limits.maxHeaderBytes) {
    refuse(path, `${quote(pickle.name)} is ${pickle.size} bytes, more than the ${limits.maxHeaderBytes} this reader accepts for a pickle; raise maxHeaderBytes if the file is trusted.`);
  }
  const storages = new Map<string, Storage>();
  const context: Context = {
    path,
    stem: basename(path).replace(TORCH_SUFFIXES, ''),
    maxPickleBytes: limits.maxHeaderBytes,
    persistentLoad(id) {
      const { dtype, key, numel } = storageId(path, id, 5);
      const known = storages.get(key);
      if (known !== undefined) {
        if (known.dtype !== dtype) refuse(path, `storage ${quote(key)} is used as both ${known.dtype} and ${dtype}.`);
        return known;
      }
      const record = records.get(`data/${key}`);
      if (record === undefined) refuse(path, `the pickle refers to storage ${quote(key)}, but the archive has no ${quote(`data/${key}`)} record; the file is truncated or damaged.`);
      const byteLength = storageBytes(numel, dtype);
      if (byteLength !== record.size) {
        refuse(path, `storage ${quote(key)} should hold ${numel} ${dtype} elements (${byteLength ?? 'too many'} bytes), but its record holds ${record.size} bytes; the file is damaged.`);
      }
      const storage = new Storage(key, dtype, byteLength, () => readEntry(record));
      storages.set(key, storage);
      return storage;
    },
  };

  const data = readEntry(pickle);
  const what = `the pickle ${quote(pickle.name)}`;
  const { value, end } = runPickle(context, data, 0, what, pickleLimits(limits, data.length));
  if (end !== data.length) refuse(path, `${what} has ${data.length - end} bytes after its end (STOP); the file is damaged.`);
  const named = namedTensors(context, value, limits, 2 * data.length + limits.maxTensors);
  return { format: 'pytorch', tensors: convert(context, named, limits, littleEndian) };
}

// ---- The legacy layout ----

function isLegacy(head: Uint8Array): boolean {
  // PROTO 2..5, then the magic's LONG1, after a FRAME (9 bytes) from protocol 4 on.
  if (head[0] !== 0x80 || head[1] === undefined || head[1] < 2 || head[1] > 5) return false;
  return startsWith(head, MAGIC_LONG1, 2) || (head[2] === 0x95 && startsWith(head, MAGIC_LONG1, 11));
}

function readLegacy(path: string, bytes: Buffer, limits: ReadLimits): ModelFileContents {
  /** Root storages by key, with their declared element counts; views by their own key. */
  const roots = new Map<string, { storage: Storage; numel: number }>();
  const views = new Map<string, Storage>();
  const payloads = new Map<string, Uint8Array>();
  const context: Context = {
    path,
    stem: basename(path).replace(TORCH_SUFFIXES, ''),
    maxPickleBytes: limits.maxHeaderBytes,
    persistentLoad(id) {
      const { dtype, key, numel, items } = storageId(path, id, 6);
      let root = roots.get(key);
      if (root === undefined) {
        const byteLength = storageBytes(numel, dtype);
        if (byteLength === null || byteLength > bytes.length) refuse(path, `storage ${quote(key)} claims ${numel} ${dtype} elements, more than the whole file holds.`);
        const storage = new Storage(key, dtype, byteLength, () => {
          const payload = payloads.get(key);
          if (payload === undefined) refuse(path, `storage ${quote(key)} is used but its data is not in the file; the file is truncated or damaged.`);
          return payload;
        });
        root = { storage, numel };
        roots.set(key, root);
      } else if (root.storage.dtype !== dtype) {
        refuse(path, `storage ${quote(key)} is used as both ${root.storage.dtype} and ${dtype}.`);
      }
      const view = items[5];
      if (view === null) return root.storage;
      // (view_key, offset, size) in elements: a slice of the root storage, written by PyTorch before 1.0.
      if (!(view instanceof PyTuple) || view.items.length !== 3) return refuse(path, `storage ${quote(key)} has view metadata that is a ${pyTypeName(view)}, not (key, offset, size).`);
      const viewKey = keyText(view.items[0]);
      const offset = index(view.items[1]);
      const size = index(view.items[2]);
      if (viewKey === null || offset === null || size === null || offset > root.numel || size > root.numel - offset) {
        return refuse(path, `storage ${quote(key)} has a view that is malformed or reaches past its ${root.numel} elements.`);
      }
      const known = views.get(viewKey);
      if (known !== undefined) return known;
      const width = DTYPE_BYTES[dtype];
      const parent = root.storage;
      const storage = new Storage(viewKey, dtype, size * width, () => parent.data().subarray(offset * width, (offset + size) * width));
      views.set(viewKey, storage);
      return storage;
    },
  };

  let at = 0;
  let budget = limits.maxHeaderBytes;
  const next = (what: string): unknown => {
    const { value, end } = runPickle(context, bytes, at, what, pickleLimits(limits, budget));
    budget -= end - at;
    at = end;
    return value;
  };
  const magic = next('the magic-number pickle');
  if (magic !== MAGIC_NUMBER) refuse(path, 'the first pickle is not torch.save\'s magic number; the file is not a PyTorch checkpoint.');
  const version = next('the protocol-version pickle');
  if (version !== PROTOCOL_VERSION) refuse(path, `the legacy protocol version is ${showInt(version)}; this reader knows ${PROTOCOL_VERSION}.`);
  const info = next('the sys_info pickle');
  if (!(info instanceof PyDict)) return refuse(path, `the sys_info pickle is a ${pyTypeName(info)}, not a dict.`);
  if (info.entries.get('little_endian') !== true) refuse(path, 'the checkpoint was written on a big-endian machine in the legacy layout, which this reader does not support; re-save it with torch >= 1.6.');
  const value = next('the checkpoint pickle');
  const keys = next('the storage-key pickle');
  if (!Array.isArray(keys)) return refuse(path, `the storage-key pickle is a ${pyTypeName(keys)}, not a list of keys.`);

  // Each storage: its element count as a little-endian int64, then its bytes, in the order of the keys.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const item of keys) {
    const key = keyText(item);
    const root = key === null ? undefined : roots.get(key);
    if (key === null || root === undefined) return refuse(path, `the storage keys list ${key === null ? `a ${pyTypeName(item)}` : quote(key)}, which no tensor uses; the file is damaged.`);
    if (payloads.has(key)) refuse(path, `the storage keys list ${quote(key)} twice; the file is damaged.`);
    if (bytes.length - at < 8) refuse(path, `the data of storage ${quote(key)} is missing; the file is truncated.`);
    const numel = view.getBigInt64(at, true);
    if (numel !== BigInt(root.numel)) refuse(path, `storage ${quote(key)} holds ${numel} elements in the file, but the pickle says ${root.numel}; the file is damaged.`);
    at += 8;
    const length = root.storage.byteLength;
    if (length > bytes.length - at) refuse(path, `storage ${quote(key)} needs ${length} bytes, but only ${bytes.length - at} are left; the file is truncated.`);
    payloads.set(key, bytes.subarray(at, at + length));
    at += length;
  }
  if (at !== bytes.length) refuse(path, `${bytes.length - at} bytes follow the last storage; the file is damaged.`);
  const named = namedTensors(context, value, limits, 2 * (limits.maxHeaderBytes - budget) + limits.maxTensors);
  return { format: 'pytorch', tensors: convert(context, named, limits, true) };
}

// ---- The format ----

function read(path: string, limits: ReadLimits): ModelFileContents {
  return guardedRead(path, 'a PyTorch state dict', () => {
    const bytes = readFileBytes(path, limits);
    if (startsWith(bytes, ZIP_LOCAL_HEADER)) return readZip(path, bytes, limits);
    if (isLegacy(bytes)) return readLegacy(path, bytes, limits);
    if (startsWith(bytes, OLD_TAR_HEAD)) {
      refuse(path, 'the file is in the tar-based layout of PyTorch before 0.4, which this reader does not support; load it with torch and re-save it with a current version.');
    }
    if (bytes[0] === 0x80) refuse(path, 'the file is a bare pickle without torch.save\'s magic number; Ticket Lab reads checkpoints written by torch.save.');
    return refuse(path, 'the file is neither a torch.save zip archive nor the legacy torch.save layout.');
  });
}

function detect(head: Uint8Array, fileName: string): boolean {
  if (isLegacy(head) || startsWith(head, OLD_TAR_HEAD)) return true;
  if (!startsWith(head, ZIP_LOCAL_HEADER) || head.length < 30) return false;
  // The first member's name is at offset 30 of the local header, its length at 26; torch writes
  // <archive>/data.pkl first. A name cut off by the 64-byte head leaves the file name to decide.
  const nameLength = head[26]! | (head[27]! << 8);
  const whole = 30 + nameLength <= head.length;
  const name = String.fromCharCode(...head.subarray(30, Math.min(head.length, 30 + nameLength)));
  if (whole && (name.endsWith('/data.pkl') || name === 'data.pkl')) return true;
  if (whole && name.endsWith('.npy')) return false;
  return TORCH_SUFFIXES.test(fileName);
}

export const pytorchFormat: ModelFormat = {
  id: 'pytorch',
  title: 'PyTorch state dict',
  detect,
  read,
};
