// A mask: one 0/1 array per prunable tensor (1 = kept), in the tensor's TF.js layout.
import { sizeOf } from '../models/weights';

export interface LayerMask {
  /** The parameter it masks, e.g. `fc1.kernel`. */
  name: string;
  shape: number[];
  /** One byte per weight, 0 or 1. Packing happens only when stored. */
  bits: Uint8Array;
}

/** Masks of every prunable tensor, in architecture order. */
export type MaskSet = LayerMask[];

export function onesMask(name: string, shape: readonly number[]): LayerMask {
  return { name, shape: [...shape], bits: new Uint8Array(sizeOf(shape)).fill(1) };
}

export function cloneMasks(masks: MaskSet): MaskSet {
  return masks.map((m) => ({ name: m.name, shape: [...m.shape], bits: m.bits.slice() }));
}

export function countKept(bits: Uint8Array): number {
  let kept = 0;
  for (let i = 0; i < bits.length; i++) kept += bits[i]!;
  return kept;
}

export interface LayerSparsity {
  name: string;
  shape: number[];
  kept: number;
  total: number;
  /** Fraction of entries pruned, zeros / entries. */
  sparsity: number;
}

export interface MaskSummary {
  kept: number;
  total: number;
  /** Global sparsity over the prunable set (ignored tensors count as kept, as in open_lth). */
  sparsity: number;
  layers: LayerSparsity[];
}

export function summarizeMasks(masks: MaskSet): MaskSummary {
  const layers = masks.map((m) => {
    const kept = countKept(m.bits);
    const total = m.bits.length;
    return { name: m.name, shape: [...m.shape], kept, total, sparsity: total === 0 ? 0 : 1 - kept / total };
  });
  const kept = layers.reduce((n, l) => n + l.kept, 0);
  const total = layers.reduce((n, l) => n + l.total, 0);
  return { kept, total, sparsity: total === 0 ? 0 : 1 - kept / total, layers };
}
