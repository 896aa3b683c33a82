// Ticket Lab's WebAssembly kernels: the entry point scripts/build-wasm.mjs compiles.
export { adamUpdate, sgdUpdate } from './optimizers';
export { gemmDotK, gemmRowsN } from './gemm';
export { convFilterGradRows, convInputGradRows, convPadColumns, convPadInput, convTransposeFilter, convUnpadFilter, convUnpadInput, zeroFloats } from './conv';
export { sddmmMasked, sddmmScratchFloats, spmmScratchFloats, spmmSparseB } from './sparse';
