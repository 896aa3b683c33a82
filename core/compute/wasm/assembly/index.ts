// Ticket Lab's WebAssembly kernels: the entry point scripts/build-wasm.mjs compiles.
export { adamUpdate, sgdUpdate } from './optimizers';
export { gemmDotK, gemmRowsN } from './gemm';
export { convFilterGradRows, convPadColumns, convPadInput, convUnpadFilter } from './conv';
export { sddmmMasked, sddmmScratchFloats, spmmScratchFloats, spmmSparseB } from './sparse';
