// The safetensors reader on files built here byte by byte: every dtype's conversion, names, shapes
// and data order, detection by content, and hostile headers, each refused with a ModelFileError
// that names the file.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_READ_LIMITS, ModelFileError, type ReadLimits } from '../../../core/formats/model-format';
import { safetensorsFormat } from '../../../core/formats/safetensors';

const folder = mkdtempSync(join(tmpdir(), 'ticket-lab-st-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

type Kind = 'f64' | 'f32' | 'u16' | 'i64' | 'u64' | 'i32' | 'u32' | 'i16' | 'i8' | 'u8';

/** Little-endian bytes of `values` stored as `kind` (u16 carries raw F16/BF16 bit patterns). */
function le(kind: Kind, values: Array<number | bigint>): Uint8Array {
  const size = { f64: 8, f32: 4, u16: 2, i64: 8, u64: 8, i32: 4, u32: 4, i16: 2, i8: 1, u8: 1 }[kind];
  const out = new Uint8Array(size * values.length);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => {
    const at = i * size;
    if (kind === 'f64') view.setFloat64(at, Number(v), true);
    else if (kind === 'f32') view.setFloat32(at, Number(v), true);
    else if (kind === 'i64') view.setBigInt64(at, BigInt(v), true);
    else if (kind === 'u64') view.setBigUint64(at, BigInt(v), true);
    else if (kind === 'i32') view.setInt32(at, Number(v), true);
    else if (kind === 'u32') view.setUint32(at, Number(v), true);
    else if (kind === 'i16') view.setInt16(at, Number(v), true);
    else if (kind === 'u16') view.setUint16(at, Number(v), true);
    else if (kind === 'i8') view.setInt8(at, Number(v));
    else view.setUint8(at, Number(v));
  });
  return out;
}

/** The 8-byte length, the header text and the data; `claimedLength` overrides the length field. */
function encode(header: string, data: Uint8Array = new Uint8Array(0), claimedLength?: bigint): Uint8Array {
  const text = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, claimedLength ?? BigInt(text.length), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

interface TensorSpec {
  dtype: string;
  shape: unknown;
  bytes: Uint8Array;
  /** Given to write a lying header; otherwise the tensors are laid out one after another in listing order. */
  offsets?: unknown;
  /** Further keys of the entry (not allowed by the format). */
  extra?: Record<string, unknown>;
}

/** A safetensors file from a description, as the library would write it unless the description lies. */
function build(tensors: Record<string, TensorSpec>, metadata?: unknown): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: t.offsets !== undefined ? t.offsets : [at, at + t.bytes.length], ...t.extra };
    chunks.push(t.bytes);
    at += t.bytes.length;
  }
  const data = new Uint8Array(at);
  let offset = 0;
  for (const chunk of chunks) {
    data.set(chunk, offset);
    offset += chunk.length;
  }
  return encode(JSON.stringify(header), data);
}

let fileNumber = 0;
function write(bytes: Uint8Array, name = `t${++fileNumber}.safetensors`): string {
  const path = join(folder, name);
  writeFileSync(path, bytes);
  return path;
}

/** The ModelFileError reading `bytes` gives; fails the test if it reads or throws anything else. */
function refusal(bytes: Uint8Array, limits: ReadLimits = DEFAULT_READ_LIMITS): { path: string; message: string } {
  const path = write(bytes);
  try {
    safetensorsFormat.read(path, limits);
  } catch (error) {
    expect(error).toBeInstanceOf(ModelFileError);
    const message = (error as Error).message;
    expect(message.startsWith(`${path}: `)).toBe(true);
    return { path, message };
  }
  throw new Error(`${path} was read, but should have been refused`);
}

const f32 = (values: number[]) => le('f32', values);

