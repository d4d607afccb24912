/** Row-wise softmax(z/T) of an N×K row-major matrix. */
export function softmaxRows(z: Float32Array, classes: number, T = 1): Float32Array {
  const out = new Float32Array(z.length);
  for (let r = 0; r < z.length / classes; r++) {
    let max = -Infinity, sum = 0;
    for (let c = 0; c < classes; c++) max = Math.max(max, z[r * classes + c]!);
    for (let c = 0; c < classes; c++) sum += (out[r * classes + c] = Math.exp((z[r * classes + c]! - max) / T));
    for (let c = 0; c < classes; c++) out[r * classes + c]! /= sum;
  }
  return out;
}

/** mean_n Σ_c q log q of N×K probabilities: cross-entropy to q plus this is KL(q ‖ ·). */
export function meanNegEntropy(q: Float32Array, rows: number): number {
  let s = 0;
  for (const v of q) if (v > 0) s += v * Math.log(v);
  return s / rows;
}
