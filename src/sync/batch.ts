// What one routing thread (a worker, or a replica's only thread) tells the
// others about routing state they cannot see themselves, in batches:
// - prefix: blocks it recorded for an endpoint in an approximate prefix index
//   (per producer plugin, by name: replicas run the same config);
// - load: its own in-flight requests, in-flight tokens and dispatch count per
//   endpoint (absolute values, so a lost or repeated batch does no harm;
//   `full` says the list is all of them, endpoints absent are at zero);
// - sessions: session ids it bound to an endpoint (session-affinity session_id).
// Batches travel between threads by structured clone and between replicas
// through Redis (codec.ts); both sides check them (untrusted once they crossed
// a network) before anything is applied.

export interface PrefixRecord {
  readonly plugin: string;
  readonly endpoint: string;
  /** Block hashes as (lo, hi) word pairs, in prompt order (prefix/hash.ts splitHashes reads them). */
  readonly words: Uint32Array;
}

export interface LoadRecord {
  readonly endpoint: string;
  readonly inFlight: number;
  readonly tokens: number;
  readonly dispatched: number;
}

export interface SessionRecord {
  readonly plugin: string;
  readonly session: string;
  readonly endpoint: string;
}

export interface SyncBatch {
  /** Who sent it: `<replica id>/<worker index>`. */
  readonly origin: string;
  /** Date.now() when sent (informational: liveness is judged by when a batch arrives, replicas' clocks may differ). */
  readonly at: number;
  readonly prefix?: readonly PrefixRecord[];
  readonly load?: readonly LoadRecord[];
  /** `load` lists every endpoint this origin has load on (a heartbeat). */
  readonly full?: boolean;
  readonly sessions?: readonly SessionRecord[];
  /** The origin is gone (its worker exited): drop its load now. */
  readonly gone?: boolean;
}

/** Bounds on what a batch from elsewhere may hold; past them it is dropped whole, with a log line. */
export const LIMITS = {
  records: 100_000,
  name: 512,
  wordsPerRecord: 2 * 131_072,
} as const;

const isName = (s: unknown): s is string => typeof s === 'string' && s.length > 0 && s.length <= LIMITS.name;
const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;

/** Why a received value is not a batch this version applies, or undefined when it is one. */
export function invalidBatch(b: unknown): string | undefined {
  if (!b || typeof b !== 'object') return 'not an object';
  const x = b as Record<string, unknown>;
  if (!isName(x.origin)) return 'origin';
  if (!isCount(x.at)) return 'at';
  let n = 0;
  for (const field of ['prefix', 'load', 'sessions'] as const) {
    const list = x[field];
    if (list === undefined) continue;
    if (!Array.isArray(list)) return field;
    n += list.length;
    if (n > LIMITS.records) return 'too many records';
  }
  for (const r of (x.prefix ?? []) as Record<string, unknown>[]) {
    if (!r || !isName(r.plugin) || !isName(r.endpoint)) return 'prefix record';
    if (!(r.words instanceof Uint32Array) || r.words.length % 2 !== 0 || r.words.length > LIMITS.wordsPerRecord) return 'prefix words';
  }
  for (const r of (x.load ?? []) as Record<string, unknown>[]) {
    if (!r || !isName(r.endpoint) || !isCount(r.inFlight) || !isCount(r.tokens) || !isCount(r.dispatched)) return 'load record';
  }
  for (const r of (x.sessions ?? []) as Record<string, unknown>[]) {
    if (!r || !isName(r.plugin) || !isName(r.session) || !isName(r.endpoint)) return 'session record';
  }
  return undefined;
}

/** A transport between routing threads or replicas: sends this thread's batches, delivers the others'. */
export interface SyncTransport {
  /** Human-readable, for logs ("workers", "redis://host:6379"). */
  readonly name: string;
  send(batch: SyncBatch): void;
  /** Set by SharedState: called with each batch from another origin. */
  onBatch: ((batch: SyncBatch) => void) | undefined;
  close(): Promise<void>;
}
