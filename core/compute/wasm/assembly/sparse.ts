// Matrix products of fully connected layers whose weights are mostly pruned: the work follows the
// mask's nonzeros instead of the dense shape. Pointers are byte offsets into TF.js's heap; strides
// count floats; operands are viewed as in gemm.ts (A(i, kk) = a[i·aRow + kk·aCol], likewise B).
//
// The mask is fixed for an engine's life, the weights are not: the JS side builds index lists
// from the mask once (int32 on the heap, one list per output column or row, per member), and the
// kernels read each weight from the dense tensor at its index on every call.
//
// SIMD runs over the batch rows, the one dimension every nonzero shares: the activations are
// transposed into scratch so that the batch rows are contiguous for each unit.
//   spmmSparseB:  C = A·B with B zero off its mask (forward x·W, input gradient dz·Wᵀ);
//   sddmmMasked:  C = A·B at C's mask positions only (weight gradient xᵀ·dz); others untouched.
// Where a dense sum adds products in kk order, spmmSparseB adds the nonzero ones in the same order.

/**
 * The batch rows of spmmSparseB go in panels of 32 (8 vectors, the column kernel's width), or one
 * panel of up to 16 rows padded to a multiple of 4. A panel of the transposed A is contiguous:
 * with one long row per unit instead, rows 4 KiB apart (1024 rows) alias in the caches.
 */
// @ts-ignore: decorator
@inline
function panelRows(m: i32): i32 {
  return m > 16 ? 32 : (m + 3) & ~3;
}

/** Floats of scratch spmmSparseB needs: A transposed into panels (k × mPad), and one panel of C transposed (n × panel). */
export function spmmScratchFloats(m: i32, n: i32, k: i32): i32 {
  const rows = panelRows(m);
  return k * rows * ((m + rows - 1) / rows) + n * rows;
}

/** Floats of scratch sddmmMasked needs: A's rows (m × kPad) and B's columns (n × kPad). */
export function sddmmScratchFloats(m: i32, n: i32, k: i32): i32 {
  return (m + n) * ((k + 3) & ~3);
}

/**
 * C[p] = relu?( A[p]·B[p] + bias[p] ) where B[p] is zero off its mask. Column j of C sums over
 * kk = idx[ptr[p·(n+1) + j] .. ptr[p·(n+1) + j + 1]) (absolute positions in idx, kk ascending).
 * A member's A is packed once and reused when aBatch is 0.
 */
export function spmmSparseB(
  batch: i32, m: i32, n: i32, k: i32,
  a: usize, aBatch: i32, aRow: i32, aCol: i32,
  b: usize, bBatch: i32, bRow: i32, bCol: i32,
  c: usize, cBatch: i32, cRow: i32,
  bias: usize, biasBatch: i32, relu: i32,
  ptr: usize, idx: usize, scratch: usize,
): void {
  const rows = panelRows(m);
  const panels = (m + rows - 1) / rows;
  const panelBytes = <usize>(k * rows) << 2;
  const at = scratch;
  const ct = scratch + <usize>panels * panelBytes;
  for (let p = 0; p < batch; p++) {
    const ap = a + (<usize>(p * aBatch) << 2);
    if (p == 0 || aBatch != 0) {
      for (let q = 0; q < panels; q++) packTransposed(ap + (<usize>(q * rows * aRow) << 2), min(rows, m - q * rows), k, aRow, aCol, at + <usize>q * panelBytes, rows, rows);
    }
    const bp = b + (<usize>(p * bBatch) << 2);
    const cp = c + (<usize>(p * cBatch) << 2);
    const biasp = bias != 0 ? bias + (<usize>(p * biasBatch) << 2) : 0;
    const ptrp = ptr + (<usize>(p * (n + 1)) << 2);
    for (let q = 0; q < panels; q++) {
      const atq = at + <usize>q * panelBytes;
      if (rows == 32) {
        for (let j = 0; j < n; j++) columnChunk8(atq, bp, bRow, bCol, j, ptrp, idx, biasp, relu, ct);
      } else {
        for (let i0 = 0; i0 < rows; i0 += 4) {
          for (let j = 0; j < n; j++) columnChunk1(atq, rows, i0, bp, bRow, bCol, j, ptrp, idx, biasp, relu, ct);
        }
      }
      packTransposed(ct, n, min(rows, m - q * rows), rows, 1, cp + (<usize>(q * rows * cRow) << 2), cRow, n);
    }
  }
}

// @ts-ignore: decorator
@inline
function epilogue(acc: v128, bias: v128, relu: i32): v128 {
  const r = f32x4.add(acc, bias);
  return relu != 0 ? f32x4.max(r, f32x4.splat(0)) : r;
}

