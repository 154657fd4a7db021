// Shared state between replicas (--state-sync=redis://…): one capped Redis
// stream per pool. Each replica appends what its threads learnt (batches
// gathered for `flushMs` (2 ms), one entry per flush) and reads everyone's entries
// with a blocking XREAD on a second connection, skipping its own. The stream
// is capped (`history` entries, MAXLEN ~): a replica that starts reads it
// first — prefix blocks and session bindings, not load, which is only worth
// its live value — so it never routes cold.
//
// Redis going away never stops routing: nothing is queued while it is down
// (the client's offline queue is off and sends are dropped and counted),
// `llm_epp_state_sync_connected` drops to 0 with one log line, and the reader
// resumes from its last entry when Redis is back. Readiness is not touched.
// Client: ioredis (measured against node-redis and iovalkey, bench/RESULTS.md).
import { Redis, type RedisOptions } from 'ioredis';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log.ts';
import type { SyncBatch, SyncTransport } from './batch.ts';
import { decodeBatches, encodeBatches } from './codec.ts';

export interface RedisSyncSettings {
  url: string;
  /** Stream key (default llm-epp:state:<pool>). */
  key: string;
  /** Entries kept (MAXLEN ~). */
  history: number;
}

const DEFAULT_HISTORY = 10_000;
const READ_COUNT = 500;
const BLOCK_MS = 1000;
/** Sends written but not yet acknowledged, at most; past it a batch is dropped (a slow Redis must not grow memory). */
const MAX_PENDING = 256;
/** Batches waiting for the next flush, at most. */
const MAX_QUEUED = 10_000;
const WARM_TIMEOUT_MS = 5000;

/** --state-sync's URL read into settings (the flag was checked by flags.ts). */
export function redisSyncSettings(text: string, poolName: string): RedisSyncSettings {
  const url = new URL(text);
  const key = url.searchParams.get('key') || `llm-epp:state:${poolName}`;
  const history = url.searchParams.has('history') ? Number(url.searchParams.get('history')) : DEFAULT_HISTORY;
  url.search = '';
  return { url: url.toString(), key, history };
}

/** What a log line may say about the URL: no password. */
export function redactedUrl(text: string): string {
  const url = new URL(text);
  if (url.password) url.password = '***';
  url.search = '';
  return url.toString();
}

export interface RedisTransportMetrics {
  connected: Gauge;
  batches: Counter<'direction'>;
  warmStart: Gauge;
}

export function redisSyncMetrics(registry: Registry): RedisTransportMetrics {
  const registers = [registry];
  return {
    connected: new Gauge({ name: 'llm_epp_state_sync_connected', help: 'Replica state sync (--state-sync): 1 while Redis is reachable, 0 while this replica routes on its own state only.', registers, aggregator: 'first' }),
    batches: new Counter({
      name: 'llm_epp_state_sync_batches_total',
      help: 'State-sync batches by direction: sent (to Redis), received (from other replicas), dropped (not sent: Redis down or slow), rejected (received but malformed), replayed (read from the history at start-up).',
      labelNames: ['direction'],
      registers,
    }) as Counter<'direction'>,
    warmStart: new Gauge({ name: 'llm_epp_state_sync_warm_start_seconds', help: 'Time the last warm start from the state-sync history took.', registers, aggregator: 'first' }),
  };
}

export class RedisTransport implements SyncTransport {
  readonly name: string;
  onBatch: ((batch: SyncBatch) => void) | undefined;
  readonly #s: RedisSyncSettings;
  readonly #log: Logger;
  readonly #m: RedisTransportMetrics | undefined;
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #flushMs: number;
  /** Origins of this replica (`<replica>/…`): their entries are skipped when read back. */
  readonly #own: string;
  #queue: SyncBatch[] = [];
  #timer: NodeJS.Timeout | undefined;
  #pending = 0;
  #lastId = '0-0';
  #closed = false;
  #up = false;
  #reading: Promise<void> | undefined;

