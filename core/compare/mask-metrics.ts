// Mask similarity (ALGORITHMS.md §10): IoU over kept entries, the jackpots-style overlap |A∩B|/|A|,
// each beside its chance baseline, and Hamming distance.
import type { MaskOverlap } from '../api/schemas';
import type { LayerMask } from '../pruning/mask';

interface Counts {
  total: number;
  keptA: number;
  keptB: number;
  both: number;
}

function countPair(a: Uint8Array, b: Uint8Array): Counts {
  let keptA = 0;
  let keptB = 0;
  let both = 0;
  for (let i = 0; i < a.length; i++) {
    keptA += a[i]!;
    keptB += b[i]!;
    both += a[i]! & b[i]!;
  }
  return { total: a.length, keptA, keptB, both };
}

/** Similarity of two masks on one tensor or in total (the API's MaskOverlap). */
export type MaskSimilarity = MaskOverlap;

function overlap(name: string, c: Counts): MaskSimilarity {
  const union = c.keptA + c.keptB - c.both;
  const hamming = union - c.both;
  const da = c.total ? c.keptA / c.total : 0;
  const db = c.total ? c.keptB / c.total : 0;
  const chanceDenominator = da + db - da * db;
  return {
    name,
    total: c.total,
    keptA: c.keptA,
    keptB: c.keptB,
    // Two empty masks agree completely.
    iou: union === 0 ? 1 : c.both / union,
    chanceIou: chanceDenominator === 0 ? 1 : (da * db) / chanceDenominator,
    hamming,
    hammingFraction: c.total ? hamming / c.total : 0,
    both: c.both,
    overlap: c.keptA === 0 ? 1 : c.both / c.keptA,
    chanceOverlap: db,
  };
}

export interface MaskComparison {
  layers: MaskSimilarity[];
  total: MaskSimilarity;
  unmatched: string[];
}

/** Compares two masks tensor by tensor on the tensors they share (same name and shape). */
export function compareMasks(a: readonly LayerMask[], b: readonly LayerMask[]): MaskComparison {
  const layers: MaskSimilarity[] = [];
  const sum: Counts = { total: 0, keptA: 0, keptB: 0, both: 0 };
  const unmatched: string[] = [];
  for (const ma of a) {
    const mb = b.find((m) => m.name === ma.name);
    if (!mb || mb.bits.length !== ma.bits.length || mb.shape.join() !== ma.shape.join()) {
      unmatched.push(ma.name);
      continue;
    }
    const c = countPair(ma.bits, mb.bits);
    layers.push(overlap(ma.name, c));
    sum.total += c.total;
    sum.keptA += c.keptA;
    sum.keptB += c.keptB;
    sum.both += c.both;
  }
  for (const mb of b) if (!a.some((m) => m.name === mb.name)) unmatched.push(mb.name);
  return { layers, total: overlap('total', sum), unmatched };
}
