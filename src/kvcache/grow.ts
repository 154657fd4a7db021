// Growing the struct-of-arrays tables of the precise index: a typed array of
// the same kind, `length` long, holding the old contents (the rest `fill`).
export type Column = Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array;

export function grow<T extends Column>(a: T, length: number, fill = 0): T {
  const b = new (a.constructor as new (n: number) => T)(length);
  b.set(a);
  if (fill !== 0) b.fill(fill, a.length);
  return b;
}
