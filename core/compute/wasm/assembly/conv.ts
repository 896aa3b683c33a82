// Filter gradient of a 2-D convolution (TF.js's Conv2DBackpropFilter), NHWC, any strides, no dilation.
// Pointers are byte offsets into TF.js's WASM heap (this module imports that memory).
//
// dW[kh, kw, ci, co] = Σ_{n,y,x} X[n, y·sh + kh − padTop, x·sw + kw − padLeft, ci] · dY[n, y, x, co].
// On a zero-padded copy of X (xpad, [n, hp, wp, ci]) the pixels kw = 0..KW−1 of one output
// position lie side by side, so for each filter row kh the KW·ci values (kw, ci) a position
// multiplies are one contiguous run of xpad, and dW[kh] (KW·ci rows × co, contiguous too) is one
// matrix product over all positions p: dW[kh][j, co] = Σ_p run(p)[j] · dY[p, co].
// It is tiled 4 rows (j) × 8 columns (co), eight f32x4 accumulators: each step loads two dY
// vectors and splats four run values, and does 8 multiplies and 8 adds (baseline WASM SIMD has
// no FMA). That loop is the whole cost; V8 keeps it free of spills at this tile size (a 2× unroll
// or more accumulators spill and run slower).
// Positions come in blocks of output rows, one call each from the JS side: a block's runs are
// packed into 4-row panels, and the block's panels and dY rows stay in L2 while every tile of
// dW passes over them.

/**
 * Copies x [n, h, w, c] into xpad [n, hp, wp, c] with x's pixel (0, 0) at (padTop, padLeft) and
 * zeros elsewhere; pixels of x past hp or wp are dropped. Then writes `slack` zero floats.
 */
export function convPadInput(x: usize, xpad: usize, n: i32, h: i32, w: i32, c: i32, hp: i32, wp: i32, padTop: i32, padLeft: i32, slack: i32): void {
  const rowBytes = (<usize>wp * <usize>c) << 2;
  const first = min(wp, padLeft);
  const copied = max(0, min(w, wp - padLeft));
  const leftBytes = (<usize>first * <usize>c) << 2;
  const copyBytes = (<usize>copied * <usize>c) << 2;
  const rightBytes = rowBytes - leftBytes - copyBytes;
  let dst = xpad;
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < hp; r++) {
      const src = r - padTop;
      if (src < 0 || src >= h) {
        memory.fill(dst, 0, rowBytes);
      } else {
        memory.fill(dst, 0, leftBytes);
        memory.copy(dst + leftBytes, x + ((((<usize>b * <usize>h + <usize>src) * <usize>w) * <usize>c) << 2), copyBytes);
        memory.fill(dst + leftBytes + copyBytes, 0, rightBytes);
      }
      dst += rowBytes;
    }
  }
  memory.fill(dst, 0, (<usize>slack) << 2);
}

/** Copies rows × cols floats into rows × stride with the columns past cols set to zero. */
export function convPadColumns(src: usize, dst: usize, rows: i32, cols: i32, stride: i32): void {
  const colBytes = (<usize>cols) << 2;
  const gapBytes = (<usize>(stride - cols)) << 2;
  for (let r = 0; r < rows; r++) {
    memory.copy(dst, src, colBytes);
    memory.fill(dst + colBytes, 0, gapBytes);
    src += colBytes;
    dst += colBytes + gapBytes;
  }
}

/**
 * Adds one block of output rows (rows r = n·outHeight + y from rowStart) to dw [kh][mPad][coPad]:
 * dw[kh][j, co] += Σ xpad[n, y·sh + kh, x·sw, j] · dy[r, x, co] over the block's positions. The
 * block at rowStart 0 writes instead of adding: call it first, the others after it.
 * mPad and coPad are multiples of 4 and 8; dy rows are coPad floats apart. Runs are read mPad
 * floats long, up to 3 past KW·ci, so xpad must hold 3 floats past its last pixel; the rows
 * j ≥ KW·ci they feed are not kept. aPack is scratch for rowCount·outWidth·mPad floats.
 */
