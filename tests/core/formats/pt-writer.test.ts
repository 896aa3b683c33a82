// The torch.save writer: its files read back through our own PyTorch reader exactly, their records
// are aligned as PyTorchStreamWriter aligns them, and (where Python has torch, not in CI) real
// PyTorch loads them with weights_only=True and prunes with a loaded mask.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_READ_LIMITS } from '../../../core/formats/model-format';
import { ptStateDictBytes, writePtStateDict } from '../../../core/formats/pt-writer';
import { pytorchFormat } from '../../../core/formats/pytorch';
import type { OutTensor } from '../../../core/formats/writers';
import { useTempFolder } from '../../support/temp-folder';

const temp = useTempFolder('ticket-lab-pt-writer-');
const PYTHON = '/usr/bin/python3';
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 }).status === 0;

let fileCount = 0;
function writeTemp(tensors: readonly OutTensor[], name = 'model.pt'): string {
  const path = join(temp(), `${fileCount++}-${name}`);
  writePtStateDict(path, tensors);
  return path;
}

/** Deterministic values with a spread of magnitudes and signs. */
function values(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) - 0.5) * 2 ** ((s % 17) - 8);
  }
  return out;
}

function tensor(name: string, shape: number[], seed = 1): OutTensor {
  return { name, shape, values: values(shape.reduce((a, b) => a * b, 1), seed) };
}

