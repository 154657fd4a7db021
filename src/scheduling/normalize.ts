// Score shapes shared by scorers.

/** (max − v) / (max − min) over the candidates: lowest value 1, highest 0; all equal ⇒ 1. */
export function invertedMinMax(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const out = new Float64Array(n);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const range = max - min;
  for (let i = 0; i < n; i++) out[i] = range > 0 ? (max - values[i]) / range : 1;
  return out;
}
