// Readers for NumPy's .npy (one array) and .npz (a zip of .npy members, from np.savez and
// np.savez_compressed). Spec: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
// (format versions 1.0, 2.0 and 3.0). The header is a Python dict literal: it is parsed by a small
// strict grammar, never evaluated, and every claim is checked against the limits before allocating.
import { basename } from 'node:path';
import { DataFormatError } from '../api/errors';
import { ZipArchive, type ZipLimits } from '../data/zip';
import { DTYPE_BYTES, elementCount, toFloat32 } from './dtypes';
import { errorText, guardedRead, quote, readFileBytes, zipReason } from './file-bytes';
import { ModelFileError, type FileTensor, type ModelFileContents, type ModelFormat, type ReadLimits, type TensorDtype } from './model-format';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const ZIP_LOCAL_HEADER = [0x50, 0x4b, 0x03, 0x04]; // "PK\x03\x04"
const NPY_SUFFIX = '.npy';
const HEADER_KEYS = ['descr', 'fortran_order', 'shape'];
/** NumPy 2 allows 64 dimensions; more is a crafted file. */
const MAX_DIMENSIONS = 64;
/** The header's literals nest two deep at most (a dict holding a tuple); structured descrs a little more. */
const MAX_NESTING = 16;
/** Longer integer literals than this cannot be a dimension a reader accepts anyway. */
const MAX_DIGITS = 30;

/** Kind and item size of a descr (without its byte-order character) to our dtype; a Map so "constructor" finds nothing. */
const DESCR_DTYPES = new Map<string, TensorDtype>([
  ['f8', 'float64'], ['f4', 'float32'], ['f2', 'float16'],
  ['i8', 'int64'], ['i4', 'int32'], ['i2', 'int16'], ['i1', 'int8'],
  ['u8', 'uint64'], ['u4', 'uint32'], ['u2', 'uint16'], ['u1', 'uint8'], ['b1', 'bool'],
]);

export interface NpyOptions {
  /** Header bytes accepted (ReadLimits.maxHeaderBytes); unbounded when left out. */
  maxHeaderBytes?: number;
  /** The .npz member being parsed, named in messages. */
  member?: string;
}

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return bytes.length >= prefix.length && prefix.every((b, i) => bytes[i] === b);
}

// ---- The header: a Python literal of str, int, True/False/None, tuple, list and dict. ----

type PyValue =
  | { kind: 'str'; value: string }
  | { kind: 'int'; text: string }
  | { kind: 'bool'; value: boolean }
  | { kind: 'none' }
  | { kind: 'tuple' | 'list'; items: PyValue[] }
  | { kind: 'dict'; entries: Map<string, PyValue> };

/** Raised inside the parser with a reason; parseNpy turns it into a ModelFileError. */
class HeaderSyntaxError extends Error {}

class LiteralParser {
  private at = 0;

  constructor(private readonly text: string) {}

  parseWhole(): PyValue {
    const value = this.value(0);
    this.skipSpace();
    if (this.at !== this.text.length) this.fail('text after the dict');
    return value;
  }

  private fail(what: string): never {
    throw new HeaderSyntaxError(`${what} at character ${this.at}`);
  }

  private skipSpace(): void {
    while (this.at < this.text.length && ' \t\n\r'.includes(this.text[this.at]!)) this.at++;
  }

  private value(depth: number): PyValue {
    if (depth > MAX_NESTING) this.fail(`literals nested more than ${MAX_NESTING} deep`);
    this.skipSpace();
    const c = this.text[this.at];
    if (c === '{') return this.dict(depth);
    if (c === '(') return this.sequence(depth, ')');
    if (c === '[') return this.sequence(depth, ']');
    if (c === "'" || c === '"') return { kind: 'str', value: this.string() };
    if (c !== undefined && /[-0-9]/.test(c)) return this.integer();
    const word = /^[A-Za-z_]\w*/.exec(this.text.slice(this.at, this.at + 64))?.[0];
    if (word === 'True' || word === 'False') {
      this.at += word.length;
      return { kind: 'bool', value: word === 'True' };
    }
    if (word === 'None') {
      this.at += word.length;
      return { kind: 'none' };
    }
    return this.fail(c === undefined ? 'the header ends where a value should be' : `unexpected ${quote(word ?? c)} where a literal should be`);
  }

  private string(): string {
    const close = this.text[this.at]!;
    const start = ++this.at;
    while (this.at < this.text.length && this.text[this.at] !== close) {
      // NumPy writes no escapes in the strings it can read back here; refusing them keeps the grammar exact.
      if (this.text[this.at] === '\\' || this.text[this.at] === '\n') this.fail('a string with an escape or line break');
      this.at++;
    }
    if (this.at >= this.text.length) this.fail('an unterminated string');
    return this.text.slice(start, this.at++);
  }

