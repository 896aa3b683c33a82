// The keyed stream and the abstract pictures of the trigger set (protocol in trigger-set.ts). The
// stream is HMAC-SHA-256 in counter mode, not core/compute/rng.ts: an Rng is seeded from 32 bits, and a
// trigger set must be as hard to guess as the owner's key.
import { createHmac } from 'node:crypto';

/** u32 big-endian, the fixed-width integer of the encodings. */
export function u32be(n: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(n);
  return out;
}

/** The canonical encoding of string fields: u32be(UTF-8 byte length) || UTF-8 bytes, each in order. */
export function triggerEncoding(fields: readonly string[]): Buffer {
  return Buffer.concat(
    fields.flatMap((field) => {
      const bytes = Buffer.from(field, 'utf8');
      return [u32be(bytes.length), bytes];
    }),
  );
}

/** Block i = HMAC-SHA-256(key, context || u32be(i)), read as one byte string. */
export class KeyedStream {
  private block = Buffer.alloc(0);
  private pos = 0;
  private counter = 0;

  constructor(
    private readonly key: Uint8Array,
    private readonly context: Uint8Array,
  ) {}

  byte(): number {
    if (this.pos === this.block.length) {
      this.block = createHmac('sha256', this.key).update(this.context).update(u32be(this.counter++)).digest();
      this.pos = 0;
    }
    return this.block[this.pos++]!;
  }

  u32(): number {
    return ((this.byte() << 24) | (this.byte() << 16) | (this.byte() << 8) | this.byte()) >>> 0;
  }

  /** Uniform in [0, n), by rejection: no modulo bias, so keyed labels are exactly uniform. */
  int(n: number): number {
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.u32();
      if (x < limit) return x % n;
    }
  }
}

/**
 * One abstract picture into `out` (row-major [h, w, c] bytes), in the spirit of Adi et al.'s trigger
 * images: uniform noise, then 2–4 filled rectangles, then 2–4 straight strokes, each of one random colour.
 * Nothing like the dataset's own images, so learning them costs the task little.
 */
export function drawTriggerImage(stream: KeyedStream, [h, w, c]: readonly [number, number, number], out: Uint8Array): void {
  for (let i = 0; i < out.length; i++) out[i] = stream.byte();
  const colour = () => Array.from({ length: c }, () => stream.byte());
  const paint = (y: number, x: number, rgb: number[]) => {
    if (y < 0 || y >= h || x < 0 || x >= w) return;
    for (let k = 0; k < c; k++) out[(y * w + x) * c + k] = rgb[k]!;
  };
  const rectangles = 2 + stream.int(3);
  for (let r = 0; r < rectangles; r++) {
    const y0 = stream.int(h);
    const x0 = stream.int(w);
    const rh = 1 + stream.int(Math.ceil(h / 2));
    const rw = 1 + stream.int(Math.ceil(w / 2));
    const rgb = colour();
    for (let y = y0; y < Math.min(h, y0 + rh); y++) for (let x = x0; x < Math.min(w, x0 + rw); x++) paint(y, x, rgb);
  }
  const strokes = 2 + stream.int(3);
  for (let s = 0; s < strokes; s++) {
    const [ya, xa, yb, xb] = [stream.int(h), stream.int(w), stream.int(h), stream.int(w)];
    const thickness = 1 + stream.int(2);
    const rgb = colour();
    // Sample the segment every half pixel; a thick stroke paints a thickness × thickness square per sample.
    const steps = 2 * Math.max(Math.abs(yb - ya), Math.abs(xb - xa), 1);
    for (let t = 0; t <= steps; t++) {
      const y = Math.round(ya + ((yb - ya) * t) / steps);
      const x = Math.round(xa + ((xb - xa) * t) / steps);
      for (let dy = 0; dy < thickness; dy++) for (let dx = 0; dx < thickness; dx++) paint(y + dy, x + dx, rgb);
    }
  }
}
