// KV events in, index updates out: the glue between the pool's endpoints, the
// ZMQ subscriber and the precise block index, as llm-d's
// precise-prefix-cache-producer wires its kvevents pool.
// - Which pod a message is from: in discover mode the subscription itself
//   (one socket per endpoint, `tcp://<endpoint IP>:socketPort`, opened when
//   the endpoint joins the pool and closed when it leaves); on the bound
//   socket (zmqEndpoint), the topic `kv@<pod>@<model>`, whose pod part is
//   matched to an endpoint by `ip:port` as llm-d does, or by IP alone when one
//   endpoint has that IP. Unmatched topics are counted and dropped.
// - State known to be incomplete is never routed on: a sequence gap that the
//   replay socket did not fill, a sequence reset (the engine restarted) and a
//   lost connection clear that pod's entries. Its blocks come back with its
//   next events; meanwhile it scores as holding nothing.
// - Keys leave the model name out (one pool serves one base model): a
//   request's model alias and the engine's served name can differ, and a
//   mismatch must not silently disable precise routing. LoRA adapters and
//   cache salts are in the key.
// Everything runs on the event loop, synchronously per message: decoding and
// indexing a batch costs microseconds (bench/kv-events.bench.ts).
import type { Logger } from '../log.ts';
import type { KvCacheMetrics } from '../observability/kv-cache-metrics.ts';
import type { EndpointPool, PoolChange } from '../pool/datastore.ts';
import type { Endpoint } from '../pool/endpoint.ts';
import type { KvBlockIndex } from './block-index.ts';
import { decodeKvEventBatch } from './events.ts';
import { KvEventSubscriber, type KvEventMessage, type KvSequenceGap } from './zmq-subscriber.ts';

export interface KvEventsSettings {
  /** Bind one SUB socket here that engines connect to (llm-d's kvEventsConfig.zmqEndpoint). */
  readonly zmqEndpoint: string | undefined;
  readonly topicFilter: string;
  /** Connect to every endpoint of the pool at socketPort (llm-d's discoverPods). */
  readonly discoverPods: boolean;
  readonly socketPort: number;
  /** The engines' replay (ROUTER) port; undefined: no replay, gaps clear the pod. */
  readonly replaySocketPort: number | undefined;
}

/** Distinct topics whose pod resolution is remembered (topics come from peers). */
const MAX_TOPICS = 4096;
const WARN_EVERY_MS = 10_000;
const MAX_LORA_NAMES = 1024;

export class KvEventsIngest {
  readonly #pool: EndpointPool;
  readonly #index: KvBlockIndex;
  readonly #settings: KvEventsSettings;
  readonly #metrics: KvCacheMetrics | undefined;
  readonly #log: Logger;
  readonly #plugin: string;
  readonly #subscriber: KvEventSubscriber;
  /** Endpoint key → pod id in the index; ids are reused after an endpoint leaves. */
  readonly #pods = new Map<string, number>();
  readonly #freeIds: number[] = [];
  #nextId = 0;
  /** Topic → endpoint key ('' when it names none); cleared when the pool changes. */
  readonly #topics = new Map<string, string>();
  /** Pods whose state is not known: not heard from since start, a clear or a lost connection. */
  readonly #uncertain = new Set<string>();
  readonly #warned = new Map<string, number>();
  /** LoRA adapters the engines have stored blocks for (a request naming one is keyed with it). */
  readonly loraNames = new Set<string>();
  #started = false;
  /** The bound socket's address (port resolved), once started with a zmqEndpoint. */
  boundEndpoint: string | undefined;

