// The PyTorch reader and its restricted pickle VM: against checkpoints written by torch.save
// (tests/fixtures/pytorch/make_pt_fixtures.py made them and recorded what torch computes, so no
// Python is needed here), and against hostile files and opcode sequences assembled below. Every
// refusal of a file is a ModelFileError naming it; nothing in a file is ever executed.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../core/compute/rng';
import { ZipArchive } from '../../../core/data/zip';
import { DEFAULT_READ_LIMITS, ModelFileError, type FileTensor, type ReadLimits } from '../../../core/formats/model-format';
import { type PickleCallable, PickleError, PickleGlobalError, PyDict, PyGlobal, PySet, PyTuple, unpickle, unpickleAt, type UnpickleOptions } from '../../../core/formats/pickle';
import { pytorchFormat } from '../../../core/formats/pytorch';
import { tensorSums } from '../../../core/formats/registry';
import { type ZipInput, buildZip } from '../../support/image-files';
import { expectModelFileError } from '../../support/model-files';
import { useTempFolder } from '../../support/temp-folder';

const FIXTURES = join(__dirname, '..', '..', 'fixtures', 'pytorch');
const INTEROP = join(__dirname, '..', '..', 'fixtures', 'interop');
const temp = useTempFolder('ticket-lab-pytorch-');

interface ExpectedTensor { name: string; dtype: string; shape: number[]; sum: number; absSum: number; values?: number[] }
const expected = JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8')) as { files: Record<string, ExpectedTensor[]> };
const fixture = (name: string) => join(FIXTURES, name);
const tight = (overrides: Partial<ReadLimits>): ReadLimits => ({ ...DEFAULT_READ_LIMITS, ...overrides });


/** The file's tensors match what torch recorded: names in order, shapes, dtypes, sums, and small tensors value by value. */
function expectAsTorchWrote(path: string, want: ExpectedTensor[]): FileTensor[] {
  const contents = pytorchFormat.read(path, DEFAULT_READ_LIMITS);
  expect(contents.format).toBe('pytorch');
  expect(contents.tensors.map((t) => t.name)).toEqual(want.map((t) => t.name));
  for (const [i, t] of contents.tensors.entries()) {
    const w = want[i]!;
    expect(t.shape, w.name).toEqual(w.shape);
    expect(t.dtype, w.name).toBe(w.dtype);
    expect(t.values.length, w.name).toBe(w.shape.reduce((a, b) => a * b, 1));
    const s = tensorSums(t);
    expect(Math.abs(s.sum - w.sum), w.name).toBeLessThan(1e-4 * Math.max(1, Math.abs(w.sum)));
    expect(Math.abs(s.absSum - w.absSum), w.name).toBeLessThan(1e-4 * Math.max(1, w.absSum));
    if (w.values) expect(Array.from(t.values), w.name).toEqual(w.values.map((v) => Math.fround(v)));
  }
  return contents.tensors;
}

let hostileCount = 0;
function writeHostile(bytes: Uint8Array, name = 'model.pt'): string {
  const path = join(temp(), `hostile${hostileCount++}-${name}`);
  writeFileSync(path, bytes);
  return path;
}

/** Reads `path` expecting a ModelFileError that names the file and matches `pattern`; its message. */
function expectRefused(path: string, pattern: RegExp, limits: ReadLimits = DEFAULT_READ_LIMITS): string {
  return expectModelFileError(() => pytorchFormat.read(path, limits), path, pattern).message;
}

// ---- Assembling pickles and zips by hand ----

type Chunk = number | Uint8Array | readonly Chunk[];
function bytesOf(...chunks: Chunk[]): Uint8Array {
  const out: number[] = [];
  const add = (c: Chunk): void => {
    if (typeof c === 'number') out.push(c);
    else if (c instanceof Uint8Array) out.push(...c);
    else c.forEach(add);
  };
  chunks.forEach(add);
  return Uint8Array.from(out);
}
const utf8 = (s: string) => new TextEncoder().encode(s);
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const i32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32LE(n); return b; };
const u64 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return b; };

/** Opcodes by pickletools' names. */
const O = {
  MARK: 0x28, STOP: 0x2e, POP: 0x30, POP_MARK: 0x31, DUP: 0x32, NONE: 0x4e, NEWTRUE: 0x88, NEWFALSE: 0x89,
  EMPTY_TUPLE: 0x29, TUPLE: 0x74, TUPLE1: 0x85, TUPLE2: 0x86, TUPLE3: 0x87, EMPTY_LIST: 0x5d, LIST: 0x6c, APPEND: 0x61, APPENDS: 0x65,
  EMPTY_DICT: 0x7d, DICT: 0x64, SETITEM: 0x73, SETITEMS: 0x75, EMPTY_SET: 0x8f, ADDITEMS: 0x90, FROZENSET: 0x91,
  REDUCE: 0x52, BUILD: 0x62, NEWOBJ: 0x81, BINPERSID: 0x51, STACK_GLOBAL: 0x93, MEMOIZE: 0x94,
} as const;
const proto = (n = 2): Chunk => [0x80, n];
const frame = (n: number): Chunk => [0x95, u64(BigInt(n))];
const int = (n: number): Chunk => [0x4a, i32(n)];
const int1 = (n: number): Chunk => [0x4b, n];
const int2 = (n: number): Chunk => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return [0x4d, b]; };
const long1 = (bytes: number[]): Chunk => [0x8a, bytes.length, bytes];
const float = (x: number): Chunk => { const b = Buffer.alloc(8); b.writeDoubleBE(x); return [0x47, b]; };
const str = (s: string): Chunk => { const b = utf8(s); return [0x58, u32(b.length), b]; };
const shortStr = (s: string): Chunk => { const b = utf8(s); return [0x8c, b.length, b]; };
const str8 = (s: string): Chunk => { const b = utf8(s); return [0x8d, u64(BigInt(b.length)), b]; };
const binstring = (s: string): Chunk => { const b = utf8(s); return [0x54, i32(b.length), b]; };
const shortBinstring = (s: string): Chunk => { const b = utf8(s); return [0x55, b.length, b]; };
const bin = (b: number[]): Chunk => [0x42, u32(b.length), b];
const shortBin = (b: number[]): Chunk => [0x43, b.length, b];
const global = (module: string, name: string): Chunk => [0x63, utf8(`${module}\n${name}\n`)];
const put = (i: number): Chunk => [0x71, i];
const get = (i: number): Chunk => [0x68, i];
const longPut = (i: number): Chunk => [0x72, u32(i)];
const longGet = (i: number): Chunk => [0x6a, u32(i)];
const ordered: Chunk = [global('collections', 'OrderedDict'), O.EMPTY_TUPLE, O.REDUCE];