  constructor(settings: RedisSyncSettings, replica: string, log: Logger, metrics?: RedisTransportMetrics, flushMs = 2) {
    this.#s = settings;
    this.#log = log;
    this.#m = metrics;
    this.#flushMs = flushMs;
    this.#own = `${replica}/`;
    this.name = redactedUrl(settings.url);
    const options: RedisOptions = {
      protocol: 2,
      lazyConnect: true,
      // Nothing waits for Redis: a command while it is down fails at once.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(100 * times, 2000),
    };
    this.#pub = new Redis(settings.url, { ...options, enableAutoPipelining: true, connectionName: `llm-epp-pub-${replica}` });
    this.#sub = new Redis(settings.url, { ...options, connectionName: `llm-epp-sub-${replica}` });
    for (const c of [this.#pub, this.#sub]) {
      // Errors are state changes here, reported by #setUp; the client reconnects by itself.
      c.on('error', () => {});
      c.on('ready', () => this.#setUp(this.#pub.status === 'ready' && this.#sub.status === 'ready'));
      c.on('close', () => this.#setUp(false));
    }
    this.#m?.connected.set(0);
  }

  /**
   * Connect and replay the history (bounded by WARM_TIMEOUT_MS); then read live
   * entries until close(). Resolves when the warm start is over, whether Redis
   * answered or not: a replica with no Redis starts, on its own state.
   */
  async start(): Promise<void> {
    const t0 = performance.now();
    let replayed = 0;
    try {
      await Promise.race([
        (async () => {
          await Promise.all([this.#pub.connect(), this.#sub.connect()]);
          replayed = await this.#replay();
        })(),
        new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer in ${WARM_TIMEOUT_MS} ms`)), WARM_TIMEOUT_MS).unref()),
      ]);
      const seconds = (performance.now() - t0) / 1000;
      this.#m?.warmStart.set(seconds);
      this.#log.info({ stateSync: this.name, key: this.#s.key, replayedBatches: replayed, seconds: Math.round(seconds * 1000) / 1000 }, 'state sync: warmed from the shared history');
    } catch (err) {
      this.#log.warn({ stateSync: this.name, err: (err as Error).message }, 'state sync: Redis unreachable at start-up; routing on this replica\'s own state until it answers');
    }
    this.#reading = this.#readLoop();
  }

  send(batch: SyncBatch): void {
    if (this.#closed) return;
    if (this.#queue.length >= MAX_QUEUED) {
      this.#m?.batches.inc({ direction: 'dropped' });
      return;
    }
    this.#queue.push(batch);
    this.#timer ??= setTimeout(() => this.#flush(), this.#flushMs);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    clearTimeout(this.#timer);
    // Let the last entry go out, briefly.
    for (let i = 0; i < 20 && this.#pending > 0; i++) await new Promise((r) => setTimeout(r, 10));
    this.#pub.disconnect();
    this.#sub.disconnect();
    await this.#reading?.catch(() => {});
  }

  #flush(): void {
    this.#timer = undefined;
    const batches = this.#queue;
    this.#queue = [];
    if (batches.length === 0) return;
    if (!this.#up || this.#pending >= MAX_PENDING) {
      this.#m?.batches.inc({ direction: 'dropped' }, batches.length);
      return;
    }
    this.#pending++;
    const args: (string | number | Buffer)[] = [this.#s.key, 'MAXLEN', '~', this.#s.history, '*', 'b', encodeBatches(batches)];
    this.#pub.xadd(...(args as [string, ...(string | number | Buffer)[]])).then(
      () => {
        this.#pending--;
        this.#m?.batches.inc({ direction: 'sent' }, batches.length);
      },
      () => {
        this.#pending--;
        this.#m?.batches.inc({ direction: 'dropped' }, batches.length);
      },
    );
  }

  /** The whole capped stream, oldest first: prefix blocks and sessions (load is live-only). */
  async #replay(): Promise<number> {
    let start = '-';
    let n = 0;
    for (;;) {
      const page = await this.#sub.xrangeBuffer(this.#s.key, start, '+', 'COUNT', READ_COUNT);
      for (const [id, fields] of page) n += this.#deliver(id.toString(), fields, true);
      if (page.length < READ_COUNT) break;
      start = `(${page[page.length - 1][0].toString()}`;
    }
    return n;
  }

  async #readLoop(): Promise<void> {
    let failures = 0;
    while (!this.#closed) {
      try {
        const reply = (await this.#sub.xreadBuffer('COUNT', READ_COUNT, 'BLOCK', BLOCK_MS, 'STREAMS', this.#s.key, this.#lastId)) as [Buffer, [Buffer, Buffer[]][]][] | null;
        failures = 0;
        for (const [, entries] of reply ?? []) for (const [id, fields] of entries) this.#deliver(id.toString(), fields, false);
      } catch {
        if (this.#closed) return;
        failures++;
        // Down: the client reconnects on its own; poll gently meanwhile.
        await new Promise((r) => setTimeout(r, Math.min(100 * failures, 1000)));
      }
    }
  }

  /** Hand one entry's batches (not this replica's own) to SharedState; returns how many. */
  #deliver(id: string, fields: Buffer[], replay: boolean): number {
    this.#lastId = id;
    const value = fields[1];
    if (fields.length !== 2 || !value) {
      this.#m?.batches.inc({ direction: 'rejected' });
      return 0;
    }
    let batches: SyncBatch[];
    try {
      batches = decodeBatches(value);
    } catch {
      this.#m?.batches.inc({ direction: 'rejected' });
      return 0;
    }
    let n = 0;
    for (const b of batches) {
      if (typeof b.origin === 'string' && b.origin.startsWith(this.#own)) continue;
      n++;
      this.onBatch?.(replay ? { ...b, load: undefined, full: undefined, gone: undefined } : b);
    }
    this.#m?.batches.inc({ direction: replay ? 'replayed' : 'received' }, n);
    return n;
  }

  #setUp(up: boolean): void {
    if (up === this.#up) return;
    this.#up = up;
    this.#m?.connected.set(up ? 1 : 0);
    if (this.#closed) return;
    if (up) this.#log.info({ stateSync: this.name }, 'state sync: connected to Redis; sharing routing state with the other replicas');
    else this.#log.warn({ stateSync: this.name }, 'state sync: lost Redis; routing on this replica\'s own state until it is back (readiness unchanged)');
  }
}