  private integer(): PyValue {
    const match = /^-?[0-9]+L?/.exec(this.text.slice(this.at, this.at + MAX_DIGITS + 3));
    if (!match) return this.fail('a malformed number');
    // Python 2 wrote longs as "3L" in version 1.0 headers.
    const text = match[0].replace(/L$/, '');
    if (text.replace('-', '').length > MAX_DIGITS) this.fail('an integer with too many digits');
    this.at += match[0].length;
    if (/^[\w.]/.test(this.text[this.at] ?? '')) this.fail('a malformed number');
    return { kind: 'int', text };
  }

  private sequence(depth: number, close: ')' | ']'): PyValue {
    this.at++;
    const items: PyValue[] = [];
    let trailingComma = false;
    for (;;) {
      this.skipSpace();
      if (this.text[this.at] === close) break;
      items.push(this.value(depth + 1));
      this.skipSpace();
      trailingComma = this.text[this.at] === ',';
      if (trailingComma) this.at++;
      else if (this.text[this.at] !== close) this.fail(`expected ',' or '${close}'`);
    }
    this.at++;
    // As in Python, "(5)" is the integer 5, not a tuple: only "(5,)" is.
    if (close === ')' && items.length === 1 && !trailingComma) return items[0]!;
    return { kind: close === ')' ? 'tuple' : 'list', items };
  }

  private dict(depth: number): PyValue {
    this.at++;
    const entries = new Map<string, PyValue>();
    for (;;) {
      this.skipSpace();
      if (this.text[this.at] === '}') break;
      const key = this.value(depth + 1);
      if (key.kind !== 'str') this.fail('a dict key that is not a string');
      if (entries.has(key.value)) this.fail(`the key ${quote(key.value)} given twice`);
      this.skipSpace();
      if (this.text[this.at] !== ':') this.fail("expected ':'");
      this.at++;
      entries.set(key.value, this.value(depth + 1));
      this.skipSpace();
      if (this.text[this.at] === ',') this.at++;
      else if (this.text[this.at] !== '}') this.fail("expected ',' or '}'");
    }
    this.at++;
    return { kind: 'dict', entries };
  }
}

function show(value: PyValue): string {
  switch (value.kind) {
    case 'str': return quote(value.value);
    case 'int': return value.text;
    case 'bool': return value.value ? 'True' : 'False';
    case 'none': return 'None';
    case 'tuple': return value.items.length > 8 ? 'a long tuple' : `(${value.items.map(show).join(', ')}${value.items.length === 1 ? ',' : ''})`;
    case 'list': return 'a list';
    case 'dict': return 'a dict';
  }
}

// ---- .npy ----

/**
 * One .npy array from its bytes. `name` names the tensor, `path` the file in messages; the shape's
 * element count is checked against `budget.elements` before anything is allocated, and taken from it
 * on success, so that one budget bounds all the members of an .npz.
 */
