// Writing tensors for other tools: safetensors (Hugging Face's layout) and NumPy .npz (a stored zip
// of .npy members, as np.savez writes). Both are written to a temporary file beside the target and
// renamed over it, so a failed or interrupted export never leaves a half-written file.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';

export interface OutTensor {
  name: string;
  shape: number[];
  values: Float32Array;
}

/** safetensors: u64 header length, the JSON header padded with spaces to 8 bytes, then F32 data in order. */
export function safetensorsBytes(tensors: readonly OutTensor[], metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = Object.keys(metadata).length > 0 ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * t.values.length] };
    offset += 4 * t.values.length;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    for (let i = 0; i < t.values.length; i++) out.writeFloatLE(t.values[i]!, at + 4 * i);
    at += 4 * t.values.length;
  }
  return out;
}

/** One .npy (format 1.0): little-endian float32, C order. */
export function npyBytes(t: OutTensor): Buffer {
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(', ')})`;
  let dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  // Magic, version and length take 10 bytes; the header ends in '\n' and pads the whole to 64 bytes.
  dict += ' '.repeat((64 - ((10 + dict.length + 1) % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
  head.writeUInt16LE(dict.length, 8);
  const data = Buffer.alloc(4 * t.values.length);
  for (let i = 0; i < t.values.length; i++) data.writeFloatLE(t.values[i]!, 4 * i);
  return Buffer.concat([head, Buffer.from(dict, 'latin1'), data]);
}

/** .npz as np.savez writes it: a zip of `<name>.npy` members, stored (not deflated). */
export function npzBytes(tensors: readonly OutTensor[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const t of tensors) {
    const name = Buffer.from(`${t.name}.npy`, 'utf8');
    const data = npyBytes(t);
    const crc = crc32(data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    centrals.push(central, name);
    offset += 30 + name.length + data.length;
  }
  if (offset > 0xffffffff) throw new Error('the tensors are too large for a zip without ZIP64 (4 GiB)');
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(tensors.length, 8);
  end.writeUInt16LE(tensors.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** Writes `bytes` to `path` through a temporary file and a rename: the target is whole or untouched. */
export function writeFileAtomically(path: string, bytes: Uint8Array): void {
  const temporary = `${path}.${process.pid}.partial`;
  try {
    const fd = openSync(temporary, 'w');
    try {
      writeSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