describe('safetensors reader', () => {
  it('is the safetensors format', () => {
    expect(safetensorsFormat.id).toBe('safetensors');
    expect(safetensorsFormat.title).toBe('safetensors');
  });

  it('converts every dtype to float32, with names, dtypes and shapes as stored', () => {
    const path = write(build({
      f64: { dtype: 'F64', shape: [2], bytes: le('f64', [1.5, -2.25]) },
      f32: { dtype: 'F32', shape: [2, 1], bytes: f32([0.5, -3]) },
      // 1, -2, 0.333251953125 (0x3555), +infinity, the smallest subnormal 2^-24, and 0.5.
      f16: { dtype: 'F16', shape: [2, 3], bytes: le('u16', [0x3c00, 0xc000, 0x3555, 0x7c00, 0x0001, 0x3800]) },
      // The upper halves of float32 1, -3 and 3.140625.
      bf16: { dtype: 'BF16', shape: [3], bytes: le('u16', [0x3f80, 0xc040, 0x4049]) },
      i64: { dtype: 'I64', shape: [3], bytes: le('i64', [-5n, 2n ** 40n, -(2n ** 31n)]) },
      i32: { dtype: 'I32', shape: [2], bytes: le('i32', [-7, 123456]) },
      i16: { dtype: 'I16', shape: [2], bytes: le('i16', [-32768, 32767]) },
      i8: { dtype: 'I8', shape: [2], bytes: le('i8', [-128, 127]) },
      u64: { dtype: 'U64', shape: [2], bytes: le('u64', [2n ** 53n, 7n]) },
      u32: { dtype: 'U32', shape: [2], bytes: le('u32', [3_000_000_000, 1]) },
      u16: { dtype: 'U16', shape: [2], bytes: le('u16', [65535, 0]) },
      u8: { dtype: 'U8', shape: [2], bytes: le('u8', [255, 0]) },
      bool: { dtype: 'BOOL', shape: [3], bytes: le('u8', [0, 1, 1]) },
      scalar: { dtype: 'F32', shape: [], bytes: f32([42]) },
      empty: { dtype: 'F32', shape: [0, 4], bytes: new Uint8Array(0) },
    }));
    const contents = safetensorsFormat.read(path, DEFAULT_READ_LIMITS);
    expect(contents.format).toBe('safetensors');
    const byName = new Map(contents.tensors.map((t) => [t.name, t]));
    const expected: Array<[string, string, number[], number[]]> = [
      ['f64', 'float64', [2], [1.5, -2.25]],
      ['f32', 'float32', [2, 1], [0.5, -3]],
      ['f16', 'float16', [2, 3], [1, -2, 0.333251953125, Infinity, 2 ** -24, 0.5]],
      ['bf16', 'bfloat16', [3], [1, -3, 3.140625]],
      ['i64', 'int64', [3], [-5, 2 ** 40, -(2 ** 31)]],
      ['i32', 'int32', [2], [-7, 123456]],
      ['i16', 'int16', [2], [-32768, 32767]],
      ['i8', 'int8', [2], [-128, 127]],
      ['u64', 'uint64', [2], [2 ** 53, 7]],
      ['u32', 'uint32', [2], [3_000_000_000, 1]],
      ['u16', 'uint16', [2], [65535, 0]],
      ['u8', 'uint8', [2], [255, 0]],
      ['bool', 'bool', [3], [0, 1, 1]],
      ['scalar', 'float32', [], [42]],
      ['empty', 'float32', [0, 4], []],
    ];
    expect(contents.tensors.map((t) => t.name)).toEqual(expected.map(([name]) => name));
    for (const [name, dtype, shape, values] of expected) {
      const tensor = byName.get(name)!;
      expect(tensor.dtype, name).toBe(dtype);
      expect(tensor.shape, name).toEqual(shape);
      expect(tensor.values, name).toBeInstanceOf(Float32Array);
      expect(Array.from(tensor.values), name).toEqual(values);
    }
  });

  it('returns tensors in data order, whatever the order of the header, and ignores __metadata__', () => {
    // Header keys z, a; data a first. Gaps between tensors are tolerated.
    const data = new Uint8Array(24);
    data.set(f32([1, 2]), 0);
    data.set(f32([3, 4]), 16);
    const header = JSON.stringify({
      __metadata__: { format: 'pt', note: 'not a tensor' },
      z: { dtype: 'F32', shape: [2], data_offsets: [16, 24] },
      a: { dtype: 'F32', shape: [1, 2], data_offsets: [0, 8] },
    });
    // Header padding with spaces, as the Python writer aligns the data section to 8 bytes.
    const contents = safetensorsFormat.read(write(encode(`${header}     `, data)), DEFAULT_READ_LIMITS);
    expect(contents.tensors.map((t) => [t.name, t.shape, Array.from(t.values)])).toEqual([
      ['a', [1, 2], [1, 2]],
      ['z', [2], [3, 4]],
    ]);
  });

  it('reads a file with no tensors', () => {
    expect(safetensorsFormat.read(write(encode('{}')), DEFAULT_READ_LIMITS).tensors).toEqual([]);
    expect(safetensorsFormat.read(write(encode('{"__metadata__":{}}')), DEFAULT_READ_LIMITS).tensors).toEqual([]);
  });

  it('detects safetensors by content, and nothing else', () => {
    const file = build({ weight: { dtype: 'F32', shape: [4, 4], bytes: f32(Array.from({ length: 16 }, (_, i) => i)) } });
    expect(file.length).toBeGreaterThan(64);
    expect(safetensorsFormat.detect(file.subarray(0, 64), 'model.safetensors')).toBe(true);
    // The name does not matter, and a file shorter than 64 bytes passes whole.
    expect(safetensorsFormat.detect(file.subarray(0, 64), 'weights.bin')).toBe(true);
    expect(safetensorsFormat.detect(encode('{}'), 'tiny')).toBe(true);

    const zip = Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0, 0, 8, 0, 0x7b, 0, 0, 0, 0, 0]);
    const npy = new TextEncoder().encode("\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }");
    const json = new TextEncoder().encode('{"format":{"x": 1}, "modelTopology": {}}');
    let state = 12345;
    const noise = Uint8Array.from({ length: 64 }, () => (state = (state * 1103515245 + 12345) % 2 ** 31) >> 23);
    for (const [what, head] of [['zip', zip], ['npy', npy], ['json', json], ['noise', noise]] as const) {
      expect(safetensorsFormat.detect(head, 'model.safetensors'), what).toBe(false);
    }
    // Too short for the length and a '{'; a length of 0 or 1; a huge length.
    expect(safetensorsFormat.detect(encode('{}').subarray(0, 8), 'x')).toBe(false);
    expect(safetensorsFormat.detect(encode('{}', new Uint8Array(0), 1n), 'x')).toBe(false);
    expect(safetensorsFormat.detect(encode('{}', new Uint8Array(0), 2n ** 63n), 'x')).toBe(false);
  });
});

