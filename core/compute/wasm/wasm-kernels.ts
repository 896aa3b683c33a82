// Ticket Lab's own WebAssembly kernels (AssemblyScript in ./assembly, SIMD), instantiated on the
// TF.js WASM backend's own memory: they read and write tensors where TF.js keeps them, no copies.
import type { TensorInfo } from '@tensorflow/tfjs';
import { KERNELS_WASM_BASE64 } from './kernels-binary.generated';

/** The exports of assembly/index.ts; pointers are byte offsets into the TF.js heap, 0 = absent. */
export interface WasmKernelExports {
  adamUpdate(w: number, g: number, m: number, v: number, mask: number, n: number, beta1: number, oneMinusBeta1: number, beta2: number, oneMinusBeta2: number, stepSize: number, invSqrtBc2: number, eps: number, weightDecay: number): void;
  sgdUpdate(w: number, g: number, buf: number, mask: number, n: number, lr: number, momentum: number, weightDecay: number): void;
  /** C = A·B (+ bias, relu) with B contiguous along n; strides in floats, pointers in bytes. */
  gemmRowsN(batch: number, m: number, n: number, k: number, a: number, aBatch: number, aRow: number, aCol: number, b: number, bBatch: number, bRow: number, c: number, cBatch: number, cRow: number, bias: number, biasBatch: number, relu: number): void;
  /** C = A·B with A(m, k) = a[m·aRow + k] and B(k, n) = b[n·bCol + k]: dot products along k. */
  gemmDotK(batch: number, m: number, n: number, k: number, a: number, aBatch: number, aRow: number, b: number, bBatch: number, bCol: number, c: number, cBatch: number, cRow: number): void;
  /** C = A·B (+ bias, relu) with B zero off its mask; column j of member p sums over kk in idx[ptr[p·(n+1)+j] ..ptr[p·(n+1)+j+1]). scratch: spmmScratchFloats floats. */
  spmmSparseB(batch: number, m: number, n: number, k: number, a: number, aBatch: number, aRow: number, aCol: number, b: number, bBatch: number, bRow: number, bCol: number, c: number, cBatch: number, cRow: number, bias: number, biasBatch: number, relu: number, ptr: number, idx: number, scratch: number): void;
  spmmScratchFloats(m: number, n: number, k: number): number;
  /** C = A·B at the positions listed per row (j in idx[ptr[p·(m+1)+i] ..ptr[p·(m+1)+i+1])); C's other entries untouched. scratch: sddmmScratchFloats floats. */
  sddmmMasked(batch: number, m: number, n: number, k: number, a: number, aBatch: number, aRow: number, aCol: number, b: number, bBatch: number, bRow: number, bCol: number, c: number, cBatch: number, cRow: number, ptr: number, idx: number, scratch: number): void;
  sddmmScratchFloats(m: number, n: number, k: number): number;
  /** Copies x [n, h, w, c] into xpad [n, hp, wp, c] at (padTop, padLeft), zeros around it, then `slack` zero floats. */
  convPadInput(x: number, xpad: number, n: number, h: number, w: number, c: number, hp: number, wp: number, padTop: number, padLeft: number, slack: number): void;
  /** Copies rows × cols floats into rows × stride, zeros in the columns past cols. */
  convPadColumns(src: number, dst: number, rows: number, cols: number, stride: number): void;
  /** Conv2D filter gradient over one block of output rows into dw [kh][mPad][coPad]; the block at row 0 writes, later blocks add. aPack: scratch of rowCount·outWidth·mPad floats. */
  convFilterGradRows(xpad: number, dy: number, dw: number, rowStart: number, rowCount: number, outHeight: number, outWidth: number, padHeight: number, padWidth: number, inChannels: number, strideHeight: number, strideWidth: number, filterHeight: number, mPad: number, coPad: number, aPack: number): void;
  /** Copies dwPad [kh][mPad][coPad] into dw [kh][m][co]. */
  convUnpadFilter(dwPad: number, dw: number, filterHeight: number, m: number, mPad: number, co: number, coPad: number): void;
  /** wt [kh][co][mPad] = w [kh][m][co] transposed per filter row, zero columns past m. */
  convTransposeFilter(w: number, wt: number, filterHeight: number, m: number, co: number, mPad: number): void;
  /** Conv2D input gradient of one block of output rows, added into dxpad [n][hp][wp][ci]; wt from convTransposeFilter, dy rows co floats long. */
  convInputGradRows(dy: number, wt: number, dxpad: number, rowStart: number, rowCount: number, outHeight: number, outWidth: number, padHeight: number, padWidth: number, inChannels: number, strideHeight: number, strideWidth: number, filterHeight: number, mPad: number, co: number): void;
  /** dx [n, h, w, c] = dxpad [n, hp, wp, c] at (padTop, padLeft), zeros where dxpad has no pixel. */
  convUnpadInput(dxpad: number, dx: number, n: number, h: number, w: number, c: number, hp: number, wp: number, padTop: number, padLeft: number): void;
  zeroFloats(ptr: number, count: number): void;
}

// The WebAssembly JS API, declared here: core compiles without the DOM library that types it.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const WebAssemblyApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The parts of TF.js's BackendWasm these kernels use (not in its public typings). */
export interface BackendWasmInternals {
  wasm: { asm?: { memory?: WasmMemory }; wasmMemory?: WasmMemory; HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: string): TensorInfo;
}

let compiled: object | undefined;
const instances = new WeakMap<object, WasmKernelExports>();

/** The kernels bound to this backend's heap (instantiated once per backend instance). */
export function wasmKernels(backend: BackendWasmInternals): WasmKernelExports {
  let instance = instances.get(backend);
  if (!instance) {
    const memory = backend.wasm.asm?.memory ?? backend.wasm.wasmMemory;
    if (!(memory instanceof WebAssemblyApi.Memory)) throw new Error('the TF.js WASM backend does not expose its memory; Ticket Lab\'s WASM kernels need it');
    compiled ??= new WebAssemblyApi.Module(Buffer.from(KERNELS_WASM_BASE64, 'base64'));
    instance = new WebAssemblyApi.Instance(compiled, { env: { memory } }).exports as unknown as WasmKernelExports;
    instances.set(backend, instance);
  }
  return instance;
}

/** Byte offset of a tensor's data on the heap. */
export function heapOffset(backend: BackendWasmInternals, tensor: TensorInfo): number {
  const data = backend.dataIdMap.get(tensor.dataId);
  if (!data) throw new Error('tensor is not on the WASM backend');
  return data.memoryOffset;
}