interface FakeTensor { name: string; key: string; numel: number; storage?: string; offset?: number; size: number[]; stride: number[] }
/** A state dict pickled the way torch.save does (protocol 2, _rebuild_tensor_v2, storage persistent ids). */
function tensorChunk(t: FakeTensor): Chunk {
  return [
    global('torch._utils', '_rebuild_tensor_v2'),
    O.MARK,
    [O.MARK, str('storage'), global('torch', t.storage ?? 'FloatStorage'), str(t.key), str('cpu'), int(t.numel), O.TUPLE, O.BINPERSID],
    int(t.offset ?? 0),
    [O.MARK, t.size.map(int), O.TUPLE],
    [O.MARK, t.stride.map(int), O.TUPLE],
    O.NEWFALSE,
    ordered,
    O.TUPLE, O.REDUCE,
  ];
}
function stateDictPickle(tensors: FakeTensor[]): Uint8Array {
  return bytesOf(proto(2), ordered, O.MARK, tensors.map((t) => [str(t.name), tensorChunk(t)]), O.SETITEMS, O.STOP);
}

function torchZip(dataPkl: Uint8Array, storages: Record<string, Uint8Array> = {}, extra: ZipInput[] = [], prefix = 'archive'): Buffer {
  return buildZip([
    { name: `${prefix}/data.pkl`, data: dataPkl },
    ...extra.map((r) => ({ ...r, name: `${prefix}/${r.name}` })),
    ...Object.entries(storages).map(([key, data]) => ({ name: `${prefix}/data/${key}`, data })),
    { name: `${prefix}/version`, data: utf8('3\n') },
  ]);
}
const f32 = (...values: number[]) => new Uint8Array(Float32Array.from(values).buffer);
/** The records of a fixture by name, to rebuild it with one record changed. */
function recordsOf(path: string): Map<string, Uint8Array> {
  const archive = ZipArchive.fromBytes(readFileSync(path), path);
  return new Map(archive.entries.map((e) => [e.name, archive.read(e)]));
}
/** The legacy layout's first three pickles (magic number, protocol version, sys_info), as torch writes them. */
const LEGACY_PREAMBLE = bytesOf(
  proto(2), long1([0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]), O.STOP,
  proto(2), int2(1001), O.STOP,
  proto(2), O.EMPTY_DICT, O.MARK, str('protocol_version'), int2(1001), str('little_endian'), O.NEWTRUE, O.SETITEMS, O.STOP,
);

// ---- Files written by torch.save ----

