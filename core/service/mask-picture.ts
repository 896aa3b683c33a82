// A layer's mask as a picture: one pixel per weight, one row per output unit, as researchers read a
// weight matrix in PyTorch's layout ([out, in] for a dense layer, [out, in·kh·kw] for a convolution,
// each input channel's kernel a contiguous run of kh·kw pixels). Masks are stored in TF.js layouts
// ([in, out] and [kh, kw, in, out]), so the picture is a transpose, done here once rather than in
// every front end.
import type { LayerMask } from '../pruning/mask';
import { packBits } from '../pruning/mask-encoding';

export interface MaskPicture {
  rows: number;
  cols: number;
  /** rows·cols bits, row-major, kept = 1. */
  bits: Uint8Array;
}

export function maskPicture(mask: LayerMask): MaskPicture {
  const shape = mask.shape;
  const out = shape.at(-1) ?? 1;
  if (shape.length <= 1) return { rows: 1, cols: mask.bits.length, bits: mask.bits };
  const inner = mask.bits.length / out;
  const bits = new Uint8Array(mask.bits.length);
  if (shape.length === 4) {
    const [kh, kw, channels] = shape as [number, number, number, number];
    const kernel = kh * kw;
    // Source [y][x][i][o] → picture row o, column i·kh·kw + y·kw + x.
    for (let y = 0; y < kh; y++) {
      for (let x = 0; x < kw; x++) {
        const position = y * kw + x;
        for (let i = 0; i < channels; i++) {
          const source = (position * channels + i) * out;
          const column = i * kernel + position;
          for (let o = 0; o < out; o++) bits[o * inner + column] = mask.bits[source + o]!;
        }
      }
    }
  } else {
    // Any other rank: everything before the last axis, in its own order, is the column.
    for (let c = 0; c < inner; c++) for (let o = 0; o < out; o++) bits[o * inner + c] = mask.bits[c * out + o]!;
  }
  return { rows: out, cols: inner, bits };
}

/** The picture's bits packed MSB first (numpy.packbits order), base64: 1M weights travel as 167 KB of JSON. */
export function packedPicture(mask: LayerMask): { rows: number; cols: number; bits: string } {
  const picture = maskPicture(mask);
  return { rows: picture.rows, cols: picture.cols, bits: Buffer.from(packBits(picture.bits)).toString('base64') };
}
