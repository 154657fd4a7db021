// In-flight eviction (flowControl.enableEviction, off by default): when
// queued higher-priority work is blocked by saturation, sheddable requests
// (priority < 0) already sent to a model server are ended to make room —
// llm-d Router v0.10's reclamation controller (controller/internal/
// reclamation.go) and its default victim policies (sheddable-eviction-filter,
// priority-then-time-eviction-order-policy).
//
// Sizing: with saturation s, the blocked band's ceiling c and I requests in
// flight, each is worth s / I; n = max(1, ceil((s - c - pending) / (s / I))),
// at most 2 per decision and at most what is evictable. Pacing is
// stop-and-wait: no new decision while an issued eviction is unconfirmed (its
// stream has not ended; 10 s at most) or confirmed less than 500 ms ago (the
// freed capacity is not yet visible in the metrics).
import { IndexedHeap } from './heap.ts';
import type { FlowControlObserver } from './metrics.ts';

/** The in-flight side the controller needs. */
export interface InFlightEvictor {
  /** Requests in flight, and how many of them may be evicted. */
  stats(): { inFlight: number; evictable: number };
  /** The priority of the request evict() would end first; undefined: none can be. */
  peekVictimPriority(): number | undefined;
  /** End up to `n` requests in victim order, only ones with priority < `priorityBound`; their ids. */
  evict(n: number, priorityBound: number): string[];
}

interface Tracked {
  readonly id: string;
  readonly priority: number;
  readonly dispatchedAt: number;
  readonly seq: number;
  readonly evict: () => void;
  pos: number;
}

/**
 * The requests in flight, for eviction: the host tracks each dispatched
 * request (with how to end it) and untracks it when its response ends.
 * Sheddable ones (priority < 0) are the victims, lowest priority first and,
 * within a priority, the most recently dispatched first (least sunk work).
 */
export class InFlightRequests implements InFlightEvictor {
  #inFlight = 0;
  #seq = 0;
  readonly #victims = new IndexedHeap<Tracked>(
    (a, b) => (a.priority !== b.priority ? a.priority < b.priority : a.dispatchedAt !== b.dispatchedAt ? a.dispatchedAt > b.dispatchedAt : a.seq > b.seq),
    (t, pos) => {
      t.pos = pos;
    },
  );

  /** A request went to a model server; `evict` ends it. Call the returned function when it ends (once). */
  track(id: string, priority: number, dispatchedAt: number, evict: () => void): () => void {
    this.#inFlight++;
    const t: Tracked = { id, priority, dispatchedAt, seq: this.#seq++, evict, pos: -1 };
    if (priority < 0) this.#victims.push(t);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#inFlight--;
      if (t.pos >= 0) this.#victims.removeAt(t.pos);
    };
  }

  stats(): { inFlight: number; evictable: number } {
    return { inFlight: this.#inFlight, evictable: this.#victims.size };
  }

  peekVictimPriority(): number | undefined {
    return this.#victims.peek()?.priority;
  }

  evict(n: number, priorityBound: number): string[] {
    const out: string[] = [];
    while (out.length < n) {
      const t = this.#victims.peek();
      if (t === undefined || t.priority >= priorityBound) break;
      this.#victims.pop();
      out.push(t.id);
      try {
        t.evict();
      } catch {
        // The host's evict callback failing must not stop the decision; the request stays counted in flight.
      }
    }
    return out;
  }
}

export interface ReclamationOptions {
  maxRevocationsPerDecision?: number;
  /** After a confirmation, how long its debit keeps suppressing the next decision (ms). */
  confirmationGraceMs?: number;
  /** An unconfirmed eviction counts as confirmed after this long (ms). */
  confirmationTimeoutMs?: number;
}

export const DEFAULT_MAX_REVOCATIONS_PER_DECISION = 2;
export const DEFAULT_CONFIRMATION_GRACE_MS = 500;
export const DEFAULT_CONFIRMATION_TIMEOUT_MS = 10_000;

interface Revocation {
  readonly credit: number;
  readonly issuedAt: number;
}

