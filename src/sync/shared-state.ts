// One routing thread's side of shared routing state. Plugins and the director
// report what this thread learns (prefix blocks recorded, load charged,
// sessions bound); it is batched and sent through a transport (other worker
// threads of the process, or other replicas through Redis). What the others
// send is applied to this thread's own copies: lookups stay local, with no
// lock and no network on the request path.
//
// Load is kept per origin: an endpoint's `inFlight` / `inFlightTokens` /
// `dispatched` are this thread's own counts plus the sums of the other
// origins' latest reports. An origin that goes silent for `originTimeoutMs`
// (a replica that died) or says it is gone (a worker that exited) has its load
// removed; its dispatch counts stay, so `dispatched` never goes backwards.
import type { Logger } from '../log.ts';
import type { Endpoint } from '../pool/endpoint.ts';
import type { EndpointPool, PoolChange } from '../pool/datastore.ts';
import { splitHashes, type BlockHashes } from '../prefix/hash.ts';
import { invalidBatch, type LoadRecord, type PrefixRecord, type SessionRecord, type SyncBatch, type SyncTransport } from './batch.ts';

export interface SharedStateOptions {
  /** This thread's origin id (`<replica>/<worker>`). */
  origin: string;
  /** Batches go out at most this often (0: at the end of the current turn of the event loop). */
  flushMs: number;
  /** Full load report (heartbeat) interval. */
  heartbeatMs?: number;
  /** An origin not heard from for this long has its load dropped. */
  originTimeoutMs?: number;
}

type Load = { inFlight: number; tokens: number; dispatched: number };
const MAX_ORIGINS = 1024;
const ZERO: Load = { inFlight: 0, tokens: 0, dispatched: 0 };

/** What a plugin gives to receive the others' prefix records and session bindings. */
export type PrefixApply = (endpoint: Endpoint, hashes: BlockHashes) => void;
export type SessionApply = (session: string, endpoint: Endpoint) => void;

export class SharedState {
  readonly origin: string;
  readonly #transport: SyncTransport;
  readonly #pool: EndpointPool;
  readonly #log: Logger;
  readonly #flushMs: number;
  readonly #timeoutMs: number;
  readonly #prefixApply = new Map<string, PrefixApply>();
  readonly #sessionApply = new Map<string, SessionApply>();
  // Outgoing.
  #prefix: PrefixRecord[] = [];
  #sessions: SessionRecord[] = [];
  readonly #dirty = new Set<Endpoint>();
  #scheduled = false;
  #timer: NodeJS.Timeout | undefined;
  // Incoming load: per origin, its latest report per endpoint key, and when it was last heard.
  readonly #origins = new Map<string, { seen: number; load: Map<string, Load> }>();
  /** Sum over the other origins per endpoint key (what is added to the endpoint's own counts). */
  readonly #remote = new Map<string, Load>();
  readonly #heartbeat: NodeJS.Timeout;
  readonly #onPool = (c: PoolChange) => this.#poolChanged(c);
  #rejected = 0;
  #closed = false;

