// A binary range coder (the carry-propagating design of LZMA's rc, with 16-bit probabilities).
// The caller supplies the probability of each bit; the coder spends -log2(p) bits on it, give or
// take a rounding, so a good model gives a near-entropy code.

const TOP = 2 ** 24;
const PROB_BITS = 16;
export const PROB_ONE = 1 << PROB_BITS;

/**
 * Probability that the next bit is 1, as an integer in [1, PROB_ONE - 1].
 * Rounding never reaches 0 or PROB_ONE, so a bit the model calls unlikely still stays codable.
 */
export function quantizeProbability(p: number): number {
  const q = Math.round(p * PROB_ONE);
  return Math.min(PROB_ONE - 1, Math.max(1, q));
}

export class RangeEncoder {
  private low = 0; // up to 2^32 + carry: a JS number holds it exactly
  private range = 0xffffffff;
  private cache = 0;
  private cacheSize = 1;
  private bytes: Uint8Array;
  private length = 0;

  constructor(expectedBytes = 64) {
    this.bytes = new Uint8Array(Math.max(16, expectedBytes));
  }

  /**
   * Codes `bit` where `pOne` (from quantizeProbability) is the probability that it is 1.
   * The interval is cut for the less likely symbol, so the floor in `range >>> 16` rounds its share
   * down and the likely symbol, coded far more often, keeps a precise share.
   */
  encode(bit: number, pOne: number): void {
    const oneIsRare = pOne <= PROB_ONE >>> 1;
    const rareShare = oneIsRare ? pOne : PROB_ONE - pOne;
    const bound = (this.range >>> PROB_BITS) * rareShare;
    const isRare = oneIsRare ? bit === 1 : bit === 0;
    if (isRare) {
      this.range = bound;
    } else {
      this.low += bound;
      this.range -= bound;
    }
    while (this.range < TOP) {
      this.range = (this.range * 256) >>> 0;
      this.shiftLow();
    }
  }

  private shiftLow(): void {
    if (this.low < 0xff000000 || this.low >= 0x100000000) {
      const carry = this.low >= 0x100000000 ? 1 : 0;
      let pending = this.cache;
      do {
        this.push((pending + carry) & 0xff);
        pending = 0xff;
      } while (--this.cacheSize !== 0);
      this.cache = (this.low >>> 24) & 0xff;
    }
    this.cacheSize++;
    this.low = (this.low & 0x00ffffff) * 256;
  }

  private push(byte: number): void {
    if (this.length === this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    this.bytes[this.length++] = byte;
  }

  finish(): Uint8Array {
    for (let i = 0; i < 5; i++) this.shiftLow();
    // The first byte out of an LZMA-style coder is always 0: drop it, the decoder re-inserts it.
    return this.bytes.slice(1, this.length);
  }
}

export class RangeDecoder {
  private range = 0xffffffff;
  private code = 0;
  private position = 0;

  constructor(private readonly bytes: Uint8Array) {
    for (let i = 0; i < 4; i++) this.code = ((this.code * 256) + this.nextByte()) >>> 0;
  }

  /** Bytes read past the end are zeros; the caller's checksum catches a truncated stream. */
  private nextByte(): number {
    return this.position < this.bytes.length ? this.bytes[this.position++]! : (this.position++, 0);
  }

  /** True when the decoder read past the end of its input (a truncated or damaged stream). */
  get overran(): boolean {
    return this.position > this.bytes.length + 4;
  }

  decode(pOne: number): number {
    const oneIsRare = pOne <= PROB_ONE >>> 1;
    const rareShare = oneIsRare ? pOne : PROB_ONE - pOne;
    const bound = (this.range >>> PROB_BITS) * rareShare;
    let isRare: boolean;
    if (this.code < bound) {
      this.range = bound;
      isRare = true;
    } else {
      this.code -= bound;
      this.range -= bound;
      isRare = false;
    }
    while (this.range < TOP) {
      this.range = (this.range * 256) >>> 0;
      this.code = ((this.code * 256) + this.nextByte()) >>> 0;
    }
    return isRare === oneIsRare ? 1 : 0;
  }
}
