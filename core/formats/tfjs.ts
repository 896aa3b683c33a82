// A reader for TensorFlow.js models: a model.json (a layers model saved by tfjs-layers, or a graph
// model from tensorflowjs_converter) whose `weightsManifest` lists groups of weights, each group's
// bytes stored in binary shard files beside it. Within a group the shards are concatenated in
// order and the weights follow one another in manifest order, each shape-product × element-size
// bytes (the quantized element's size when quantized), as tfjs-core's io/weights_loader.ts and
// io_utils.ts decodeWeights read them. Layouts are TF.js's own (dense kernels [in, out], conv
// kernels [kh, kw, in, out]) and names are kept as the manifest gives them.
//
// model.json and shard paths come from users and the internet: a shard path may not be absolute,
// a URL, contain a ".." segment, or resolve (through symlinks too) outside model.json's folder.
// Every count, shape and size is checked against the limits, and every group's shard bytes against
// what its weights need, before a shard is read or a float32 copy is allocated.
import { closeSync, openSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, posix, relative, resolve, win32 } from 'node:path';
import { DTYPE_BYTES, elementCount, toFloat32 } from './dtypes';
import { errorText, guardedRead, isPlainObject, quote, refuse, show } from './file-bytes';
import {
  DEFAULT_READ_LIMITS,
  ModelFileError,
  type FileTensor,
  type ModelFileContents,
  type ModelFormat,
  type ReadLimits,
  type TensorDtype,
} from './model-format';

const TITLE = 'TensorFlow.js model.json';

/** The weight dtypes TF.js stores whose values are numbers; a Map so that "constructor" finds nothing. */
const WEIGHT_DTYPES = new Map<string, TensorDtype>([['float32', 'float32'], ['int32', 'int32'], ['bool', 'bool'], ['float16', 'float16']]);
/** TF.js dtypes this reader knows but cannot turn into float32 tensors. */
const UNSUPPORTED_DTYPES = new Set(['string', 'complex64']);
const QUANTIZED_DTYPES = new Map<string, 'uint8' | 'uint16' | 'float16'>([['uint8', 'uint8'], ['uint16', 'uint16'], ['float16', 'float16']]);

const OPEN_BRACE = 0x7b;
const JSON_WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const UTF8_BOM = [0xef, 0xbb, 0xbf];
/** A URL ("https://", "file:/") or a Windows drive ("C:"); a path relative to model.json's folder is neither. */
const URL_OR_DRIVE = /^(?:[a-z]:|[a-z][a-z0-9+.-]*:\/)/i;
/** Shards named in one message before "and N more". */
const SHARDS_SHOWN = 4;

type TopologyFormat = 'layers-model' | 'graph-model';

interface Quantization {
  dtype: 'uint8' | 'uint16' | 'float16';
  scale: number;
  min: number;
}

interface Weight {
  name: string;
  shape: number[];
  /** As TF.js declares it (the dequantized type when quantized). */
  declared: TensorDtype;
  /** As the shard stores it: the quantized type when quantized. */
  stored: TensorDtype;
  quantization: Quantization | undefined;
  count: number;
  /** Offset in its group's concatenated shards. */
  offset: number;
  bytes: number;
  /** False for optimizer state (group "optimizer"): its bytes are checked and skipped, as TF.js's model loading does. */
  keep: boolean;
}

interface Shard {
  /** As the manifest lists it, for messages. */
  listed: string;
  /** The resolved path, symlinks followed. */
  file: string;
  size: number;
}

interface Group {
  index: number;
  paths: string[];
  shards: Shard[];
  weights: Weight[];
  bytes: number;
}




function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** Shard names for a message: the first few, quoted, then how many more. */
function showShards(paths: readonly string[]): string {
  if (paths.length === 0) return 'no shard files';
  const shown = paths.slice(0, SHARDS_SHOWN).map(quote).join(', ');
  return paths.length > SHARDS_SHOWN ? `${shown} and ${paths.length - SHARDS_SHOWN} more` : shown;
}

