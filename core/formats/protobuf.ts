// A minimal reader of the protobuf wire format (https://protobuf.dev/programming-guides/encoding/),
// for files from users and the internet: every length is checked against the bytes left in its
// message before anything is sliced, varints longer than 10 bytes or wider than 64 bits are refused,
// groups (wire types 3 and 4, deprecated and unused by the formats read here) are refused, and
// messages nest at most MAX_DEPTH deep. Slices are views of the caller's bytes: nothing is copied.

export const VARINT = 0;
export const FIXED64 = 1;
export const LEN = 2;
export const FIXED32 = 5;
export type WireType = typeof VARINT | typeof FIXED64 | typeof LEN | typeof FIXED32;

/** How deep messages may nest; each nestedFields() is one level. */
export const MAX_DEPTH = 64;

const MAX_FIELD_NUMBER = 2 ** 29 - 1;

/** Bytes that are not a protobuf message; `offset` is where in the outermost message it was found. */
export class ProtobufError extends Error {
  constructor(readonly offset: number, reason: string, readonly truncated = false) {
    super(reason);
    this.name = 'ProtobufError';
  }
}

export interface WireField {
  readonly field: number;
  readonly wireType: WireType;
  /** A varint's value, unsigned 64 bits (BigInt.asIntN(64, v) for int64); 0n for other wire types. */
  readonly varint: bigint;
  /** A length-delimited field's payload, the 4 or 8 bytes of a fixed field, or a varint's own encoding. */
  readonly bytes: Uint8Array;
  /** Where `bytes` starts in the outermost message. */
  readonly offset: number;
  /** The nesting level of the message holding this field (0: the outermost). */
  readonly depth: number;
}

/** The varint at `bytes[at]`: its value and where it ends. `base` places `at` in the outermost message, for errors. */
function readVarint(bytes: Uint8Array, at: number, base: number): { value: bigint; end: number } {
  // Up to 7 bytes (49 bits) exactly in a double; BigInt only for the rare longer ones.
  let low = 0;
  let i = 0;
  for (; i < 7; i++) {
    if (at + i >= bytes.length) throw new ProtobufError(base + at, 'the data ends inside a varint.', true);
    const byte = bytes[at + i]!;
    low += (byte & 0x7f) * 2 ** (7 * i);
    if (byte < 0x80) return { value: BigInt(low), end: at + i + 1 };
  }
  let value = BigInt(low);
  for (; i < 10; i++) {
    if (at + i >= bytes.length) throw new ProtobufError(base + at, 'the data ends inside a varint.', true);
    const byte = bytes[at + i]!;
    if (i === 9) {
      // The tenth byte ends the varint and carries only bit 63.
      if (byte >= 0x80) throw new ProtobufError(base + at, 'a varint runs longer than 10 bytes.');
      if (byte > 1) throw new ProtobufError(base + at, 'a varint is wider than 64 bits.');
    }
    value |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if (byte < 0x80) break;
  }
  return { value, end: at + i + 1 };
}

