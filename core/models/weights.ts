// Weights as plain typed arrays: what is stored, rewound to and compared. Tensors live only
// while a network trains or evaluates.
import { createHash } from 'node:crypto';
import { Rng } from '../compute/rng';
import type { ParamSpec } from './architectures';

export interface NamedTensor {
  name: string;
  shape: number[];
  values: Float32Array;
}

/** Parameters in architecture order. */
export type WeightSet = NamedTensor[];

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Initial weights, each tensor as its spec's `init` says, drawn in JS from the seeded stream in spec
 * order, so the same seed gives the same weights on every backend:
 * - glorot-normal, as the LTH paper trains its nets: N(0, 2/(fan_in + fan_out));
 * - kaiming-normal, open_lth's ResNets (PyTorch kaiming_normal_: fan_in, gain √2): N(0, 2/fan_in);
 * - uniform: U(0, 1) (open_lth's BatchNorm γ); zeros (biases, β, running means); ones (running variances).
 */
export function initWeights(specs: readonly ParamSpec[], seed: number, stream = 'init'): WeightSet {
  const rng = Rng.stream(seed, stream);
  return specs.map((spec) => {
    const values = new Float32Array(sizeOf(spec.shape));
    switch (spec.init) {
      case 'glorot-normal':
      case 'kaiming-normal': {
        const std = Math.sqrt(spec.init === 'glorot-normal' ? 2 / (spec.fanIn + spec.fanOut) : 2 / spec.fanIn);
        for (let i = 0; i < values.length; i++) values[i] = rng.normal() * std;
        break;
      }
      case 'uniform':
        for (let i = 0; i < values.length; i++) values[i] = rng.next();
        break;
      case 'ones':
        values.fill(1);
        break;
      case 'zeros':
        break;
    }
    return { name: spec.name, shape: [...spec.shape], values };
  });
}

/** Content digest: names, shapes and float bits, so equal weights are stored once. */
export function digestWeights(weights: WeightSet): string {
  const hash = createHash('sha256');
  for (const t of weights) {
    hash.update(`${t.name}:${t.shape.join('x')};`);
    hash.update(new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength));
  }
  return hash.digest('hex');
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Serialises a weight set: u32 LE header length, a JSON header of names and shapes, then little-endian float32 data. */
export function encodeWeights(weights: WeightSet): Buffer {
  const header = Buffer.from(`${JSON.stringify(weights.map((t) => ({ name: t.name, shape: t.shape })))}\n`, 'utf8');
  const total = weights.reduce((n, t) => n + t.values.length, 0);
  const out = Buffer.alloc(4 + header.length + total * 4);
  out.writeUInt32LE(header.length, 0);
  header.copy(out, 4);
  let offset = 4 + header.length;
  for (const t of weights) {
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength), offset);
    } else {
      for (let i = 0; i < t.values.length; i++) out.writeFloatLE(t.values[i]!, offset + 4 * i);
    }
    offset += 4 * t.values.length;
  }
  return out;
}

export function decodeWeights(bytes: Uint8Array): WeightSet {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 4) throw new Error('weights blob too short');
  const headerLength = buf.readUInt32LE(0);
  if (4 + headerLength > buf.length) throw new Error('weights blob ends inside its header');
  const header = JSON.parse(buf.subarray(4, 4 + headerLength).toString('utf8')) as Array<{ name: string; shape: number[] }>;
  let offset = 4 + headerLength;
  const out: WeightSet = [];
  for (const { name, shape } of header) {
    const n = sizeOf(shape);
    if (offset + 4 * n > buf.length) throw new Error(`weights blob ends inside ${name}`);
    const values = new Float32Array(n);
    if (LITTLE_ENDIAN) {
      // Copy into the fresh, aligned buffer: the blob's offset need not be a multiple of 4.
      new Uint8Array(values.buffer).set(buf.subarray(offset, offset + 4 * n));
    } else {
      for (let i = 0; i < n; i++) values[i] = buf.readFloatLE(offset + 4 * i);
    }
    offset += 4 * n;
    out.push({ name, shape, values });
  }
  if (offset !== buf.length) throw new Error('weights blob has trailing bytes');
  return out;
}
