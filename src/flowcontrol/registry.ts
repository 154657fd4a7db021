// The queues: priority bands → flows (one per fairness id) → requests in the
// band's ordering. Keeps the counts and bytes per flow, per band and overall
// that capacity is checked against, the band's non-empty flows in id order
// for its fairness policy, and which flows and bands have gone idle so they
// can be forgotten (llm-d's FlowRegistry, with its garbage collection). Pure
// data: no timers, the clock is passed in.
import type { BandConfig, BandPolicy, FlowControlConfig } from './config.ts';
import { IndexedHeap } from './heap.ts';
import type { BandView, FairnessPolicy, FlowOutcome, FlowQueueView, FlowRequest, OrderingPolicy, QueuedRequest } from './types.ts';

/** A request in flow control: queued, or about to be. */
export class QueueItem implements QueuedRequest {
  readonly request: FlowRequest;
  readonly enqueuedAt: number;
  readonly ttl: number;
  readonly seq: number;
  flow: FlowQueue | undefined = undefined;
  /** Position in the flow's heap; -1 when not queued. */
  pos = -1;
  /** Position in the controller's deadline index; -1 when not in it. */
  deadlinePos = -1;
  /** When it expires (controller clock), given the current unavailability regime. */
  expiresAt = Number.POSITIVE_INFINITY;
  /** Set once: the outcome it ended with. */
  outcome: FlowOutcome | undefined = undefined;
  /** The waiting caller, once enqueue() returned a promise. */
  resolve: ((o: FlowOutcome) => void) | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;

  constructor(request: FlowRequest, enqueuedAt: number, ttl: number, seq: number) {
    this.request = request;
    this.enqueuedAt = enqueuedAt;
    this.ttl = ttl;
    this.seq = seq;
  }
}

export class FlowQueue implements FlowQueueView {
  readonly fairnessId: string;
  readonly band: Band;
  readonly heap: IndexedHeap<QueueItem>;
  byteSize = 0;
  /** When it last became empty or was last used while empty; in the registry's idle list while empty. */
  idleSince = 0;

  constructor(band: Band, fairnessId: string) {
    this.band = band;
    this.fairnessId = fairnessId;
    const ordering = band.ordering;
    this.heap = new IndexedHeap<QueueItem>(
      (a, b) => ordering.less(a, b),
      (item, pos) => {
        item.pos = pos;
      },
    );
  }

  get priority(): number {
    return this.band.priority;
  }

  get length(): number {
    return this.heap.size;
  }

  peek(): QueueItem | undefined {
    return this.heap.peek();
  }
}

export class Band implements BandView {
  readonly priority: number;
  readonly maxRequests: number;
  readonly maxBytes: number;
  readonly ordering: OrderingPolicy;
  readonly fairness: FairnessPolicy;
  readonly fairnessState: unknown;
  readonly flows = new Map<string, FlowQueue>();
  /** Flows with queued requests, sorted by fairness id. */
  readonly activeFlows: FlowQueue[] = [];
  length = 0;
  byteSize = 0;
  /** Configured, or an InferenceObjective's priority: never collected. */
  configured: boolean;
  desired = false;
  /** When its last flow was forgotten; in the registry's idle list while it has no flows. */
  idleSince = 0;

  constructor(priority: number, policy: BandPolicy, configured: boolean) {
    this.priority = priority;
    this.maxRequests = policy.maxRequests;
    this.maxBytes = policy.maxBytes;
    this.ordering = policy.ordering;
    this.fairness = policy.fairness;
    this.fairnessState = policy.fairness.newState();
    this.configured = configured;
  }

  get protected(): boolean {
    return this.configured || this.desired;
  }

