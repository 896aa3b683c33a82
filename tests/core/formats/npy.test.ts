// The .npy and .npz readers against files written by NumPy itself (Debian's python3-numpy), and
// against hand-made hostile files: each refusal is a ModelFileError naming the file.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_READ_LIMITS, ModelFileError, type ModelFormat, type ReadLimits } from '../../../core/formats/model-format';
import { npyFormat, npzFormat, parseNpy } from '../../../core/formats/npy';
import { expectModelFileError } from '../../support/model-files';

const dir = mkdtempSync(join(tmpdir(), 'ticket-lab-npy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => join(dir, name);

/** One array per dtype: the Python literal NumPy is given, and the float32 values the reader must give. */
const DTYPE_CASES: { descr: string; dtype: string; python: string; expected: number[] }[] = [
  { descr: '<f8', dtype: 'float64', python: '[0, 1.5, -2.25, 0.1, 1e300]', expected: [0, 1.5, -2.25, Math.fround(0.1), Infinity] },
  { descr: '<f4', dtype: 'float32', python: '[0, 1.5, -2.25, 0.1, 3.4e38, float("-inf")]', expected: [0, 1.5, -2.25, Math.fround(0.1), Math.fround(3.4e38), -Infinity] },
  { descr: '<f2', dtype: 'float16', python: '[0, 1.5, -2.25, 65504, 2**-24, float("inf"), float("nan")]', expected: [0, 1.5, -2.25, 65504, 2 ** -24, Infinity, NaN] },
  { descr: '<i8', dtype: 'int64', python: '[0, 1, -1, 2**40, -(2**40), 2**53]', expected: [0, 1, -1, 2 ** 40, -(2 ** 40), 2 ** 53] },
  { descr: '<i4', dtype: 'int32', python: '[0, -2**31, 2**31 - 1, 12345]', expected: [0, -(2 ** 31), 2 ** 31, 12345] },
  { descr: '<i2', dtype: 'int16', python: '[-32768, 32767, -1]', expected: [-32768, 32767, -1] },
  { descr: '|i1', dtype: 'int8', python: '[-128, 127, 0, -1]', expected: [-128, 127, 0, -1] },
  { descr: '<u8', dtype: 'uint64', python: '[0, 1, 2**63, 2**40 + 1]', expected: [0, 1, 2 ** 63, 2 ** 40] },
  { descr: '<u4', dtype: 'uint32', python: '[0, 2**32 - 1, 7]', expected: [0, 2 ** 32, 7] },
  { descr: '<u2', dtype: 'uint16', python: '[0, 65535, 300]', expected: [0, 65535, 300] },
  { descr: '|u1', dtype: 'uint8', python: '[0, 255, 128]', expected: [0, 255, 128] },
  { descr: '|b1', dtype: 'bool', python: '[True, False, True, True]', expected: [1, 0, 1, 1] },
  { descr: '>f8', dtype: 'float64', python: '[1.5, -2.25, 0.1]', expected: [1.5, -2.25, Math.fround(0.1)] },
  { descr: '>f4', dtype: 'float32', python: '[1.5, -2.25, 3, 1e-3]', expected: [1.5, -2.25, 3, Math.fround(1e-3)] },
  { descr: '>f2', dtype: 'float16', python: '[1.5, -2.25, 65504]', expected: [1.5, -2.25, 65504] },
  { descr: '>i8', dtype: 'int64', python: '[-(2**40), 5]', expected: [-(2 ** 40), 5] },
  { descr: '>i4', dtype: 'int32', python: '[-7, 2**20]', expected: [-7, 2 ** 20] },
  { descr: '>i2', dtype: 'int16', python: '[-300, 300]', expected: [-300, 300] },
  { descr: '>u8', dtype: 'uint64', python: '[2**40, 9]', expected: [2 ** 40, 9] },
  { descr: '>u4', dtype: 'uint32', python: '[2**31, 9]', expected: [2 ** 31, 9] },
  { descr: '>u2', dtype: 'uint16', python: '[65535, 258]', expected: [65535, 258] },
];
const fileOf = (descr: string) => `dtype_${descr.replace('<', 'le_').replace('>', 'be_').replace('|', 'na_')}.npy`;

const SCRIPT = `
import io, sys, warnings, zipfile
import numpy as np
d = sys.argv[1]
${DTYPE_CASES.map((c) => `np.save(f'{d}/${fileOf(c.descr)}', np.array(${c.python}, dtype='${c.descr}'))`).join('\n')}
np.save(f'{d}/fortran2d.npy', np.asfortranarray(np.arange(6, dtype='<f4').reshape(2, 3)))
np.save(f'{d}/fortran3d.npy', np.asfortranarray(np.arange(24, dtype='<i4').reshape(2, 3, 4)))
np.save(f'{d}/scalar.npy', np.float64(2.5))
np.save(f'{d}/cube.npy', (np.arange(24, dtype='<f4').reshape(2, 3, 4) - 10) / 4)
np.save(f'{d}/empty.npy', np.zeros((0, 3), dtype='<f4'))
for v in (2, 3):
    with open(f'{d}/version{v}.npy', 'wb') as f:
        np.lib.format.write_array(f, np.arange(5, dtype='<f4') * 2, version=(v, 0))
w = np.arange(6, dtype='<f4').reshape(2, 3)
b = np.array([0.5, -1.5])
np.savez(f'{d}/plain.npz', weight=w, bias=b, steps=np.int64(7))
np.savez_compressed(f'{d}/compressed.npz', weight=w, bias=b, steps=np.int64(7))
np.savez(f'{d}/positional.npz', w, b)
np.save(f'{d}/unicode.npy', np.array(['abc'], dtype='<U3'))
np.save(f'{d}/object.npy', np.array([{}, 1], dtype=object))
np.save(f'{d}/structured.npy', np.zeros(2, dtype=[('x', '<f4'), ('y', '<i4')]))
buf = io.BytesIO()
np.save(buf, w)
good = buf.getvalue()
with zipfile.ZipFile(f'{d}/nested.npz', 'w') as z:
    z.writestr('layers/', '')
    z.writestr('layers/conv.npy', good)
with zipfile.ZipFile(f'{d}/notes.npz', 'w') as z:
    z.writestr('weight.npy', good)
    z.writestr('notes.txt', 'hello')
with zipfile.ZipFile(f'{d}/broken.npz', 'w') as z:
    z.writestr('weight.npy', good)
    z.writestr('bias.npy', good[:-4])
warnings.simplefilter('ignore')  # zipfile warns about the duplicate name, then writes it
with zipfile.ZipFile(f'{d}/twice.npz', 'w') as z:
    z.writestr('weight.npy', good)
    z.writestr('weight.npy', good)
`;

beforeAll(() => {
  const result = spawnSync('/usr/bin/python3', ['-c', SCRIPT, dir], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`python3 failed: ${result.stderr || result.error?.message}`);
});

/** A .npy file as NumPy lays it out: the header padded with spaces to a multiple of 64 bytes, ending in a newline. */
function npy(header: string, data: Uint8Array = new Uint8Array(0), major = 1): Uint8Array {
  const preamble = major === 1 ? 10 : 12;
  const padded = header.padEnd(Math.ceil((preamble + header.length + 1) / 64) * 64 - preamble - 1) + '\n';
  const out = Buffer.alloc(preamble + padded.length + data.length);
  out.write('\x93NUMPY', 0, 'latin1');
  out[6] = major;
  if (major === 1) out.writeUInt16LE(padded.length, 8);
  else out.writeUInt32LE(padded.length, 8);
  out.write(padded, preamble, 'latin1');
  out.set(data, preamble + padded.length);
  return out;
}

const f4 = (...values: number[]) => new Uint8Array(Float32Array.from(values).buffer);

let hostileCount = 0;
function writeHostile(bytes: Uint8Array | string, ext = '.npy'): string {
  const path = file(`hostile${hostileCount++}${ext}`);
  writeFileSync(path, bytes);
  return path;
}

/** Reads `path` expecting a ModelFileError that names the file and matches `pattern`. */
function expectRefused(format: ModelFormat, path: string, pattern: RegExp, limits: ReadLimits = DEFAULT_READ_LIMITS): ModelFileError {
  return expectModelFileError(() => format.read(path, limits), path, pattern);
}

const head = (path: string) => readFileSync(path).subarray(0, 64);
const tight = (overrides: Partial<ReadLimits>): ReadLimits => ({ ...DEFAULT_READ_LIMITS, ...overrides });

describe('.npy reader', () => {
  it.each(DTYPE_CASES)('reads $descr arrays written by NumPy', ({ descr, dtype, expected }) => {
    const path = file(fileOf(descr));
    // The file really holds the descr under test (NumPy keeps big-endian data as it is).
    expect(readFileSync(path).toString('latin1', 10, 40)).toContain(`'descr': '${descr}'`);
    const contents = npyFormat.read(path, DEFAULT_READ_LIMITS);
    expect(contents.format).toBe('npy');
    expect(contents.tensors).toHaveLength(1);
    const [tensor] = contents.tensors;
    expect(tensor!.name).toBe(fileOf(descr).slice(0, -4));
    expect(tensor!.dtype).toBe(dtype);
    expect(tensor!.shape).toEqual([expected.length]);
    expect(Array.from(tensor!.values)).toEqual(expected);
  });

  it('transposes Fortran-order arrays to C order', () => {
    for (const [name, shape] of [['fortran2d', [2, 3]], ['fortran3d', [2, 3, 4]]] as const) {
      const path = file(`${name}.npy`);
      expect(readFileSync(path).toString('latin1')).toContain("'fortran_order': True");
      const [tensor] = npyFormat.read(path, DEFAULT_READ_LIMITS).tensors;
      expect(tensor!.shape).toEqual(shape);
      const count = shape.reduce((a, b) => a * b, 1);
      expect(Array.from(tensor!.values)).toEqual(Array.from({ length: count }, (_, i) => i));
    }
  });

  it('reads a 0-d scalar, an empty array and a 3-D array', () => {
    const [scalar] = npyFormat.read(file('scalar.npy'), DEFAULT_READ_LIMITS).tensors;
    expect(scalar).toMatchObject({ name: 'scalar', shape: [], dtype: 'float64' });
    expect(Array.from(scalar!.values)).toEqual([2.5]);

    const [empty] = npyFormat.read(file('empty.npy'), DEFAULT_READ_LIMITS).tensors;
    expect(empty).toMatchObject({ shape: [0, 3], dtype: 'float32' });
    expect(empty!.values).toHaveLength(0);

    const [cube] = npyFormat.read(file('cube.npy'), DEFAULT_READ_LIMITS).tensors;
    expect(cube).toMatchObject({ shape: [2, 3, 4], dtype: 'float32' });
    expect(Array.from(cube!.values)).toEqual(Array.from({ length: 24 }, (_, i) => (i - 10) / 4));
  });

  it('reads format versions 2.0 and 3.0 (u32 header length)', () => {
    for (const v of [2, 3]) {
      const path = file(`version${v}.npy`);
      expect(readFileSync(path)[6]).toBe(v);
      const [tensor] = npyFormat.read(path, DEFAULT_READ_LIMITS).tensors;
      expect(tensor!.shape).toEqual([5]);
      expect(Array.from(tensor!.values)).toEqual([0, 2, 4, 6, 8]);
    }
  });

  it('reads hand-made headers: double quotes, no trailing comma, Python 2 longs, version 2.0', () => {
    const budget = { elements: 10 };
    const a = parseNpy(npy('{"descr": "<f4", "shape": (2,), "fortran_order": False}', f4(1, 2)), 'a', 'mem', budget);
    expect(Array.from(a.values)).toEqual([1, 2]);
    const b = parseNpy(npy("{'descr': '=f4', 'fortran_order': False, 'shape': (1L, 2L), }", f4(3, 4)), 'b', 'mem', budget);
    expect(b.shape).toEqual([1, 2]);
    const c = parseNpy(npy("{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }", f4(5, 6, 7), 2), 'c', 'mem', budget);
    expect(Array.from(c.values)).toEqual([5, 6, 7]);
    // Each success takes its elements from the shared budget; a refusal takes nothing.
    expect(budget.elements).toBe(3);
    expect(() => parseNpy(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", f4(1, 2, 3, 4)), 'd', 'mem', budget)).toThrow(/3 left/);
    expect(budget.elements).toBe(3);
  });

  it('refuses files that are not .npy, or are truncated, padded or too large', () => {
    expectRefused(npyFormat, writeHostile('not a numpy file at all'), /magic/);
    expectRefused(npyFormat, writeHostile('\x93NUM'), /magic/);
    expectRefused(npyFormat, file('missing.npy'), /cannot read the file \(ENOENT\)/);
    const real = readFileSync(file(fileOf('<f4')));
    expectRefused(npyFormat, writeHostile(real.subarray(0, real.length - 1)), /holds 23 data bytes, but shape \(6,\) of <f4 needs 24; it is truncated/);
    expectRefused(npyFormat, writeHostile(Buffer.concat([real, Buffer.alloc(4)])), /holds 28 data bytes.*trailing bytes/);
    expectRefused(npyFormat, file(fileOf('<f4')), /more than the 100 this reader accepts/, tight({ maxFileBytes: 100 }));
    expectRefused(npyFormat, file(fileOf('<f4')), /118-byte header, more than the 64/, tight({ maxHeaderBytes: 64 }));

    const version4 = Buffer.from(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", f4(1)));
    version4[6] = 4;
    expectRefused(npyFormat, writeHostile(version4), /version 4\.0/);
    // Version 3.0 headers are UTF-8; a byte sequence that is not is refused, not replaced.
    expectRefused(npyFormat, writeHostile(npy("{'descr': '<f4\xff', 'fortran_order': False, 'shape': (), }", f4(1), 3)), /not valid UTF-8/);

    // A header length that runs past the end of the file, in both preamble layouts.
    const pastEnd = Buffer.from(npy('{}'));
    pastEnd.writeUInt16LE(1000, 8);
    expectRefused(npyFormat, writeHostile(pastEnd), /1000-byte header, past the end of its 64 bytes/);
    const pastEnd2 = Buffer.from(npy('{}', undefined, 2));
    pastEnd2.writeUInt32LE(0xffffffff, 8);
    expectRefused(npyFormat, writeHostile(pastEnd2), /4294967295-byte header/);
  });

  it('refuses unsupported dtypes, naming the descr', () => {
    expect(readFileSync(file('object.npy')).toString('latin1')).toContain("'descr': '|O'");
    expectRefused(npyFormat, file('unicode.npy'), /dtype "<U3"/);
    expectRefused(npyFormat, file('object.npy'), /dtype "\|O" \(Python objects need unpickling/);
    expectRefused(npyFormat, file('structured.npy'), /is a structured array/);
    for (const descr of ['<c8', '<M8[ns]', '|f4', '|i4', 'f4', '<f16', '<b1x', '']) {
      expectRefused(npyFormat, writeHostile(npy(`{'descr': '${descr}', 'fortran_order': False, 'shape': (0,), }`)), new RegExp(`dtype ${JSON.stringify(descr).replace(/[[\]|]/g, '\\$&')}`));
    }
  });

  it('refuses negative or huge shapes before allocating', () => {
    const header = (shape: string) => npy(`{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`);
    expectRefused(npyFormat, writeHostile(header('(-1, 3)')), /dimension -1 is not a non-negative integer/);
    // Python reads "-0" as 0: an empty array, not a refusal.
    const [zero] = npyFormat.read(writeHostile(header('(3, -0)')), DEFAULT_READ_LIMITS).tensors;
    expect(Object.is(zero!.shape[1], 0)).toBe(true);
    // No data at all: the element count is refused before the data length is even looked at.
    const tightLimits = tight({ maxTotalElements: 1000 });
    expectRefused(npyFormat, writeHostile(header(`(${2 ** 40}, ${2 ** 40})`)), /more elements than the 1000 left within maxTotalElements/, tightLimits);
    expectRefused(npyFormat, writeHostile(header(`(${2 ** 40}, ${2 ** 40})`)), /more elements than/);
    expectRefused(npyFormat, writeHostile(header('(1001,)')), /more elements than the 1000/, tightLimits);
    expectRefused(npyFormat, writeHostile(header('(9007199254740993,)')), /not a non-negative integer/);
    expectRefused(npyFormat, writeHostile(header(`(${'9'.repeat(40)},)`)), /too many digits/);
    expectRefused(npyFormat, writeHostile(header(`(${Array(65).fill(1).join(', ')})`)), /65 dimensions/);
  });

  it('refuses headers that are not the dict of a .npy file', () => {
    const cases: [string, RegExp][] = [
      ['[1, 2]', /a list, not a dict/],
      ['hello', /not the Python dict literal.*"hello"/],
      ["__import__('os').system('true')", /not the Python dict literal/],
      ["{'descr': '<f4', 'fortran_order': False}", /exactly 'descr', 'fortran_order' and 'shape'/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (), 'extra': 1}", /"extra"/],
      ["{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}", /"descr" given twice/],
      ["{'descr': '<f4', 'fortran_order': 0, 'shape': ()}", /fortran_order 0, not True or False/],
      ["{'descr': ('<f4', (2,)), 'fortran_order': False, 'shape': ()}", /descr \("<f4", \(2,\)\), not a dtype string/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (3)}", /shape 3, not a tuple/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': [3]}", /shape a list, not a tuple/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (3.0,)}", /malformed number/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} extra", /text after the dict/],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (3,)", /expected ',' or '}'/],
      ["{'descr': '<f\\x34', 'fortran_order': False, 'shape': ()}", /escape/],
      ["{'descr': '<f4, 'fortran_order': False, 'shape': ()}", /expected ':'|expected ','/],
      [`{'descr': ${'('.repeat(200)}${')'.repeat(200)}, 'fortran_order': False, 'shape': ()}`, /nested more than 16 deep/],
      ['', /ends where a value should be/],
    ];
    for (const [header, pattern] of cases) expectRefused(npyFormat, writeHostile(npy(header)), pattern);
  });
});

describe('.npz reader', () => {
  it('reads np.savez and np.savez_compressed archives in entry order', () => {
    for (const name of ['plain.npz', 'compressed.npz']) {
      const contents = npzFormat.read(file(name), DEFAULT_READ_LIMITS);
      expect(contents.format).toBe('npz');
      expect(contents.tensors.map((t) => [t.name, t.shape, t.dtype])).toEqual([
        ['weight', [2, 3], 'float32'],
        ['bias', [2], 'float64'],
        ['steps', [], 'int64'],
      ]);
      expect(contents.tensors.map((t) => Array.from(t.values))).toEqual([[0, 1, 2, 3, 4, 5], [0.5, -1.5], [7]]);
    }
    const positional = npzFormat.read(file('positional.npz'), DEFAULT_READ_LIMITS);
    expect(positional.tensors.map((t) => t.name)).toEqual(['arr_0', 'arr_1']);
    // Directory entries are skipped; a member in a folder keeps its path as its name.
    const nested = npzFormat.read(file('nested.npz'), DEFAULT_READ_LIMITS);
    expect(nested.tensors.map((t) => t.name)).toEqual(['layers/conv']);
  });

  it('refuses archives with foreign, broken or repeated members, or too many elements or members', () => {
    expectRefused(npzFormat, file('notes.npz'), /member "notes\.txt" is not a \.npy array/);
    expectRefused(npzFormat, file('broken.npz'), /member "bias\.npy" holds 20 data bytes, but shape \(2, 3\) of <f4 needs 24/);
    expectRefused(npzFormat, file('twice.npz'), /weight\.npy appears twice/);
    expectRefused(npzFormat, file('plain.npz'), /holds 3 arrays, more than the 2/, tight({ maxTensors: 2 }));
    // The element budget is shared by the members: weight (6) fits in 7, bias (2) does not.
    expectRefused(npzFormat, file('plain.npz'), /member "bias\.npy" has the shape \(2,\), more elements than the 1 left/, tight({ maxTotalElements: 7 }));
    expectRefused(npzFormat, file('plain.npz'), /more than the 100 this reader accepts/, tight({ maxFileBytes: 100 }));
    const real = readFileSync(file('plain.npz'));
    expectRefused(npzFormat, writeHostile(real.subarray(0, real.length - 10), '.npz'), /not a zip archive/);
    expectRefused(npzFormat, file('missing.npz'), /cannot read the file \(ENOENT\)/);
  });
});

describe('detection', () => {
  /** The first bytes of a zip whose first member is `name`. */
  function zipHead(name: string): Uint8Array {
    const bytes = Buffer.alloc(30 + name.length);
    bytes.write('PK\x03\x04', 0, 'latin1');
    bytes.writeUInt16LE(name.length, 26);
    bytes.write(name, 30, 'latin1');
    return bytes.subarray(0, 64);
  }

  it('tells .npy from other heads', () => {
    expect(npyFormat.detect(head(file('cube.npy')), 'cube.npy')).toBe(true);
    expect(npyFormat.detect(head(file('version3.npy')), 'weights.bin')).toBe(true);
    expect(npyFormat.detect(head(file('plain.npz')), 'plain.npy')).toBe(false);
    expect(npyFormat.detect(Buffer.from('\x93NUMP', 'latin1'), 'x.npy')).toBe(false);
    expect(npyFormat.detect(new Uint8Array(0), 'x.npy')).toBe(false);
    expect(npyFormat.detect(Buffer.from('{"a": 1}'), 'x.npy')).toBe(false);
  });

  it('tells .npz from other zips by name or first member', () => {
    expect(npzFormat.detect(head(file('plain.npz')), 'plain.npz')).toBe(true);
    expect(npzFormat.detect(head(file('compressed.npz')), 'renamed.bin')).toBe(true);
    expect(npzFormat.detect(zipHead('arr_0.npy'), 'model.zip')).toBe(true);
    // A PyTorch checkpoint is a zip too, but its first member is not an array.
    expect(npzFormat.detect(zipHead('archive/data.pkl'), 'model.pt')).toBe(false);
    expect(npzFormat.detect(zipHead('archive/data.pkl'), 'MODEL.NPZ')).toBe(true);
    // A first member name cut off by the 64-byte head cannot be seen to end in .npy.
    expect(npzFormat.detect(zipHead(`${'x'.repeat(60)}.npy`), 'model.bin')).toBe(false);
    expect(npzFormat.detect(head(file('cube.npy')), 'cube.npz')).toBe(false);
    expect(npzFormat.detect(Buffer.from('PK\x03'), 'x.npz')).toBe(false);
  });
});
