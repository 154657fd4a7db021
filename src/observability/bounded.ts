// Bounds for client-supplied strings. Anything a client sends (model names,
// request ids, header values) that reaches a metric label, a log line or a map
// key goes through here: cut to a maximum length with a marker, and — for
// label values — capped in how many distinct values are kept, after which
// new values share "other". Without this, one request with a 1 MiB "model"
// keeps megabytes alive as a Prometheus series, and every new name adds one
// forever.

/** Longest client string kept as a label value or log field, in UTF-16 code units. */
export const MAX_CLIENT_STRING_LENGTH = 128;
/** Appended to a string that was cut. */
export const TRUNCATED_MARKER = '…[truncated]';
/** Label value shared by every value past the cap. */
export const OTHER_LABEL = 'other';
/** Distinct client-derived values kept per label; later ones share OTHER_LABEL. */
export const MAX_LABEL_VALUES = 1000;

/**
 * `s` if it is short enough, else its first `max` code units plus the marker,
 * as a fresh string: V8 keeps a slice of a long string as a view that holds
 * the whole original alive, so the cut is copied out.
 */
export function bounded(s: string, max = MAX_CLIENT_STRING_LENGTH): string {
  if (s.length <= max) return s;
  let end = max;
  // Never split a surrogate pair.
  const c = s.charCodeAt(end - 1);
  if (c >= 0xd800 && c <= 0xdbff) end--;
  return Buffer.from(s.slice(0, end) + TRUNCATED_MARKER, 'utf8').toString('utf8');
}

/**
 * One label's client-derived values: each bounded in length, at most `limit`
 * distinct ones kept, the rest reported as "other". The empty string passes
 * through (it is what a request without a model reports).
 */
export class LabelValues {
  readonly #seen = new Set<string>();
  /** Values the operator configured (InferenceModelRewrite models): always their own label, outside the cap. */
  #pinned: ReadonlySet<string> = new Set();
  readonly #limit: number;
  readonly #maxLength: number;

  constructor(limit = MAX_LABEL_VALUES, maxLength = MAX_CLIENT_STRING_LENGTH) {
    this.#limit = limit;
    this.#maxLength = maxLength;
  }

  /** Replace the operator's values, which never fold into "other" (llm-d Router PR #1909). */
  pin(values: Iterable<string>): void {
    const next = new Set<string>();
    for (const v of values) next.add(bounded(v, this.#maxLength));
    this.#pinned = next;
  }

  value(raw: string): string {
    if (this.#seen.has(raw) || this.#pinned.has(raw)) return raw;
    const v = bounded(raw, this.#maxLength);
    if (this.#seen.has(v)) return v;
    if (this.#seen.size >= this.#limit) return OTHER_LABEL;
    this.#seen.add(v);
    return v;
  }

  /** Distinct values kept so far. */
  get size(): number {
    return this.#seen.size;
  }
}
