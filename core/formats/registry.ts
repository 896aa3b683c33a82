// The model formats Ticket Lab reads: the only list. A file's format is found by its content
// (each format's detect on the first bytes), so a renamed file still reads.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { type FileTensor, type FormatId, type ModelFileContents, type ModelFormat, DEFAULT_READ_LIMITS, ModelFileError, type ReadLimits } from './model-format';
import { npyFormat, npzFormat } from './npy';
import { onnxFormat } from './onnx';
import { pytorchFormat } from './pytorch';
import { safetensorsFormat } from './safetensors';
import { tfjsFormat } from './tfjs';

const FORMATS: readonly ModelFormat[] = [safetensorsFormat, npzFormat, pytorchFormat, npyFormat, onnxFormat, tfjsFormat];

const HEAD_BYTES = 64;

export function modelFormat(id: FormatId): ModelFormat {
  const format = FORMATS.find((f) => f.id === id);
  if (!format) throw new Error(`no reader for the format '${id}'`);
  return format;
}

/** The format of the file at `path`, from its first bytes. */
export function detectFormat(path: string): ModelFormat {
  let head: Uint8Array;
  try {
    if (!statSync(path).isFile()) throw new ModelFileError(path, 'not a file.');
    const fd = openSync(path, 'r');
    try {
      const buffer = Buffer.alloc(HEAD_BYTES);
      head = buffer.subarray(0, readSync(fd, buffer, 0, HEAD_BYTES, 0));
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    if (error instanceof ModelFileError) throw error;
    throw new ModelFileError(path, `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`, { cause: error });
  }
  const format = FORMATS.find((f) => f.detect(head, basename(path)));
  if (!format) throw new ModelFileError(path, `is not a model file Ticket Lab reads (${FORMATS.map((f) => f.title).join(', ')}).`);
  return format;
}

/** Reads a model file of any supported format into named float32 tensors. */
export function readModelFile(path: string, limits: ReadLimits = DEFAULT_READ_LIMITS): ModelFileContents {
  return detectFormat(path).read(path, limits);
}

/** Σx and Σ|x| of a tensor in float64: what `inspect` prints to compare with the framework that wrote the file. */
export function tensorSums(tensor: FileTensor): { sum: number; absSum: number } {
  let sum = 0;
  let absSum = 0;
  for (const v of tensor.values) {
    sum += v;
    absSum += Math.abs(v);
  }
  return { sum, absSum };
}
