// Section 4: how many bytes a stored mask takes against what any coder could reach.
//
// A uniformly random mask with k of n entries kept is the worst case for a mask coder (no structure
// to exploit), and its information is log2 C(n, k) ≤ n·H(k/n) bits. The target (DESIGN.md): the
// payload within 1.1× of that bound, plus a header of at most 64 bytes.
import { onesMask } from '../core/pruning/mask';
import { MASK_ENCODINGS, decodeMask, encodeMask, entropyBoundBytes, maskHeaderBytes } from '../core/pruning/mask-encoding';
import { randomStrategy } from '../core/pruning/random';
import { medianSeconds } from './stopwatch';
import { type Table, fixed, percent } from './text-table';

export const MASK_SHAPE = [1000, 1000] as const;
export const SPARSITIES = [0.5, 0.8, 0.9, 0.95, 0.99, 0.999] as const;
const TARGET_RATIO = 1.1;
const TARGET_HEADER_BYTES = 64;

export interface MaskStorageRow {
  sparsity: number;
  entries: number;
  kept: number;
  blobBytes: number;
  encoding: 'range-coded' | 'bit-packed';
  headerBytes: number;
  boundBytes: number;
  /** (blob − header) / bound; Infinity when the bound is 0. */
  ratio: number;
  bitPackedBytes: number;
  targetHolds: boolean;
  roundTrip: boolean;
  encodeSeconds: number;
  decodeSeconds: number;
}

export async function measureMaskStorage(repetitions: number, seed: number, log: (line: string) => void): Promise<MaskStorageRow[]> {
  const rows: MaskStorageRow[] = [];
  const n = MASK_SHAPE[0] * MASK_SHAPE[1];
  for (const sparsity of SPARSITIES) {
    const kept = Math.round((1 - sparsity) * n);
    log(`mask of ${n.toLocaleString('en-US')} entries at ${percent(sparsity)} sparsity`);
    const [mask] = await randomStrategy.prune({
      weights: [],
      masks: [onesMask('bench.kernel', MASK_SHAPE)],
      budget: { scope: 'layer', keep: { 'bench.kernel': kept } },
      params: {},
      seed,
    });
    const encoded = medianSeconds(repetitions, () => encodeMask(mask!));
    const blob = encoded.value;
    const decoded = medianSeconds(repetitions, () => decodeMask(mask!.name, blob));
    const headerBytes = maskHeaderBytes(blob);
    const boundBytes = entropyBoundBytes(n, kept);
    const payload = blob.length - headerBytes;
    const ratio = boundBytes > 0 ? payload / boundBytes : Number.POSITIVE_INFINITY;
    rows.push({
      sparsity,
      entries: n,
      kept,
      blobBytes: blob.length,
      encoding: blob[3] === MASK_ENCODINGS.rangeCoded ? 'range-coded' : 'bit-packed',
      headerBytes,
      boundBytes,
      ratio,
      bitPackedBytes: Math.ceil(n / 8),
      targetHolds: payload <= TARGET_RATIO * boundBytes && headerBytes <= TARGET_HEADER_BYTES,
      roundTrip: sameBits(mask!.bits, decoded.value.bits),
      encodeSeconds: encoded.seconds,
      decodeSeconds: decoded.seconds,
    });
  }
  return rows;
}

function sameBits(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function maskStorageTable(rows: readonly MaskStorageRow[], repetitions: number): Table {
  return {
    title: `4. Mask storage: ${MASK_SHAPE.join('×')} = ${fixed(MASK_SHAPE[0] * MASK_SHAPE[1], 0)} weights, seeded random masks with exact counts`,
    measures: [
      'blob = encodeMask() output; header = maskHeaderBytes(); bound = n·H(p)/8 (entropyBoundBytes); ratio = (blob − header) / bound.',
      `Target: ratio ≤ ${TARGET_RATIO} and header ≤ ${TARGET_HEADER_BYTES} bytes. Times: median of ${repetitions} encodeMask / decodeMask call${repetitions === 1 ? '' : 's'} (decode includes its CRC check).`,
    ],
    columns: [
      { header: 'sparsity', align: 'right' },
      { header: 'kept', align: 'right' },
      { header: 'blob B', align: 'right' },
      { header: 'encoding' },
      { header: 'header B', align: 'right' },
      { header: 'bound B', align: 'right' },
      { header: 'ratio', align: 'right' },
      { header: 'bit-packed B', align: 'right' },
      { header: 'vs packed', align: 'right' },
      { header: 'target' },
      { header: 'round trip' },
      { header: 'encode ms', align: 'right' },
      { header: 'decode ms', align: 'right' },
    ],
    rows: rows.map((r) => [
      percent(r.sparsity),
      fixed(r.kept, 0),
      fixed(r.blobBytes, 0),
      r.encoding,
      String(r.headerBytes),
      fixed(r.boundBytes, 0),
      fixed(r.ratio, 4),
      fixed(r.bitPackedBytes, 0),
      percent(r.blobBytes / r.bitPackedBytes),
      r.targetHolds ? 'holds' : 'MISSED',
      r.roundTrip ? 'exact' : 'WRONG',
      fixed(r.encodeSeconds * 1000, 1),
      fixed(r.decodeSeconds * 1000, 1),
    ]),
  };
}