  constructor(opts: { pool: EndpointPool; index: KvBlockIndex; settings: KvEventsSettings; metrics?: KvCacheMetrics; log: Logger; pluginName: string }) {
    this.#pool = opts.pool;
    this.#index = opts.index;
    this.#settings = opts.settings;
    this.#metrics = opts.metrics;
    this.#log = opts.log;
    this.#plugin = opts.pluginName;
    this.#subscriber = new KvEventSubscriber({
      topicFilter: opts.settings.topicFilter,
      onMessage: (m) => this.#message(m),
      onGap: (g) => this.#gap(g),
      onDisconnect: (source) => this.#lost(source),
      onReconnect: (source) => this.#metrics?.reconnects.inc({ pod: this.#label(source) }),
      onError: (err, source) => this.#warn('error', { err, pod: source }, 'KV-event subscriber error'),
    });
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    for (const ep of this.#pool.list()) this.#added(ep);
    const s = this.#settings;
    if (s.zmqEndpoint) {
      const bound = await this.#subscriber.bind(s.zmqEndpoint);
      this.boundEndpoint = bound;
      this.#log.info({ plugin: this.#plugin, endpoint: bound }, 'KV events: listening for engines');
    }
    if (s.discoverPods) this.#log.info({ plugin: this.#plugin, socketPort: s.socketPort, pods: this.#subscriber.sourceCount }, 'KV events: subscribed to every endpoint');
    this.#updateGauge();
  }

  async stop(): Promise<void> {
    this.#started = false;
    await this.#subscriber.close();
  }

  /** The index's pod id for an endpoint (assigned on first use). */
  podOf(key: string): number {
    let id = this.#pods.get(key);
    if (id === undefined) {
      id = this.#freeIds.pop() ?? this.#nextId++;
      this.#pods.set(key, id);
    }
    return id;
  }

  /** Pods whose cached blocks are not known now. */
  get uncertain(): ReadonlySet<string> {
    return this.#uncertain;
  }

  /** Endpoints joined or left the pool (its owner forwards every change; repeats are harmless). */
  poolChanged(change: PoolChange): void {
    if (!this.#started) return;
    this.#topics.clear();
    for (const ep of change.removed) this.#removed(ep);
    for (const ep of change.added) this.#added(ep);
    this.#updateGauge();
  }

  #added(ep: Endpoint): void {
    this.podOf(ep.key);
    this.#uncertain.add(ep.key);
    const s = this.#settings;
    if (!s.discoverPods || this.#subscriber.has(ep.key)) return;
    const replay = s.replaySocketPort !== undefined ? `tcp://${hostPart(ep.address)}:${s.replaySocketPort}` : undefined;
    try {
      this.#subscriber.addSource(ep.key, `tcp://${hostPart(ep.address)}:${s.socketPort}`, replay);
    } catch (err) {
      this.#warn('subscribe', { err, pod: ep.name }, 'KV events: could not subscribe to an endpoint');
    }
  }

  #removed(ep: Endpoint): void {
    this.#subscriber.removeSource(ep.key);
    this.#uncertain.delete(ep.key);
    const id = this.#pods.get(ep.key);
    if (id === undefined) return;
    this.#index.removePod(id);
    this.#pods.delete(ep.key);
    this.#freeIds.push(id);
  }

  #message(m: KvEventMessage): void {
    const key = m.source ?? this.#resolve(m.topic);
    const id = key ? this.#pods.get(key) : undefined;
    if (key === undefined || id === undefined) {
      this.#metrics?.decodeErrors.inc({ pod: 'unknown' });
      this.#warn('topic', { topicLength: m.topic.length }, 'KV events: a topic names no endpoint of the pool (expected kv@<ip:port>@<model>); dropped');
      return;
    }
    let batch;
    try {
      batch = decodeKvEventBatch(m.payload);
    } catch (err) {
      this.#metrics?.decodeErrors.inc({ pod: this.#label(key) });
      this.#warn('decode', { err: (err as Error).message, pod: this.#label(key) }, 'KV events: undecodable batch dropped');
      return;
    }
    if (this.#uncertain.delete(key)) this.#updateGauge();
    let stored = 0;
    let removed = 0;
    let cleared = 0;
    for (const ev of batch.events) {
      switch (ev.type) {
        case 'BlockStored':
          if (ev.loraName !== null && !this.loraNames.has(ev.loraName) && this.loraNames.size < MAX_LORA_NAMES) this.loraNames.add(ev.loraName);
          this.#index.blockStored(id, ev, '');
          stored++;
          break;
        case 'BlockRemoved':
          this.#index.blockRemoved(id, ev);
          removed++;
          break;
        case 'AllBlocksCleared':
          this.#index.clearPod(id);
          cleared++;
          break;
      }
    }
    const mm = this.#metrics;
    if (mm) {
      const pod = this.#label(key);
      if (stored) mm.events.inc({ pod, event_type: 'BlockStored' }, stored);
      if (removed) mm.events.inc({ pod, event_type: 'BlockRemoved' }, removed);
      if (cleared) mm.events.inc({ pod, event_type: 'AllBlocksCleared' }, cleared);
      if (batch.unknown) mm.events.inc({ pod, event_type: 'unknown' }, batch.unknown);
    }
  }

  /** A gap the replay filled is harmless; otherwise the pod's state is incomplete: clear it. */
  #gap(g: KvSequenceGap): void {
    const key = g.source ?? this.#resolve(g.topic);
    if (key === undefined) return;
    const pod = this.#label(key);
    if (g.replay === 'ok') {
      this.#metrics?.sequenceGaps.inc({ pod, outcome: 'replayed' });
      return;
    }
    this.#metrics?.sequenceGaps.inc({ pod, outcome: 'cleared' });
    this.#clear(key);
    this.#warn(`gap:${g.kind}`, { pod, kind: g.kind, expected: String(g.expected), got: String(g.got), replayError: g.replayError }, g.kind === 'reset' ? 'KV events: the engine restarted (sequence reset); its cached blocks are cleared until it reports them again' : 'KV events: batches were lost (sequence gap) and not replayed; the pod\'s cached blocks are cleared until it reports them again');
  }

  /** A discover-mode connection dropped: what it publishes meanwhile is lost. */
  #lost(source: string): void {
    this.#clear(source);
    this.#warn('disconnect', { pod: this.#label(source) }, 'KV events: lost the connection to an engine; its cached blocks are cleared until it reports them again');
  }

  #clear(key: string): void {
    const id = this.#pods.get(key);
    if (id !== undefined) this.#index.clearPod(id);
    if (this.#pool.get(key)) this.#uncertain.add(key);
    this.#updateGauge();
  }

  /** The endpoint a bound-socket topic names: ip:port, or an IP only one endpoint has. */
  #resolve(topic: string): string | undefined {
    const cached = this.#topics.get(topic);
    if (cached !== undefined) return cached || undefined;
    const parts = topic.split('@');
    let found = '';
    if (parts.length >= 3) {
      const who = parts[1];
      if (this.#pool.get(who)) found = who;
      else {
        const colon = who.lastIndexOf(':');
        const ip = colon > 0 && !who.endsWith(']') && who.indexOf(':') === colon ? who.slice(0, colon) : who.replace(/^\[|\]$/g, '');
        const matches = this.#pool.list().filter((ep) => ep.address === ip);
        if (matches.length === 1) found = matches[0].key;
      }
    }
    if (this.#topics.size >= MAX_TOPICS) this.#topics.clear();
    this.#topics.set(topic, found);
    return found || undefined;
  }

  #label(key: string): string {
    return this.#pool.get(key)?.name ?? 'unknown';
  }

  #updateGauge(): void {
    this.#metrics?.uncertainPods.set({ plugin_name: this.#plugin }, this.#uncertain.size);
  }

  #warn(kind: string, fields: object, msg: string): void {
    const now = performance.now();
    if (now - (this.#warned.get(kind) ?? -Infinity) < WARN_EVERY_MS) return;
    if (this.#warned.size > 64) this.#warned.clear();
    this.#warned.set(kind, now);
    this.#log.warn({ plugin: this.#plugin, ...fields }, `${msg} (logged at most every 10 s)`);
  }
}

/** An address as the host part of a tcp:// endpoint (IPv6 in brackets). */
function hostPart(address: string): string {
  return address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
}
