// Evaluating on part of a split: comparisons evaluate many networks, and a subset keeps quick runs quick.
import { InvalidRequestError } from '../api/errors';
import type { ImageSplit } from '../data/datasets';

/** The first `count` examples of a split (all of them when count is undefined or larger). */
export function firstRows(split: ImageSplit, count: number | undefined): ImageSplit {
  if (count === undefined || count >= split.count) return split;
  if (!Number.isInteger(count) || count < 1) throw new InvalidRequestError(`The number of evaluation examples must be a positive integer, got ${count}.`);
  const size = split.images.length / split.count;
  return { images: split.images.subarray(0, count * size), labels: split.labels.subarray(0, count), count };
}
