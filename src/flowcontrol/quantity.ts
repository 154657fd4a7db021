// The two value syntaxes of the flowControl section: Kubernetes resource
// quantities (maxBytes, maxRequests: "1Gi", "500M", "1k", 100) and Go
// durations (defaultRequestTTL: "60s", "0s"). llm-d decodes these with
// resource.Quantity (its Value(), rounded up to an integer) and
// metav1.Duration (time.ParseDuration).
import { parseDuration } from '../units.ts';

const BINARY: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL: Record<string, number> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const QUANTITY = /^([+-]?)(\d*)(?:\.(\d*))?(?:(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE]([+-]?\d+))?$/;

/**
 * A Kubernetes quantity as an integer, rounded up as Quantity.Value() does
 * ("100m" is 1), computed exactly. Throws with a readable message on
 * anything else.
 */
export function parseQuantity(v: unknown): number {
  let text: string;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`invalid quantity ${v}`);
    return v < 0 ? -Math.ceil(-v) : Math.ceil(v);
  } else if (typeof v === 'string') {
    text = v.trim();
  } else {
    throw new Error(`must be a quantity such as 100, "1k" or "1Gi", got ${JSON.stringify(v)}`);
  }
  const m = QUANTITY.exec(text);
  if (!m || (m[2] === '' && (m[3] ?? '') === '') || text.length > 64) throw new Error(`invalid quantity "${text}" (e.g. 100, 1k, 500M, 1Gi)`);
  const [, sign, whole, fraction = '', suffix, exp] = m;
  // value = digits × 10^pow10 × 2^pow2, as an exact fraction.
  let digits = BigInt((whole || '0') + fraction);
  let pow10 = -fraction.length;
  let pow2 = 0;
  if (suffix !== undefined) {
    if (BINARY[suffix] !== undefined) pow2 = BINARY[suffix];
    else pow10 += DECIMAL[suffix];
  } else if (exp !== undefined) {
    pow10 += Number(exp);
  }
  if (pow10 > 30) throw new Error(`quantity "${text}" is too large`);
  digits <<= BigInt(pow2);
  let value: bigint;
  if (pow10 >= 0) {
    value = digits * 10n ** BigInt(pow10);
  } else {
    const d = 10n ** BigInt(-pow10);
    value = (digits + d - 1n) / d;
  }
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`quantity "${text}" is too large`);
  return sign === '-' ? -Number(value) : Number(value);
}

/** A Go duration ("60s", "1m30s", "0s", "0") in milliseconds; negative durations are returned negative. */
export function parseGoDuration(v: unknown): number {
  if (typeof v !== 'string') throw new Error(`must be a duration such as "60s" or "5m", got ${JSON.stringify(v)}`);
  const text = v.trim();
  if (text.startsWith('-')) return -parseDuration(text.slice(1));
  return parseDuration(text.startsWith('+') ? text.slice(1) : text);
}
