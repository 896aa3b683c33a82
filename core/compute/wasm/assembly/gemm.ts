// Batched matrix products with general strides, for the training step of fully connected layers:
//   C[b](m, n) = epilogue( Σ_k A[b](m, k) · B[b](k, n) )
// with A(m, k) = a[aOff + b·aBatch + m·aRow + k·aCol] (in floats), likewise B, and C row-major.
// Two inner kernels by memory layout, since WASM SIMD loads 4 neighbouring floats at once:
//   gemmRowsN: B contiguous along n (bCol = 1): forward x·W, and the weight gradient xᵀ·dz;
//   gemmDotK:  A and B contiguous along k (aCol = 1, bRow = 1): the input gradient dz·Wᵀ.
// No FMA in baseline WASM SIMD: multiply then add.

// ---- C = A·B (+ bias) (then relu), B contiguous along n ----

/**
 * Register tile of 4 rows × 8 columns (8 accumulators): each k step loads two vectors of B's row k
 * and four scalars of A's column k, and does 8 multiply-adds on 4 lanes.
 */
export function gemmRowsN(
  batch: i32, m: i32, n: i32, k: i32,
  a: usize, aBatch: i32, aRow: i32, aCol: i32,
  b: usize, bBatch: i32, bRow: i32,
  c: usize, cBatch: i32, cRow: i32,
  bias: usize, biasBatch: i32, relu: i32,
): void {
  for (let p = 0; p < batch; p++) {
    const ap = a + (<usize>(p * aBatch) << 2);
    const bp = b + (<usize>(p * bBatch) << 2);
    const cp = c + (<usize>(p * cBatch) << 2);
    const biasp = bias != 0 ? bias + (<usize>(p * biasBatch) << 2) : 0;
    let j = 0;
    for (; j + 8 <= n; j += 8) {
      let i = 0;
      for (; i + 4 <= m; i += 4) tile4x8(ap, aRow, aCol, bp, bRow, cp, cRow, biasp, relu, i, j, k);
      for (; i < m; i++) tile1x8(ap, aRow, aCol, bp, bRow, cp, cRow, biasp, relu, i, j, k);
    }
    if (j < n) {
      for (let i = 0; i < m; i++) {
        for (let jj = j; jj < n; jj++) scalarEntry(ap, aRow, aCol, bp, bRow, 1, cp, cRow, biasp, relu, i, jj, k);
      }
    }
  }
}

// @ts-ignore: decorator
@inline
function epilogue(acc: v128, biasp: usize, j: i32, relu: i32): v128 {
  let r = acc;
  if (biasp != 0) r = f32x4.add(r, v128.load(biasp + (<usize>j << 2)));
  if (relu != 0) r = f32x4.max(r, f32x4.splat(0));
  return r;
}