  constructor(transport: SyncTransport, pool: EndpointPool, log: Logger, opts: SharedStateOptions) {
    this.origin = opts.origin;
    this.#transport = transport;
    this.#pool = pool;
    this.#log = log;
    this.#flushMs = opts.flushMs;
    this.#timeoutMs = opts.originTimeoutMs ?? 5000;
    transport.onBatch = (b) => this.apply(b);
    pool.on('change', this.#onPool);
    const beat = opts.heartbeatMs ?? 1000;
    this.#heartbeat = setInterval(() => {
      this.#send(true);
      this.#expire(Date.now());
    }, beat).unref();
  }

  /**
   * Told after the others' load was applied (their requests started or
   * ended): flow control's gate may open (the concurrency detector reads the
   * fleet's in-flight counts).
   */
  onLoadApplied: (() => void) | undefined;

  /** A plugin (by its config name) takes the others' prefix records. */
  onPrefix(plugin: string, apply: PrefixApply): void {
    this.#prefixApply.set(plugin, apply);
  }

  /** A plugin (by its config name) takes the others' session bindings. */
  onSession(plugin: string, apply: SessionApply): void {
    this.#sessionApply.set(plugin, apply);
  }

  /** This thread recorded blocks for `endpoint` in plugin `plugin`'s prefix index: (lo, hi) word pairs. */
  prefixAdded(plugin: string, endpoint: string, words: Uint32Array): void {
    if (words.length === 0) return;
    this.#prefix.push({ plugin, endpoint, words });
    this.#schedule();
  }

  /** This thread bound a session to an endpoint. */
  sessionBound(plugin: string, session: string, endpoint: string): void {
    this.#sessions.push({ plugin, session, endpoint });
    this.#schedule();
  }

  /** This thread's load on `ep` changed (charge, release, dispatch). */
  loadChanged(ep: Endpoint): void {
    this.#dirty.add(ep);
    this.#schedule();
  }

  /** Apply a batch from another origin (checked first: it may come from the network). */
  apply(b: SyncBatch): void {
    if (this.#closed || b.origin === this.origin) return;
    const why = invalidBatch(b);
    if (why) {
      this.#rejected++;
      if (this.#rejected === 1 || this.#rejected % 1000 === 0) this.#log.warn({ transport: this.#transport.name, why, rejected: this.#rejected }, 'shared state: a batch was not applied');
      return;
    }
    if (b.gone) {
      this.#dropOrigin(b.origin);
      this.onLoadApplied?.();
      return;
    }
    for (const r of b.prefix ?? []) {
      const apply = this.#prefixApply.get(r.plugin);
      const ep = apply && this.#pool.get(r.endpoint);
      if (ep) apply!(ep, splitHashes(r.words));
    }
    for (const r of b.sessions ?? []) {
      const apply = this.#sessionApply.get(r.plugin);
      const ep = apply && this.#pool.get(r.endpoint);
      if (ep) apply!(r.session, ep);
    }
    // Liveness is judged by local receive time (replicas' clocks may differ); replayed history carries no load.
    if (b.load) {
      this.#applyLoad(b.origin, b.load, b.full === true);
      this.onLoadApplied?.();
    }
  }

  /** Load this thread charged itself on `ep` (its counts minus the others'). */
  ownLoad(ep: Endpoint): Load {
    const r = this.#remote.get(ep.key) ?? ZERO;
    return { inFlight: Math.max(0, ep.inFlight - r.inFlight), tokens: Math.max(0, ep.inFlightTokens - r.tokens), dispatched: Math.max(0, ep.dispatched - r.dispatched) };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#send(false);
    this.#closed = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#timer);
    this.#pool.off('change', this.#onPool);
    await this.#transport.close();
  }

  #schedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    if (this.#flushMs > 0) this.#timer = setTimeout(() => this.#send(false), this.#flushMs);
    else setImmediate(() => this.#send(false));
  }

  #send(full: boolean): void {
    this.#scheduled = false;
    if (this.#closed) return;
    const eps = full ? this.#pool.list().filter((e) => e.inFlight > 0 || e.dispatched > 0) : [...this.#dirty];
    this.#dirty.clear();
    const load: LoadRecord[] = [];
    for (const ep of eps) {
      const own = this.ownLoad(ep);
      if (full && own.inFlight === 0 && own.dispatched === 0) continue;
      load.push({ endpoint: ep.key, inFlight: own.inFlight, tokens: own.tokens, dispatched: own.dispatched });
    }
    if (!full && load.length === 0 && this.#prefix.length === 0 && this.#sessions.length === 0) return;
    const batch: SyncBatch = {
      origin: this.origin,
      at: Date.now(),
      ...(this.#prefix.length ? { prefix: this.#prefix } : {}),
      ...(this.#sessions.length ? { sessions: this.#sessions } : {}),
      load,
      ...(full ? { full: true } : {}),
    };
    this.#prefix = [];
    this.#sessions = [];
    this.#transport.send(batch);
  }

  #applyLoad(origin: string, records: readonly LoadRecord[], full: boolean): void {
    let o = this.#origins.get(origin);
    if (!o) {
      // Origins are replicas × workers: a few dozen. Past the cap a new one is not counted.
      if (this.#origins.size >= MAX_ORIGINS) return;
      o = { seen: 0, load: new Map() };
      this.#origins.set(origin, o);
    }
    o.seen = Date.now();
    const next = full ? new Map<string, Load>() : o.load;
    for (const r of records) {
      const prev = o.load.get(r.endpoint) ?? ZERO;
      // dispatch counts never go down (a restarted origin is a new origin).
      const v = { inFlight: r.inFlight, tokens: r.tokens, dispatched: Math.max(prev.dispatched, r.dispatched) };
      this.#shift(r.endpoint, prev, v);
      next.set(r.endpoint, v);
    }
    if (full) {
      // Endpoints the report leaves out hold none of this origin's requests now.
      for (const [key, prev] of o.load) {
        if (next.has(key)) continue;
        const idle = { inFlight: 0, tokens: 0, dispatched: prev.dispatched };
        this.#shift(key, prev, idle);
        if (idle.dispatched > 0) next.set(key, idle);
      }
      o.load = next;
    }
    // A peer cannot grow this map past the pool: keys not in the pool are kept only while reported.
    if (o.load.size > 4 * Math.max(64, this.#pool.list().length)) this.#dropOrigin(origin);
  }

  /** Move the remote sum for `key` from `prev` to `next`, and the endpoint's counts with it. */
  #shift(key: string, prev: Load, next: Load): void {
    const d = { inFlight: next.inFlight - prev.inFlight, tokens: next.tokens - prev.tokens, dispatched: next.dispatched - prev.dispatched };
    if (d.inFlight === 0 && d.tokens === 0 && d.dispatched === 0) return;
    const sum = this.#remote.get(key) ?? { inFlight: 0, tokens: 0, dispatched: 0 };
    sum.inFlight += d.inFlight;
    sum.tokens += d.tokens;
    sum.dispatched += d.dispatched;
    if (sum.inFlight === 0 && sum.tokens === 0 && sum.dispatched === 0) this.#remote.delete(key);
    else this.#remote.set(key, sum);
    const ep = this.#pool.get(key);
    if (ep) {
      ep.inFlight = Math.max(0, ep.inFlight + d.inFlight);
      ep.inFlightTokens = Math.max(0, ep.inFlightTokens + d.tokens);
      ep.dispatched += d.dispatched;
    }
  }

  #dropOrigin(origin: string): void {
    const o = this.#origins.get(origin);
    if (!o) return;
    for (const [key, prev] of o.load) this.#shift(key, prev, { inFlight: 0, tokens: 0, dispatched: prev.dispatched });
    this.#origins.delete(origin);
    this.#log.info({ origin, transport: this.#transport.name }, 'shared state: an origin left; its in-flight load is no longer counted');
  }

  #expire(now: number): void {
    let dropped = false;
    for (const [origin, o] of this.#origins) {
      if (now - o.seen <= this.#timeoutMs) continue;
      this.#dropOrigin(origin);
      dropped = true;
    }
    if (dropped) this.onLoadApplied?.();
  }

  /** An endpoint that joins the pool gets the others' load on it (reported before it was known here). */
  #poolChanged(c: PoolChange): void {
    for (const ep of c.added) {
      const r = this.#remote.get(ep.key);
      if (!r) continue;
      ep.inFlight += r.inFlight;
      ep.inFlightTokens += r.tokens;
      ep.dispatched += r.dispatched;
    }
  }
}
