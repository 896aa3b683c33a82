// Conv2DBackpropFilter for TF.js's WASM backend, which has none (tfjs 4.22): without it the
// gradient of tf.conv2d / tf.fused.conv2d has no kernel there and conv nets cannot train on WASM.
//
// The arithmetic is core/compute/wasm/assembly/conv.ts (SIMD, on the TF.js heap): X is copied
// once into a zero-padded scratch tensor, which turns each filter row of dW into one matrix
// product with no bounds checks; the positions are fed to it in blocks of output rows, one call
// each, so a block stays in cache while every tile of dW passes over it (and V8 moves the kernel
// from its baseline compiler to its optimising one between calls, not after the first gradient).
// Scratch, freed before returning: the padded X (a little more than X) and one block's packed runs.
// NHWC, any strides and padding, no dilation: what tf.conv2d's gradient asks for.
import * as tf from '@tensorflow/tfjs';
import { type BackendWasmInternals, heapOffset, wasmKernels } from '../wasm/wasm-kernels';
import { type KernelArgs, registerKernels } from './custom-kernel';

export const CONV2D_BACKPROP_FILTER = 'Conv2DBackpropFilter';

/**
 * Output positions per call of the kernel. A block's packed runs of X (positions × KW·ci floats)
 * and its dY rows (positions × co) stay in L2: under 400 KB at 256 channels. Narrow inputs
 * (ci of 1 or 3) get longer blocks, so that what each block costs besides the arithmetic (the
 * call, packing, loading and storing dW's tiles) stays small next to it.
 */
function blockPositions(runLength: number): number {
  return runLength < 64 ? 512 : 128;
}

/** BackendWasm's own disposeData (not in BackendWasmInternals): frees scratch tensors made with makeOutput. */
type WasmBackend = BackendWasmInternals & { disposeData(dataId: object, force?: boolean): boolean };
type Shape4 = [number, number, number, number];

const roundUp = (n: number, multiple: number) => Math.ceil(n / multiple) * multiple;

/** The convolution dW belongs to, as TF.js's own kernels resolve it; refuses what this kernel does not cover. */
function convInfoFor(x: tf.TensorInfo, dy: tf.TensorInfo, attrs: KernelArgs['attrs']): tf.backend_util.Conv2DInfo {
  const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs & { dilations?: number | [number, number] };
  if (a.dataFormat !== undefined && a.dataFormat !== 'NHWC') {
    throw new Error(`${CONV2D_BACKPROP_FILTER} on wasm (Ticket Lab's kernel) supports dataFormat 'NHWC' only, got '${a.dataFormat}'.`);
  }
  const dilations = a.dilations === undefined ? [1, 1] : typeof a.dilations === 'number' ? [a.dilations, a.dilations] : a.dilations;
  if (dilations.some((d) => d !== 1)) {
    throw new Error(`${CONV2D_BACKPROP_FILTER} on wasm (Ticket Lab's kernel) supports dilations 1 only, got [${dilations.join(', ')}].`);
  }
  if (x.shape.length !== 4 || dy.shape.length !== 4 || a.filterShape.length !== 4) {
    throw new Error(`${CONV2D_BACKPROP_FILTER} needs a 4-D x, dy and filter shape, got [${x.shape.join(', ')}], [${dy.shape.join(', ')}] and [${a.filterShape.join(', ')}].`);
  }
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new Error(`${CONV2D_BACKPROP_FILTER} on wasm (Ticket Lab's kernel) takes float32 tensors, got ${x.dtype} and ${dy.dtype}.`);
  }
  const c = tf.backend_util.computeConv2DInfo(x.shape as Shape4, a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
  if (dy.shape.some((d, i) => d !== c.outShape[i])) {
    throw new Error(`${CONV2D_BACKPROP_FILTER}: dy has shape [${dy.shape.join(', ')}], the convolution of [${x.shape.join(', ')}] with [${a.filterShape.join(', ')}] gives [${c.outShape.join(', ')}].`);
  }
  return c;
}

function conv2DBackpropFilterWasm({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const c = convInfoFor(x, dy, attrs);
  const be = backend as unknown as WasmBackend;
  const k = wasmKernels(be);

  // Padded X covers exactly the pixels some output position reads (rows and columns that only
  // 'valid' rounding leaves out are dropped); dW[kh] is m = KW·ci rows of co.
  const padHeight = Math.max(0, (c.outHeight - 1) * c.strideHeight + c.filterHeight);
  const padWidth = Math.max(0, (c.outWidth - 1) * c.strideWidth + c.filterWidth);
  const m = c.filterWidth * c.inChannels;
  const mPad = roundUp(m, 4);
  const coPad = roundUp(c.outChannels, 8);
  const rows = c.batchSize * c.outHeight;
  const positions = rows * c.outWidth;

  const dw = be.makeOutput([...c.filterShape], 'float32');
  const scratch: tf.TensorInfo[] = [];
  const temporary = (size: number) => {
    const t = be.makeOutput([size], 'float32');
    scratch.push(t);
    return t;
  };
  try {
    // 4 floats past the last pixel: the last tile of rows j ≥ m reads up to 3 (conv.ts).
    const xpad = temporary(positions > 0 ? c.batchSize * padHeight * padWidth * c.inChannels + 4 : 4);
    if (positions > 0) {
      k.convPadInput(heapOffset(be, x), heapOffset(be, xpad), c.batchSize, c.inHeight, c.inWidth, c.inChannels, padHeight, padWidth, c.padInfo.top, c.padInfo.left, 4);
    }
    let dyRows = dy;
    if (coPad !== c.outChannels && positions > 0) {
      dyRows = temporary(positions * coPad);
      k.convPadColumns(heapOffset(be, dy), heapOffset(be, dyRows), positions, c.outChannels, coPad);
    }
    const direct = mPad === m && coPad === c.outChannels;
    const dwPad = direct ? dw : temporary(c.filterHeight * mPad * coPad);

    const rowsPerBlock = Math.max(1, Math.round(blockPositions(mPad) / Math.max(1, c.outWidth)));
    const aPack = temporary(Math.max(1, Math.min(rowsPerBlock, rows) * c.outWidth * mPad));
    const [xAt, dyAt, dwAt, packAt] = [heapOffset(be, xpad), heapOffset(be, dyRows), heapOffset(be, dwPad), heapOffset(be, aPack)];
    // The block at row 0 writes dW rather than adding to it, so it runs first, and runs even when
    // there are no positions (dW is then all zeros).
    for (let r = 0; r === 0 || r < rows; r += rowsPerBlock) {
      k.convFilterGradRows(
        xAt, dyAt, dwAt, r, Math.min(rowsPerBlock, rows - r), c.outHeight, c.outWidth,
        padHeight, padWidth, c.inChannels, c.strideHeight, c.strideWidth, c.filterHeight, mPad, coPad, packAt,
      );
    }
    if (!direct) k.convUnpadFilter(dwAt, heapOffset(be, dw), c.filterHeight, m, mPad, c.outChannels, coPad);
  } catch (error) {
    be.disposeData(dw.dataId);
    throw error;
  } finally {
    for (const t of scratch) be.disposeData(t.dataId);
  }
  return dw;
}

/** Registers the kernel for 'wasm' unless a Conv2DBackpropFilter is already there (idempotent). */
export function registerConvBackpropWasm(): void {
  registerKernels([{ name: CONV2D_BACKPROP_FILTER, implementations: { wasm: conv2DBackpropFilterWasm } }]);
}

registerConvBackpropWasm();
