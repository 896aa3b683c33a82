// Reader for the IDX format of MNIST-style datasets (raw or gzip-compressed), from bytes or a file.
// http://yann.lecun.com/exdb/mnist/ : 2 zero bytes, a type byte, the number of dimensions,
// then each dimension as a big-endian u32, then the data in C order, big-endian.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { DataFormatError } from '../api/errors';

export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dims: number[];
  data: IdxData;
}

const TYPES: Record<number, { name: string; bytes: number }> = {
  0x08: { name: 'u8', bytes: 1 },
  0x09: { name: 'i8', bytes: 1 },
  0x0b: { name: 'i16', bytes: 2 },
  0x0c: { name: 'i32', bytes: 4 },
  0x0d: { name: 'f32', bytes: 4 },
  0x0e: { name: 'f64', bytes: 8 },
};

/** Refuse absurd headers before allocating (a hostile file could claim 2^32 items). */
const MAX_ELEMENTS = 2 ** 31;

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

export function parseIdx(input: Uint8Array, source = 'IDX data'): IdxArray {
  let bytes = input;
  if (isGzip(bytes)) {
    try {
      bytes = gunzipSync(bytes);
    } catch (error) {
      throw new DataFormatError(`${source} looks gzip-compressed but does not decompress: ${(error as Error).message}.`, { cause: error });
    }
  }
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DataFormatError(`${source} is not an IDX file (it must start with two zero bytes, a type byte and a dimension count).`);
  }
  const typeCode = bytes[2]!;
  const type = TYPES[typeCode];
  if (!type) throw new DataFormatError(`${source} has unknown IDX type 0x${typeCode.toString(16)}.`);
  const rank = bytes[3]!;
  if (rank === 0) throw new DataFormatError(`${source} declares zero dimensions.`);
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) throw new DataFormatError(`${source} ends inside its header.`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < rank; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  if (count > MAX_ELEMENTS) throw new DataFormatError(`${source} declares ${count} elements, more than this reader accepts.`);
  const expected = headerBytes + count * type.bytes;
  if (bytes.length !== expected) {
    throw new DataFormatError(`${source} should hold ${expected} bytes for dimensions [${dims.join(', ')}] of ${type.name}, but holds ${bytes.length}.`);
  }
  return { dims, data: decodeBody(view, headerBytes, count, typeCode) };
}

function decodeBody(view: DataView, offset: number, count: number, typeCode: number): IdxData {
  switch (typeCode) {
    case 0x08:
      return new Uint8Array(view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + count));
    case 0x09:
      return new Int8Array(view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + count));
    case 0x0b: {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(offset + 2 * i, false);
      return out;
    }
    case 0x0c: {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(offset + 4 * i, false);
      return out;
    }
    case 0x0d: {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(offset + 4 * i, false);
      return out;
    }
    default: {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(offset + 8 * i, false);
      return out;
    }
  }
}

export function readIdxFile(path: string): IdxArray {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new DataFormatError(`Cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, { cause: error });
  }
  return parseIdx(bytes, path);
}

/** Writes an IDX file body (u8 only): used to hand users and tests small datasets in the same format. */
export function encodeIdxU8(dims: readonly number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}