/** Column j of C over a 32-row panel, into row j of ct (the panel transposed): 8 accumulators, one splat per nonzero. */
function columnChunk8(panel: usize, bp: usize, bRow: i32, bCol: i32, j: i32, ptrp: usize, idx: usize, biasp: usize, relu: i32, ct: usize): void {
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
  let c4 = f32x4.splat(0), c5 = f32x4.splat(0), c6 = f32x4.splat(0), c7 = f32x4.splat(0);
  const wColumn = bp + (<usize>(j * bCol) << 2);
  const end = load<i32>(ptrp + (<usize>(j + 1) << 2));
  for (let t = load<i32>(ptrp + (<usize>j << 2)); t < end; t++) {
    const kk = <usize>load<i32>(idx + (<usize>t << 2));
    const w = f32x4.splat(load<f32>(wColumn + ((kk * <usize>bRow) << 2)));
    const row = panel + (kk << 7);
    c0 = f32x4.add(c0, f32x4.mul(w, v128.load(row)));
    c1 = f32x4.add(c1, f32x4.mul(w, v128.load(row, 16)));
    c2 = f32x4.add(c2, f32x4.mul(w, v128.load(row, 32)));
    c3 = f32x4.add(c3, f32x4.mul(w, v128.load(row, 48)));
    c4 = f32x4.add(c4, f32x4.mul(w, v128.load(row, 64)));
    c5 = f32x4.add(c5, f32x4.mul(w, v128.load(row, 80)));
    c6 = f32x4.add(c6, f32x4.mul(w, v128.load(row, 96)));
    c7 = f32x4.add(c7, f32x4.mul(w, v128.load(row, 112)));
  }
  const bias = f32x4.splat(biasp != 0 ? load<f32>(biasp + (<usize>j << 2)) : 0);
  const out = ct + (<usize>j << 7);
  v128.store(out, epilogue(c0, bias, relu));
  v128.store(out, epilogue(c1, bias, relu), 16);
  v128.store(out, epilogue(c2, bias, relu), 32);
  v128.store(out, epilogue(c3, bias, relu), 48);
  v128.store(out, epilogue(c4, bias, relu), 64);
  v128.store(out, epilogue(c5, bias, relu), 80);
  v128.store(out, epilogue(c6, bias, relu), 96);
  v128.store(out, epilogue(c7, bias, relu), 112);
}

/** Rows i0..i0+3 of column j over a panel of `rows` rows (at most 16). */
function columnChunk1(panel: usize, rows: i32, i0: i32, bp: usize, bRow: i32, bCol: i32, j: i32, ptrp: usize, idx: usize, biasp: usize, relu: i32, ct: usize): void {
  let c0 = f32x4.splat(0);
  const wColumn = bp + (<usize>(j * bCol) << 2);
  const rowBytes = <usize>rows << 2;
  const chunk = panel + (<usize>i0 << 2);
  const end = load<i32>(ptrp + (<usize>(j + 1) << 2));
  for (let t = load<i32>(ptrp + (<usize>j << 2)); t < end; t++) {
    const kk = <usize>load<i32>(idx + (<usize>t << 2));
    c0 = f32x4.add(c0, f32x4.mul(f32x4.splat(load<f32>(wColumn + ((kk * <usize>bRow) << 2))), v128.load(chunk + kk * rowBytes)));
  }
  const bias = f32x4.splat(biasp != 0 ? load<f32>(biasp + (<usize>j << 2)) : 0);
  v128.store(ct + (<usize>(j * rows + i0) << 2), epilogue(c0, bias, relu));
}

/**
 * C[p](i, j) = Σ_kk A[p](i, kk)·B[p](kk, j) for the positions of row i listed in
 * idx[ptr[p·(m+1) + i] .. ptr[p·(m+1) + i + 1]); C's other entries are left as they are.
 */
export function sddmmMasked(
  batch: i32, m: i32, n: i32, k: i32,
  a: usize, aBatch: i32, aRow: i32, aCol: i32,
  b: usize, bBatch: i32, bRow: i32, bCol: i32,
  c: usize, cBatch: i32, cRow: i32,
  ptr: usize, idx: usize, scratch: usize,
): void {
  const kp = (k + 3) & ~3;
  const rowsA = scratch;
  const colsB = scratch + (<usize>(m * kp) << 2);
  const rowBytes = <usize>kp << 2;
  for (let p = 0; p < batch; p++) {
    // rowsA[i·kp + kk] = A(i, kk) and colsB[j·kp + kk] = B(kk, j), zero-padded along kk.
    if (p == 0 || aBatch != 0) packTransposed(a + (<usize>(p * aBatch) << 2), k, m, aCol, aRow, rowsA, kp, kp);
    packTransposed(b + (<usize>(p * bBatch) << 2), k, n, bRow, bCol, colsB, kp, kp);
    const cp = c + (<usize>(p * cBatch) << 2);
    const ptrp = ptr + (<usize>(p * (m + 1)) << 2);
    for (let i = 0; i < m; i++) {
      const x = rowsA + <usize>i * rowBytes;
      const out = cp + (<usize>(i * cRow) << 2);
      const end = load<i32>(ptrp + (<usize>(i + 1) << 2));
      for (let t = load<i32>(ptrp + (<usize>i << 2)); t < end; t++) {
        const j = <usize>load<i32>(idx + (<usize>t << 2));
        store<f32>(out + (j << 2), dot(x, colsB + j * rowBytes, kp));
      }
    }
  }
}