describe('safetensors reader on hostile files', () => {
  const tight = (limits: Partial<ReadLimits>): ReadLimits => ({ ...DEFAULT_READ_LIMITS, ...limits });

  it('refuses a header length past the end of the file, or beyond 2^53', () => {
    expect(refusal(encode('{}', new Uint8Array(0), 1000n)).message).toMatch(/header length 1000 runs past the end of the 10-byte file/);
    expect(refusal(encode('{}', new Uint8Array(0), 2n ** 63n)).message).toMatch(/header length 9223372036854775808 is impossibly large/);
    expect(refusal(Uint8Array.from([1, 0, 0])).message).toMatch(/too short/);
  });

  it('refuses a header over maxHeaderBytes before parsing it', () => {
    const file = build({ w: { dtype: 'F32', shape: [1], bytes: f32([1]) } });
    expect(refusal(file, tight({ maxHeaderBytes: 16 })).message).toMatch(/JSON header is \d+ bytes, more than the 16/);
  });

  it('refuses a header that is not JSON, not UTF-8, or not an object', () => {
    expect(refusal(encode('{"w": {"dtype": ')).message).toMatch(/header is not valid UTF-8 JSON/);
    const notUtf8 = encode('{"wx": 1}');
    notUtf8[11] = 0xff; // the x: a byte that is never UTF-8
    expect(refusal(notUtf8).message).toMatch(/header is not valid UTF-8 JSON/);
    expect(refusal(encode('[1, 2]')).message).toMatch(/JSON header is an array, not an object of tensors/);
    expect(refusal(encode('42')).message).toMatch(/JSON header is 42, not an object/);
    expect(refusal(encode('null')).message).toMatch(/JSON header is null, not an object/);
    expect(refusal(encode('{"__metadata__": {"n": 1}}')).message).toMatch(/"__metadata__" entry must be an object of strings to strings/);
    expect(refusal(encode('{"w": [1, 2]}')).message).toMatch(/tensor "w" is described by \[1,2\], not an object/);
  });

  it('refuses an unknown dtype, a missing field and a field the format does not have', () => {
    const bytes = new Uint8Array(1);
    expect(refusal(build({ w: { dtype: 'F8_E4M3', shape: [1], bytes } })).message).toMatch(/tensor "w" has dtype "F8_E4M3", which this reader does not know/);
    expect(refusal(build({ w: { dtype: 'constructor', shape: [1], bytes } })).message).toMatch(/tensor "w" has dtype "constructor"/);
    expect(refusal(encode('{"w": {"dtype": "U8", "shape": [1]}}', bytes)).message).toMatch(/tensor "w" has no data_offsets/);
    expect(refusal(build({ w: { dtype: 'U8', shape: [1], bytes, extra: { strides: [1] } } })).message).toMatch(/tensor "w" has the key "strides"; safetensors entries hold only/);
  });

  it('refuses a shape with a negative, fractional or non-number dimension', () => {
    const bytes = f32([1, 2]);
    for (const shape of [[-1, -2], [1.5], ['2'], [2, null], 2]) {
      expect(refusal(build({ 'layer.weight': { dtype: 'F32', shape, bytes } })).message).toMatch(/tensor "layer\.weight" has shape .*(not a non-negative integer|not an array)/);
    }
  });

  it('refuses data_offsets outside the data section, reversed, or not two integers', () => {
    const bytes = f32([1, 2]);
    expect(refusal(build({ w: { dtype: 'F32', shape: [2], bytes, offsets: [0, 100] } })).message).toMatch(/tensor "w" claims bytes 0 to 100 of a data section of only 8 bytes/);
    expect(refusal(build({ w: { dtype: 'F32', shape: [0], bytes, offsets: [8, 0] } })).message).toMatch(/tensor "w" has data_offsets \[8, 0\], which end before they begin/);
    for (const offsets of [[0], [0, 8, 8], [-8, 0], [0, 8.5], ['0', '8'], [0, 2 ** 60], null]) {
      expect(refusal(build({ w: { dtype: 'F32', shape: [2], bytes, offsets } })).message).toMatch(/tensor "w" has data_offsets .*not two non-negative integers/);
    }
  });

  it('refuses a byte count that does not match shape × dtype', () => {
    expect(refusal(build({ w: { dtype: 'F32', shape: [3], bytes: f32([1, 2]) } })).message).toMatch(/tensor "w" spans 8 bytes, but shape \[3\] of F32 needs 12/);
    expect(refusal(build({ w: { dtype: 'F16', shape: [2], bytes: f32([1, 2]) } })).message).toMatch(/tensor "w" spans 8 bytes, but shape \[2\] of F16 needs 4/);
  });

  it('refuses tensors whose bytes overlap', () => {
    const data = f32([1, 2, 3]);
    const message = refusal(encode(JSON.stringify({
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    }), data)).message;
    expect(message).toMatch(/tensors "a" \(bytes 0 to 8\) and "b" \(bytes 4 to 12\) overlap/);
    // Two names for the same bytes overlap too; an empty tensor inside another owns no bytes and is fine.
    expect(refusal(encode(JSON.stringify({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'I32', shape: [2], data_offsets: [0, 8] },
    }), data)).message).toMatch(/overlap/);
    const ok = safetensorsFormat.read(write(encode(JSON.stringify({
      a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
      e: { dtype: 'F32', shape: [0], data_offsets: [4, 4] },
    }), data)), DEFAULT_READ_LIMITS);
    expect(ok.tensors.map((t) => t.name)).toEqual(['a', 'e']);
  });

  it('refuses more tensors than maxTensors', () => {
    const file = build({
      a: { dtype: 'U8', shape: [1], bytes: le('u8', [1]) },
      b: { dtype: 'U8', shape: [1], bytes: le('u8', [2]) },
      c: { dtype: 'U8', shape: [1], bytes: le('u8', [3]) },
    }, { format: 'pt' });
    expect(refusal(file, tight({ maxTensors: 2 })).message).toMatch(/header lists 3 tensors, more than the 2 this reader accepts/);
    // __metadata__ is not a tensor: three tensors fit a limit of three.
    expect(safetensorsFormat.read(write(file), tight({ maxTensors: 3 })).tensors).toHaveLength(3);
  });

  it('refuses more elements than maxTotalElements before allocating anything', () => {
    const file = build({
      a: { dtype: 'F32', shape: [3], bytes: f32([1, 2, 3]) },
      b: { dtype: 'F32', shape: [1, 3], bytes: f32([4, 5, 6]) },
    });
    expect(refusal(file, tight({ maxTotalElements: 5 })).message).toMatch(/tensor "b" with shape \[1,3\] brings the file past 5 elements/);
    expect(safetensorsFormat.read(write(file), tight({ maxTotalElements: 6 })).tensors).toHaveLength(2);
    // A claim of 2^60 elements under the default limits: an allocation first would throw a RangeError instead.
    const huge = build({ w: { dtype: 'F32', shape: [2 ** 30, 2 ** 30], bytes: f32([1]), offsets: [0, 4] } });
    expect(refusal(huge).message).toMatch(/tensor "w" with shape \[1073741824,1073741824\] brings the file past \d+ elements/);
  });

  it('refuses a file over maxFileBytes, a missing file, and a file truncated in its data section', () => {
    const file = build({ w: { dtype: 'F64', shape: [4], bytes: le('f64', [1, 2, 3, 4]) } });
    expect(refusal(file, tight({ maxFileBytes: 32 })).message).toMatch(/the file is \d+ bytes, more than the 32 this reader accepts/);
    expect(refusal(file.subarray(0, file.length - 5)).message).toMatch(/tensor "w" claims bytes 0 to 32 of a data section of only 27 bytes; the file is truncated/);
    const missing = join(folder, 'missing.safetensors');
    expect(() => safetensorsFormat.read(missing, DEFAULT_READ_LIMITS)).toThrow(ModelFileError);
    expect(() => safetensorsFormat.read(missing, DEFAULT_READ_LIMITS)).toThrow(/missing\.safetensors: cannot read the file \(ENOENT\)/);
  });
});
