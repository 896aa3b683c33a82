// What every model-file reader gives and takes. A format is one file in this folder with `detect`
// (by content: the first bytes, with the file name only as a tie-breaker) and `read` (the whole file
// to named float32 tensors). Files come from users and the internet: every reader checks what a
// file claims (lengths, offsets, counts, shapes) against `ReadLimits` and the file's own size before
// it allocates anything, and throws ModelFileError naming the file and the reason.
import { DataFormatError } from '../api/errors';

export type FormatId = 'safetensors' | 'npy' | 'npz' | 'pytorch' | 'onnx' | 'tfjs';

/** Element types as the file stored them; values are read into float32 whatever they were. */
export type TensorDtype = 'float64' | 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint64' | 'uint32' | 'uint16' | 'uint8' | 'bool';

export interface FileTensor {
  /** The name in the file (a state-dict key, an npz member without `.npy`, an ONNX initializer). */
  name: string;
  /** As stored, row-major (C order). */
  shape: number[];
  dtype: TensorDtype;
  values: Float32Array;
}

export interface ModelFileContents {
  format: FormatId;
  tensors: FileTensor[];
}

export interface ReadLimits {
  /** Bytes of the file itself (it is read into memory whole). */
  maxFileBytes: number;
  /** Tensors in one file. */
  maxTensors: number;
  /** Elements over all tensors of a file: bounds the float32 copies a read allocates (4 bytes each). */
  maxTotalElements: number;
  /** Bytes of a header or metadata block (safetensors JSON, npy dict, pickle). */
  maxHeaderBytes: number;
}

/** Roomy for research models up to a few hundred million parameters; far below what would hurt a workstation. */
export const DEFAULT_READ_LIMITS: ReadLimits = {
  maxFileBytes: 2 * 2 ** 30,
  maxTensors: 100_000,
  maxTotalElements: 256 * 2 ** 20,
  maxHeaderBytes: 100 * 2 ** 20,
};

export interface ModelFormat {
  readonly id: FormatId;
  /** For messages: "safetensors", "NumPy .npz". */
  readonly title: string;
  /** Whether a file starting with `head` (its first 64 bytes, fewer for a shorter file) is in this format. */
  detect(head: Uint8Array, fileName: string): boolean;
  read(path: string, limits: ReadLimits): ModelFileContents;
}

/** A model file that cannot be read: the message names the file and the reason. */
export class ModelFileError extends DataFormatError {
  constructor(path: string, reason: string, options?: { cause?: unknown }) {
    super(`${path}: ${reason}`, options);
  }
}
