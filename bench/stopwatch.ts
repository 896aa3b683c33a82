// Timing primitives shared by the benchmark sections. Medians, not means: this runs on shared
// machines where one slow repetition (a background job, a GC pause) should not move the result.

export function seconds(fromMs: number, toMs = performance.now()): number {
  return (toMs - fromMs) / 1000;
}

/** Runs `fn` once and returns its value with the wall time it took. */
export function timeSync<T>(fn: () => T): { value: T; seconds: number } {
  const began = performance.now();
  const value = fn();
  return { value, seconds: seconds(began) };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median seconds of `repetitions` calls; the first call's value comes back for checking. */
export function medianSeconds<T>(repetitions: number, fn: (repetition: number) => T): { value: T; seconds: number; all: number[] } {
  const all: number[] = [];
  let first: T | undefined;
  for (let r = 0; r < repetitions; r++) {
    const began = performance.now();
    const value = fn(r);
    all.push(seconds(began));
    if (r === 0) first = value;
  }
  return { value: first as T, seconds: median(all), all };
}
