// The exact binomial tail the ownership verdicts rest on (ALGORITHMS.md §9.3, §9.5): under the null
// hypothesis (the suspect was not derived from the owner's key) each signature bit matches with
// probability exactly 1/2 and each trigger label with 1/C, independently, so the number of matches
// is Bin(n, p) and the p-value of x matches is P[Bin(n, p) ≥ x], summed in log space so that tails
// far below 1e-300 stay exact in their exponent.

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  const z = x - 1;
  let sum = c[0]!;
  for (let i = 1; i < 9; i++) sum += c[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** ln P[Bin(n, p) = k]. */
function logPmf(n: number, k: number, p: number): number {
  if (p === 0) return k === 0 ? 0 : -Infinity;
  if (p === 1) return k === n ? 0 : -Infinity;
  return logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1) + k * Math.log(p) + (n - k) * Math.log1p(-p);
}

/** ln P[Bin(n, p) ≥ k]. */
export function logBinomialUpperTail(n: number, k: number, p: number): number {
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(k) || !(p >= 0 && p <= 1)) throw new RangeError(`binomial tail of n=${n}, k=${k}, p=${p}`);
  if (k <= 0) return 0;
  if (k > n) return -Infinity;
  const terms: number[] = [];
  for (let i = k; i <= n; i++) terms.push(logPmf(n, i, p));
  const top = Math.max(...terms);
  if (top === -Infinity) return -Infinity;
  const sum = terms.reduce((s, t) => s + Math.exp(t - top), 0);
  return Math.min(0, top + Math.log(sum));
}

/** P[Bin(n, p) ≥ k]: the p-value of k matches out of n, each by chance with probability p. */
export function binomialUpperTail(n: number, k: number, p: number): number {
  return Math.exp(logBinomialUpperTail(n, k, p));
}

/** The fewest matches out of n whose p-value is at most `falsePositiveRate`; n + 1 when none is. */
export function binomialThreshold(n: number, p: number, falsePositiveRate: number): number {
  const logRate = Math.log(falsePositiveRate);
  for (let k = 0; k <= n; k++) if (logBinomialUpperTail(n, k, p) <= logRate) return k;
  return n + 1;
}
