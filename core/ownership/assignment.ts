// The linear assignment problem: pair n rows with n columns so the summed cost is least. Used to
// match a suspect's hidden units to a claimed ticket's (permutation.ts). Written out rather than
// taken from a package: it is forty lines, and layers have at most a few hundred units, where the
// O(n³) Hungarian method with potentials (Kuhn–Munkres as shortest augmenting paths, the form of
// Jonker–Volgenant without their initialisation heuristics) takes milliseconds.

/**
 * The least-cost assignment of a square cost matrix `cost` (row-major, n × n): `column[r]` is the
 * column row r takes. Exact for any finite costs, negative ones included.
 */
export function solveAssignment(cost: Float64Array, n: number): Int32Array {
  if (cost.length !== n * n) throw new RangeError(`solveAssignment: a ${n} × ${n} matrix has ${n * n} entries, got ${cost.length}`);
  for (let k = 0; k < cost.length; k++) if (!Number.isFinite(cost[k]!)) throw new RangeError(`solveAssignment: cost entry ${k} is ${cost[k]}`);
  // 1-based arrays with index 0 as the virtual start row/column, as in the classic formulation:
  // u, v are the row and column potentials (dual variables), rowOf[j] the row holding column j.
  const u = new Float64Array(n + 1);
  const v = new Float64Array(n + 1);
  const rowOf = new Int32Array(n + 1);
  const previous = new Int32Array(n + 1);
  const slack = new Float64Array(n + 1);
  const used = new Uint8Array(n + 1);
  for (let row = 1; row <= n; row++) {
    // Grow a shortest-path tree of tight edges from the new row until it reaches a free column.
    rowOf[0] = row;
    let j0 = 0;
    slack.fill(Infinity);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = rowOf[j0]!;
      const base = (i0 - 1) * n - 1;
      let delta = Infinity;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const reduced = cost[base + j]! - u[i0]! - v[j]!;
        if (reduced < slack[j]!) {
          slack[j] = reduced;
          previous[j] = j0;
        }
        if (slack[j]! < delta) {
          delta = slack[j]!;
          j1 = j;
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[rowOf[j]!]! += delta;
          v[j]! -= delta;
        } else {
          slack[j]! -= delta;
        }
      }
      j0 = j1;
    } while (rowOf[j0] !== 0);
    // Flip the augmenting path back to the start.
    do {
      const j1 = previous[j0]!;
      rowOf[j0] = rowOf[j1]!;
      j0 = j1;
    } while (j0 !== 0);
  }
  const column = new Int32Array(n);
  for (let j = 1; j <= n; j++) column[rowOf[j]! - 1] = j - 1;
  return column;
}