function* fieldsAt(bytes: Uint8Array, depth: number, base: number): Generator<WireField> {
  if (depth > MAX_DEPTH) throw new ProtobufError(base, `messages are nested more than ${MAX_DEPTH} levels deep.`);
  let at = 0;
  while (at < bytes.length) {
    const start = at;
    const tag = readVarint(bytes, at, base);
    at = tag.end;
    if (tag.value > BigInt(2 ** 32 - 1)) throw new ProtobufError(base + start, `the tag ${tag.value} is wider than 32 bits.`);
    const key = Number(tag.value);
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    if (field === 0 || field > MAX_FIELD_NUMBER) throw new ProtobufError(base + start, `field number ${field} is not a valid field number.`);
    switch (wireType) {
      case VARINT: {
        const v = readVarint(bytes, at, base);
        yield { field, wireType, varint: v.value, bytes: bytes.subarray(at, v.end), offset: base + at, depth };
        at = v.end;
        break;
      }
      case FIXED64:
      case FIXED32: {
        const size = wireType === FIXED64 ? 8 : 4;
        if (size > bytes.length - at) {
          throw new ProtobufError(base + start, `field ${field} needs ${size} bytes, but only ${bytes.length - at} are left.`, true);
        }
        yield { field, wireType, varint: 0n, bytes: bytes.subarray(at, at + size), offset: base + at, depth };
        at += size;
        break;
      }
      case LEN: {
        const length = readVarint(bytes, at, base);
        at = length.end;
        const left = bytes.length - at;
        // Checked in BigInt: a 64-bit length never turns into an unsafe number.
        if (length.value > BigInt(left)) {
          throw new ProtobufError(base + start, `field ${field} claims ${length.value} bytes, but only ${left} are left in its message.`, true);
        }
        const size = Number(length.value);
        yield { field, wireType, varint: 0n, bytes: bytes.subarray(at, at + size), offset: base + at, depth };
        at += size;
        break;
      }
      case 3:
      case 4:
        throw new ProtobufError(base + start, `field ${field} is a group (wire type ${wireType}), which this reader does not accept.`);
      default:
        throw new ProtobufError(base + start, `field ${field} has wire type ${wireType}, which protobuf does not define.`);
    }
  }
}

/** The fields of an outermost message, in file order; unknown fields are the caller's to skip. */
export function messageFields(bytes: Uint8Array): Iterable<WireField> {
  return fieldsAt(bytes, 0, 0);
}

/** The fields of the message inside a length-delimited field, one level deeper. */
export function nestedFields(field: WireField): Iterable<WireField> {
  if (field.wireType !== LEN) throw new ProtobufError(field.offset, `field ${field.field} has wire type ${field.wireType}, not a message.`);
  return fieldsAt(field.bytes, field.depth + 1, field.offset);
}

/** A string field, which protobuf requires to be UTF-8. */
export function stringOf(field: WireField, fatal = true): string {
  if (field.wireType !== LEN) throw new ProtobufError(field.offset, `field ${field.field} has wire type ${field.wireType}, not a string.`);
  try {
    return new TextDecoder('utf-8', { fatal }).decode(field.bytes);
  } catch {
    throw new ProtobufError(field.offset, `field ${field.field} is not valid UTF-8.`);
  }
}

/**
 * How many values one occurrence of a repeated scalar field holds: one if unpacked (its own wire
 * type), else as many as its packed bytes encode. Counts without decoding or allocating.
 */
export function repeatedCount(field: WireField, element: typeof VARINT | typeof FIXED32 | typeof FIXED64): number {
  if (field.wireType === element) return 1;
  if (field.wireType !== LEN) throw new ProtobufError(field.offset, `field ${field.field} has wire type ${field.wireType}, not ${element} or packed.`);
  const bytes = field.bytes;
  if (element === VARINT) {
    let count = 0;
    for (const byte of bytes) if (byte < 0x80) count++;
    if (bytes.length > 0 && bytes[bytes.length - 1]! >= 0x80) throw new ProtobufError(field.offset + bytes.length - 1, 'the packed data ends inside a varint.', true);
    return count;
  }
  const size = element === FIXED64 ? 8 : 4;
  if (bytes.length % size !== 0) throw new ProtobufError(field.offset, `packed field ${field.field} is ${bytes.length} bytes, not a multiple of ${size}.`);
  return bytes.length / size;
}

/** The varints of one occurrence of a repeated varint field, packed or not (unsigned 64 bits each). */
export function* repeatedVarints(field: WireField): Generator<bigint> {
  if (field.wireType === VARINT) {
    yield field.varint;
    return;
  }
  if (field.wireType !== LEN) throw new ProtobufError(field.offset, `field ${field.field} has wire type ${field.wireType}, not varint or packed.`);
  let at = 0;
  while (at < field.bytes.length) {
    const v = readVarint(field.bytes, at, field.offset);
    yield v.value;
    at = v.end;
  }
}
