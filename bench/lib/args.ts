// Checked flag values for the bench command lines (node:util parseArgs gives strings).

/** A number flag: undefined when absent; an error naming the flag when not a number ≥ min (an integer if asked). */
export function numFlag(name: string, v: string | undefined, integer: boolean, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got "${v}"`);
  return n;
}

/** A boolean flag: true/1/yes or false/0/no; undefined when absent. */
export function boolFlag(name: string, v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (/^(true|1|yes)$/i.test(v)) return true;
  if (/^(false|0|no)$/i.test(v)) return false;
  throw new Error(`--${name} must be true or false, got "${v}"`);
}
