// Conv2DBackpropFilter for TF.js's WASM backend, which has none (tfjs 4.22): without it the
// gradient of tf.conv2d / tf.fused.conv2d has no kernel there and conv nets cannot train on WASM.
// And Conv2DBackpropInput, replacing the stock one: a scalar loop that took 1.6 of a Conv-2 step's
// 2.1 s on the 2-core VM (`node dist/bench/profile-step.js --model conv-2 --backend wasm`).
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
export const CONV2D_BACKPROP_INPUT = 'Conv2DBackpropInput';

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

/** The convolution a gradient belongs to, as TF.js's own kernels resolve it; refuses what these kernels do not cover. */
function convInfoFor(kernel: string, xShape: readonly number[], filterShape: readonly number[], dy: tf.TensorInfo, dtypes: readonly tf.DataType[], attrs: KernelArgs['attrs']): tf.backend_util.Conv2DInfo {
  const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs & { dilations?: number | [number, number] };
  if (a.dataFormat !== undefined && a.dataFormat !== 'NHWC') {
    throw new Error(`${kernel} on wasm (Ticket Lab's kernel) supports dataFormat 'NHWC' only, got '${a.dataFormat}'.`);
  }
  const dilations = a.dilations === undefined ? [1, 1] : typeof a.dilations === 'number' ? [a.dilations, a.dilations] : a.dilations;
  if (dilations.some((d) => d !== 1)) {
    throw new Error(`${kernel} on wasm (Ticket Lab's kernel) supports dilations 1 only, got [${dilations.join(', ')}].`);
  }
  if (xShape.length !== 4 || dy.shape.length !== 4 || filterShape.length !== 4) {
    throw new Error(`${kernel} needs a 4-D x, dy and filter shape, got [${xShape.join(', ')}], [${dy.shape.join(', ')}] and [${filterShape.join(', ')}].`);
  }
  if (dtypes.some((d) => d !== 'float32')) {
    throw new Error(`${kernel} on wasm (Ticket Lab's kernel) takes float32 tensors, got ${dtypes.join(' and ')}.`);
  }
  const c = tf.backend_util.computeConv2DInfo(xShape as Shape4, filterShape as Shape4, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
  if (dy.shape.some((d, i) => d !== c.outShape[i])) {
    throw new Error(`${kernel}: dy has shape [${dy.shape.join(', ')}], the convolution of [${xShape.join(', ')}] with [${filterShape.join(', ')}] gives [${c.outShape.join(', ')}].`);
  }
  return c;
}

/** The zero-padded image both gradients work on: every pixel some output position reads, [n, padHeight, padWidth, ci]. */
function paddedGeometry(c: tf.backend_util.Conv2DInfo) {
  const rows = c.batchSize * c.outHeight;
  return {
    padHeight: Math.max(0, (c.outHeight - 1) * c.strideHeight + c.filterHeight),
    padWidth: Math.max(0, (c.outWidth - 1) * c.strideWidth + c.filterWidth),
    /** Floats of one filter row's run: KW·ci. */
    m: c.filterWidth * c.inChannels,
    rows,
    positions: rows * c.outWidth,
  };
}

/**
 * Runs `body` with an output tensor of `shape` and a `temporary` allocator for scratch tensors:
 * the scratch is freed when it returns, the output too if it throws.
 */
function withScratch(be: WasmBackend, shape: number[], body: (output: tf.TensorInfo, temporary: (floats: number) => tf.TensorInfo) => void): tf.TensorInfo {
  const output = be.makeOutput(shape, 'float32');
  const scratch: tf.TensorInfo[] = [];
  try {
    body(output, (floats) => {
      const t = be.makeOutput([floats], 'float32');
      scratch.push(t);
      return t;
    });
  } catch (error) {
    be.disposeData(output.dataId);
    throw error;
  } finally {
    for (const t of scratch) be.disposeData(t.dataId);
  }
  return output;
}

function conv2DBackpropFilterWasm({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { filterShape } = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const c = convInfoFor(CONV2D_BACKPROP_FILTER, x.shape, filterShape, dy, [x.dtype, dy.dtype], attrs);
  const be = backend as unknown as WasmBackend;
  const k = wasmKernels(be);

  // Padded X covers exactly the pixels some output position reads (rows and columns that only
  // 'valid' rounding leaves out are dropped); dW[kh] is m = KW·ci rows of co.
  const { padHeight, padWidth, m, rows, positions } = paddedGeometry(c);
  const mPad = roundUp(m, 4);
  const coPad = roundUp(c.outChannels, 8);

  return withScratch(be, [...c.filterShape], (dw, temporary) => {
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
  });
}

/**
 * dX for the convolution of an x of `inputShape` with `filter`: dxpad (zero-padded dX, as the filter
 * gradient pads X) accumulates each output position's dY · W[kh]ᵀ over its runs, then is cropped.
 * Scratch, freed before returning: dxpad (a little more than dX) and W transposed per filter row.
 */
function conv2DBackpropInputWasm({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const { inputShape } = attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const c = convInfoFor(CONV2D_BACKPROP_INPUT, inputShape, filter.shape, dy, [dy.dtype, filter.dtype], attrs);
  const be = backend as unknown as WasmBackend;
  const k = wasmKernels(be);
  const { padHeight, padWidth, m, rows, positions } = paddedGeometry(c);
  const mPad = roundUp(m, 8);

  return withScratch(be, [...inputShape], (dx, temporary) => {
    // mPad − m floats past the last pixel: the last run's tile adds exact zeros there.
    const dxpadFloats = c.batchSize * padHeight * padWidth * c.inChannels + mPad;
    const dxpadAt = heapOffset(be, temporary(dxpadFloats));
    k.zeroFloats(dxpadAt, dxpadFloats);
    if (positions > 0) {
      const wtAt = heapOffset(be, temporary(c.filterHeight * c.outChannels * mPad));
      k.convTransposeFilter(heapOffset(be, filter), wtAt, c.filterHeight, m, c.outChannels, mPad);
      const dyAt = heapOffset(be, dy);
      // Blocks of output rows, one call each, as in the filter gradient (V8 tiers the kernel up between calls).
      const rowsPerBlock = Math.max(1, Math.round(256 / Math.max(1, c.outWidth)));
      for (let r = 0; r < rows; r += rowsPerBlock) {
        k.convInputGradRows(
          dyAt, wtAt, dxpadAt, r, Math.min(rowsPerBlock, rows - r), c.outHeight, c.outWidth,
          padHeight, padWidth, c.inChannels, c.strideHeight, c.strideWidth, c.filterHeight, mPad, c.outChannels,
        );
      }
    }
    k.convUnpadInput(dxpadAt, heapOffset(be, dx), c.batchSize, c.inHeight, c.inWidth, c.inChannels, padHeight, padWidth, c.padInfo.top, c.padInfo.left);
  });
}

const OURS = Symbol('ticket-lab conv backprop (wasm)');
type MarkedConfig = tf.KernelConfig & { [OURS]?: true };

/** Puts our Conv2DBackpropInput in place of the stock one (idempotent). */
function installInputGradient(): void {
  const current = tf.getKernel(CONV2D_BACKPROP_INPUT, 'wasm') as MarkedConfig | undefined;
  if (current?.[OURS]) return;
  if (current) tf.unregisterKernel(CONV2D_BACKPROP_INPUT, 'wasm');
  const config: MarkedConfig = { kernelName: CONV2D_BACKPROP_INPUT, backendName: 'wasm', kernelFunc: conv2DBackpropInputWasm as tf.KernelFunc, [OURS]: true };
  tf.registerKernel(config);
}

/**
 * Registers both kernels for 'wasm': the filter gradient where there is none, the input gradient
 * in place of the stock one once the WASM backend package has registered that (idempotent).
 */
export function registerConvBackpropWasm(): void {
  registerKernels([{ name: CONV2D_BACKPROP_FILTER, implementations: { wasm: conv2DBackpropFilterWasm } }]);
  if (tf.getKernel(CONV2D_BACKPROP_INPUT, 'wasm') !== undefined) installInputGradient();
}

/**
 * The WASM backend package is loaded lazily (core/compute/backend.ts), after this module, and
 * registers its stock kernels then. A kernel of our own with a setupFunc, which TF.js calls when
 * the 'wasm' backend is initialised, swaps ours in after that (as conv-backprop-webgpu.ts does).
 */
const INSTALLER = 'TicketLabConvBackpropWasmInstaller';
if (tf.getKernel(INSTALLER, 'wasm') === undefined) {
  tf.registerKernel({
    kernelName: INSTALLER,
    backendName: 'wasm',
    kernelFunc: () => {
      throw new Error(`${INSTALLER} is not a kernel: it only installs Ticket Lab's conv input gradient on wasm.`);
    },
    setupFunc: () => installInputGradient(),
  });
}
registerConvBackpropWasm();