/** x·y over kp floats (a multiple of 4), four accumulators. */
// @ts-ignore: decorator
@inline
function dot(x: usize, y: usize, kp: i32): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  const bytes = <usize>kp << 2;
  let o: usize = 0;
  for (; o + 64 <= bytes; o += 64) {
    s0 = f32x4.add(s0, f32x4.mul(v128.load(x + o), v128.load(y + o)));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(x + o, 16), v128.load(y + o, 16)));
    s2 = f32x4.add(s2, f32x4.mul(v128.load(x + o, 32), v128.load(y + o, 32)));
    s3 = f32x4.add(s3, f32x4.mul(v128.load(x + o, 48), v128.load(y + o, 48)));
  }
  for (; o < bytes; o += 16) s0 = f32x4.add(s0, f32x4.mul(v128.load(x + o), v128.load(y + o)));
  const s = f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3));
  return (f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3));
}

/**
 * dst[c·dstRow + r] = src[r·srcRow + c·srcCol] for r < rows, c < cols, and zero for
 * rows ≤ r < padTo. With srcCol = 1 (a transpose) 4×4 blocks go through SIMD shuffles; with
 * srcRow = 1 (a strided copy) each column is one memory.copy.
 */
function packTransposed(src: usize, rows: i32, cols: i32, srcRow: i32, srcCol: i32, dst: usize, dstRow: i32, padTo: i32): void {
  const dstStep = <usize>dstRow << 2;
  if (srcRow == 1) {
    for (let c = 0; c < cols; c++) memory.copy(dst + <usize>c * dstStep, src + (<usize>(c * srcCol) << 2), <usize>rows << 2);
  } else if (srcCol == 1) {
    const srcStep = <usize>srcRow << 2;
    let r = 0;
    for (; r + 4 <= rows; r += 4) {
      const s0 = src + <usize>r * srcStep;
      const s1 = s0 + srcStep, s2 = s1 + srcStep, s3 = s2 + srcStep;
      const d = dst + (<usize>r << 2);
      let c = 0;
      for (; c + 4 <= cols; c += 4) {
        const o = <usize>c << 2;
        const x0 = v128.load(s0 + o), x1 = v128.load(s1 + o), x2 = v128.load(s2 + o), x3 = v128.load(s3 + o);
        const lo01 = f32x4.shuffle(x0, x1, 0, 4, 1, 5);
        const hi01 = f32x4.shuffle(x0, x1, 2, 6, 3, 7);
        const lo23 = f32x4.shuffle(x2, x3, 0, 4, 1, 5);
        const hi23 = f32x4.shuffle(x2, x3, 2, 6, 3, 7);
        const dc = d + <usize>c * dstStep;
        v128.store(dc, f32x4.shuffle(lo01, lo23, 0, 1, 4, 5));
        v128.store(dc + dstStep, f32x4.shuffle(lo01, lo23, 2, 3, 6, 7));
        v128.store(dc + 2 * dstStep, f32x4.shuffle(hi01, hi23, 0, 1, 4, 5));
        v128.store(dc + 3 * dstStep, f32x4.shuffle(hi01, hi23, 2, 3, 6, 7));
      }
      for (; c < cols; c++) {
        const o = <usize>c << 2;
        const dc = d + <usize>c * dstStep;
        store<f32>(dc, load<f32>(s0 + o));
        store<f32>(dc, load<f32>(s1 + o), 4);
        store<f32>(dc, load<f32>(s2 + o), 8);
        store<f32>(dc, load<f32>(s3 + o), 12);
      }
    }
    for (; r < rows; r++) {
      const s = src + <usize>r * srcStep;
      for (let c = 0; c < cols; c++) store<f32>(dst + <usize>c * dstStep + (<usize>r << 2), load<f32>(s + (<usize>c << 2)));
    }
  } else {
    for (let c = 0; c < cols; c++) {
      for (let r = 0; r < rows; r++) store<f32>(dst + <usize>c * dstStep + (<usize>r << 2), load<f32>(src + (<usize>(r * srcRow + c * srcCol) << 2)));
    }
  }
  if (padTo > rows) {
    const gap = <usize>(padTo - rows) << 2;
    for (let c = 0; c < cols; c++) memory.fill(dst + <usize>c * dstStep + (<usize>rows << 2), 0, gap);
  }
}