/** Whether `child` (resolved) is strictly inside `folder` (resolved). */
function isInside(folder: string, child: string): boolean {
  const rel = relative(folder, child);
  return rel !== '' && !isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${posix.sep}`) && !rel.startsWith(`..${win32.sep}`);
}

/**
 * JSON text whose first non-blank character is '{', in a file named *.json. JSON text holds no raw
 * control characters but blanks, so the zero bytes of a binary length prefix (safetensors) never pass.
 */
function detect(head: Uint8Array, fileName: string): boolean {
  if (!fileName.toLowerCase().endsWith('.json')) return false;
  let i = UTF8_BOM.every((b, k) => head[k] === b) ? UTF8_BOM.length : 0;
  for (let k = i; k < head.length; k++) {
    const byte = head[k]!;
    if (byte < 0x20 && !JSON_WHITESPACE.has(byte)) return false;
  }
  while (i < head.length && JSON_WHITESPACE.has(head[i]!)) i++;
  return head[i] === OPEN_BRACE;
}

/** model.json parsed, refused before reading when larger than maxHeaderBytes. */
function readModelJson(path: string, limits: ReadLimits): Record<string, unknown> {
  const tooBig = (n: number) => `model.json is ${n} bytes, more than the ${limits.maxHeaderBytes} this reader accepts for metadata; raise maxHeaderBytes if the file is trusted.`;
  let bytes: Buffer;
  try {
    const stats = statSync(path);
    if (!stats.isFile()) refuse(path, 'not a file.');
    if (stats.size > limits.maxHeaderBytes) refuse(path, tooBig(stats.size));
    bytes = readFileSync(path);
  } catch (error) {
    if (error instanceof ModelFileError) throw error;
    return refuse(path, `cannot read the file (${errorText(error)}).`, error);
  }
  // The file may have changed since statSync: only the bytes actually read count.
  if (bytes.length > limits.maxHeaderBytes) refuse(path, tooBig(bytes.length));

  let json: unknown;
  try {
    // fatal: replacement characters would silently rename weights and shards.
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    return refuse(path, `the file is not valid UTF-8 JSON (${errorText(error)}); it is damaged or not a TensorFlow.js model.json.`, error);
  }
  if (!isPlainObject(json)) {
    return refuse(path, `the JSON is ${Array.isArray(json) ? 'an array' : show(json)}, not an object with modelTopology and weightsManifest.`);
  }
  return json;
}

/** A shard path from the manifest, refused unless it names a file inside `folder`; returns the resolved path. */
function checkShardPath(path: string, folder: string, listed: unknown, where: string): string {
  if (typeof listed !== 'string') return refuse(path, `${where} lists the shard path ${show(listed)}, not a string.`);
  const shard = `shard ${quote(listed)} (${where})`;
  if (listed === '') refuse(path, `${where} lists an empty shard path.`);
  if (listed.includes('\0')) refuse(path, `${shard} contains a NUL character.`);
  if (posix.isAbsolute(listed) || win32.isAbsolute(listed)) {
    refuse(path, `${shard} is an absolute path; shard paths must be relative to model.json's folder.`);
  }
  if (URL_OR_DRIVE.test(listed)) refuse(path, `${shard} is a URL or drive path; shard paths must be relative to model.json's folder.`);
  if (listed.split(/[\\/]/).includes('..')) refuse(path, `${shard} contains "..", which could leave model.json's folder; the file is crafted or must be fixed.`);
  const resolved = resolve(folder, listed);
  if (!isInside(folder, resolved)) refuse(path, `${shard} resolves outside model.json's folder.`);
  return resolved;
}

/** The quantization of a weight entry, checked against its dtype as TF.js's decodeWeights does. */
function checkQuantization(path: string, weight: string, value: unknown, declared: TensorDtype): Quantization {
  if (!isPlainObject(value)) return refuse(path, `${weight} has quantization ${show(value)}, not an object with dtype (and scale and min).`);
  const dtype = typeof value.dtype === 'string' ? QUANTIZED_DTYPES.get(value.dtype) : undefined;
  if (dtype === undefined) {
    return refuse(path, `${weight} is quantized as ${show(value.dtype)}, which this reader does not know (it reads ${[...QUANTIZED_DTYPES.keys()].join(', ')}).`);
  }
  if (dtype === 'float16') {
    if (declared !== 'float32') refuse(path, `${weight} is quantized as float16, which TF.js allows only for float32 weights, not ${declared}.`);
    return { dtype, scale: 1, min: 0 };
  }
  if (declared !== 'float32' && declared !== 'int32') refuse(path, `${weight} is quantized as ${dtype}, which TF.js allows only for float32 and int32 weights, not ${declared}.`);
  if (!isFiniteNumber(value.scale) || !isFiniteNumber(value.min)) {
    return refuse(path, `${weight} is quantized as ${dtype} with scale ${show(value.scale)} and min ${show(value.min)}; both must be finite numbers.`);
  }
  return { dtype, scale: value.scale, min: value.min };
}