function tile4x8(ap: usize, aRow: i32, aCol: i32, bp: usize, bRow: i32, cp: usize, cRow: i32, biasp: usize, relu: i32, i: i32, j: i32, k: i32): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let a0 = ap + (<usize>(i * aRow) << 2);
  const rowStep = <usize>aRow << 2;
  const colStep = <usize>aCol << 2;
  let bq = bp + (<usize>j << 2);
  const bStep = <usize>bRow << 2;
  for (let kk = 0; kk < k; kk++) {
    const b0 = v128.load(bq);
    const b1 = v128.load(bq, 16);
    const x0 = f32x4.splat(load<f32>(a0));
    const x1 = f32x4.splat(load<f32>(a0 + rowStep));
    const x2 = f32x4.splat(load<f32>(a0 + 2 * rowStep));
    const x3 = f32x4.splat(load<f32>(a0 + 3 * rowStep));
    c00 = f32x4.add(c00, f32x4.mul(x0, b0));
    c01 = f32x4.add(c01, f32x4.mul(x0, b1));
    c10 = f32x4.add(c10, f32x4.mul(x1, b0));
    c11 = f32x4.add(c11, f32x4.mul(x1, b1));
    c20 = f32x4.add(c20, f32x4.mul(x2, b0));
    c21 = f32x4.add(c21, f32x4.mul(x2, b1));
    c30 = f32x4.add(c30, f32x4.mul(x3, b0));
    c31 = f32x4.add(c31, f32x4.mul(x3, b1));
    a0 += colStep;
    bq += bStep;
  }
  const c0 = cp + (<usize>(i * cRow + j) << 2);
  const cStep = <usize>cRow << 2;
  v128.store(c0, epilogue(c00, biasp, j, relu));
  v128.store(c0, epilogue(c01, biasp, j + 4, relu), 16);
  v128.store(c0 + cStep, epilogue(c10, biasp, j, relu));
  v128.store(c0 + cStep, epilogue(c11, biasp, j + 4, relu), 16);
  v128.store(c0 + 2 * cStep, epilogue(c20, biasp, j, relu));
  v128.store(c0 + 2 * cStep, epilogue(c21, biasp, j + 4, relu), 16);
  v128.store(c0 + 3 * cStep, epilogue(c30, biasp, j, relu));
  v128.store(c0 + 3 * cStep, epilogue(c31, biasp, j + 4, relu), 16);
}

function tile1x8(ap: usize, aRow: i32, aCol: i32, bp: usize, bRow: i32, cp: usize, cRow: i32, biasp: usize, relu: i32, i: i32, j: i32, k: i32): void {
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0);
  let a0 = ap + (<usize>(i * aRow) << 2);
  const colStep = <usize>aCol << 2;
  let bq = bp + (<usize>j << 2);
  const bStep = <usize>bRow << 2;
  for (let kk = 0; kk < k; kk++) {
    const x = f32x4.splat(load<f32>(a0));
    c0 = f32x4.add(c0, f32x4.mul(x, v128.load(bq)));
    c1 = f32x4.add(c1, f32x4.mul(x, v128.load(bq, 16)));
    a0 += colStep;
    bq += bStep;
  }
  const out = cp + (<usize>(i * cRow + j) << 2);
  v128.store(out, epilogue(c0, biasp, j, relu));
  v128.store(out, epilogue(c1, biasp, j + 4, relu), 16);
}

/** One entry, summed in the same k order as the vector kernels. */
function scalarEntry(ap: usize, aRow: i32, aCol: i32, bp: usize, bRow: i32, bCol: i32, cp: usize, cRow: i32, biasp: usize, relu: i32, i: i32, j: i32, k: i32): void {
  let acc: f32 = 0;
  for (let kk = 0; kk < k; kk++) {
    acc += load<f32>(ap + (<usize>(i * aRow + kk * aCol) << 2)) * load<f32>(bp + (<usize>(kk * bRow + j * bCol) << 2));
  }
  if (biasp != 0) acc += load<f32>(biasp + (<usize>j << 2));
  if (relu != 0 && acc < 0) acc = 0;
  store<f32>(cp + (<usize>(i * cRow + j) << 2), acc);
}

// ---- C = A·B with A and B contiguous along k: dot products ----

/**
 * Tile of 2 rows × 4 columns: 8 vector accumulators over k in steps of 4, summed across lanes at
 * the end. B(k, n) = b[n·bCol + k] here (B's rows are W's rows: dz·Wᵀ).
 */
