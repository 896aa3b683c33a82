// Checks shared by the model-file reader tests.
import { expect } from 'vitest';
import { ModelFileError } from '../../core/formats/model-format';

/** The ModelFileError `read` throws; fails the test unless it throws one whose message starts with `path` and matches `pattern`. */
export function expectModelFileError(read: () => unknown, path: string, pattern: RegExp): ModelFileError {
  let error: unknown;
  try {
    read();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(ModelFileError);
  const message = (error as ModelFileError).message;
  expect(message.startsWith(`${path}: `)).toBe(true);
  expect(message).toMatch(pattern);
  return error as ModelFileError;
}
