// A reader for Hugging Face safetensors files: an 8-byte little-endian header length, a UTF-8 JSON
// header naming each tensor's dtype, shape and byte range, then the little-endian data section.
// Spec: https://github.com/huggingface/safetensors, README, "Format" section. Every claim of the
// header is checked against the limits and the file's size before a float32 copy is allocated.
import { DTYPE_BYTES, elementCount, toFloat32 } from './dtypes';
import { guardedRead, isPlainObject, quote, readFileBytes, refuse, show } from './file-bytes';
import { type FileTensor, type ModelFileContents, type ModelFormat, type ReadLimits, type TensorDtype } from './model-format';

/** The spec's dtype names; a Map so that a name like "constructor" finds nothing. */
const DTYPES = new Map<string, TensorDtype>([
  ['F64', 'float64'], ['F32', 'float32'], ['F16', 'float16'], ['BF16', 'bfloat16'],
  ['I64', 'int64'], ['I32', 'int32'], ['I16', 'int16'], ['I8', 'int8'],
  ['U64', 'uint64'], ['U32', 'uint32'], ['U16', 'uint16'], ['U8', 'uint8'], ['BOOL', 'bool'],
]);

const ENTRY_KEYS = new Set(['dtype', 'shape', 'data_offsets']);
const METADATA_KEY = '__metadata__';
const OPEN_BRACE = 0x7b;

interface Entry {
  name: string;
  dtype: TensorDtype;
  shape: number[];
  count: number;
  begin: number;
  end: number;
}




function detect(head: Uint8Array, _fileName: string): boolean {
  if (head.length < 9) return false;
  const length = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  // Text formats (a tfjs model.json, say) put printable bytes in the top of the u64; a real header
  // length stays far below 2^53, so the content alone decides and the file name is not needed.
  return length >= 2n && length <= BigInt(Number.MAX_SAFE_INTEGER) && head[8] === OPEN_BRACE;
}

function read(path: string, limits: ReadLimits): ModelFileContents {
  return guardedRead(path, 'safetensors', () => readChecked(path, limits));
}