/** Every group and weight of the manifest checked, with offsets and sizes; nothing is read or allocated yet. */
function checkManifest(path: string, json: Record<string, unknown>, limits: ReadLimits): Group[] {
  if (!Object.hasOwn(json, 'weightsManifest')) {
    refuse(path, 'model.json has no weightsManifest; it holds no weights (or is not a TensorFlow.js model.json).');
  }
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest)) return refuse(path, `weightsManifest is ${show(manifest)}, not an array of weight groups.`);

  // Counted first, so that a manifest of a million weights is refused before any is checked.
  let listedWeights = 0;
  for (const [index, group] of manifest.entries()) {
    const where = `weightsManifest[${index}]`;
    if (!isPlainObject(group)) return refuse(path, `${where} is ${show(group)}, not an object with paths and weights.`);
    if (!Array.isArray(group.paths)) return refuse(path, `${where} has paths ${show(group.paths)}, not an array of shard file names.`);
    if (!Array.isArray(group.weights)) return refuse(path, `${where} has weights ${show(group.weights)}, not an array of weight entries.`);
    listedWeights += group.weights.length;
  }
  if (listedWeights > limits.maxTensors) {
    refuse(path, `weightsManifest lists ${listedWeights} weights, more than the ${limits.maxTensors} this reader accepts; raise maxTensors if the file is trusted.`);
  }

  const folder = dirname(path);
  // Capped so that elements × 8 bytes stays an exact integer even with limits of Infinity.
  const elementCap = Math.min(limits.maxTotalElements, Math.floor(Number.MAX_SAFE_INTEGER / 8));
  const byteCap = Math.min(limits.maxFileBytes, Number.MAX_SAFE_INTEGER);
  let totalElements = 0;
  let totalBytes = 0;
  const names = new Set<string>();
  const shardPaths = new Map<string, string>();
  const groups: Group[] = [];
  for (const [index, entry] of manifest.entries()) {
    const group = entry as { paths: unknown[]; weights: unknown[] };
    const where = `weightsManifest[${index}]`;
    const paths: string[] = [];
    for (const listed of group.paths) {
      const resolved = checkShardPath(path, folder, listed, where);
      const earlier = shardPaths.get(resolved);
      if (earlier !== undefined) refuse(path, `shard ${quote(listed as string)} (${where}) is the file ${quote(earlier)} listed before; each shard holds its own bytes.`);
      shardPaths.set(resolved, listed as string);
      paths.push(listed as string);
    }

    const weights: Weight[] = [];
    let offset = 0;
    for (const spec of group.weights) {
      if (!isPlainObject(spec)) return refuse(path, `${where} lists the weight ${show(spec)}, not an object with name, shape and dtype.`);
      if (typeof spec.name !== 'string') return refuse(path, `${where} lists a weight named ${show(spec.name)}, not a string.`);
      const name = spec.name;
      const weight = `weight ${quote(name)}`;
      if (names.has(name)) refuse(path, `${weight} is listed twice in weightsManifest.`);
      names.add(name);

      const declared = typeof spec.dtype === 'string' ? WEIGHT_DTYPES.get(spec.dtype) : undefined;
      if (declared === undefined) {
        if (typeof spec.dtype === 'string' && UNSUPPORTED_DTYPES.has(spec.dtype)) {
          refuse(path, `${weight} has dtype ${spec.dtype}, which has no float32 values; this reader reads ${[...WEIGHT_DTYPES.keys()].join(', ')} weights.`);
        }
        return refuse(path, `${weight} has dtype ${show(spec.dtype)}, which this reader does not know (it reads ${[...WEIGHT_DTYPES.keys()].join(', ')}).`);
      }
      const quantization = spec.quantization === undefined ? undefined : checkQuantization(path, weight, spec.quantization, declared);
      const stored = quantization?.dtype ?? declared;

      if (spec.group !== undefined && typeof spec.group !== 'string') refuse(path, `${weight} has group ${show(spec.group)}, not a string.`);
      const keep = spec.group !== 'optimizer';

      const shape: unknown = spec.shape;
      if (!Array.isArray(shape)) return refuse(path, `${weight} has shape ${show(shape)}, not an array of dimensions.`);
      const badDim: unknown = shape.find((d: unknown) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0);
      if (badDim !== undefined) refuse(path, `${weight} has shape ${show(shape)}, whose dimension ${show(badDim)} is not a non-negative integer.`);
      let count: number | null;
      if (keep) {
        // Its float32 copy is allocated: the element budget applies.
        count = elementCount(shape, elementCap - totalElements);
        if (count === null) {
          return refuse(path, `${weight} with shape ${show(shape)} brings the model past ${limits.maxTotalElements} elements, more than this reader accepts; raise maxTotalElements if the file is trusted.`);
        }
        totalElements += count;
      } else {
        // Skipped, but its bytes must still lie in the shards.
        count = elementCount(shape, Math.floor(byteCap / DTYPE_BYTES[stored]));
      }
      const bytes = count === null ? null : count * DTYPE_BYTES[stored];
      if (bytes === null || bytes > byteCap - totalBytes) {
        return refuse(path, `${weight} with shape ${show(shape)} brings the weights past ${limits.maxFileBytes} bytes, more than this reader accepts; raise maxFileBytes if the files are trusted.`);
      }
      totalBytes += bytes;
      weights.push({ name, shape: shape as number[], declared, stored, quantization, count: count!, offset, bytes, keep });
      offset += bytes;
    }
    groups.push({ index, paths, shards: [], weights, bytes: offset });
  }
  return groups;
}