export function convFilterGradRows(
  xpad: usize, dy: usize, dw: usize, rowStart: i32, rowCount: i32, outHeight: i32, outWidth: i32,
  padHeight: i32, padWidth: i32, inChannels: i32, strideHeight: i32, strideWidth: i32, filterHeight: i32, mPad: i32, coPad: i32,
  aPack: usize,
): void {
  const positions = rowCount * outWidth;
  const panelBytes = (<usize>positions) << 4;
  const dyBlock = dy + ((<usize>rowStart * <usize>outWidth * <usize>coPad) << 2);
  const n0 = outHeight > 0 ? rowStart / outHeight : 0;
  const y0 = rowStart - n0 * outHeight;
  for (let kh = 0; kh < filterHeight; kh++) {
    // Pack the block's runs of xpad for this kh as panels of 4 rows: panel q holds, position after
    // position, rows 4q..4q+3. The tile loop below then reads both operands at fixed steps, with no
    // row or image boundaries inside it (on 8×8 images those cost as much as the arithmetic).
    let n = n0;
    let y = y0;
    let position = aPack;
    for (let i = 0; i < rowCount; i++) {
      let run = xpad + (<usize>(n * padHeight + y * strideHeight + kh) * <usize>padWidth * <usize>inChannels << 2);
      for (let x = 0; x < outWidth; x++) {
        let dst = position;
        for (let j = 0; j < mPad; j += 4) {
          v128.store(dst, v128.load(run + ((<usize>j) << 2)));
          dst += panelBytes;
        }
        position += 16;
        run += (<usize>strideWidth * <usize>inChannels) << 2;
      }
      if (++y == outHeight) {
        y = 0;
        n++;
      }
    }
    for (let j0 = 0; j0 < mPad; j0 += 4) {
      const panel = aPack + (<usize>(j0 >> 2)) * panelBytes;
      for (let co0 = 0; co0 < coPad; co0 += 8) {
        filterTile(panel, panelBytes, dyBlock + ((<usize>co0) << 2), (<usize>coPad) << 2, dw + ((<usize>(kh * mPad + j0) * <usize>coPad + <usize>co0) << 2), rowStart > 0);
      }
    }
  }
}

/**
 * c[4 rows][8 columns] (rows cRow = cols bytes apart) = Σ_p panel[p][0..3] ⊗ b[p][0..7] (+ c when
 * `add`), p over the panel's positions, b's rows bStep bytes apart.
 */
// @ts-ignore: decorator
@inline
function filterTile(panel: usize, panelBytes: usize, b: usize, bStep: usize, c: usize, add: bool): void {
  let c00 = f32x4.splat(0);
  let c01 = c00;
  let c10 = c00;
  let c11 = c00;
  let c20 = c00;
  let c21 = c00;
  let c30 = c00;
  let c31 = c00;
  const end = panel + panelBytes;
  for (let a = panel; a < end; a += 16) {
    const b0 = v128.load(b);
    const b1 = v128.load(b, 16);
    const a0 = v128.load32_splat(a);
    c00 = f32x4.add(c00, f32x4.mul(a0, b0));
    c01 = f32x4.add(c01, f32x4.mul(a0, b1));
    const a1 = v128.load32_splat(a, 4);
    c10 = f32x4.add(c10, f32x4.mul(a1, b0));
    c11 = f32x4.add(c11, f32x4.mul(a1, b1));
    const a2 = v128.load32_splat(a, 8);
    c20 = f32x4.add(c20, f32x4.mul(a2, b0));
    c21 = f32x4.add(c21, f32x4.mul(a2, b1));
    const a3 = v128.load32_splat(a, 12);
    c30 = f32x4.add(c30, f32x4.mul(a3, b0));
    c31 = f32x4.add(c31, f32x4.mul(a3, b1));
    b += bStep;
  }
  const cRow = bStep;
  if (add) {
    // Each block is summed on its own and then added: rounding error grows with the block length
    // plus the number of blocks, not with all the positions at once.
    c00 = f32x4.add(c00, v128.load(c));
    c01 = f32x4.add(c01, v128.load(c, 16));
    c10 = f32x4.add(c10, v128.load(c + cRow));
    c11 = f32x4.add(c11, v128.load(c + cRow, 16));
    c20 = f32x4.add(c20, v128.load(c + 2 * cRow));
    c21 = f32x4.add(c21, v128.load(c + 2 * cRow, 16));
    c30 = f32x4.add(c30, v128.load(c + 3 * cRow));
    c31 = f32x4.add(c31, v128.load(c + 3 * cRow, 16));
  }
  v128.store(c, c00);
  v128.store(c, c01, 16);
  v128.store(c + cRow, c10);
  v128.store(c + cRow, c11, 16);
  v128.store(c + 2 * cRow, c20);
  v128.store(c + 2 * cRow, c21, 16);
  v128.store(c + 3 * cRow, c30);
  v128.store(c + 3 * cRow, c31, 16);
}