function readChecked(path: string, limits: ReadLimits): ModelFileContents {
  const bytes = readFileBytes(path, limits);
  if (bytes.length < 8) refuse(path, `the file is ${bytes.length} bytes, too short for the 8-byte header length of a safetensors file.`);

  const claimed = bytes.readBigUInt64LE(0);
  if (claimed > BigInt(Number.MAX_SAFE_INTEGER)) refuse(path, `the header length ${claimed} is impossibly large; the file is not safetensors or is damaged.`);
  const headerLength = Number(claimed);
  if (headerLength > limits.maxHeaderBytes) {
    refuse(path, `the JSON header is ${headerLength} bytes, more than the ${limits.maxHeaderBytes} this reader accepts; raise maxHeaderBytes if the file is trusted.`);
  }
  if (headerLength > bytes.length - 8) {
    refuse(path, `the header length ${headerLength} runs past the end of the ${bytes.length}-byte file; the file is truncated or not safetensors.`);
  }

  let header: unknown;
  try {
    // fatal: the spec requires UTF-8, and replacement characters would silently rename tensors.
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)));
  } catch (error) {
    return refuse(path, `the header is not valid UTF-8 JSON (${error instanceof Error ? error.message : String(error)}); the file is damaged or not safetensors.`, error);
  }
  if (!isPlainObject(header)) return refuse(path, `the JSON header is ${Array.isArray(header) ? 'an array' : show(header)}, not an object of tensors.`);

  const metadata = header[METADATA_KEY];
  if (Object.hasOwn(header, METADATA_KEY) && !(isPlainObject(metadata) && Object.values(metadata).every((v) => typeof v === 'string'))) {
    refuse(path, `the "${METADATA_KEY}" entry must be an object of strings to strings.`);
  }
  const names = Object.keys(header).filter((key) => key !== METADATA_KEY);
  if (names.length > limits.maxTensors) {
    refuse(path, `the header lists ${names.length} tensors, more than the ${limits.maxTensors} this reader accepts; raise maxTensors if the file is trusted.`);
  }

  // First pass: check every entry, so nothing is allocated for a file that is refused.
  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  // Capped so that elements × 8 bytes stays an exact integer even with limits of Infinity.
  const elementCap = Math.min(limits.maxTotalElements, Math.floor(Number.MAX_SAFE_INTEGER / 8));
  let totalElements = 0;
  const entries: Entry[] = [];
  for (const name of names) {
    const entry = header[name];
    const tensor = `tensor ${quote(name)}`;
    if (!isPlainObject(entry)) return refuse(path, `${tensor} is described by ${show(entry)}, not an object with dtype, shape and data_offsets.`);
    const unknown = Object.keys(entry).find((key) => !ENTRY_KEYS.has(key));
    if (unknown !== undefined) refuse(path, `${tensor} has the key ${quote(unknown)}; safetensors entries hold only dtype, shape and data_offsets.`);
    const missing = [...ENTRY_KEYS].find((key) => !Object.hasOwn(entry, key));
    if (missing !== undefined) refuse(path, `${tensor} has no ${missing}.`);

    const dtype = typeof entry.dtype === 'string' ? DTYPES.get(entry.dtype) : undefined;
    if (dtype === undefined) {
      return refuse(path, `${tensor} has dtype ${show(entry.dtype)}, which this reader does not know (it reads ${[...DTYPES.keys()].join(', ')}).`);
    }

    const shape = entry.shape;
    if (!Array.isArray(shape)) return refuse(path, `${tensor} has shape ${show(shape)}, not an array of dimensions.`);
    const badDim: unknown = shape.find((d: unknown) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0);
    if (badDim !== undefined) refuse(path, `${tensor} has shape ${show(shape)}, whose dimension ${show(badDim)} is not a non-negative integer.`);
    const count = elementCount(shape, elementCap - totalElements);
    if (count === null) {
      return refuse(path, `${tensor} with shape ${show(shape)} brings the file past ${limits.maxTotalElements} elements, more than this reader accepts; raise maxTotalElements if the file is trusted.`);
    }
    totalElements += count;

    const offsets: unknown = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o: unknown) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)) {
      return refuse(path, `${tensor} has data_offsets ${show(offsets)}, not two non-negative integers [begin, end].`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) refuse(path, `${tensor} has data_offsets [${begin}, ${end}], which end before they begin.`);
    if (end > dataLength) {
      refuse(path, `${tensor} claims bytes ${begin} to ${end} of a data section of only ${dataLength} bytes; the file is truncated or damaged.`);
    }
    const needed = count * DTYPE_BYTES[dtype];
    if (end - begin !== needed) refuse(path, `${tensor} spans ${end - begin} bytes, but shape ${show(shape)} of ${entry.dtype as string} needs ${needed}.`);
    entries.push({ name, dtype, shape: shape as number[], count, begin, end });
  }

  // The file's data order; for equal starts the shorter (empty) range first.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let previous: Entry | undefined;
  for (const entry of entries) {
    // An empty tensor owns no bytes, so it cannot overlap anything.
    if (entry.end === entry.begin) continue;
    if (previous !== undefined && entry.begin < previous.end) {
      refuse(path, `tensors ${quote(previous.name)} (bytes ${previous.begin} to ${previous.end}) and ${quote(entry.name)} (bytes ${entry.begin} to ${entry.end}) overlap; the file is damaged or crafted.`);
    }
    previous = entry;
  }

  // Second pass: every range is inside the file and the total is within the limits.
  const tensors = entries.map((e): FileTensor => ({
    name: e.name,
    shape: e.shape,
    dtype: e.dtype,
    values: toFloat32(bytes, dataStart + e.begin, e.count, e.dtype),
  }));
  return { format: 'safetensors', tensors };
}

export const safetensorsFormat: ModelFormat = {
  id: 'safetensors',
  title: 'safetensors',
  detect,
  read,
};