export function parseNpy(bytes: Uint8Array, name: string, path: string, budget: { elements: number }, options: NpyOptions = {}): FileTensor {
  const subject = options.member === undefined ? 'the file' : `member ${quote(options.member)}`;
  const refuse: (reason: string) => never = (reason) => {
    throw new ModelFileError(path, `${subject} ${reason}`);
  };

  if (!startsWith(bytes, MAGIC)) refuse('does not start with the .npy magic "\\x93NUMPY", so it is not a NumPy array.');
  if (bytes.length < 10) refuse(`is ${bytes.length} bytes, too short for a .npy preamble.`);
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (minor !== 0 || major < 1 || major > 3) refuse(`is .npy format version ${major}.${minor}; this reader knows 1.0, 2.0 and 3.0.`);
  // Version 1.0 has a u16 header length; 2.0 and 3.0 a u32, for headers of huge structured dtypes.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const preamble = major === 1 ? 10 : 12;
  if (bytes.length < preamble) refuse(`is ${bytes.length} bytes, too short for a version ${major}.0 .npy preamble.`);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (options.maxHeaderBytes !== undefined && headerLength > options.maxHeaderBytes) {
    refuse(`has a ${headerLength}-byte header, more than the ${options.maxHeaderBytes} this reader accepts; raise maxHeaderBytes if the file is trusted.`);
  }
  if (headerLength > bytes.length - preamble) {
    refuse(`claims a ${headerLength}-byte header, past the end of its ${bytes.length} bytes; it is truncated or damaged.`);
  }

  let text: string;
  try {
    // 1.0 and 2.0 headers are latin-1 (ASCII in practice); 3.0 allows UTF-8 for structured field names.
    const raw = bytes.subarray(preamble, preamble + headerLength);
    text = major === 3 ? new TextDecoder('utf-8', { fatal: true }).decode(raw) : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');
  } catch (error) {
    return refuse(`has a header that is not valid UTF-8 (${errorText(error)}).`);
  }
  let header: PyValue;
  try {
    header = new LiteralParser(text).parseWhole();
  } catch (error) {
    if (!(error instanceof HeaderSyntaxError)) throw error;
    return refuse(`has a header that is not the Python dict literal of a .npy file (${error.message}).`);
  }
  if (header.kind !== 'dict') return refuse(`has a header that is ${show(header)}, not a dict of descr, fortran_order and shape.`);
  const keys = [...header.entries.keys()];
  if (keys.length !== HEADER_KEYS.length || !HEADER_KEYS.every((k) => header.entries.has(k))) {
    refuse(`has a header with the keys ${keys.map(quote).join(', ') || 'none'}; a .npy header has exactly 'descr', 'fortran_order' and 'shape'.`);
  }

  const descr = header.entries.get('descr')!;
  if (descr.kind !== 'str') {
    refuse(descr.kind === 'list'
      ? 'is a structured array (its descr is a list of named fields), which this reader does not support; save plain numeric arrays.'
      : `has the descr ${show(descr)}, not a dtype string like '<f4'.`);
  }
  const descrText = descr.value;
  const order = descrText[0];
  const dtype = DESCR_DTYPES.get(descrText.slice(1));
  // Byte order: '<' little, '>' big, '=' native (little on every machine this runs on), '|' not applicable (one byte).
  const orderFits = dtype !== undefined && (DTYPE_BYTES[dtype] === 1 ? order !== undefined && '<>=|'.includes(order) : order !== undefined && '<>='.includes(order));
  if (dtype === undefined || !orderFits) {
    const hint = /^[<>=|]?O/.test(descrText) ? ' (Python objects need unpickling, which this reader never does)' : '';
    return refuse(`has the dtype ${quote(descrText)}${hint}, which this reader does not support; it reads float16/32/64, int8-64, uint8-64 and bool.`);
  }
  const littleEndian = order !== '>';

  const fortran = header.entries.get('fortran_order')!;
  if (fortran.kind !== 'bool') return refuse(`has fortran_order ${show(fortran)}, not True or False.`);

  const shapeValue = header.entries.get('shape')!;
  if (shapeValue.kind !== 'tuple') return refuse(`has the shape ${show(shapeValue)}, not a tuple of dimensions.`);
  if (shapeValue.items.length > MAX_DIMENSIONS) refuse(`has ${shapeValue.items.length} dimensions, more than the ${MAX_DIMENSIONS} NumPy allows.`);
  const shape: number[] = [];
  for (const item of shapeValue.items) {
    const dim = item.kind === 'int' ? Number(item.text) : Number.NaN;
    if (!Number.isSafeInteger(dim) || dim < 0) refuse(`has the shape ${show(shapeValue)}, whose dimension ${show(item)} is not a non-negative integer.`);
    shape.push(dim === 0 ? 0 : dim); // "-0" is 0 in Python; no -0 in our shapes
  }
  const count = elementCount(shape, budget.elements);
  if (count === null) {
    return refuse(`has the shape ${show(shapeValue)}, more elements than the ${budget.elements} left within maxTotalElements; raise it if the file is trusted.`);
  }

  const dataStart = preamble + headerLength;
  const needed = count * DTYPE_BYTES[dtype];
  const dataLength = bytes.length - dataStart;
  if (dataLength !== needed) {
    refuse(`holds ${dataLength} data bytes, but shape ${show(shapeValue)} of ${descrText} needs ${needed}; it is ${dataLength < needed ? 'truncated' : 'damaged (trailing bytes)'}.`);
  }

  let values = toFloat32(bytes, dataStart, count, dtype, littleEndian);
  if (fortran.value) values = fortranToC(values, shape);
  budget.elements -= count;
  return { name, shape, dtype, values };
}

/** Column-major values (first index fastest) rearranged to row-major (last index fastest). */
function fortranToC(source: Float32Array, shape: readonly number[]): Float32Array {
  const n = shape.length;
  if (n < 2 || source.length === 0) return source;
  const cStrides = new Float64Array(n);
  let stride = 1;
  for (let k = n - 1; k >= 0; k--) {
    cStrides[k] = stride;
    stride *= shape[k]!;
  }
  const out = new Float32Array(source.length);
  const index = new Float64Array(n);
  let c = 0;
  for (let f = 0; f < source.length; f++) {
    out[c] = source[f]!;
    // Step the multi-index in Fortran order, carrying into later axes, and track its C offset.
    for (let k = 0; k < n; k++) {
      index[k] = index[k]! + 1;
      c += cStrides[k]!;
      if (index[k]! < shape[k]!) break;
      c -= cStrides[k]! * shape[k]!;
      index[k] = 0;
    }
  }
  return out;
}

