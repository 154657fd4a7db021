// The flow controller: requests wait here, by priority band and flow, until
// the dispatch gate (the saturation detector, through the usage-limit
// policy's per-band ceilings) lets them go — llm-d Router v0.10's
// FlowController and its processor, on one event loop instead of a worker
// goroutine.
//
// - Dispatch decisions are event-driven: one on each arrival while others
//   wait, then one per event-loop turn while requests keep dispatching, and
//   one on each wake() (the host calls it when capacity frees or metrics
//   refresh). Nothing runs while nothing is queued; a closed gate waits for
//   the next wake().
// - A decision (llm-d's dispatch cycle): bands highest priority first; at the
//   first band whose ceiling the saturation reaches, stop (head-of-line
//   blocking, so lower bands never make a higher band's wait longer);
//   otherwise the band's fairness policy picks a flow, its ordering policy
//   the request.
// - Queue-wait budgets: defaultRequestTTL while the pool has endpoints,
//   noEndpointRequestTTL while it has none; each change of regime starts a
//   fresh budget, the longer of the two bounding the whole wait. One timer
//   over a deadline heap, never one per request.
// - A cancelled request (its AbortSignal) leaves its queue at once.
// - When nothing is queued and the gate is open, enqueue() answers
//   synchronously with a shared constant: no promise, no allocation.
import type { Logger } from '../log.ts';
import type { FlowControlConfig } from './config.ts';
import { Reclamation, type InFlightEvictor, type ReclamationOptions } from './eviction.ts';
import { IndexedHeap } from './heap.ts';
import type { FlowControlObserver } from './metrics.ts';
import {
  DISPATCHED,
  EVICTED_CANCELLED,
  EVICTED_DISPLACED,
  EVICTED_NO_ENDPOINTS,
  EVICTED_SHUTTING_DOWN,
  EVICTED_TTL,
  EVICTED_TTL_NO_ENDPOINTS,
  REJECTED_CANCELLED,
  REJECTED_CAPACITY,
  REJECTED_NO_ENDPOINTS,
  REJECTED_SHUTTING_DOWN,
} from './outcome.ts';
import { FlowQueue, FlowRegistry, QueueItem, type Band } from './registry.ts';
import type { DispatchGate, FlowOutcome, FlowRequest } from './types.ts';

/** Timer functions (injectable for tests); timers must not keep the process alive. */
export interface FlowTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Run `fn` on a later event-loop turn (after pending I/O and microtasks). */
  defer(fn: () => void): void;
}

const DEFAULT_TIMERS: FlowTimers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  defer: (fn) => {
    setImmediate(fn);
  },
};

/** Longest delay a Node timer takes; longer waits re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface FlowControllerDeps {
  readonly gate: DispatchGate;
  readonly metrics?: FlowControlObserver;
  readonly log?: Logger;
  /** Milliseconds; default performance.now(). Request receivedAt must be on the same clock. */
  readonly now?: () => number;
  readonly timers?: FlowTimers;
  /** In-flight requests to evict from (enableEviction); required when it is on. */
  readonly evictor?: InFlightEvictor;
  readonly eviction?: ReclamationOptions;
}

export interface FlowControlStats {
  /** Requests queued now, and their bytes. */
  readonly queued: number;
  readonly bytes: number;
  readonly bands: number;
  readonly flows: number;
  /** Whether the pool was empty at the last dispatch decision. */
  readonly poolEmpty: boolean;
}