/** Each shard's real path and size, refused when it leaves the folder, is not a file or does not match its group's weights. */
function checkShards(path: string, groups: Group[], limits: ReadLimits): void {
  const folder = dirname(path);
  let realFolder: string;
  try {
    realFolder = realpathSync(folder);
  } catch (error) {
    return refuse(path, `cannot resolve model.json's folder (${errorText(error)}).`, error);
  }
  let totalBytes = 0;
  for (const group of groups) {
    const where = `weightsManifest[${group.index}]`;
    for (const listed of group.paths) {
      const shard = `shard ${quote(listed)} (${where})`;
      let file: string;
      let size: number;
      try {
        file = realpathSync(resolve(folder, listed));
        if (!isInside(realFolder, file)) refuse(path, `${shard} is a link to ${quote(file)}, outside model.json's folder; the file is crafted or must be copied in.`);
        const stats = statSync(file);
        if (!stats.isFile()) refuse(path, `${shard} is not a file.`);
        size = stats.size;
      } catch (error) {
        if (error instanceof ModelFileError) throw error;
        return refuse(path, `${shard} cannot be read (${errorText(error)}).`, error);
      }
      totalBytes += size;
      if (totalBytes > limits.maxFileBytes) {
        refuse(path, `the shards up to ${shard} hold ${totalBytes} bytes, more than the ${limits.maxFileBytes} this reader accepts; raise maxFileBytes if the files are trusted.`);
      }
      group.shards.push({ listed, file, size });
    }

    const held = group.shards.reduce((sum, s) => sum + s.size, 0);
    if (held < group.bytes) {
      const short = group.weights.find((w) => w.offset + w.bytes > held)!;
      refuse(path, `weight ${quote(short.name)} needs bytes ${short.offset} to ${short.offset + short.bytes} of ${where}'s data, but its shards (${showShards(group.paths)}) hold only ${held} bytes; a shard is truncated or missing from the manifest.`);
    }
    if (held > group.bytes) {
      const last = group.weights.at(-1);
      refuse(path, `the shards of ${where} (${showShards(group.paths)}) hold ${held} bytes, but its weights need ${group.bytes}${last === undefined ? '' : ` (the last, ${quote(last.name)}, ends there)`}; a shard is damaged or the manifest is incomplete.`);
    }
  }
}

