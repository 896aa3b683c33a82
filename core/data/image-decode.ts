// PNG and JPEG to packed RGB bytes, in pure JS (jpeg-js, pngjs): no native build, same pixels on every
// machine. The header is read first, so an image of the wrong size or channel count is refused by name
// before any decoding, and a hostile header cannot make the decoder allocate much.
import { createRequire } from 'node:module';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { DataFormatError } from '../api/errors';

export interface ImageHeader {
  format: 'png' | 'jpeg';
  width: number;
  height: number;
  /** Colour channels (alpha not counted): 1 for grey, 3 for colour, 4 for CMYK JPEGs. */
  channels: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** The decoders that turn files into pixels: part of a decoded cache's key, since another decoder may give other pixels. */
export const DECODER_VERSIONS: string = (() => {
  const requireHere = createRequire(__filename);
  const version = (name: string) => (requireHere(`${name}/package.json`) as { version: string }).version;
  return `jpeg-js@${version('jpeg-js')} pngjs@${version('pngjs')}`;
})();

export function readImageHeader(bytes: Uint8Array, name: string): ImageHeader {
  if (PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return readPngHeader(bytes, name);
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return readJpegHeader(bytes, name);
  throw new DataFormatError(`${name} is neither a PNG nor a JPEG image (by its first bytes).`);
}

function readPngHeader(bytes: Uint8Array, name: string): ImageHeader {
  // The IHDR chunk must come first: length 13, type 'IHDR', width, height, bit depth, colour type.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 33 || view.getUint32(12) !== 0x49484452) throw new DataFormatError(`${name} is a damaged PNG (no IHDR chunk first).`);
  const colourType = bytes[25]!;
  // Colour types: 0 grey, 2 RGB, 3 palette (RGB entries), 4 grey + alpha, 6 RGB + alpha.
  const channels = colourType === 0 || colourType === 4 ? 1 : 3;
  return { format: 'png', width: view.getUint32(16), height: view.getUint32(20), channels };
}

function readJpegHeader(bytes: Uint8Array, name: string): ImageHeader {
  // Walk the marker segments up to the first start-of-frame (SOF0..SOF15 except DHT C4, JPG C8, DAC CC).
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) throw new DataFormatError(`${name} is a damaged JPEG (no marker at byte ${at}).`);
    const marker = bytes[at + 1]!;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    const length = (bytes[at + 2]! << 8) | bytes[at + 3]!;
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) {
      if (at + 10 > bytes.length) break;
      const height = (bytes[at + 5]! << 8) | bytes[at + 6]!;
      const width = (bytes[at + 7]! << 8) | bytes[at + 8]!;
      return { format: 'jpeg', width, height, channels: bytes[at + 9]! };
    }
    if (marker === 0xda || length < 2) break; // image data before any frame header
    at += 2 + length;
  }
  throw new DataFormatError(`${name} is a damaged JPEG (no frame header found).`);
}

/**
 * Decodes an image that must be exactly width×height with 3 colour channels into `out` (HWC, RGB).
 * PNG is exact. JPEG is not a bit-exact format: jpeg-js repeats 4:2:0 chroma samples where libjpeg
 * (hence PIL and torchvision) interpolates them by default, so on the project's CIFAR-10 JPEGs our
 * pixels differ from PIL's by 1.5 levels on average (up to 57 at sharp colour edges), and from
 * libjpeg's `djpeg -nosmooth` by at most 3. A PyTorch baseline should be fed these decoded bytes.
 */
export function decodeRgbImageInto(bytes: Uint8Array, name: string, width: number, height: number, out: Uint8Array): void {
  const header = readImageHeader(bytes, name);
  if (header.width !== width || header.height !== height || header.channels !== 3) {
    throw new DataFormatError(
      `${name} is ${header.width}×${header.height}×${header.channels}; this dataset needs ${width}×${height}×3 (RGB) images. Resize or convert it, or remove it.`,
    );
  }
  if (header.format === 'png') decodePngInto(bytes, name, out);
  else decodeJpegInto(bytes, name, out);
}

function decodePngInto(bytes: Uint8Array, name: string, out: Uint8Array): void {
  let png: PNG;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (error) {
    throw new DataFormatError(`${name} is a damaged PNG: ${(error as Error).message}.`, { cause: error });
  }
  // pngjs always hands back 8-bit RGBA. Transparency has no meaning in a training image: refuse it rather than guess a background.
  const rgba = png.data;
  const pixels = png.width * png.height;
  for (let p = 0; p < pixels; p++) {
    if (rgba[4 * p + 3] !== 255) throw new DataFormatError(`${name} has transparent pixels; save it without alpha (RGB).`);
    out[3 * p] = rgba[4 * p]!;
    out[3 * p + 1] = rgba[4 * p + 1]!;
    out[3 * p + 2] = rgba[4 * p + 2]!;
  }
}

function decodeJpegInto(bytes: Uint8Array, name: string, out: Uint8Array): void {
  let image: { width: number; height: number; data: Uint8Array };
  try {
    // Strict decoding: a truncated file is an error, not an image with grey blocks. The caps bound
    // what the decoder may allocate; the header check above already fixed the size.
    image = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false, maxResolutionInMP: 1, maxMemoryUsageInMB: 64 });
  } catch (error) {
    throw new DataFormatError(`${name} is a damaged JPEG: ${(error as Error).message}.`, { cause: error });
  }
  if (image.data.length !== out.length) throw new DataFormatError(`${name} decoded to ${image.data.length} bytes, expected ${out.length}.`);
  out.set(image.data);
}