function expectRoundTrip(tensors: readonly OutTensor[]): void {
  const path = writeTemp(tensors);
  const read = pytorchFormat.read(path, DEFAULT_READ_LIMITS);
  expect(read.format).toBe('pytorch');
  expect(read.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
  for (const [i, t] of read.tensors.entries()) {
    expect(t.shape, t.name).toEqual(tensors[i]!.shape);
    expect(t.dtype, t.name).toBe('float32');
    expect(Array.from(t.values), t.name).toEqual(Array.from(tensors[i]!.values));
  }
}

/** The zip's local records in order: name, extra field, data offset and length. */
function localRecords(bytes: Buffer): { name: string; extra: Buffer; dataStart: number; size: number }[] {
  const out = [];
  let at = 0;
  while (bytes.readUInt32LE(at) === 0x04034b50) {
    expect(bytes.readUInt16LE(at + 8), 'stored').toBe(0);
    const size = bytes.readUInt32LE(at + 18);
    const nameLength = bytes.readUInt16LE(at + 26);
    const extraLength = bytes.readUInt16LE(at + 28);
    const name = bytes.subarray(at + 30, at + 30 + nameLength).toString('utf8');
    const extra = bytes.subarray(at + 30 + nameLength, at + 30 + nameLength + extraLength);
    const dataStart = at + 30 + nameLength + extraLength;
    out.push({ name, extra, dataStart, size });
    at = dataStart + size;
  }
  return out;
}

describe('ptStateDictBytes', () => {
  it('round-trips names, shapes and values exactly through our reader', () => {
    const special = { name: 'special', shape: [2, 4], values: new Float32Array([0, -0, 1e-45, -3.4028234663852886e38, Infinity, -Infinity, NaN, Math.fround(Math.PI)]) };
    expectRoundTrip([
      tensor('features.0.weight', [16, 3, 3, 3], 1),
      tensor('features.0.bias', [16], 2),
      tensor('fc.weight', [10, 37], 3),
      tensor('fc.weight_mask', [10, 37], 4),
      special,
      tensor('ünïcode.κλειδί', [2, 2], 5),
      tensor('big', [300, 301], 6),
    ]);
  });

  it('writes an empty state dict', () => {
    expectRoundTrip([]);
    const records = localRecords(ptStateDictBytes([]));
    expect(records.map((r) => r.name)).toEqual(['archive/data.pkl', 'archive/version']);
  });

  it('writes 0-d, 1-d and empty tensors', () => {
    expectRoundTrip([
      { name: 'scalar', shape: [], values: new Float32Array([2.5]) },
      { name: 'one', shape: [1], values: new Float32Array([-1]) },
      { name: 'vector', shape: [5], values: values(5, 9) },
      { name: 'empty', shape: [0], values: new Float32Array(0) },
      { name: 'rows0', shape: [0, 3], values: new Float32Array(0) },
      { name: 'ones', shape: [1, 1, 1], values: new Float32Array([3]) },
    ]);
  });

  it('keeps the order of more tensors than one SETITEMS batch', () => {
    const many = Array.from({ length: 1203 }, (_, i) => tensor(`layer${1202 - i}.w`, [i % 3, 2], i));
    expectRoundTrip(many);
  });

  it('lays out the records as torch.save does, each data start aligned to 64 bytes', () => {
    const bytes = ptStateDictBytes([tensor('a', [3]), tensor('b', [2, 5]), tensor('c', [])]);
    const records = localRecords(bytes);
    expect(records.map((r) => r.name)).toEqual(['archive/data.pkl', 'archive/data/0', 'archive/data/1', 'archive/data/2', 'archive/version']);
    for (const r of records) {
      expect(r.dataStart % 64, r.name).toBe(0);
      expect(r.extra.subarray(0, 2).toString('latin1'), r.name).toBe('FB');
      expect(r.extra.readUInt16LE(2), r.name).toBe(r.extra.length - 4);
      expect(r.extra.subarray(4).every((b) => b === 0x5a), r.name).toBe(true);
    }
    const version = records[4]!;
    expect(bytes.subarray(version.dataStart, version.dataStart + version.size).toString('latin1')).toBe('3\n');
    expect(records[2]!.size).toBe(40);
    expect(bytes.readUInt32LE(bytes.length - 22)).toBe(0x06054b50);
  });

  it('writes little-endian float32 storages', () => {
    const bytes = ptStateDictBytes([{ name: 'x', shape: [2], values: new Float32Array([1, -2]) }]);
    const data = localRecords(bytes)[1]!;
    expect(bytes.readFloatLE(data.dataStart)).toBe(1);
    expect(bytes.readFloatLE(data.dataStart + 4)).toBe(-2);
  });

  it('refuses mismatched shapes, bad dimensions and duplicate names', () => {
    expect(() => ptStateDictBytes([{ name: 'x', shape: [2, 2], values: new Float32Array(3) }])).toThrow(/shape \[2, 2\] \(4 elements\) but 3 values/);
    expect(() => ptStateDictBytes([{ name: 'x', shape: [-1], values: new Float32Array(0) }])).toThrow(/non-negative integers/);
    expect(() => ptStateDictBytes([{ name: 'x', shape: [1.5], values: new Float32Array(0) }])).toThrow(/non-negative integers/);
    expect(() => ptStateDictBytes([tensor('x', [1]), tensor('x', [2])])).toThrow(/two tensors are named "x"/);
    expect(() => ptStateDictBytes([tensor('\ud800', [1])])).toThrow(/surrogate/);
  });

  it('writes atomically: the target is whole and no temporary is left', () => {
    const path = writeTemp([tensor('w', [4, 4])], 'atomic.pt');
    expect(readFileSync(path).subarray(0, 4)).toEqual(Buffer.from([0x50, 0x4b, 0x03, 0x04]));
    expect(existsSync(`${path}.${process.pid}.partial`)).toBe(false);
  });
});

describe('ptStateDictBytes in real PyTorch', () => {
  function python(script: string, ...args: string[]): unknown {
    const run = spawnSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8', timeout: 120_000 });
    if (run.status !== 0) throw new Error(`python failed (${run.status ?? run.signal}): ${run.stderr}`);
    const lines = run.stdout.trim().split('\n');
    return JSON.parse(lines[lines.length - 1]!);
  }

  const LOAD = `
import json, struct, sys, zipfile, torch
path = sys.argv[1]
zf = zipfile.ZipFile(path)
bad = zf.testzip()
raw = open(path, 'rb').read()
def data_start(info):  # the local header's own name and extra lengths (ZipInfo.extra is the central one)
    n, m = struct.unpack('<HH', raw[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + n + m
aligned = all(data_start(i) % 64 == 0 for i in zf.infolist())
out = {'testzip': bad, 'aligned': aligned, 'names': [i.filename for i in zf.infolist()]}
for weights_only in (True, False):
    sd = torch.load(path, weights_only=weights_only)
    out['type' if weights_only else 'typeFull'] = type(sd).__module__ + '.' + type(sd).__name__
    if weights_only:
        out['tensors'] = [{'name': k, 'shape': list(v.shape), 'stride': list(v.stride()), 'dtype': str(v.dtype),
                           'device': str(v.device), 'contiguous': v.is_contiguous(), 'requiresGrad': v.requires_grad,
                           'sum': float(v.double().sum()), 'absSum': float(v.double().abs().sum()),
                           'first': float(v.reshape(-1)[0]) if v.numel() > 0 else None} for k, v in sd.items()]
print(json.dumps(out))
`;

  interface Loaded {
    testzip: string | null;
    aligned: boolean;
    names: string[];
    type: string;
    typeFull: string;
    tensors: { name: string; shape: number[]; stride: number[]; dtype: string; device: string; contiguous: boolean; requiresGrad: boolean; sum: number; absSum: number; first: number | null }[];
  }

  it.skipIf(!hasTorch)('torch.load(weights_only=True) gives an OrderedDict of float32 CPU tensors with the names, shapes and sums', () => {
    const tensors = [
      tensor('features.0.weight', [16, 3, 3, 3], 11),
      tensor('features.0.bias', [16], 12),
      tensor('fc.weight', [10, 37], 13),
      { name: 'scalar', shape: [], values: new Float32Array([2.5]) },
      { name: 'vector', shape: [1], values: new Float32Array([-4]) },
      { name: 'rows0', shape: [0, 3], values: new Float32Array(0) },
      tensor('ünïcode', [2, 2], 14),
      tensor('big', [300, 301], 15),
    ];
    const loaded = python(LOAD, writeTemp(tensors, 'torch-check.pt')) as Loaded;
    expect(loaded.testzip).toBeNull();
    expect(loaded.aligned).toBe(true);
    expect(loaded.names[0]).toBe('archive/data.pkl');
    expect(loaded.names[loaded.names.length - 1]).toBe('archive/version');
    expect(loaded.type).toBe('collections.OrderedDict');
    expect(loaded.typeFull).toBe('collections.OrderedDict');
    expect(loaded.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
    for (const [i, t] of loaded.tensors.entries()) {
      const want = tensors[i]!;
      expect(t.shape, t.name).toEqual(want.shape);
      expect(t.dtype, t.name).toBe('torch.float32');
      expect(t.device, t.name).toBe('cpu');
      expect(t.contiguous, t.name).toBe(true);
      expect(t.requiresGrad, t.name).toBe(false);
      let sum = 0;
      let absSum = 0;
      for (const v of want.values) {
        sum += v;
        absSum += Math.abs(v);
      }
      expect(Math.abs(t.sum - sum), t.name).toBeLessThan(1e-9 * Math.max(1, absSum));
      expect(Math.abs(t.absSum - absSum), t.name).toBeLessThan(1e-9 * Math.max(1, absSum));
      expect(t.first, t.name).toBe(want.values.length > 0 ? want.values[0] : null);
    }
  });

  it.skipIf(!hasTorch)('torch.load(weights_only=True) loads an empty state dict and more tensors than one SETITEMS batch', () => {
    const empty = python(LOAD, writeTemp([], 'empty.pt')) as Loaded;
    expect(empty.type).toBe('collections.OrderedDict');
    expect(empty.tensors).toEqual([]);
    const many = Array.from({ length: 1001 }, (_, i) => tensor(`t${i}`, [i % 4], i));
    const loaded = python(LOAD, writeTemp(many, 'many.pt')) as Loaded;
    expect(loaded.tensors.map((t) => [t.name, t.shape])).toEqual(many.map((t) => [t.name, t.shape]));
  });

  it.skipIf(!hasTorch)('prune.custom_from_mask accepts a loaded fc.weight_mask for a Linear(3, 2)', () => {
    const weight = new Float32Array([0.5, -1, 2, 3, -0.25, 4]);
    const mask = new Float32Array([1, 0, 1, 0, 1, 1]);
    const path = writeTemp([
      { name: 'fc.weight', shape: [2, 3], values: weight },
      { name: 'fc.bias', shape: [2], values: new Float32Array([0.1, -0.2]) },
      { name: 'fc.weight_mask', shape: [2, 3], values: mask },
    ], 'prune.pt');
    const result = python(`
import json, sys, torch
from torch.nn.utils import prune
sd = torch.load(sys.argv[1], weights_only=True)
fc = torch.nn.Linear(3, 2)
with torch.no_grad():
    fc.weight.copy_(sd['fc.weight'])
    fc.bias.copy_(sd['fc.bias'])
prune.custom_from_mask(fc, 'weight', sd['fc.weight_mask'])
y = fc(torch.ones(1, 3))
print(json.dumps({'pruned': prune.is_pruned(fc), 'weight': fc.weight.reshape(-1).tolist(),
                  'mask': fc.weight_mask.reshape(-1).tolist(), 'orig': fc.weight_orig.reshape(-1).tolist(), 'y': y.reshape(-1).tolist()}))
`, path) as { pruned: boolean; weight: number[]; mask: number[]; orig: number[]; y: number[] };
    expect(result.pruned).toBe(true);
    expect(result.mask).toEqual(Array.from(mask));
    expect(result.orig).toEqual(Array.from(weight));
    expect(result.weight).toEqual(Array.from(weight).map((w, i) => w * mask[i]!));
    expect(result.y[0]).toBeCloseTo(0.5 + 2 + 0.1, 5);
    expect(result.y[1]).toBeCloseTo(-0.25 + 4 - 0.2, 5);
  });
});