  #indexOf(id: string): number {
    const flows = this.activeFlows;
    let lo = 0;
    let hi = flows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (flows[mid].fairnessId < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  activate(flow: FlowQueue): void {
    this.activeFlows.splice(this.#indexOf(flow.fairnessId), 0, flow);
  }

  deactivate(flow: FlowQueue): void {
    const i = this.#indexOf(flow.fairnessId);
    if (this.activeFlows[i] === flow) this.activeFlows.splice(i, 1);
  }
}

export interface RegistryEvents {
  /** A flow was forgotten: its metric series can go. */
  flowCollected?(fairnessId: string, priority: number): void;
}

/** Empty flows kept at most; past it the longest-idle ones are forgotten early. */
export const MAX_IDLE_FLOWS = 10_000;

export class FlowRegistry {
  readonly #config: FlowControlConfig;
  readonly #bands = new Map<number, Band>();
  readonly #events: RegistryEvents;
  readonly #maxIdleFlows: number;
  /** Priorities, highest first. */
  #priorities: number[] = [];
  // Insertion-ordered: the first entry is the longest idle.
  readonly #idleFlows = new Set<FlowQueue>();
  readonly #idleBands = new Set<Band>();
  length = 0;
  byteSize = 0;

  constructor(config: FlowControlConfig, events: RegistryEvents = {}, maxIdleFlows = MAX_IDLE_FLOWS) {
    this.#config = config;
    this.#events = events;
    this.#maxIdleFlows = maxIdleFlows;
    for (const b of config.bands.values()) this.#addBand(b.priority, b, true);
  }

  /** Every band's priority, highest first. */
  get priorities(): readonly number[] {
    return this.#priorities;
  }

  band(priority: number): Band | undefined {
    return this.#bands.get(priority);
  }

  get bandCount(): number {
    return this.#bands.size;
  }

  get flowCount(): number {
    let n = 0;
    for (const b of this.#bands.values()) n += b.flows.size;
    return n;
  }

  /** The band for `priority`, provisioned from the default (or default negative) band template if new. */
  bandFor(priority: number, now: number): Band {
    let b = this.#bands.get(priority);
    if (!b) {
      const template: BandPolicy = priority < 0 && this.#config.defaultNegativeBand ? this.#config.defaultNegativeBand : this.#config.defaultBand;
      b = this.#addBand(priority, template, false);
      b.idleSince = now;
      this.#idleBands.add(b);
    }
    return b;
  }

  /** The flow of `fairnessId` in `band`, made if new; marks it used now. */
  flowFor(band: Band, fairnessId: string, now: number): FlowQueue {
    let f = band.flows.get(fairnessId);
    if (!f) {
      f = new FlowQueue(band, fairnessId);
      band.flows.set(fairnessId, f);
      if (band.flows.size === 1) this.#idleBands.delete(band);
    }
    if (f.length === 0) {
      // Most recently used: to the end of the idle list.
      this.#idleFlows.delete(f);
      f.idleSince = now;
      this.#idleFlows.add(f);
      if (this.#idleFlows.size > this.#maxIdleFlows) this.#collectOldestFlow();
    }
    return f;
  }

  /** Would one more request of `bytes` fit its band? */
  bandFits(band: Band, bytes: number): boolean {
    return band.length + 1 <= band.maxRequests && band.byteSize + bytes <= band.maxBytes;
  }

  /** Requests and bytes over the overall limits if one more of `bytes` were queued (0, 0: it fits). */
  overallExcess(bytes: number): { requests: number; bytes: number } {
    const c = this.#config;
    return {
      requests: c.maxRequests > 0 ? Math.max(0, this.length + 1 - c.maxRequests) : 0,
      bytes: c.maxBytes > 0 ? Math.max(0, this.byteSize + bytes - c.maxBytes) : 0,
    };
  }

  add(item: QueueItem, flow: FlowQueue): void {
    const bytes = item.request.byteSize;
    const band = flow.band;
    if (flow.length === 0) {
      this.#idleFlows.delete(flow);
      band.activate(flow);
    }
    item.flow = flow;
    flow.heap.push(item);
    flow.byteSize += bytes;
    band.length++;
    band.byteSize += bytes;
    this.length++;
    this.byteSize += bytes;
  }

  remove(item: QueueItem, now: number): void {
    const flow = item.flow;
    if (!flow || item.pos < 0) return;
    const bytes = item.request.byteSize;
    const band = flow.band;
    flow.heap.removeAt(item.pos);
    flow.byteSize -= bytes;
    band.length--;
    band.byteSize -= bytes;
    this.length--;
    this.byteSize -= bytes;
    if (flow.length === 0) {
      band.deactivate(flow);
      flow.idleSince = now;
      this.#idleFlows.add(flow);
      if (this.#idleFlows.size > this.#maxIdleFlows) this.#collectOldestFlow();
    }
  }

  /** Every queued request (for a regime change or shutdown). */
  *items(): IterableIterator<QueueItem> {
    for (const b of this.#bands.values()) for (const f of b.activeFlows) yield* f.heap.items();
  }

  /**
   * The bands InferenceObjectives name: provisioned now and never collected
   * while named. Bands no longer named (and not configured) go at once when
   * they hold no flows, else once idle.
   */
  setDesired(priorities: Iterable<number>, now: number): void {
    const want = new Set(priorities);
    for (const p of want) this.bandFor(p, now).desired = true;
    for (const b of [...this.#bands.values()]) {
      if (want.has(b.priority) || !b.desired) continue;
      b.desired = false;
      if (!b.configured && b.flows.size === 0) this.#removeBand(b);
    }
    for (const b of this.#bands.values()) if (b.protected) this.#idleBands.delete(b);
  }

  /** Forget flows idle for flowGcMs and unprotected bands without flows for bandGcMs. */
  collect(now: number): void {
    for (const f of this.#idleFlows) {
      if (now - f.idleSince < this.#config.flowGcMs) break;
      this.#collectFlow(f, now);
    }
    for (const b of this.#idleBands) {
      if (now - b.idleSince < this.#config.bandGcMs) break;
      if (b.protected || b.flows.size > 0) {
        this.#idleBands.delete(b);
        continue;
      }
      this.#removeBand(b);
    }
  }

  /** When collect() next has something to do; undefined: nothing is idle. */
  nextCollection(): number | undefined {
    let at: number | undefined;
    for (const f of this.#idleFlows) {
      at = f.idleSince + this.#config.flowGcMs;
      break;
    }
    for (const b of this.#idleBands) {
      const t = b.idleSince + this.#config.bandGcMs;
      if (at === undefined || t < at) at = t;
      break;
    }
    return at;
  }

  #collectOldestFlow(): void {
    for (const f of this.#idleFlows) {
      this.#collectFlow(f, f.idleSince);
      return;
    }
  }

  #collectFlow(f: FlowQueue, now: number): void {
    this.#idleFlows.delete(f);
    const band = f.band;
    band.flows.delete(f.fairnessId);
    this.#events.flowCollected?.(f.fairnessId, band.priority);
    if (band.flows.size === 0 && !band.protected) {
      band.idleSince = now;
      this.#idleBands.add(band);
    }
  }

  #addBand(priority: number, policy: BandPolicy | BandConfig, configured: boolean): Band {
    const b = new Band(priority, policy, configured);
    this.#bands.set(priority, b);
    this.#priorities = [...this.#bands.keys()].sort((x, y) => y - x);
    return b;
  }

  #removeBand(b: Band): void {
    this.#bands.delete(b.priority);
    this.#idleBands.delete(b);
    this.#priorities = this.#priorities.filter((p) => p !== b.priority);
  }
}