/** Copies the kept part of dwPad [kh][mPad][coPad] into dw [kh][m][co] (m = KW·ci). */
export function convUnpadFilter(dwPad: usize, dw: usize, filterHeight: i32, m: i32, mPad: i32, co: i32, coPad: i32): void {
  const rowBytes = (<usize>co) << 2;
  const padRowBytes = (<usize>coPad) << 2;
  for (let kh = 0; kh < filterHeight; kh++) {
    let src = dwPad + <usize>(kh * mPad) * padRowBytes;
    for (let j = 0; j < m; j++) {
      memory.copy(dw, src, rowBytes);
      dw += rowBytes;
      src += padRowBytes;
    }
  }
}

// Input gradient (TF.js's Conv2DBackpropInput), NHWC, any strides, no dilation:
// dX[n, y·sh + kh − padTop, x·sw + kw − padLeft, ci] += Σ_co dY[n, y, x, co] · W[kh, kw, ci, co].
// The same geometry as the filter gradient, run backwards: on a zero-padded dX (dxpad [n, hp, wp,
// ci]) each output position's KW·ci inputs under filter row kh are one contiguous run, and that run
// receives dY[p, ·] · W[kh]ᵀ. With W[kh] transposed once to [co][mPad] (mPad a multiple of 8, the
// columns past KW·ci zero), a tile of 4 positions × 8 run entries is eight f32x4 accumulators over
// co: each step loads two W vectors and splats four dY values, as filterTile does. The tile is
// then added into the four runs; they overlap when the stride is below the kernel width, which the
// sequential adds handle. The zero columns add exact zeros past a run's end, so dxpad needs mPad
// − KW·ci floats of slack after its last pixel.

/** wt[kh][co][j] = w[kh][j][co] for j < m = KW·ci, zero for m ≤ j < mPad. */
export function convTransposeFilter(w: usize, wt: usize, filterHeight: i32, m: i32, co: i32, mPad: i32): void {
  for (let kh = 0; kh < filterHeight; kh++) {
    const src = w + ((<usize>(kh * m) * <usize>co) << 2);
    const dst = wt + ((<usize>(kh * co) * <usize>mPad) << 2);
    for (let c = 0; c < co; c++) {
      const row = dst + ((<usize>(c * mPad)) << 2);
      for (let j = 0; j < m; j++) store<f32>(row + ((<usize>j) << 2), load<f32>(src + ((<usize>(j * co + c)) << 2)));
      memory.fill(row + ((<usize>m) << 2), 0, (<usize>(mPad - m)) << 2);
    }
  }
}

/**
 * Adds the input gradient of one block of output rows (rows r = n·outHeight + y from rowStart) into
 * dxpad [n][padHeight][padWidth][inChannels], over every filter row. dy rows are co floats long;
 * wt is [kh][co][mPad] (convTransposeFilter).
 */
export function convInputGradRows(
  dy: usize, wt: usize, dxpad: usize, rowStart: i32, rowCount: i32, outHeight: i32, outWidth: i32,
  padHeight: i32, padWidth: i32, inChannels: i32, strideHeight: i32, strideWidth: i32, filterHeight: i32, mPad: i32, co: i32,
): void {
  const positions = rowCount * outWidth;
  const dyRow = (<usize>co) << 2;
  const wtRow = (<usize>mPad) << 2;
  const stepBytes = (<usize>strideWidth * <usize>inChannels) << 2;
  const n0 = outHeight > 0 ? rowStart / outHeight : 0;
  const y0 = rowStart - n0 * outHeight;
  for (let kh = 0; kh < filterHeight; kh++) {
    const wtKh = wt + <usize>(kh * co) * wtRow;
    // Walk the block's positions four at a time; a tile may span rows and images, so each of its
    // positions keeps its own run pointer.
    let n = n0;
    let y = y0;
    let x = 0;
    let p = 0;
    let dyAt = dy + ((<usize>rowStart * <usize>outWidth) * dyRow);
    while (p < positions) {
      const count = min(4, positions - p);
      let r0: usize = 0;
      let r1: usize = 0;
      let r2: usize = 0;
      let r3: usize = 0;
      for (let i = 0; i < count; i++) {
        const run = dxpad + ((<usize>(n * padHeight + y * strideHeight + kh) * <usize>padWidth * <usize>inChannels) << 2) + <usize>x * stepBytes;
        if (i == 0) r0 = run;
        else if (i == 1) r1 = run;
        else if (i == 2) r2 = run;
        else r3 = run;
        if (++x == outWidth) {
          x = 0;
          if (++y == outHeight) {
            y = 0;
            n++;
          }
        }
      }
      for (let j0 = 0; j0 < mPad; j0 += 8) {
        inputTile(dyAt, dyRow, wtKh + ((<usize>j0) << 2), wtRow, co, count, r0 + ((<usize>j0) << 2), r1 + ((<usize>j0) << 2), r2 + ((<usize>j0) << 2), r3 + ((<usize>j0) << 2));
      }
      dyAt += <usize>count * dyRow;
      p += count;
    }
  }
}

