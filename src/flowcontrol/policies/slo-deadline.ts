// slo-deadline-ordering-policy: the deadline is when the request arrived plus
// its time-to-first-token SLO in milliseconds, from x-llm-d-slo-ttft-ms (the
// deprecated x-slo-ttft-ms as fallback). A missing, empty, non-integer,
// negative or overflowing value means no deadline: such requests go after
// every request that has one. Ties, and requests without a deadline, go by
// arrival.
import { definePlugin } from '../../scheduling/registry.ts';
import type { OrderingPolicy, QueuedRequest } from '../types.ts';

export const SLO_DEADLINE_ORDERING_POLICY = 'slo-deadline-ordering-policy';
export const TTFT_SLO_HEADERS = ['x-llm-d-slo-ttft-ms', 'x-slo-ttft-ms'] as const;

/**
 * Largest SLO accepted: llm-d rejects values whose conversion to a Go
 * time.Duration (int64 nanoseconds) would overflow, i.e. above
 * MaxInt64 / 1e6 milliseconds.
 */
export const MAX_SLO_MS = 9_223_372_036_854;
const INTEGER = /^[+-]?\d+$/;

/** The SLO in ms from the request headers, or undefined when there is no valid one. */
export function ttftSloMs(headers: ReadonlyMap<string, string> | undefined): number | undefined {
  if (!headers) return undefined;
  let raw: string | undefined;
  for (const h of TTFT_SLO_HEADERS) {
    raw = headers.get(h);
    if (raw !== undefined && raw !== '') break;
  }
  if (raw === undefined) return undefined;
  const text = raw.trim();
  // Go's ParseInt: optional sign, decimal digits; anything past int64 is an error.
  if (text.length === 0 || text.length > 25 || !INTEGER.test(text)) return undefined;
  const ms = Number(text);
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_SLO_MS) return undefined;
  return ms;
}

export class SloDeadlineOrderingPolicy implements OrderingPolicy {
  readonly type = SLO_DEADLINE_ORDERING_POLICY;
  readonly flowControl = 'ordering' as const;
  readonly name: string;
  // Parsed once per queued request; entries go with the requests.
  readonly #deadlines = new WeakMap<QueuedRequest, number>();

  constructor(name: string = SLO_DEADLINE_ORDERING_POLICY) {
    this.name = name;
  }

  deadline(q: QueuedRequest): number {
    let d = this.#deadlines.get(q);
    if (d === undefined) {
      const ms = ttftSloMs(q.request.headers);
      d = ms === undefined ? Number.POSITIVE_INFINITY : q.request.receivedAt + ms;
      this.#deadlines.set(q, d);
    }
    return d;
  }

  less(a: QueuedRequest, b: QueuedRequest): boolean {
    const da = this.deadline(a);
    const db = this.deadline(b);
    if (da !== db) return da < db;
    const ra = a.request.receivedAt;
    const rb = b.request.receivedAt;
    return ra !== rb ? ra < rb : a.seq < b.seq;
  }
}

export const sloDeadlineOrderingPolicy = definePlugin({
  type: SLO_DEADLINE_ORDERING_POLICY,
  description: 'Flow control ordering: earliest SLO deadline first, the deadline being arrival + x-llm-d-slo-ttft-ms (x-slo-ttft-ms accepted); requests without a valid SLO go last; ties by arrival.',
  params: {},
  create: (name) => new SloDeadlineOrderingPolicy(name),
});