export function gemmDotK(
  batch: i32, m: i32, n: i32, k: i32,
  a: usize, aBatch: i32, aRow: i32,
  b: usize, bBatch: i32, bCol: i32,
  c: usize, cBatch: i32, cRow: i32,
): void {
  const k4 = k & ~3;
  for (let p = 0; p < batch; p++) {
    const ap = a + (<usize>(p * aBatch) << 2);
    const bp = b + (<usize>(p * bBatch) << 2);
    const cp = c + (<usize>(p * cBatch) << 2);
    let i = 0;
    for (; i + 2 <= m; i += 2) {
      const ar0 = ap + (<usize>(i * aRow) << 2);
      const ar1 = ar0 + (<usize>aRow << 2);
      let j = 0;
      for (; j + 4 <= n; j += 4) {
        const br0 = bp + (<usize>(j * bCol) << 2);
        const bStep = <usize>bCol << 2;
        const br1 = br0 + bStep, br2 = br0 + 2 * bStep, br3 = br0 + 3 * bStep;
        let s00 = f32x4.splat(0), s01 = f32x4.splat(0), s02 = f32x4.splat(0), s03 = f32x4.splat(0);
        let s10 = f32x4.splat(0), s11 = f32x4.splat(0), s12 = f32x4.splat(0), s13 = f32x4.splat(0);
        for (let kk = 0; kk < k4; kk += 4) {
          const o = <usize>kk << 2;
          const x0 = v128.load(ar0 + o), x1 = v128.load(ar1 + o);
          const w0 = v128.load(br0 + o), w1 = v128.load(br1 + o), w2 = v128.load(br2 + o), w3 = v128.load(br3 + o);
          s00 = f32x4.add(s00, f32x4.mul(x0, w0));
          s01 = f32x4.add(s01, f32x4.mul(x0, w1));
          s02 = f32x4.add(s02, f32x4.mul(x0, w2));
          s03 = f32x4.add(s03, f32x4.mul(x0, w3));
          s10 = f32x4.add(s10, f32x4.mul(x1, w0));
          s11 = f32x4.add(s11, f32x4.mul(x1, w1));
          s12 = f32x4.add(s12, f32x4.mul(x1, w2));
          s13 = f32x4.add(s13, f32x4.mul(x1, w3));
        }
        const out0 = cp + (<usize>(i * cRow + j) << 2);
        const out1 = out0 + (<usize>cRow << 2);
        store<f32>(out0, lanes(s00) + tail(ar0, br0, k4, k));
        store<f32>(out0 + 4, lanes(s01) + tail(ar0, br1, k4, k));
        store<f32>(out0 + 8, lanes(s02) + tail(ar0, br2, k4, k));
        store<f32>(out0 + 12, lanes(s03) + tail(ar0, br3, k4, k));
        store<f32>(out1, lanes(s10) + tail(ar1, br0, k4, k));
        store<f32>(out1 + 4, lanes(s11) + tail(ar1, br1, k4, k));
        store<f32>(out1 + 8, lanes(s12) + tail(ar1, br2, k4, k));
        store<f32>(out1 + 12, lanes(s13) + tail(ar1, br3, k4, k));
      }
      for (; j < n; j++) {
        const br = bp + (<usize>(j * bCol) << 2);
        store<f32>(cp + (<usize>(i * cRow + j) << 2), dot(ar0, br, k4, k));
        store<f32>(cp + (<usize>((i + 1) * cRow + j) << 2), dot(ar1, br, k4, k));
      }
    }
    for (; i < m; i++) {
      const ar = ap + (<usize>(i * aRow) << 2);
      for (let j = 0; j < n; j++) store<f32>(cp + (<usize>(i * cRow + j) << 2), dot(ar, bp + (<usize>(j * bCol) << 2), k4, k));
    }
  }
}

// @ts-ignore: decorator
@inline
function lanes(s: v128): f32 {
  return (f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3));
}

// @ts-ignore: decorator
@inline
function tail(x: usize, w: usize, from: i32, k: i32): f32 {
  let acc: f32 = 0;
  for (let kk = from; kk < k; kk++) acc += load<f32>(x + (<usize>kk << 2)) * load<f32>(w + (<usize>kk << 2));
  return acc;
}

function dot(x: usize, w: usize, k4: i32, k: i32): f32 {
  let s = f32x4.splat(0);
  for (let kk = 0; kk < k4; kk += 4) s = f32x4.add(s, f32x4.mul(v128.load(x + (<usize>kk << 2)), v128.load(w + (<usize>kk << 2))));
  return lanes(s) + tail(x, w, k4, k);
}
