// The step kernels in plain JS over typed arrays: the reference implementation (the cpu backend
// runs them on TF.js's own value arrays), and the small per-row kernels of the wasm backend,
// which run them on views of the WASM heap. Sums are taken in double precision and stored as float32.
import type { GemmSpec } from './step-kernels';

export interface GemmArrays {
  a: Float32Array;
  b: Float32Array;
  c: Float32Array;
  bias?: Float32Array | undefined;
}

export function gemmJs(spec: GemmSpec, { a, b, c, bias }: GemmArrays): void {
  const { batch, m, n, k, relu } = spec;
  const A = spec.a;
  const B = spec.b;
  const C = spec.c;
  for (let p = 0; p < batch; p++) {
    const a0 = A.offset + p * A.batch;
    const b0 = B.offset + p * B.batch;
    const c0 = C.offset + p * C.batch;
    const bias0 = spec.bias ? p * spec.bias.batch : 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        const ai = a0 + i * A.row;
        const bj = b0 + j * B.col;
        for (let kk = 0; kk < k; kk++) acc += a[ai + kk * A.col]! * b[bj + kk * B.row]!;
        if (bias) acc += bias[bias0 + j]!;
        if (relu && acc < 0) acc = 0;
        c[c0 + i * C.row + j] = acc;
      }
    }
  }
}

export function reluGradBiasJs(batch: number, rows: number, cols: number, relu: boolean, grad: Float32Array, output: Float32Array, biasGrad: Float32Array): void {
  for (let p = 0; p < batch; p++) {
    const base = p * rows * cols;
    for (let j = 0; j < cols; j++) {
      let sum = 0;
      for (let i = 0; i < rows; i++) {
        const at = base + i * cols + j;
        // ReLU's derivative is 1 where the output is positive, else 0 (TF.js's Relu gradient, 0 at 0).
        if (relu && !(output[at]! > 0)) grad[at] = 0;
        sum += grad[at]!;
      }
      biasGrad[p * cols + j] = sum;
    }
  }
}

/** Per row: log-sum-exp with the max subtracted; loss = lse − logit[label]. */
function rowLoss(logits: Float32Array, at: number, classes: number, label: number): { loss: number; max: number; lse: number; argmax: number } {
  let max = -Infinity;
  let argmax = 0;
  for (let j = 0; j < classes; j++) {
    const v = logits[at + j]!;
    if (v > max) {
      max = v;
      argmax = j;
    }
  }
  let sum = 0;
  for (let j = 0; j < classes; j++) sum += Math.exp(logits[at + j]! - max);
  const lse = max + Math.log(sum);
  return { loss: lse - logits[at + label]!, max, lse, argmax };
}

export function softmaxXentJs(batch: number, rows: number, classes: number, logits: Float32Array, labels: Int32Array, dlogits: Float32Array, lossSum: Float32Array): void {
  for (let p = 0; p < batch; p++) {
    let total = 0;
    for (let i = 0; i < rows; i++) {
      const at = (p * rows + i) * classes;
      const label = labels[p * rows + i]!;
      const { loss, lse } = rowLoss(logits, at, classes, label);
      total += loss;
      for (let j = 0; j < classes; j++) dlogits[at + j] = (Math.exp(logits[at + j]! - lse) - (j === label ? 1 : 0)) / rows;
    }
    lossSum[p] = lossSum[p]! + total / rows;
  }
}

export function evalStatsJs(batch: number, rows: number, classes: number, logits: Float32Array, logitsBatch: number, labels: Int32Array, stats: Float32Array): void {
  for (let p = 0; p < batch; p++) {
    let loss = 0;
    let correct = 0;
    for (let i = 0; i < rows; i++) {
      const label = labels[i]!;
      const r = rowLoss(logits, p * logitsBatch + i * classes, classes, label);
      loss += r.loss;
      if (r.argmax === label) correct += 1;
    }
    stats[2 * p] = stats[2 * p]! + loss;
    stats[2 * p + 1] = stats[2 * p + 1]! + correct;
  }
}

/** x[i, :] = table[images[rowIds[i], :]], labels[i] = labels of that row. */
export function gatherJs(images: Uint8Array, sourceLabels: Uint8Array, features: number, table: Float32Array, rowIds: Int32Array, x: Float32Array, labels: Int32Array): void {
  for (let i = 0; i < rowIds.length; i++) {
    const row = rowIds[i]!;
    const src = row * features;
    const dst = i * features;
    for (let j = 0; j < features; j++) x[dst + j] = table[images[src + j]!]!;
    labels[i] = sourceLabels[row]!;
  }
}

export function normalizationTable({ mean, std }: { mean: number; std: number }): Float32Array {
  const table = new Float32Array(256);
  for (let v = 0; v < 256; v++) table[v] = (v / 255 - mean) / std;
  return table;
}