/**
 * For `count` (1 to 4) positions: run_i[0..8) += Σ_c dy_i[c] · wt[c][0..8), dy_i at dy + i·dyRow,
 * wt's rows wtRow bytes apart. Positions past `count` compute on the first one's dY and are not stored.
 */
// @ts-ignore: decorator
@inline
function inputTile(dy: usize, dyRow: usize, wt: usize, wtRow: usize, co: i32, count: i32, r0: usize, r1: usize, r2: usize, r3: usize): void {
  let c00 = f32x4.splat(0);
  let c01 = c00;
  let c10 = c00;
  let c11 = c00;
  let c20 = c00;
  let c21 = c00;
  let c30 = c00;
  let c31 = c00;
  const d0 = dy;
  const d1 = count > 1 ? dy + dyRow : dy;
  const d2 = count > 2 ? dy + 2 * dyRow : dy;
  const d3 = count > 3 ? dy + 3 * dyRow : dy;
  let w = wt;
  for (let c = 0; c < co; c++) {
    const b0 = v128.load(w);
    const b1 = v128.load(w, 16);
    const off = (<usize>c) << 2;
    const a0 = v128.load32_splat(d0 + off);
    c00 = f32x4.add(c00, f32x4.mul(a0, b0));
    c01 = f32x4.add(c01, f32x4.mul(a0, b1));
    const a1 = v128.load32_splat(d1 + off);
    c10 = f32x4.add(c10, f32x4.mul(a1, b0));
    c11 = f32x4.add(c11, f32x4.mul(a1, b1));
    const a2 = v128.load32_splat(d2 + off);
    c20 = f32x4.add(c20, f32x4.mul(a2, b0));
    c21 = f32x4.add(c21, f32x4.mul(a2, b1));
    const a3 = v128.load32_splat(d3 + off);
    c30 = f32x4.add(c30, f32x4.mul(a3, b0));
    c31 = f32x4.add(c31, f32x4.mul(a3, b1));
    w += wtRow;
  }
  v128.store(r0, f32x4.add(v128.load(r0), c00));
  v128.store(r0, f32x4.add(v128.load(r0, 16), c01), 16);
  if (count > 1) {
    v128.store(r1, f32x4.add(v128.load(r1), c10));
    v128.store(r1, f32x4.add(v128.load(r1, 16), c11), 16);
  }
  if (count > 2) {
    v128.store(r2, f32x4.add(v128.load(r2), c20));
    v128.store(r2, f32x4.add(v128.load(r2, 16), c21), 16);
  }
  if (count > 3) {
    v128.store(r3, f32x4.add(v128.load(r3), c30));
    v128.store(r3, f32x4.add(v128.load(r3, 16), c31), 16);
  }
}

/** The inverse of convPadInput: dx [n, h, w, c] = dxpad [n, hp, wp, c] at (padTop, padLeft), zero where dxpad has no pixel. */
export function convUnpadInput(dxpad: usize, dx: usize, n: i32, h: i32, w: i32, c: i32, hp: i32, wp: i32, padTop: i32, padLeft: i32): void {
  const rowBytes = (<usize>w * <usize>c) << 2;
  const padRowBytes = (<usize>wp * <usize>c) << 2;
  // Columns of dx that lie inside dxpad: x with 0 ≤ x + padLeft < wp.
  const first = min(w, max(0, -padLeft));
  const last = max(first, min(w, wp - padLeft));
  const headBytes = (<usize>first * <usize>c) << 2;
  const copyBytes = (<usize>(last - first) * <usize>c) << 2;
  let dst = dx;
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < h; r++) {
      const src = r + padTop;
      if (src < 0 || src >= hp) {
        memory.fill(dst, 0, rowBytes);
      } else {
        memory.fill(dst, 0, headBytes);
        memory.copy(dst + headBytes, dxpad + ((<usize>(b * hp + src) * <usize>wp + <usize>(first + padLeft)) * <usize>c << 2), copyBytes);
        memory.fill(dst + headBytes + copyBytes, 0, rowBytes - headBytes - copyBytes);
      }
      dst += rowBytes;
    }
  }
}

/** Zeroes `count` floats at `ptr`. */
export function zeroFloats(ptr: usize, count: i32): void {
  memory.fill(ptr, 0, (<usize>count) << 2);
}