// ---- Reading files ----

function readNpy(path: string, limits: ReadLimits): ModelFileContents {
  return guardedRead(path, 'NumPy .npy', () => {
    const bytes = readFileBytes(path, limits);
    const base = basename(path);
    const name = base.toLowerCase().endsWith(NPY_SUFFIX) ? base.slice(0, -NPY_SUFFIX.length) : base;
    const tensor = parseNpy(bytes, name, path, { elements: limits.maxTotalElements }, { maxHeaderBytes: limits.maxHeaderBytes });
    return { format: 'npy', tensors: [tensor] };
  });
}


function zipLimits(limits: ReadLimits): ZipLimits {
  // Each member is a .npy preamble, a header and at most 8 bytes an element (within the element
  // budget); headers together get one maxHeaderBytes and a generous 4 KiB a member. Directory
  // entries are the only non-member entries allowed, hence the few spare entries.
  const data = Math.min(limits.maxTotalElements, Math.floor(Number.MAX_SAFE_INTEGER / 16)) * 8;
  const header = Math.min(limits.maxHeaderBytes, 2 ** 32) + 12;
  return {
    maxArchiveBytes: limits.maxFileBytes,
    maxEntries: limits.maxTensors + 16,
    maxEntryBytes: data + header,
    maxTotalBytes: data + header + Math.min(limits.maxTensors + 16, 2 ** 32) * 4096,
  };
}

function readNpz(path: string, limits: ReadLimits): ModelFileContents {
  return guardedRead(path, 'NumPy .npz', () => {
    const bytes = readFileBytes(path, limits);
    let archive: ZipArchive;
    try {
      archive = ZipArchive.fromBytes(bytes, path, zipLimits(limits));
    } catch (error) {
      if (error instanceof DataFormatError) throw new ModelFileError(path, zipReason(error, path), { cause: error });
      throw error;
    }

    // Check every entry's name first, so nothing is inflated for an archive that is refused.
    const members = archive.entries.filter((e) => !e.isDirectory);
    const names = new Set<string>();
    for (const entry of members) {
      if (!entry.name.endsWith(NPY_SUFFIX)) {
        throw new ModelFileError(path, `member ${quote(entry.name)} is not a .npy array; an .npz holds only .npy members.`);
      }
      const name = entry.name.slice(0, -NPY_SUFFIX.length);
      if (names.has(name)) throw new ModelFileError(path, `member ${quote(entry.name)} appears twice.`);
      names.add(name);
    }
    if (members.length > limits.maxTensors) {
      throw new ModelFileError(path, `the archive holds ${members.length} arrays, more than the ${limits.maxTensors} this reader accepts; raise maxTensors if the file is trusted.`);
    }

    const budget = { elements: limits.maxTotalElements };
    const tensors = members.map((entry) => {
      let data: Uint8Array;
      try {
        data = archive.read(entry);
      } catch (error) {
        if (error instanceof DataFormatError) throw new ModelFileError(path, zipReason(error, path), { cause: error });
        throw error;
      }
      return parseNpy(data, entry.name.slice(0, -NPY_SUFFIX.length), path, budget, { maxHeaderBytes: limits.maxHeaderBytes, member: entry.name });
    });
    return { format: 'npz', tensors };
  });
}

export const npyFormat: ModelFormat = {
  id: 'npy',
  title: 'NumPy .npy',
  detect: (head) => startsWith(head, MAGIC),
  read: readNpy,
};

export const npzFormat: ModelFormat = {
  id: 'npz',
  title: 'NumPy .npz',
  detect(head, fileName) {
    if (!startsWith(head, ZIP_LOCAL_HEADER)) return false;
    if (fileName.toLowerCase().endsWith('.npz')) return true;
    // Other zips (PyTorch checkpoints among them) are told apart by the first member's name, at offset
    // 30 of the local header with its length at 26; a name cut off by the 64-byte head does not count.
    if (head.length < 30) return false;
    const nameLength = head[26]! | (head[27]! << 8);
    if (nameLength < NPY_SUFFIX.length || 30 + nameLength > head.length) return false;
    return String.fromCharCode(...head.subarray(30 + nameLength - NPY_SUFFIX.length, 30 + nameLength)) === NPY_SUFFIX;
  },
  read: readNpz,
};
