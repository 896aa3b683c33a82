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

/** A tensor of bytes (a mask's 0/1 entries), written as U8 where the format has it. */
export interface OutByteTensor {
  name: string;
  shape: number[];
  values: Uint8Array;
}

/** safetensors: u64 header length, the JSON header padded with spaces to 8 bytes, then F32 (or U8) data in order. */
export function safetensorsBytes(tensors: ReadonlyArray<OutTensor | OutByteTensor>, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = Object.keys(metadata).length > 0 ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.values.byteLength;
    header[t.name] = { dtype: t.values instanceof Uint8Array ? 'U8' : 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    if (t.values instanceof Uint8Array) out.set(t.values, at);
    else for (let i = 0; i < t.values.length; i++) out.writeFloatLE(t.values[i]!, at + 4 * i);
    at += t.values.byteLength;
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
  return storedZip(tensors.map((t) => ({ name: `${t.name}.npy`, data: npyBytes(t) })));
}

/**
 * A zip of `records`, stored (not deflated). With `alignment`, each record's data starts at a
 * multiple of it, padded by an 'FB' extra field as PyTorch's writer pads (so its loader can map it).
 */
export function storedZip(records: readonly { name: string; data: Buffer }[], alignment?: number): Buffer {
  if (records.length > 0xffff) throw new Error(`${records.length} entries are too many for a zip without ZIP64`);
  const parts: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const { name, data } of records) {
    const nameBytes = Buffer.from(name, 'utf8');
    const crc = crc32(data) >>> 0;
    // The extra field: 'FB', its u16 length, then that many 'Z's, so the data starts on the alignment.
    let extra = Buffer.alloc(0);
    if (alignment !== undefined) {
      const start = offset + 30 + nameBytes.length + 4;
      const padding = (alignment - (start % alignment)) % alignment;
      extra = Buffer.alloc(4 + padding, 'Z');
      extra.write('FB', 0, 'latin1');
      extra.writeUInt16LE(padding, 2);
    }

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names, as torch sets
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt16LE(0, 10); // time
    local.writeUInt16LE(0x21, 12); // date: 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(extra.length, 28);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4); // version made by
    central.writeUInt16LE(20, 6); // version needed
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(0, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    // Extra, comment, disk, internal and external attributes: all 0 (torch's central entries carry no padding).
    central.writeUInt32LE(offset, 42);

    parts.push(local, nameBytes, extra, data);
    centrals.push(central, nameBytes);
    offset += 30 + nameBytes.length + extra.length + data.length;
    if (offset > 0xffffffff) throw new Error('the tensors are too large for a zip without ZIP64 (4 GiB)');
  }
  const directory = Buffer.concat(centrals);
  if (offset + directory.length > 0xffffffff) throw new Error('the tensors are too large for a zip without ZIP64 (4 GiB)');
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(records.length, 8);
  end.writeUInt16LE(records.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, directory, end]);
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