describe('PyTorch checkpoints written by torch.save (torch 1.13)', () => {
  it.each([
    'mixed.pt', 'views.pt', 'module.pt', 'module_proto4.pt', 'checkpoint.pt', 'nested.pt', 'tensor.pt', 'parameters.pt', 'legacy.pt',
  ])('%s: names, shapes, dtypes and values as torch computed them', (name) => {
    expect(expected.files[name]).toBeDefined();
    expectAsTorchWrote(fixture(name), expected.files[name]!);
  });

  it('reads float32, float16, bfloat16, float64, int64 and bool tensors, a 0-d and an empty one', () => {
    const tensors = expectAsTorchWrote(fixture('mixed.pt'), expected.files['mixed.pt']!);
    expect(tensors.map((t) => t.dtype)).toEqual(['float32', 'float16', 'bfloat16', 'float64', 'int64', 'bool', 'float32']);
    expect(tensors.find((t) => t.name === 'scalar')!.shape).toEqual([]);
    expect(tensors.find((t) => t.name === 'steps')!.values[3]).toBe(2 ** 40);
    expect(tensors.find((t) => t.name === 'empty')!.values).toHaveLength(0);
  });

  it('gathers non-contiguous views (transpose, offsets into a shared storage, stride 2, stride 0) into C order', () => {
    const tensors = new Map(expectAsTorchWrote(fixture('views.pt'), expected.files['views.pt']!).map((t) => [t.name, t]));
    const base = Array.from({ length: 24 }, (_, i) => i / 8 - 1);
    expect(Array.from(tensors.get('base')!.values)).toEqual(base);
    // base.t()[i][j] = base[j][i]
    expect(tensors.get('base_t')!.shape).toEqual([6, 4]);
    expect(Array.from(tensors.get('base_t')!.values)).toEqual(Array.from({ length: 24 }, (_, k) => base[(k % 4) * 6 + Math.floor(k / 4)]));
    expect(Array.from(tensors.get('row')!.values)).toEqual(base.slice(12, 18));
    expect(Array.from(tensors.get('block')!.values)).toEqual([...base.slice(8, 11), ...base.slice(14, 17)]);
    expect(Array.from(tensors.get('tail')!.values)).toEqual([3, 4, 5, 6, 7, 8].map((i) => i * 1.5));
    expect(Array.from(tensors.get('every_other')!.values)).toEqual([1, 3, 5, 7, 9].map((i) => i * 1.5));
    expect(Array.from(tensors.get('broadcast')!.values)).toEqual([1, -2, 4, 1, -2, 4]);
  });

  it('reads an nn.Module state_dict (its _metadata ignored), at pickle protocols 2 and 4', () => {
    const names = ['fc1.weight', 'fc1.bias', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var', 'bn.num_batches_tracked', 'fc2.weight', 'fc2.bias'];
    const v2 = pytorchFormat.read(fixture('module.pt'), DEFAULT_READ_LIMITS).tensors;
    const v4 = pytorchFormat.read(fixture('module_proto4.pt'), DEFAULT_READ_LIMITS).tensors;
    expect(v2.map((t) => t.name)).toEqual(names);
    expect(v4).toEqual(v2);
    expect(readFileSync(fixture('module_proto4.pt')).includes('_metadata')).toBe(true);
    expect(v2.find((t) => t.name === 'bn.num_batches_tracked')).toMatchObject({ dtype: 'int64', shape: [] });
  });

  it('unwraps {"epoch": 3, "state_dict": {...}} and flattens other nesting with dots', () => {
    const checkpoint = pytorchFormat.read(fixture('checkpoint.pt'), DEFAULT_READ_LIMITS).tensors;
    expect(checkpoint.map((t) => t.name)).toEqual(pytorchFormat.read(fixture('module.pt'), DEFAULT_READ_LIMITS).tensors.map((t) => t.name));
    const nested = pytorchFormat.read(fixture('nested.pt'), DEFAULT_READ_LIMITS).tensors.map((t) => t.name);
    expect(nested).toContain('model.fc1.weight');
    expect(nested).toContain('ema.bn.running_var');
    expect(nested).toHaveLength(18);
  });

  it('names a bare tensor after the file, and reads parameters (_rebuild_parameter)', () => {
    expect(pytorchFormat.read(fixture('tensor.pt'), DEFAULT_READ_LIMITS).tensors.map((t) => t.name)).toEqual(['tensor']);
    expect(readFileSync(fixture('parameters.pt')).includes('_rebuild_parameter')).toBe(true);
  });

  it('reads the legacy layout (torch < 1.6) with a transposed view', () => {
    const bytes = readFileSync(fixture('legacy.pt'));
    expect(bytes[0]).toBe(0x80);
    const tensors = expectAsTorchWrote(fixture('legacy.pt'), expected.files['legacy.pt']!);
    const weight = tensors.find((t) => t.name === 'fc1.weight')!;
    const transposed = tensors.find((t) => t.name === 'fc1.weight_t')!;
    expect(transposed.shape).toEqual([6, 4]);
    expect(transposed.values[1]).toBe(weight.values[6]);
  });

  it('agrees with the interop fixture written by make_fixtures.py (lenet.pt)', () => {
    const interop = JSON.parse(readFileSync(join(INTEROP, 'expected.json'), 'utf8')) as { models: { lenet: { tensors: ExpectedTensor[] } } };
    const path = join(temp(), 'lenet.pt');
    writeFileSync(path, gunzipSync(readFileSync(join(INTEROP, 'lenet.pt.gz'))));
    expect(pytorchFormat.detect(readFileSync(path).subarray(0, 64), 'weights')).toBe(true);
    expectAsTorchWrote(path, interop.models.lenet.tensors);
  });

  it('detects torch.save files by content, and leaves .npz and other files alone', () => {
    const head = (path: string) => readFileSync(path).subarray(0, 64);
    for (const name of ['mixed.pt', 'views.pt', 'legacy.pt', 'module_proto4.pt']) expect(pytorchFormat.detect(head(fixture(name)), 'renamed.dat')).toBe(true);
    const npz = gunzipSync(readFileSync(join(INTEROP, 'lenet.npz.gz'))).subarray(0, 64);
    expect(pytorchFormat.detect(npz, 'lenet.npz')).toBe(false);
    expect(pytorchFormat.detect(npz, 'lenet.pt')).toBe(false);
    expect(pytorchFormat.detect(head(join(INTEROP, 'input.npy')), 'input.npy')).toBe(false);
    const longPrefix = torchZip(stateDictPickle([]), {}, [], 'a-very-long-archive-folder-name-from-the-file-stem');
    expect(pytorchFormat.detect(longPrefix.subarray(0, 64), 'model.pth')).toBe(true);
    expect(pytorchFormat.detect(longPrefix.subarray(0, 64), 'model.zip')).toBe(false);
    expect(pytorchFormat.detect(buildZip([{ name: 'notes.txt', data: utf8('hi') }]).subarray(0, 64), 'notes.zip')).toBe(false);
    expect(pytorchFormat.detect(utf8('{"format": "not torch"}'), 'model.pt')).toBe(false);
    expect(pytorchFormat.detect(new Uint8Array(0), 'model.pt')).toBe(false);
  });
});

// ---- Hostile and damaged files ----

describe('hostile PyTorch files are refused, naming the file, and nothing in them runs', () => {
  it('refuses a pickle that calls os.system (posix.system), at protocols 2 and 4, and by hand as os.system', () => {
    for (const name of ['os_system.pt', 'os_system_proto4.pt']) {
      const message = expectRefused(fixture(name), /calls "posix\.system", which a state dict never needs; Ticket Lab does not run code from model files/);
      expect(message).toMatch(/weights_only=True/);
    }
    const byHand = bytesOf(proto(2), global('os', 'system'), str('echo pwned'), O.TUPLE1, O.REDUCE, O.STOP);
    expectRefused(writeHostile(torchZip(byHand)), /calls "os\.system", which a state dict never needs/);
    const legacy = Buffer.concat([LEGACY_PREAMBLE, byHand]);
    expectRefused(writeHostile(legacy), /the checkpoint pickle calls "os\.system"/);
    // A whole pickled model names its class: refused the same way, with the way out.
    const model = bytesOf(proto(2), global('__main__', 'Net'), O.EMPTY_TUPLE, O.NEWOBJ, O.STOP);
    expectRefused(writeHostile(torchZip(model)), /calls "__main__\.Net".*model\.state_dict\(\)/);
  });

  it('refuses the zip bomb (a storage that inflates past its declared size) and storages over the limits', () => {
    expectRefused(fixture('zip_bomb.pt'), /data\/0 inflates to more than its declared 64 bytes \(a zip bomb\?\)/);
    const big = torchZip(stateDictPickle([{ name: 'w', key: '0', numel: 4096, size: [4096], stride: [1] }]), { 0: new Uint8Array(4 * 4096) });
    expectRefused(writeHostile(big), /declares 16384 bytes uncompressed, more than the 8000/, tight({ maxTotalElements: 1000, maxHeaderBytes: 1000 }));
  });

  it('refuses unknown opcodes, truncated and trailing pickles', () => {
    expectRefused(writeHostile(torchZip(bytesOf(proto(2), 0xff, O.STOP))), /"archive\/data\.pkl" cannot be read: unknown pickle opcode 0xff \(at byte 2\)/);
    const records = recordsOf(fixture('module.pt'));
    const pkl = records.get('module/data.pkl')!;
    const storages = Object.fromEntries([...records].filter(([n]) => n.startsWith('module/data/')).map(([n, d]) => [n.slice('module/data/'.length), d]));
    expect(Object.keys(storages).length).toBeGreaterThan(0);
    // The same records rebuilt read as before; cut data.pkl short, and it is refused.
    expect(pytorchFormat.read(writeHostile(torchZip(pkl, storages, [], 'module')), DEFAULT_READ_LIMITS).tensors).toHaveLength(9);
    expectRefused(writeHostile(torchZip(pkl.subarray(0, pkl.length >> 1), storages, [], 'module')), /runs past the end of the pickle.*truncated/);
    expectRefused(writeHostile(torchZip(bytesOf(pkl, 0x4e), storages, [], 'module')), /1 bytes after its end \(STOP\)/);
    expectRefused(writeHostile(torchZip(bytesOf(proto(2), O.STOP))), /STOP finds no value on the stack/);
  });

  it('refuses a persistent id pointing at a missing storage, and storages of the wrong size or type', () => {
    const pkl = stateDictPickle([{ name: 'w', key: '7', numel: 4, size: [4], stride: [1] }]);
    expectRefused(writeHostile(torchZip(pkl, { 0: f32(1, 2, 3, 4) })), /refers to storage "7", but the archive has no "data\/7" record/);
    expectRefused(writeHostile(torchZip(pkl, { 7: f32(1, 2, 3) })), /storage "7" should hold 4 float32 elements \(16 bytes\), but its record holds 12 bytes/);
    const complex = stateDictPickle([{ name: 'w', key: '0', numel: 4, storage: 'ComplexFloatStorage', size: [4], stride: [1] }]);
    expectRefused(writeHostile(torchZip(complex, { 0: f32(1, 2, 3, 4, 5, 6, 7, 8) })), /calls "torch\.ComplexFloatStorage"/);
    const clash = stateDictPickle([
      { name: 'a', key: '0', numel: 4, size: [4], stride: [1] },
      { name: 'b', key: '0', numel: 2, storage: 'DoubleStorage', size: [2], stride: [1] },
    ]);
    expectRefused(writeHostile(torchZip(clash, { 0: f32(1, 2, 3, 4) })), /storage "0" is used as both float32 and float64/);
    const badId = bytesOf(proto(2), ordered, str('w'), str('storage'), O.BINPERSID, O.SETITEM, O.STOP);
    expectRefused(writeHostile(torchZip(badId)), /persistent id that is a str, not torch's storage tuple/);
  });

  it('refuses tensors whose size, stride or offset reach past their storage, before allocating', () => {
    const storage = { 0: f32(1, 2, 3, 4, 5, 6) };
    const cases: [Omit<FakeTensor, 'name' | 'key' | 'numel'>, RegExp][] = [
      [{ size: [2, 4], stride: [4, 1] }, /reaches past the 6 float32 elements of storage "0"/],
      [{ size: [3], stride: [1], offset: 4 }, /offset 4, shape \[3\], strides \[1\]/],
      [{ size: [1], stride: [1], offset: 6 }, /reaches past/],
      [{ size: [2, 2], stride: [1, 2 ** 30] }, /reaches past/],
      [{ size: [2 ** 30, 2 ** 30], stride: [0, 0] }, /brings the file past 268435456 elements/],
    ];
    for (const [view, pattern] of cases) {
      expectRefused(writeHostile(torchZip(stateDictPickle([{ name: 'w', key: '0', numel: 6, ...view }]), storage)), pattern);
    }
    // Inside the storage, the same checks pass: a stride-0 view of one element, an empty view far off.
    const ok = stateDictPickle([
      { name: 'ones', key: '0', numel: 6, size: [3, 2], stride: [0, 0], offset: 5 },
      { name: 'none', key: '0', numel: 6, size: [0, 5], stride: [1000, 1], offset: 6 },
      { name: 'odd', key: '0', numel: 6, size: [2, 2], stride: [1, 3], offset: 1 },
    ]);
    const tensors = pytorchFormat.read(writeHostile(torchZip(ok, storage)), DEFAULT_READ_LIMITS).tensors;
    expect(Array.from(tensors[0]!.values)).toEqual([6, 6, 6, 6, 6, 6]);
    expect(tensors[1]!.values).toHaveLength(0);
    expect(Array.from(tensors[2]!.values)).toEqual([2, 5, 3, 6]);
    // Negative offsets and sizes are not integers a tensor can have.
    const negative = bytesOf(proto(2), ordered, str('w'), global('torch._utils', '_rebuild_tensor_v2'), O.MARK,
      [O.MARK, str('storage'), global('torch', 'FloatStorage'), str('0'), str('cpu'), int(6), O.TUPLE, O.BINPERSID],
      int(-1), [O.MARK, int(2), O.TUPLE], [O.MARK, int(1), O.TUPLE], O.NEWFALSE, ordered, O.TUPLE, O.REDUCE, O.SETITEM, O.STOP);
    expectRefused(writeHostile(torchZip(negative, storage)), /storage offset is -1, not a non-negative integer/);
  });

  it('refuses memo and stack abuse, deep nesting and self-reference', () => {
    // 100,001 empty lists on the stack: past the default stack bound.
    expectRefused(writeHostile(torchZip(bytesOf(proto(2), new Uint8Array(100_001).fill(O.EMPTY_LIST), O.STOP))), /stacks more than 100000 values/);
    // A memo entry that was never stored.
    expectRefused(writeHostile(torchZip(bytesOf(proto(2), get(3), O.STOP))), /recalls memo entry 3, which was never stored/);
    // More memo entries than the limit allows (derived from maxTensors).
    const memo = bytesOf(proto(2), O.NONE, Array.from({ length: 70_000 }, (_, i) => longPut(i)), O.STOP);
    expectRefused(writeHostile(torchZip(memo)), /memoizes more than 65568 values/, tight({ maxTensors: 1 }));
    // Nesting 1,000 dicts deep with a constant stack (memo reuse): the walk stops at 64.
    const deep = bytesOf(proto(2), O.EMPTY_DICT, put(1),
      Array.from({ length: 1000 }, () => [get(1), str('k'), O.EMPTY_DICT, put(1), O.SETITEM, O.POP]), O.STOP);
    expectRefused(writeHostile(torchZip(deep)), /nests containers more than 64 deep/);
    // A dict that holds itself.
    const cycle = bytesOf(proto(2), O.EMPTY_DICT, put(0), str('self'), get(0), O.SETITEM, O.STOP);
    expectRefused(writeHostile(torchZip(cycle)), /contains itself/);
    // A dict shared under many keys at many levels: 2^40 paths, refused without walking them.
    const levels = 40;
    const shared: Chunk[] = [proto(2), O.EMPTY_DICT, put(0)];
    for (let i = 1; i <= levels; i++) shared.push(O.EMPTY_DICT, O.MARK, str('a'), get(i - 1), str('b'), get(i - 1), O.SETITEMS, put(i), O.POP);
    shared.push(O.POP, get(levels), O.STOP);
    expectRefused(writeHostile(torchZip(bytesOf(...shared))), /shares its containers so many times/);
  });

  it('refuses what is not a torch.save state dict', () => {
    expectRefused(writeHostile(torchZip(bytesOf(proto(2), O.EMPTY_LIST, O.STOP))), /holds a list, not a state dict/);
    expectRefused(writeHostile(buildZip([{ name: 'weight.npy', data: utf8('x') }])), /NumPy \.npz, not a torch\.save checkpoint/);
    expectRefused(writeHostile(buildZip([{ name: 'a/data.pkl', data: stateDictPickle([]) }, { name: 'b/data.pkl', data: stateDictPickle([]) }])), /2 data\.pkl files/);
    expectRefused(writeHostile(torchZip(stateDictPickle([]), {}, [{ name: 'constants.pkl', data: stateDictPickle([]) }])), /TorchScript module/);
    expectRefused(writeHostile(torchZip(stateDictPickle([]), {}, [{ name: 'byteorder', data: utf8('middle') }])), /byteorder record says "middle"/);
    expectRefused(writeHostile(bytesOf(proto(2), O.EMPTY_DICT, O.STOP)), /bare pickle without torch\.save's magic number/);
    expectRefused(writeHostile(utf8('sys_info\0\0\0\0')), /tar-based layout of PyTorch before 0\.4/);
    expectRefused(writeHostile(utf8('hello')), /neither a torch\.save zip archive nor the legacy/);
    expectRefused(join(temp(), 'missing.pt'), /cannot read the file \(ENOENT\)/);
    // A tensor under a tuple key cannot be named.
    const tupleKey = bytesOf(proto(2), ordered, O.MARK, int(1), O.TUPLE, tensorChunk({ name: '', key: '0', numel: 1, size: [], stride: [] }), O.SETITEM, O.STOP);
    expectRefused(writeHostile(torchZip(tupleKey, { 0: f32(1) })), /neither a string nor an integer/);
  });

  it('reads big-endian storages when the byteorder record says so, and _rebuild_tensor_v3 with a dtype', () => {
    const be = Buffer.alloc(8);
    be.writeFloatBE(1.5, 0);
    be.writeFloatBE(-2, 4);
    const pkl = stateDictPickle([{ name: 'w', key: '0', numel: 2, size: [2], stride: [1] }]);
    const [tensor] = pytorchFormat.read(writeHostile(torchZip(pkl, { 0: be }, [{ name: 'byteorder', data: utf8('big') }])), DEFAULT_READ_LIMITS).tensors;
    expect(Array.from(tensor!.values)).toEqual([1.5, -2]);

    // torch >= 2.1 writes dtypes without a storage class (uint16, …) on an untyped storage, by _rebuild_tensor_v3.
    const v3 = bytesOf(proto(2), ordered, str('u'), global('torch._utils', '_rebuild_tensor_v3'), O.MARK,
      [O.MARK, str('storage'), global('torch.storage', 'UntypedStorage'), str('0'), str('cpu'), int(6), O.TUPLE, O.BINPERSID],
      int(1), [O.MARK, int(2), O.TUPLE], [O.MARK, int(1), O.TUPLE], O.NEWFALSE, ordered, global('torch', 'uint16'), O.TUPLE, O.REDUCE, O.SETITEM, O.STOP);
    const [u] = pytorchFormat.read(writeHostile(torchZip(v3, { 0: Uint8Array.from([1, 0, 2, 0, 0xff, 0xff]) })), DEFAULT_READ_LIMITS).tensors;
    expect(u).toMatchObject({ name: 'u', dtype: 'uint16', shape: [2] });
    expect(Array.from(u!.values)).toEqual([2, 65535]);
  });

  it('refuses damaged legacy files', () => {
    const good = readFileSync(fixture('legacy.pt'));
    expectRefused(writeHostile(good.subarray(0, good.length - 3)), /needs \d+ bytes, but only \d+ are left; the file is truncated/);
    expectRefused(writeHostile(Buffer.concat([good, Buffer.alloc(2)])), /2 bytes follow the last storage/);
    const wrongVersion = Buffer.from(good);
    // The protocol-version pickle (PROTO 2, BININT2 1001, STOP) follows the 15-byte magic-number pickle.
    expect(wrongVersion.readUInt16LE(18)).toBe(1001);
    wrongVersion.writeUInt16LE(1002, 18);
    expectRefused(writeHostile(wrongVersion), /legacy protocol version is 1002/);
    // A checkpoint pickle whose storage never comes.
    const legacyPid = bytesOf(proto(2), O.EMPTY_DICT, str('w'), global('torch._utils', '_rebuild_tensor_v2'), O.MARK,
      [O.MARK, str('storage'), global('torch', 'FloatStorage'), str('1'), str('cpu'), int(2), O.NONE, O.TUPLE, O.BINPERSID],
      int(0), [O.MARK, int(2), O.TUPLE], [O.MARK, int(1), O.TUPLE], O.NEWFALSE, ordered, O.TUPLE, O.REDUCE, O.SETITEM, O.STOP);
    const emptyKeys = bytesOf(proto(2), O.EMPTY_LIST, O.STOP);
    expectRefused(writeHostile(Buffer.concat([LEGACY_PREAMBLE, legacyPid, emptyKeys])), /storage "1" is used but its data is not in the file/);
    const withData = Buffer.concat([LEGACY_PREAMBLE, legacyPid, bytesOf(proto(2), O.EMPTY_LIST, str('1'), O.APPEND, O.STOP), u64(2n), f32(0.5, 0.25)]);
    expect(Array.from(pytorchFormat.read(writeHostile(withData), DEFAULT_READ_LIMITS).tensors[0]!.values)).toEqual([0.5, 0.25]);
    const wrongCount = Buffer.concat([LEGACY_PREAMBLE, legacyPid, bytesOf(proto(2), O.EMPTY_LIST, str('1'), O.APPEND, O.STOP), u64(3n), f32(0.5, 0.25, 1)]);
    expectRefused(writeHostile(wrongCount), /storage "1" holds 3 elements in the file, but the pickle says 2/);
  });

  it('applies the read limits: file size, pickle size, tensor count and element budget', () => {
    expectRefused(fixture('module.pt'), /more than the 100 this reader accepts/, tight({ maxFileBytes: 100 }));
    expectRefused(fixture('module.pt'), /is \d+ bytes, more than the 200 this reader accepts for a pickle/, tight({ maxHeaderBytes: 200 }));
    expectRefused(fixture('legacy.pt'), /the pickles of the file are longer than the 200 bytes this reader accepts \(the checkpoint pickle is cut off\)/, tight({ maxHeaderBytes: 200 }));
    expectRefused(fixture('module.pt'), /more than 3 tensors/, tight({ maxTensors: 3 }));
    expectRefused(fixture('module.pt'), /brings the file past 30 elements/, tight({ maxTotalElements: 30 }));
  });
});

describe('mutated checkpoints', () => {
  /** A few bit flips, a cut, or a byte range repeated: aimed at the pickle, the part a zip's CRC does not guard once rewritten. */
  function mutate(bytes: Uint8Array, rng: Rng): Uint8Array {
    const out = Uint8Array.from(bytes);
    switch (rng.int(3)) {
      case 0:
        for (let k = 1 + rng.int(4); k > 0; k--) out[rng.int(out.length)]! ^= 1 << rng.int(8);
        return out;
      case 1:
        return out.subarray(0, rng.int(out.length));
      default: {
        const start = rng.int(out.length);
        const copy = out.slice(start, start + 1 + rng.int(64));
        const at = rng.int(out.length);
        return bytesOf(out.subarray(0, at), copy, out.subarray(at));
      }
    }
  }

  it.each(['module_proto4.pt', 'views.pt', 'legacy.pt'])('%s mutated 500 times: each read succeeds or is refused by the reader itself, never by an escaped exception', (name) => {
    const rng = Rng.stream(11, `pytorch-fuzz-${name}`);
    const records = name === 'legacy.pt' ? null : recordsOf(fixture(name));
    const prefix = name.replace('.pt', '');
    const path = join(temp(), `fuzz-${name}`);
    let refusals = 0;
    for (let m = 0; m < 500; m++) {
      if (records === null) writeFileSync(path, mutate(readFileSync(fixture(name)), rng));
      else {
        const storages = Object.fromEntries([...records].filter(([n]) => n.startsWith(`${prefix}/data/`)).map(([n, d]) => [n.slice(prefix.length + 6), d]));
        writeFileSync(path, torchZip(mutate(records.get(`${prefix}/data.pkl`)!, rng), storages, [], prefix));
      }
      try {
        pytorchFormat.read(path, DEFAULT_READ_LIMITS);
      } catch (error) {
        refusals++;
        expect(error).toBeInstanceOf(ModelFileError);
        // guardedRead's fallback names an exception the reader did not expect (a TypeError, say): none may reach it.
        expect((error as Error).message, `mutation ${m}`).not.toMatch(/reading it as a PyTorch state dict failed/);
      }
    }
    expect(refusals).toBeGreaterThan(100);
  });
});

// ---- The pickle VM on hand-assembled opcodes ----

describe('unpickle: a restricted pickle VM', () => {
  const run = (options: UnpickleOptions, ...chunks: Chunk[]) => unpickle(bytesOf(...chunks), options);
  const value = (...chunks: Chunk[]) => unpickle(bytesOf(...chunks));
  const refused = (pattern: RegExp, options: UnpickleOptions, ...chunks: Chunk[]) => {
    expect(() => run(options, ...chunks)).toThrow(pattern);
    try {
      run(options, ...chunks);
    } catch (error) {
      expect(error).toBeInstanceOf(PickleError);
    }
  };

  it('reads scalars: ints of every width as bigint, floats, strings, bytes, None and bools', () => {
    expect(value(proto(), int(-5), O.STOP)).toBe(-5n);
    expect(value(proto(), int1(255), O.STOP)).toBe(255n);
    expect(value(proto(), int2(65535), O.STOP)).toBe(65535n);
    expect(value(proto(), long1([]), O.STOP)).toBe(0n);
    expect(value(proto(), long1([0xff]), O.STOP)).toBe(-1n);
    expect(value(proto(), long1([0x00, 0x80]), O.STOP)).toBe(-32768n);
    expect(value(proto(), long1([0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]), O.STOP)).toBe(0x1950a86a20f9469cfc6cn);
    expect(value(proto(), [0x8b, i32(2), 0x01, 0x01], O.STOP)).toBe(257n);
    expect(value(proto(), float(-0.1), O.STOP)).toBe(-0.1);
    expect(value(proto(4), frame(4), str('é'), O.STOP)).toBe('é');
    expect(value(proto(4), shortStr('short'), O.STOP)).toBe('short');
    expect(value(proto(4), str8('eight'), O.STOP)).toBe('eight');
    expect(value(proto(), binstring('py2'), O.STOP)).toBe('py2');
    expect(value(proto(), shortBinstring('py2'), O.STOP)).toBe('py2');
    expect(value(proto(3), bin([1, 2, 3]), O.STOP)).toEqual(Uint8Array.from([1, 2, 3]));
    expect(value(proto(3), shortBin([9]), O.STOP)).toEqual(Uint8Array.from([9]));
    expect(value(proto(5), [0x96, u64(2n), 7, 8], O.STOP)).toEqual(Uint8Array.from([7, 8]));
    expect(value(proto(), O.NONE, O.STOP)).toBe(null);
    expect(value(proto(), O.NEWTRUE, O.STOP)).toBe(true);
    expect(value(proto(), O.NEWFALSE, O.STOP)).toBe(false);
  });

  it('builds tuples, lists, dicts and sets, with the memo, DUP, POP and POP_MARK', () => {
    const t = value(proto(), int1(1), int1(2), int1(3), O.TUPLE3, O.STOP) as PyTuple;
    expect(t).toBeInstanceOf(PyTuple);
    expect(t.items).toEqual([1n, 2n, 3n]);
    expect((value(proto(), O.EMPTY_TUPLE, O.STOP) as PyTuple).items).toEqual([]);
    expect((value(proto(), O.MARK, int1(1), int1(2), O.TUPLE, O.STOP) as PyTuple).items).toEqual([1n, 2n]);
    expect(value(proto(), O.EMPTY_LIST, int1(1), O.APPEND, O.MARK, int1(2), int1(3), O.APPENDS, O.STOP)).toEqual([1n, 2n, 3n]);
    expect(value(proto(), O.MARK, str('a'), O.LIST, O.STOP)).toEqual(['a']);
    const d = value(proto(), O.EMPTY_DICT, str('a'), int1(1), O.SETITEM, O.MARK, str('b'), int1(2), str('a'), int1(3), O.SETITEMS, O.STOP) as PyDict;
    expect([...d.entries]).toEqual([['a', 3n], ['b', 2n]]);
    expect([...(value(proto(), O.MARK, int1(1), str('x'), O.DICT, O.STOP) as PyDict).entries]).toEqual([[1n, 'x']]);
    const s = value(proto(4), O.EMPTY_SET, O.MARK, int1(1), int1(2), O.ADDITEMS, O.STOP) as PySet;
    expect(s).toMatchObject({ items: [1n, 2n], frozen: false });
    expect(value(proto(4), O.MARK, int1(1), O.FROZENSET, O.STOP)).toMatchObject({ items: [1n], frozen: true });
    // The memo shares objects, as in Python.
    const shared = value(proto(), O.EMPTY_LIST, put(0), O.POP, O.MARK, get(0), longGet(0), O.TUPLE, O.STOP) as PyTuple;
    expect(shared.items[0]).toBe(shared.items[1]);
    const memoized = value(proto(4), str('m'), O.MEMOIZE, O.POP, [0x68, 0], O.STOP);
    expect(memoized).toBe('m');
    expect((value(proto(), int1(4), O.DUP, O.TUPLE2, O.STOP) as PyTuple).items).toEqual([4n, 4n]);
    expect(value(proto(), int1(1), O.MARK, int1(2), int1(3), O.POP_MARK, O.STOP)).toBe(1n);
    // BUILD sets a dict's attributes (torch's OrderedDict._metadata) and nothing else.
    const built = value(proto(), O.EMPTY_DICT, O.EMPTY_DICT, str('_metadata'), int1(1), O.SETITEM, O.BUILD, O.STOP) as PyDict;
    expect(built.entries.size).toBe(0);
    expect(built.state).toBeInstanceOf(PyDict);
    // Deep nesting is no problem for the VM itself: it never recurses into values.
    let deep = value(proto(), O.EMPTY_LIST, put(1), Array.from({ length: 50_000 }, () => [get(1), O.EMPTY_LIST, put(1), O.APPEND, O.POP]), O.STOP) as unknown[];
    let depth = 0;
    while (deep.length) {
      deep = deep[0] as unknown[];
      depth++;
    }
    expect(depth).toBe(50_000);
  });

  it('resolves globals only through the allow-list, naming what it refuses', () => {
    const globals = new Map<string, PickleCallable>([['collections.OrderedDict', () => new PyDict('OrderedDict')], ['math.hypot', (args: readonly unknown[]) => Math.hypot(...args.map(Number))]]);
    expect(run({ globals }, proto(), global('math', 'hypot'), int1(3), int1(4), O.TUPLE2, O.REDUCE, O.STOP)).toBe(5);
    expect(run({ globals }, proto(4), shortStr('math'), shortStr('hypot'), O.STACK_GLOBAL, int1(6), int1(8), O.TUPLE2, O.NEWOBJ, O.STOP)).toBe(10);
    expect(run({ globals }, proto(), global('collections', 'OrderedDict'), O.STOP)).toBeInstanceOf(PyGlobal);
    const refusedGlobal = (chunks: Chunk[], name: string) => {
      let error: unknown;
      try {
        run({ globals }, ...chunks);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(PickleGlobalError);
      expect((error as Error).message).toContain(`"${name}"`);
      expect((error as Error).message).toMatch(/Ticket Lab does not run code from model files/);
    };
    refusedGlobal([proto(), global('os', 'system'), str('echo pwned'), O.TUPLE1, O.REDUCE, O.STOP], 'os.system');
    refusedGlobal([proto(4), shortStr('builtins'), shortStr('eval'), O.STACK_GLOBAL, O.STOP], 'builtins.eval');
    refusedGlobal([proto(), global('collections', 'constructor'), O.STOP], 'collections.constructor');
    refused(/STACK_GLOBAL names a global by a int and a str/, { globals }, proto(4), int1(1), shortStr('x'), O.STACK_GLOBAL, O.STOP);
    refused(/REDUCE calls a str, not an allow-listed global/, { globals }, proto(), str('math.hypot'), O.EMPTY_TUPLE, O.REDUCE, O.STOP);
    refused(/passes a list as the arguments/, { globals }, proto(), global('math', 'hypot'), O.EMPTY_LIST, O.REDUCE, O.STOP);
    refused(/GLOBAL has no line end within 1024 bytes/, {}, proto(), 0x63, utf8('x'.repeat(2000)), O.STOP);
    refused(/persistent id, which this reader has no way to resolve/, {}, proto(), str('0'), O.BINPERSID, O.STOP);
    expect(run({ persistentLoad: (id) => `loaded ${String(id)}` }, proto(), str('0'), O.BINPERSID, O.STOP)).toBe('loaded 0');
  });

  it('bounds every length by the input and the limits, before allocating', () => {
    refused(/BINUNICODE runs past the end of the pickle \(1000000 bytes claimed, 2 left\)/, {}, proto(), [0x58, u32(1_000_000)], utf8('a'), O.STOP);
    refused(/BINUNICODE8 claims \d+ bytes/, {}, proto(4), [0x8d, u64(2n ** 62n)], O.STOP);
    refused(/BINBYTES8 runs past the end/, {}, proto(4), [0x8e, u64(2n ** 40n)], O.STOP);
    refused(/BINSTRING claims a negative length -5/, {}, proto(), [0x54, i32(-5)], O.STOP);
    refused(/LONG4 claims a negative length/, {}, proto(), [0x8b, i32(-1)], O.STOP);
    refused(/LONG4 is a 100000-byte integer, more than the 1024/, {}, proto(), [0x8b, i32(100_000)], O.STOP);
    refused(/is not valid UTF-8/, {}, proto(), [0x58, u32(2), 0xc3, 0x28], O.STOP);
    refused(/runs past the 8-byte limit on the pickle/, { limits: { maxBytes: 8 } }, proto(), str('a longer string'), O.STOP);
    refused(/stacks more than 10 values/, { limits: { maxStack: 10 } }, proto(), new Uint8Array(11).fill(O.NONE), O.STOP);
    refused(/stacks more than 10 values and MARKs/, { limits: { maxStack: 10 } }, proto(), new Uint8Array(11).fill(O.MARK), O.STOP);
    refused(/memoizes more than 3 values/, { limits: { maxMemo: 3 } }, proto(), O.NONE, put(0), put(1), put(2), put(3), O.STOP);
    // Storing again at a used index is no growth.
    expect(run({ limits: { maxMemo: 1 } }, proto(), O.NONE, put(0), put(0), longPut(0), O.STOP)).toBe(null);
    refused(/runs more than 5 opcodes/, { limits: { maxOps: 5 } }, proto(), O.NONE, O.POP, O.NONE, O.POP, O.NONE, O.STOP);
    refused(/recalls memo entry 4294967295, which was never stored/, {}, proto(), longGet(2 ** 32 - 1), O.STOP);
  });

  it('refuses malformed opcode sequences with the byte at fault', () => {
    refused(/unknown pickle opcode 0xff \(at byte 2\)/, {}, proto(), 0xff, O.STOP);
    refused(/unknown pickle opcode 0x7a \('z'\)/, {}, proto(), 0x7a, O.STOP);
    refused(/opcode INT \('I', text protocol 0\)/, {}, proto(), utf8('I1\n'), O.STOP);
    refused(/opcode INST \('i', instantiates a class\)/, {}, proto(), utf8('ios\nsystem\n'), O.STOP);
    refused(/opcode NEXT_BUFFER/, {}, proto(5), 0x97, O.STOP);
    refused(/opcode EXT1/, {}, proto(), 0x82, 1, O.STOP);
    refused(/protocol 6; this reader reads protocols 2 to 5/, {}, proto(6), O.NONE, O.STOP);
    refused(/protocol 1/, {}, proto(1), O.NONE, O.STOP);
    refused(/an opcode runs past the end of the pickle/, {}, proto(), O.NONE);
    refused(/STOP leaves 1 values and 0 open MARKs behind/, {}, proto(), O.NONE, O.NONE, O.STOP);
    refused(/TUPLE1 finds no value on the stack/, {}, proto(), int1(1), O.MARK, O.TUPLE1, O.STOP);
    refused(/TUPLE has no MARK to close/, {}, proto(), int1(1), O.TUPLE, O.STOP);
    refused(/APPEND appends to a dict, not a list/, {}, proto(), O.EMPTY_DICT, int1(1), O.APPEND, O.STOP);
    refused(/SETITEMS has a key without a value/, {}, proto(), O.EMPTY_DICT, O.MARK, int1(1), O.SETITEMS, O.STOP);
    refused(/SETITEM sets items on a list, not a dict/, {}, proto(), O.EMPTY_LIST, int1(1), int1(2), O.SETITEM, O.STOP);
    refused(/ADDITEMS adds to a frozenset, not a set/, {}, proto(4), O.MARK, O.FROZENSET, O.MARK, O.ADDITEMS, O.STOP);
    refused(/BUILD sets the state of a list/, {}, proto(), O.EMPTY_LIST, O.EMPTY_DICT, O.BUILD, O.STOP);
    refused(/NEWOBJ_EX passes keyword arguments/, { globals: new Map([['m.f', () => 1]]) }, proto(4), global('m', 'f'), O.EMPTY_TUPLE, O.EMPTY_DICT, str('k'), int1(1), O.SETITEM, 0x92, O.STOP);
    refused(/1 bytes follow the pickle's STOP opcode/, {}, proto(), O.NONE, O.STOP, O.NONE);
    // unpickleAt reads one pickle among others and says where it ended.
    const two = bytesOf(proto(), int1(1), O.STOP, proto(), int1(2), O.STOP);
    const first = unpickleAt(two, 0);
    expect(first).toEqual({ value: 1n, end: 5 });
    expect(unpickleAt(two, first.end)).toEqual({ value: 2n, end: 10 });
  });
});