export class FlowController {
  readonly #config: FlowControlConfig;
  readonly #gate: DispatchGate;
  readonly #metrics: FlowControlObserver | undefined;
  readonly #log: Logger | undefined;
  readonly #now: () => number;
  readonly #timers: FlowTimers;
  readonly #registry: FlowRegistry;
  readonly #reclaim: Reclamation | undefined;
  readonly #deadlines = new IndexedHeap<QueueItem>(
    (a, b) => (a.expiresAt !== b.expiresAt ? a.expiresAt < b.expiresAt : a.seq < b.seq),
    (item, pos) => {
      item.deadlinePos = pos;
    },
  );
  /** Reused by every decision: one ceiling per band, highest priority first. */
  #ceilings: number[] = [];
  #seq = 0;
  // The unavailability regime as last observed: whether the pool was empty, and since when.
  #poolEmpty = false;
  #regimeSince = Number.NEGATIVE_INFINITY;
  #ttlTimer: unknown = undefined;
  #ttlTimerAt = Number.POSITIVE_INFINITY;
  #gcTimer: unknown = undefined;
  #gcTimerAt = Number.POSITIVE_INFINITY;
  #evictionTimer: unknown = undefined;
  #scheduled = false;
  #closed = false;

  constructor(config: FlowControlConfig, deps: FlowControllerDeps) {
    this.#config = config;
    this.#gate = deps.gate;
    this.#metrics = deps.metrics;
    this.#log = deps.log;
    this.#now = deps.now ?? (() => performance.now());
    this.#timers = deps.timers ?? DEFAULT_TIMERS;
    const metrics = this.#metrics;
    this.#registry = new FlowRegistry(config, { flowCollected: (id, p) => metrics?.flowCollected(id, p) });
    if (config.enableEviction) {
      if (!deps.evictor) throw new Error('flowControl.enableEviction is on but the host gave the flow controller no in-flight evictor');
      this.#reclaim = new Reclamation(deps.evictor, this.#metrics, deps.eviction);
    }
  }

  get config(): FlowControlConfig {
    return this.#config;
  }

  stats(): FlowControlStats {
    const r = this.#registry;
    return { queued: r.length, bytes: r.byteSize, bands: r.bandCount, flows: r.flowCount, poolEmpty: this.#poolEmpty };
  }

  /** Bands present now, highest priority first. */
  priorities(): readonly number[] {
    return this.#registry.priorities;
  }

  /**
   * Admit `req`: synchronously when it is decided at once (dispatched with
   * nothing queued and the gate open, or rejected), else a promise that
   * settles — never rejects — with the outcome.
   */
  enqueue(req: FlowRequest): FlowOutcome | Promise<FlowOutcome> {
    const t0 = performance.now();
    const now = this.#now();
    if (this.#closed) return this.#answered(req, REJECTED_SHUTTING_DOWN, t0);
    if (req.signal?.aborted) return this.#answered(req, REJECTED_CANCELLED, t0);
    const reg = this.#registry;
    const band = reg.bandFor(req.priority, now);
    const flow = reg.flowFor(band, req.fairnessId, now);
    if (this.#gcTimer === undefined) this.#armGc(now);

    if (reg.length === 0) {
      // Nothing waits: this request alone is the decision (llm-d: enqueue, then a dispatch cycle).
      const saturation = this.#read(now);
      if (this.#admits(band.priority, saturation)) {
        band.fairness.dispatched?.(req, 0, now);
        return this.#answered(req, DISPATCHED, t0);
      }
    }

    const bytes = req.byteSize;
    if (!reg.bandFits(band, bytes)) return this.#answered(req, this.#poolEmpty ? REJECTED_NO_ENDPOINTS : REJECTED_CAPACITY, t0);
    const excess = reg.overallExcess(bytes);
    if ((excess.requests > 0 || excess.bytes > 0) && !this.#displace(band.priority, excess.requests, excess.bytes, now)) {
      return this.#answered(req, this.#poolEmpty ? REJECTED_NO_ENDPOINTS : REJECTED_CAPACITY, t0);
    }

    const item = new QueueItem(req, now, this.#config.defaultRequestTtlMs, this.#seq++);
    this.#queue(item, flow);
    this.#metrics?.enqueued(req, 'NotYetFinalized', (performance.now() - t0) / 1000);
    // With others waiting (or eviction to consider), decide now, as llm-d does on each arrival.
    if (reg.length > 1 || this.#reclaim) {
      if (this.#cycle() && reg.length > 0) this.wake();
    }
    if (item.outcome) return item.outcome;
    this.#armTtl(now);
    return new Promise<FlowOutcome>((resolve) => {
      item.resolve = resolve;
    });
  }

  /**
   * Something changed that may let queued requests go: capacity freed, new
   * metrics, the pool changed. Coalesced; free while nothing is queued.
   */
  wake(): void {
    if (this.#closed || this.#scheduled || this.#registry.length === 0) return;
    this.#scheduled = true;
    this.#timers.defer(this.#run);
  }

  /**
   * Run up to `max` dispatch decisions now, synchronously; returns how many
   * requests were dispatched. For hosts that know capacity is free, and tests.
   */
  dispatchNow(max = Number.POSITIVE_INFINITY): number {
    let n = 0;
    while (n < max && !this.#closed && this.#cycle()) n++;
    return n;
  }

  /**
   * A dispatched request is over (its response ended, or it failed after
   * dispatch): its band's fairness policy learns the tokens it used
   * (program-aware fairness), and capacity may have freed.
   */
  completed(fairnessId: string, priority: number, promptTokens = 0, completionTokens = 0): void {
    const band = this.#registry.band(priority);
    const fairness = band?.fairness;
    if (fairness?.completed) {
      try {
        fairness.completed(fairnessId, promptTokens, completionTokens, this.#now());
      } catch (e) {
        this.#log?.error({ err: e, policy: fairness.name }, 'fairness policy failed on completion');
      }
    }
    this.wake();
  }

  /** The priorities InferenceObjectives name: their bands exist and are never collected while named. */
  setDesiredPriorities(priorities: Iterable<number>): void {
    const now = this.#now();
    this.#registry.setDesired(priorities, now);
    this.#armGc(now);
  }

  /** An evicted request's stream ended (enableEviction). */
  evictionConfirmed(requestId: string): void {
    if (this.#reclaim?.confirm(requestId, this.#now())) this.#armEvictionTimer();
  }

  /** End every queued request (503, shutting down) and refuse new ones. Idempotent. */
  shutdown(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of [this.#ttlTimer, this.#gcTimer, this.#evictionTimer]) if (t !== undefined) this.#timers.clearTimeout(t);
    this.#ttlTimer = this.#gcTimer = this.#evictionTimer = undefined;
    const now = this.#now();
    const items = [...this.#registry.items()];
    for (const item of items) {
      this.#dequeue(item, now);
      this.#finish(item, EVICTED_SHUTTING_DOWN, now);
    }
    if (items.length) this.#log?.info({ evicted: items.length }, 'flow control shut down: queued requests finalised');
  }

  readonly #run = (): void => {
    this.#scheduled = false;
    if (this.#closed) return;
    if (this.#cycle() && this.#registry.length > 0) this.wake();
  };

  /** Read the gate: saturation, and the regime (pool empty or not). */
  #read(now: number): number {
    const saturation = this.#gate.saturation();
    this.#observeRegime(this.#gate.poolEmpty(), now);
    this.#metrics?.poolSaturation(saturation);
    return saturation;
  }

  #computeCeilings(saturation: number): number[] {
    const priorities = this.#registry.priorities;
    const n = priorities.length;
    if (this.#ceilings.length !== n) this.#ceilings = new Array<number>(n);
    const ceilings = this.#ceilings;
    // Pre-filled: a ceiling the policy does not write fails open.
    ceilings.fill(1);
    try {
      this.#config.usageLimit.computeLimit(saturation, priorities, ceilings);
    } catch (e) {
      this.#log?.error({ err: e, policy: this.#config.usageLimit.name }, 'usage limit policy failed; no band is held back this time');
      ceilings.fill(1);
    }
    return ceilings;
  }

  /** Would a decision with only this band's request queued dispatch it? */
  #admits(priority: number, saturation: number): boolean {
    const priorities = this.#registry.priorities;
    const ceilings = this.#computeCeilings(saturation);
    for (let i = 0; i < priorities.length; i++) {
      if (saturation >= ceilings[i]) return false;
      if (priorities[i] === priority) return true;
    }
    return false;
  }

  /** One dispatch decision; true when a request was dispatched. */
  #cycle(): boolean {
    const reg = this.#registry;
    if (reg.length === 0) return false;
    const t0 = performance.now();
    const now = this.#now();
    try {
      const saturation = this.#read(now);
      const priorities = reg.priorities;
      const ceilings = this.#computeCeilings(saturation);
      for (let i = 0; i < priorities.length; i++) {
        if (saturation >= ceilings[i]) {
          // Head-of-line blocking: lower bands must not add load while this one is held.
          if (this.#reclaim) this.#maybeReclaim(saturation, priorities, ceilings, i, now);
          return false;
        }
        const band = reg.band(priorities[i])!;
        if (band.length === 0) continue;
        let picked;
        try {
          picked = band.fairness.pick(band, now);
        } catch (e) {
          this.#log?.error({ err: e, policy: band.fairness.name, priority: band.priority }, 'fairness policy failed; skipping the band this time');
          continue;
        }
        // Only one of this band's own flows can be dispatched from.
        if (!(picked instanceof FlowQueue) || picked.band !== band) continue;
        const item = picked.peek();
        if (item === undefined) continue;
        this.#dispatch(item, band, now);
        return true;
      }
      return false;
    } finally {
      this.#metrics?.dispatchCycle((performance.now() - t0) / 1000);
    }
  }

  #dispatch(item: QueueItem, band: Band, now: number): void {
    this.#dequeue(item, now);
    try {
      band.fairness.dispatched?.(item.request, now - item.enqueuedAt, now);
    } catch (e) {
      this.#log?.error({ err: e, policy: band.fairness.name }, 'fairness policy failed on dispatch');
    }
    this.#finish(item, DISPATCHED, now);
  }

  #maybeReclaim(saturation: number, priorities: readonly number[], ceilings: readonly number[], from: number, now: number): void {
    const reclaim = this.#reclaim!;
    if (!reclaim.gateOpen(now)) return;
    const victim = reclaim.evictor.peekVictimPriority();
    if (victim === undefined) return;
    for (let j = from; j < priorities.length; j++) {
      // Only demand strictly above the victims' priority counts (no same-band churn).
      if (priorities[j] <= victim) return;
      // A zero ceiling never opens, however much is reclaimed; an open band needs nothing.
      if (ceilings[j] <= 0 || saturation < ceilings[j]) continue;
      if (this.#registry.band(priorities[j])!.length === 0) continue;
      const ids = reclaim.reclaim(saturation, ceilings[j], priorities[j], now);
      if (ids.length) {
        this.#log?.debug({ evicted: ids.length, priority: priorities[j], saturation, ceiling: ceilings[j] }, 'in-flight sheddable requests evicted for queued higher-priority work');
        this.#armEvictionTimer();
      }
      return;
    }
  }

  /** Wake when the eviction pacing gate may open by itself (a confirmation timeout, a grace ending). */
  #armEvictionTimer(): void {
    const at = this.#reclaim?.nextChange();
    if (this.#evictionTimer !== undefined) this.#timers.clearTimeout(this.#evictionTimer);
    this.#evictionTimer = undefined;
    if (at === undefined || this.#closed) return;
    this.#evictionTimer = this.#timers.setTimeout(
      () => {
        this.#evictionTimer = undefined;
        if (this.#closed) return;
        // Retire what timed out or cooled down, so the next change lies ahead (no timer loop).
        this.#reclaim?.gateOpen(this.#now());
        // Already on its own event-loop turn: decide now.
        if (this.#cycle() && this.#registry.length > 0) this.wake();
        if (this.#evictionTimer === undefined && this.#reclaim?.nextChange() !== undefined) this.#armEvictionTimer();
      },
      Math.min(MAX_TIMER_MS, Math.max(0, at - this.#now())),
    );
  }

  /**
   * Make room across all bands (maxRequests/maxBytes of the whole section) by
   * pushing out requests of lower-priority bands, lowest band first; in a
   * band, from its longest flow, the requests its ordering would serve last.
   * Nothing is pushed out unless enough can be.
   */
  #displace(priority: number, requests: number, bytes: number, now: number): boolean {
    const reg = this.#registry;
    const lower: Band[] = [];
    let haveRequests = 0;
    let haveBytes = 0;
    const priorities = reg.priorities;
    for (let i = priorities.length - 1; i >= 0 && priorities[i] < priority; i--) {
      const b = reg.band(priorities[i])!;
      if (b.length === 0) continue;
      lower.push(b);
      haveRequests += b.length;
      haveBytes += b.byteSize;
    }
    if (haveRequests < requests || haveBytes < bytes) return false;
    let needRequests = requests;
    let needBytes = bytes;
    for (const band of lower) {
      const flows = [...band.activeFlows].sort((a, b) => b.length - a.length || (a.fairnessId < b.fairnessId ? 1 : -1));
      for (const flow of flows) {
        const less = band.ordering.less.bind(band.ordering);
        const victims = [...flow.heap.items()].sort((a, b) => (less(b, a) ? -1 : less(a, b) ? 1 : 0));
        for (const victim of victims) {
          if (needRequests <= 0 && needBytes <= 0) return true;
          needRequests--;
          needBytes -= victim.request.byteSize;
          this.#dequeue(victim, now);
          this.#finish(victim, EVICTED_DISPLACED, now);
        }
      }
    }
    return needRequests <= 0 && needBytes <= 0;
  }

  #queue(item: QueueItem, flow: FlowQueue): void {
    this.#registry.add(item, flow);
    this.#metrics?.queued(item.request);
    item.expiresAt = this.#expiry(item);
    if (item.expiresAt !== Number.POSITIVE_INFINITY) this.#deadlines.push(item);
    const signal = item.request.signal;
    if (signal) {
      item.onAbort = () => this.#cancelled(item);
      signal.addEventListener('abort', item.onAbort, { once: true });
    }
  }

  /** Take a queued request out of every index. */
  #dequeue(item: QueueItem, now: number): void {
    if (item.pos < 0) return;
    this.#registry.remove(item, now);
    if (item.deadlinePos >= 0) this.#deadlines.removeAt(item.deadlinePos);
    if (item.onAbort) {
      item.request.signal?.removeEventListener('abort', item.onAbort);
      item.onAbort = undefined;
    }
    this.#metrics?.unqueued(item.request);
    if (this.#registry.length === 0 && this.#ttlTimer !== undefined) {
      // Nothing waits any more: no deadline to keep a timer for.
      this.#timers.clearTimeout(this.#ttlTimer);
      this.#ttlTimer = undefined;
      this.#ttlTimerAt = Number.POSITIVE_INFINITY;
    }
    if (this.#gcTimer === undefined) this.#armGc(now);
  }

  #finish(item: QueueItem, outcome: FlowOutcome, now: number): void {
    if (item.outcome) return;
    item.outcome = outcome;
    this.#metrics?.finished(item.request, outcome.outcome, Math.max(0, now - item.enqueuedAt) / 1000);
    const resolve = item.resolve;
    item.resolve = undefined;
    resolve?.(outcome);
  }

  /** A request decided without being queued. */
  #answered(req: FlowRequest, outcome: FlowOutcome, t0: number): FlowOutcome {
    const m = this.#metrics;
    if (m) {
      m.finished(req, outcome.outcome, 0);
      m.enqueued(req, outcome.outcome, (performance.now() - t0) / 1000);
    }
    return outcome;
  }

  #cancelled(item: QueueItem): void {
    if (item.outcome) return;
    const now = this.#now();
    this.#dequeue(item, now);
    this.#finish(item, EVICTED_CANCELLED, now);
    this.#armTtl(now);
  }

  // --- Queue-wait budgets ---------------------------------------------------

  #observeRegime(empty: boolean, now: number): void {
    if (empty === this.#poolEmpty) return;
    this.#poolEmpty = empty;
    this.#regimeSince = now;
    if (this.#registry.length === 0) return;
    // Every waiting request's budget changes: re-index them all (regime changes are rare).
    this.#deadlines.drain();
    for (const item of this.#registry.items()) {
      item.expiresAt = this.#expiry(item);
      if (item.expiresAt !== Number.POSITIVE_INFINITY) this.#deadlines.push(item);
    }
    this.#armTtl(now);
  }

  /** The budget in force runs from the later of enqueue and the last regime change. */
  #regimeExpiry(item: QueueItem): number {
    const budget = this.#poolEmpty ? this.#config.noEndpointRequestTtlMs : item.ttl;
    return budget > 0 ? Math.max(item.enqueuedAt, this.#regimeSince) + budget : Number.POSITIVE_INFINITY;
  }

  /** The whole wait never exceeds the longer budget (when both are on). */
  #backstop(item: QueueItem): number {
    const noEp = this.#config.noEndpointRequestTtlMs;
    return item.ttl > 0 && noEp > 0 ? item.enqueuedAt + Math.max(item.ttl, noEp) : Number.POSITIVE_INFINITY;
  }

  #expiry(item: QueueItem): number {
    return Math.min(this.#regimeExpiry(item), this.#backstop(item));
  }

  #expiredOutcome(item: QueueItem): FlowOutcome {
    if (this.#regimeExpiry(item) <= this.#backstop(item)) return this.#poolEmpty ? EVICTED_NO_ENDPOINTS : EVICTED_TTL;
    return this.#poolEmpty ? EVICTED_TTL_NO_ENDPOINTS : EVICTED_TTL;
  }

  readonly #onTtl = (): void => {
    this.#ttlTimer = undefined;
    this.#ttlTimerAt = Number.POSITIVE_INFINITY;
    if (this.#closed) return;
    const now = this.#now();
    for (let top = this.#deadlines.peek(); top !== undefined && top.expiresAt <= now; top = this.#deadlines.peek()) {
      const outcome = this.#expiredOutcome(top);
      this.#dequeue(top, now);
      this.#finish(top, outcome, now);
    }
    this.#armTtl(now);
  };

  /** One timer, for the earliest deadline; re-armed only when that moves earlier or the timer fired. */
  #armTtl(now: number): void {
    const top = this.#deadlines.peek();
    if (top === undefined) {
      if (this.#ttlTimer !== undefined) this.#timers.clearTimeout(this.#ttlTimer);
      this.#ttlTimer = undefined;
      this.#ttlTimerAt = Number.POSITIVE_INFINITY;
      return;
    }
    if (this.#ttlTimer !== undefined && this.#ttlTimerAt <= top.expiresAt) return;
    if (this.#ttlTimer !== undefined) this.#timers.clearTimeout(this.#ttlTimer);
    this.#ttlTimerAt = top.expiresAt;
    this.#ttlTimer = this.#timers.setTimeout(this.#onTtl, Math.min(MAX_TIMER_MS, Math.max(0, top.expiresAt - now)));
  }

  // --- Garbage collection of idle flows and bands --------------------------

  readonly #onGc = (): void => {
    this.#gcTimer = undefined;
    this.#gcTimerAt = Number.POSITIVE_INFINITY;
    if (this.#closed) return;
    const now = this.#now();
    this.#registry.collect(now);
    this.#armGc(now);
  };

  #armGc(now: number): void {
    if (this.#closed) return;
    const at = this.#registry.nextCollection();
    if (at === undefined) return;
    if (this.#gcTimer !== undefined && this.#gcTimerAt <= at) return;
    if (this.#gcTimer !== undefined) this.#timers.clearTimeout(this.#gcTimer);
    this.#gcTimerAt = at;
    this.#gcTimer = this.#timers.setTimeout(this.#onGc, Math.min(MAX_TIMER_MS, Math.max(0, at - now)));
  }
}