/** A shard's bytes into `target` at `at`, refused if the file changed size since it was checked. */
function readShardInto(path: string, where: string, shard: Shard, target: Buffer, at: number): void {
  const name = `shard ${quote(shard.listed)} (${where})`;
  let fd: number;
  try {
    fd = openSync(shard.file, 'r');
  } catch (error) {
    return refuse(path, `${name} cannot be read (${errorText(error)}).`, error);
  }
  try {
    let done = 0;
    while (done < shard.size) {
      const n = readSync(fd, target, at + done, shard.size - done, done);
      if (n === 0) refuse(path, `${name} shrank from ${shard.size} to ${done} bytes while it was read.`);
      done += n;
    }
    if (readSync(fd, Buffer.alloc(1), 0, 1, shard.size) !== 0) refuse(path, `${name} grew past ${shard.size} bytes while it was read.`);
  } catch (error) {
    if (error instanceof ModelFileError) throw error;
    return refuse(path, `${name} cannot be read (${errorText(error)}).`, error);
  } finally {
    closeSync(fd);
  }
}

/** A weight's float32 values from its group's bytes, dequantized as TF.js does (q × scale + min, rounded for int32). */
function decode(bytes: Buffer, weight: Weight): Float32Array {
  const q = weight.quantization;
  if (q === undefined || q.dtype === 'float16') return toFloat32(bytes, weight.offset, weight.count, weight.stored);
  const raw = toFloat32(bytes, weight.offset, weight.count, q.dtype);
  const round = weight.declared === 'int32';
  for (let i = 0; i < raw.length; i++) {
    const value = raw[i]! * q.scale + q.min;
    raw[i] = round ? Math.round(value) : value;
  }
  return raw;
}

function read(path: string, limits: ReadLimits): ModelFileContents {
  return guardedRead(path, TITLE, () => readChecked(path, limits));
}

function readChecked(path: string, limits: ReadLimits): ModelFileContents {
  const json = readModelJson(path, limits);
  const groups = checkManifest(path, json, limits);
  checkShards(path, groups, limits);

  // Every claim is checked: read group by group, so only one group's bytes are held at a time.
  const tensors: FileTensor[] = [];
  for (const group of groups) {
    if (!group.weights.some((w) => w.keep)) continue;
    const bytes = Buffer.alloc(group.bytes);
    let at = 0;
    for (const shard of group.shards) {
      readShardInto(path, `weightsManifest[${group.index}]`, shard, bytes, at);
      at += shard.size;
    }
    for (const weight of group.weights) {
      if (weight.keep) tensors.push({ name: weight.name, shape: weight.shape, dtype: weight.stored, values: decode(bytes, weight) });
    }
  }
  return { format: 'tfjs', tensors };
}

/**
 * model.json's `modelTopology` (a Keras-style model config for a layers model, a GraphDef as JSON
 * for a graph model) and which of the two it is, from `format` or, in files written before TF.js
 * 1.0 that lack it, from the topology's keys. The weights are not read.
 */
export function readTfjsModelTopology(path: string, limits: ReadLimits = DEFAULT_READ_LIMITS): { format: TopologyFormat; modelTopology: unknown } {
  try {
    const json = readModelJson(path, limits);
    if (!Object.hasOwn(json, 'modelTopology') || json.modelTopology === null || json.modelTopology === undefined) {
      refuse(path, 'model.json has no modelTopology; it holds weights only.');
    }
    const modelTopology = json.modelTopology;
    if (json.format === 'layers-model' || json.format === 'graph-model') return { format: json.format, modelTopology };
    if (json.format !== undefined) refuse(path, `model.json has format ${show(json.format)}; this reader knows "layers-model" and "graph-model".`);
    if (isPlainObject(modelTopology)) {
      if (Object.hasOwn(modelTopology, 'node') || Object.hasOwn(modelTopology, 'versions')) return { format: 'graph-model', modelTopology };
      if (Object.hasOwn(modelTopology, 'class_name') || Object.hasOwn(modelTopology, 'model_config')) return { format: 'layers-model', modelTopology };
    }
    return refuse(path, 'model.json has no format, and its modelTopology is neither a layers model config (class_name, model_config) nor a graph (node).');
  } catch (error) {
    if (error instanceof ModelFileError) throw error;
    return refuse(path, `reading it as ${TITLE} failed (${errorText(error)}).`, error);
  }
}

export const tfjsFormat: ModelFormat = {
  id: 'tfjs',
  title: TITLE,
  detect,
  read,
};