export class Reclamation {
  readonly #evictor: InFlightEvictor;
  readonly #metrics: FlowControlObserver | undefined;
  readonly #max: number;
  readonly #graceMs: number;
  readonly #timeoutMs: number;
  readonly #outstanding = new Map<string, Revocation>();
  /** Confirmed debits still cooling: [credit, expiresAt]. At most maxRevocationsPerDecision long. */
  #cooling: { credit: number; expiresAt: number }[] = [];
  #pending = 0;

  constructor(evictor: InFlightEvictor, metrics: FlowControlObserver | undefined, opts: ReclamationOptions = {}) {
    this.#evictor = evictor;
    this.#metrics = metrics;
    this.#max = opts.maxRevocationsPerDecision ?? DEFAULT_MAX_REVOCATIONS_PER_DECISION;
    this.#graceMs = opts.confirmationGraceMs ?? DEFAULT_CONFIRMATION_GRACE_MS;
    this.#timeoutMs = opts.confirmationTimeoutMs ?? DEFAULT_CONFIRMATION_TIMEOUT_MS;
    if (!(this.#max >= 1)) throw new Error('maxRevocationsPerDecision must be at least 1');
  }

  get evictor(): InFlightEvictor {
    return this.#evictor;
  }

  /** Capacity debited for evictions not yet visible in the saturation signal. */
  get pending(): number {
    return this.#pending;
  }

  /** When the pacing gate may next open by itself (a timeout or a cooling debit ending); undefined: no time-driven change. */
  nextChange(): number | undefined {
    let at: number | undefined;
    for (const r of this.#outstanding.values()) at = Math.min(at ?? Infinity, r.issuedAt + this.#timeoutMs);
    for (const c of this.#cooling) at = Math.min(at ?? Infinity, c.expiresAt);
    return at;
  }

  /** May a new decision run? Retires timed-out evictions and ended debits first. */
  gateOpen(now: number): boolean {
    for (const [id, r] of this.#outstanding) {
      if (now - r.issuedAt < this.#timeoutMs) continue;
      this.#outstanding.delete(id);
      this.#cooling.push({ credit: r.credit, expiresAt: now + this.#graceMs });
      this.#metrics?.revocationEnded('timed_out', undefined);
    }
    if (this.#cooling.length) {
      const kept = this.#cooling.filter((c) => now < c.expiresAt);
      if (kept.length !== this.#cooling.length) {
        for (const c of this.#cooling) if (now >= c.expiresAt) this.#pending -= c.credit;
        if (this.#pending < 0) this.#pending = 0;
        this.#cooling = kept;
        this.#metrics?.pendingReclaim(this.#pending);
      }
    }
    return this.#outstanding.size === 0 && this.#cooling.length === 0;
  }

  /** One sizing decision: evict for the band of `demandPriority`, blocked at `ceiling` by `saturation`. Returns the ids evicted. */
  reclaim(saturation: number, ceiling: number, demandPriority: number, now: number): string[] {
    const { inFlight, evictable } = this.#evictor.stats();
    if (inFlight <= 0 || evictable <= 0) return [];
    const credit = saturation / inFlight;
    if (!(credit > 0) || !Number.isFinite(credit)) return [];
    const target = saturation - ceiling;
    const net = target - this.#pending;
    this.#metrics?.reclaimTarget(target);
    if (net < 0 || (net === 0 && this.#pending > 0)) return [];
    const n = Math.min(Math.max(1, Math.ceil(net / credit)), this.#max, evictable);
    const ids = this.#evictor.evict(n, demandPriority);
    for (const id of ids) {
      this.#outstanding.set(id, { credit, issuedAt: now });
      this.#pending += credit;
    }
    this.#metrics?.revocationsIssued(demandPriority, ids.length);
    this.#metrics?.pendingReclaim(this.#pending);
    return ids;
  }

  /** An evicted request's stream ended. Unknown ids (already timed out) are ignored. */
  confirm(id: string, now: number): boolean {
    const r = this.#outstanding.get(id);
    if (!r) return false;
    this.#outstanding.delete(id);
    this.#cooling.push({ credit: r.credit, expiresAt: now + this.#graceMs });
    this.#metrics?.revocationEnded('confirmed', (now - r.issuedAt) / 1000);
    return true;
  }
}
