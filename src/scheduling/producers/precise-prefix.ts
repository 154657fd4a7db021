// precise-prefix-cache-producer (llm-d Router v0.10): each endpoint's prefix
// match read from what the engines report they hold — their KV-cache events
// over ZMQ — instead of guessed from routing history. The prompt's token ids
// (token-producer) are cut into llm-epp's request keys (src/kvcache/
// request-keys.ts) and looked up in the block index (src/kvcache/
// block-index.ts), which the engines' BlockStored / BlockRemoved /
// AllBlocksCleared events keep (src/kvcache/kv-events-ingest.ts). The result
// goes to prefix-cache-scorer (prefixMatchInfoProducerName) as a PrefixResult
// whose matched count is weighted by the tier holding each block
// (kvCacheBackendConfigs: gpu 1.0, cpu 0.8).
// - speculativeIndexing: after a pick, the chosen endpoint is assumed to hold
//   the prompt's blocks for speculativeTTL, until its own events say so.
// - A request without tokens (tokenization failed or timed out) is scored with
//   an approximate index kept on the side (characters as tokens, as
//   approx-prefix-cache-producer does), counted in
//   llm_d_epp_precise_prefix_fallbacks_total.
// Parameters keep llm-d's names (llm-d-kv-cache docs/configuration.md).
import type { Logger } from '../../log.ts';
import type { KvIndexMetrics } from '../../observability/kv-cache-metrics.ts';
import type { Endpoint } from '../../pool/endpoint.ts';
import type { PoolChange } from '../../pool/datastore.ts';
import { blockHashes, type BlockHashes } from '../../prefix/hash.ts';
import { PrefixIndex } from '../../prefix/indexer.ts';
import { KvBlockIndex } from '../../kvcache/block-index.ts';
import { KvEventsIngest } from '../../kvcache/kv-events-ingest.ts';
import { keySeed, requestKeys } from '../../kvcache/request-keys.ts';
import { CHARS_PER_TOKEN, parseDuration } from '../../units.ts';
import { isDataProducer, type CycleState, type Plugin, type PluginContext, type PreRequest, type ProfileResult, type StateKey } from '../framework.ts';
import { ConfigError, configBytes, configDuration, readParams, type Params } from '../params.ts';
import { definePlugin } from '../registry.ts';
import { PREFIX_MATCH, chosenByOtherProfiles, prefixMatchKey, type PrefixMatchProducer, type PrefixResult } from './approx-prefix.ts';
import { TOKENIZED_PROMPT, isTokenProducer } from './token-producer.ts';

const TOKEN_PROCESSOR = {
  blockSizeTokens: { type: 'number', integer: true, min: 1, max: 65536, doc: 'Tokens per block of llm-epp\'s own keys (default 16); need not match the engine\'s block size.' },
  blockSize: { type: 'number', integer: true, min: 1, max: 65536, deprecated: 'use blockSizeTokens', doc: 'Deprecated name of blockSizeTokens.' },
  hashSeed: { type: 'string', default: '', doc: 'Seed of llm-epp\'s key chain; independent of the engine\'s PYTHONHASHSEED.' },
} as const;

const KV_BLOCK_INDEX = {
  inMemoryConfig: { type: 'object', doc: '{size: keys held over all pods (default 1,048,576), podCacheSize: pods per key (default 10)}.' },
  costAwareMemoryConfig: { type: 'object', doc: '{size: "2GiB"}: the index\'s memory instead of a key count.' },
  redisConfig: { type: 'object', doc: 'Refused: llm-epp keeps the index in memory; every replica subscribes to the engines itself.' },
  enableMetrics: { type: 'boolean', default: false, doc: 'Register llm_d_epp_kv_cache_index_* (and the deprecated kvcache_index_* twins).' },
  metricsLoggingInterval: { type: 'string', default: '0s', doc: 'Log the index\'s counters this often (a duration, or nanoseconds as llm-d writes it); 0 = never. Needs enableMetrics.' },
} as const;

const INDEXER = {
  kvBlockIndexConfig: { type: 'object', doc: 'The index: inMemoryConfig, costAwareMemoryConfig, enableMetrics, metricsLoggingInterval.' },
  kvCacheBackendConfigs: { type: 'list', doc: '[{name, weight}]: weight of a block by the medium holding it (default gpu 1.0, cpu 0.8).' },
  tokenizersPoolConfig: { type: 'object', doc: 'Refused (deprecated in llm-d): tokenize with token-producer.' },
} as const;

const POD_DISCOVERY = {
  podLabelSelector: { type: 'string', doc: 'Accepted, unused: llm-epp subscribes to the endpoints of its own pool.' },
  podNamespace: { type: 'string', doc: 'Accepted, unused (see podLabelSelector).' },
  socketPort: { type: 'number', integer: true, min: 1, max: 65535, default: 5557, doc: 'Port of every engine\'s ZMQ PUB socket.' },
  replaySocketPort: { type: 'number', integer: true, min: 0, max: 65535, default: 0, doc: 'Port of the engines\' replay (ROUTER) socket; 0 = none (a gap clears the pod).' },
} as const;

const KV_EVENTS = {
  zmqEndpoint: { type: 'string', doc: 'Bind a SUB socket here that engines connect to (e.g. tcp://*:5557).' },
  topicFilter: { type: 'string', default: 'kv@', doc: 'Topic prefix subscribed to.' },
  concurrency: { type: 'number', integer: true, min: 1, default: 4, doc: 'Accepted for llm-d configs; llm-epp ingests on one thread (µs per batch).' },
  engineType: { type: 'string', enum: ['vllm', 'sglang'], default: 'vllm', doc: 'Engine whose events are read; both publish vLLM\'s KVEventBatch format.' },
  discoverPods: { type: 'boolean', default: true, doc: 'Connect to every endpoint of the pool at podDiscoveryConfig.socketPort.' },
  podDiscoveryConfig: { type: 'object', doc: '{socketPort (5557), replaySocketPort, podLabelSelector, podNamespace}.' },
} as const;

export const PRECISE_PARAMS = {
  tokenProcessorConfig: { type: 'object', doc: '{blockSizeTokens (16), hashSeed}: llm-epp\'s own block keys.' },
  indexerConfig: { type: 'object', doc: '{kvBlockIndexConfig, kvCacheBackendConfigs}.' },
  kvEventsConfig: { type: 'object', doc: '{zmqEndpoint, topicFilter (kv@), engineType (vllm), discoverPods (true), podDiscoveryConfig}.' },
  speculativeIndexing: { type: 'boolean', default: false, doc: 'Assume the chosen endpoint holds the prompt\'s blocks until its events arrive.' },
  speculativeTTL: { type: 'string', default: '2s', doc: 'How long a speculative entry counts.' },
  maxPrefixBlocksToMatch: { type: 'number', integer: true, min: 1, default: 8192, doc: 'Most blocks looked up per request (llm-epp).' },
} as const;

/** Approximate fallback: blocks of 16 tokens × 4 characters, capacity per endpoint. */
const FALLBACK_BLOCK_TOKENS = 16;
const FALLBACK_CAPACITY = 31_250;
const STATS_EVERY_MS = 5_000;

export interface PreciseSettings {
  blockSize: number;
  hashSeed: string;
  maxKeys: number;
  podCacheSize: number;
  tierWeights: Record<string, number>;
  enableMetrics: boolean;
  logEveryMs: number;
  speculativeTtlMs: number | undefined;
  maxBlocks: number;
  zmqEndpoint: string | undefined;
  topicFilter: string;
  discoverPods: boolean;
  socketPort: number;
  replaySocketPort: number | undefined;
}

export class PrecisePrefixProducer implements PrefixMatchProducer, PreRequest {
  readonly type: string;
  readonly name: string;
  readonly matchKey: StateKey<PrefixResult>;
  readonly produces: readonly StateKey<unknown>[];
  readonly consumes = [TOKENIZED_PROMPT];
  readonly index: KvBlockIndex;
  readonly ingest: KvEventsIngest;
  readonly #s: PreciseSettings;
  readonly #ctx: PluginContext;
  readonly #log: Logger;
  readonly #fallback = new PrefixIndex();
  readonly #indexMetrics: KvIndexMetrics | undefined;
  #reported = { admissions: 0, evictions: 0 };
  #timer: NodeJS.Timeout | undefined;
  #logTimer: NodeJS.Timeout | undefined;

  constructor(type: string, name: string, settings: PreciseSettings, ctx: PluginContext) {
    this.type = type;
    this.name = name;
    this.matchKey = prefixMatchKey(name);
    this.produces = [PREFIX_MATCH, this.matchKey];
    this.#s = settings;
    this.#ctx = ctx;
    this.#log = ctx.log;
    this.index = new KvBlockIndex({ hashSeed: settings.hashSeed, blockSize: settings.blockSize, maxKeys: settings.maxKeys, podCacheSize: settings.podCacheSize, tierWeights: settings.tierWeights });
    this.ingest = new KvEventsIngest({ pool: ctx.pool, index: this.index, settings, metrics: ctx.metrics?.kvCache, log: ctx.log, pluginName: name });
    this.#indexMetrics = settings.enableMetrics ? ctx.metrics?.kvCache.index() : undefined;
    // The pool is followed whether or not an endpoint-notification-source names this producer.
    ctx.pool.on('change', (change: PoolChange) => this.endpointChanged(change));
  }

  /** The token producer must give the engine's tokens: llm-d silently degrades with estimate, llm-epp refuses. */
  checkConfig(plugins: ReadonlyMap<string, Plugin>): void {
    for (const p of plugins.values()) {
      if (isDataProducer(p) && p.produces.includes(TOKENIZED_PROMPT) && isTokenProducer(p) && p.backend === 'estimate') {
        throw new ConfigError(
          `plugin "${this.name}" (${this.type}) needs the engine's real token ids, but token-producer "${p.name}" uses the estimate backend (4 bytes per id, not tokens): set its vllm.url (vLLM's render endpoints) with modelName, or local.path (the model's tokenizer.json)`,
        );
      }
    }
  }

  async start(): Promise<void> {
    await this.ingest.start();
    this.#timer = setInterval(() => this.#publishStats(), STATS_EVERY_MS).unref();
    if (this.#s.enableMetrics && this.#s.logEveryMs > 0) {
      this.#logTimer = setInterval(() => this.#log.info({ plugin: this.name, index: this.index.stats() }, 'KV-block index'), this.#s.logEveryMs).unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    clearInterval(this.#logTimer);
    await this.ingest.stop();
  }

  /** An endpoint extractor: subscriptions follow the pool, and a leaving endpoint's entries go. Idempotent. */
  endpointChanged(change: PoolChange): void {
    for (const ep of change.removed) this.#fallback.removeEndpoint(ep.key);
    this.ingest.poolChanged(change);
  }

  produce(state: CycleState, candidates: readonly Endpoint[]): void {
    const req = state.request;
    const parsed = req.parsed;
    if (!parsed) return;
    const tokens = state.get(TOKENIZED_PROMPT);
    let result: PrefixResult;
    if (tokens) {
      const lora = this.#lora(req.targetModel, candidates);
      const keys = requestKeys(tokens.ids, keySeed(this.#s.hashSeed, '', lora, parsed.cacheSalt), this.#s.blockSize, this.#s.maxBlocks);
      result = this.#lookup(keys, candidates);
    } else {
      this.#ctx.metrics?.kvCache.fallbacks.inc({ plugin_name: this.name, reason: 'no_tokens' });
      result = this.#fallbackMatch(parsed.routingParts, req.targetModel, parsed.cacheSalt, candidates);
    }
    state.set(PREFIX_MATCH, result);
    state.set(this.matchKey, result);
  }

  preRequest(state: CycleState, primary: Endpoint, results: ReadonlyMap<string, ProfileResult>): void {
    const r = state.get(this.matchKey);
    const parsed = state.request.parsed;
    if (!r || !parsed) return;
    const chosen = [primary, ...chosenByOtherProfiles(primary, results)];
    const ttl = this.#s.speculativeTtlMs;
    if (ttl !== undefined && state.get(TOKENIZED_PROMPT) && r.hashes.count > 0) {
      const now = performance.now();
      for (const ep of chosen) this.index.speculate(this.ingest.podOf(ep.key), r.hashes, ttl, now);
    }
    // The approximate side index learns every pick, off the reply's critical path.
    const model = state.request.targetModel;
    // Without tokens, produce() already hashed the prompt for the fallback index: reuse those.
    const computed = state.get(TOKENIZED_PROMPT) ? undefined : r.hashes;
    setImmediate(() => {
      const hashes = computed ?? fallbackHashes(parsed.routingParts, model, parsed.cacheSalt);
      for (const ep of chosen) {
        this.#fallback.ensureEndpoint(ep.key, FALLBACK_CAPACITY);
        this.#fallback.add(ep.key, hashes);
      }
    });
  }

  #lookup(keys: BlockHashes, candidates: readonly Endpoint[]): PrefixResult {
    const pods: number[] = [];
    const byPod = new Map<number, string>();
    for (const ep of candidates) {
      const id = this.ingest.podOf(ep.key);
      pods.push(id);
      byPod.set(id, ep.key);
    }
    const m = this.#indexMetrics;
    const t0 = m ? performance.now() : 0;
    const found = this.index.lookup(keys, pods);
    const matched = new Map<string, number>();
    let best = 0;
    let bestBlocks = 0;
    for (const pm of found.matches) {
      const key = byPod.get(pm.pod);
      if (key === undefined) continue;
      matched.set(key, pm.weighted);
      if (pm.weighted > best) best = pm.weighted;
      if (pm.blocks > bestBlocks) bestBlocks = pm.blocks;
    }
    if (m) {
      m.lookupLatency.observe((performance.now() - t0) / 1000);
      m.lookups.inc();
      if (bestBlocks > 0) m.hits.inc();
      m.maxPodHits.inc(bestBlocks);
    }
    return { hashes: keys, blockTokens: this.#s.blockSize, total: found.total, matched, best };
  }

  #fallbackMatch(text: readonly string[], model: string, salt: string | undefined, candidates: readonly Endpoint[]): PrefixResult {
    const hashes = fallbackHashes(text, model, salt);
    for (const ep of candidates) this.#fallback.ensureEndpoint(ep.key, FALLBACK_CAPACITY);
    const { matched, total } = this.#fallback.match(hashes);
    let best = 0;
    for (const v of matched.values()) if (v > best) best = v;
    return { hashes, blockTokens: FALLBACK_BLOCK_TOKENS, total, matched, best };
  }

  /** The request's LoRA adapter: its target model, when the engines have reported blocks or load for it. */
  #lora(target: string, candidates: readonly Endpoint[]): string | undefined {
    if (this.ingest.loraNames.has(target)) return target;
    for (const ep of candidates) {
      const l = ep.metrics?.lora;
      if (l && (l.activeModels.includes(target) || l.waitingModels.includes(target))) return target;
    }
    return undefined;
  }

  /** Index counters into the Prometheus series (every 5 s) and the block gauge. */
  #publishStats(): void {
    const st = this.index.stats();
    this.#ctx.metrics?.kvCache.indexBlocks.set({ plugin_name: this.name }, st.keys);
    const m = this.#indexMetrics;
    if (!m) return;
    const d = this.#reported;
    if (st.admissions > d.admissions) m.admissions.inc(st.admissions - d.admissions);
    if (st.evictions > d.evictions) m.evictions.inc(st.evictions - d.evictions);
    this.#reported = { admissions: st.admissions, evictions: st.evictions };
  }
}

function fallbackHashes(text: readonly string[], model: string, salt: string | undefined): BlockHashes {
  return blockHashes(text, model, salt, FALLBACK_BLOCK_TOKENS * CHARS_PER_TOKEN, 8192);
}

/** llm-d's parameters, validated, with llm-epp's defaults. */
export function preciseSettings(p: Params<typeof PRECISE_PARAMS>, where: string, log: Logger): PreciseSettings {
  const tp = readParams(TOKEN_PROCESSOR, p.tokenProcessorConfig, `${where} tokenProcessorConfig`, log);
  const ix = readParams(INDEXER, p.indexerConfig, `${where} indexerConfig`, log);
  if (ix.tokenizersPoolConfig !== undefined) {
    throw new ConfigError(`${where}: indexerConfig.tokenizersPoolConfig (deprecated in llm-d) is not supported: tokenize with a token-producer (vllm.url, or local.path for llm-epp's in-process tokenizer)`);
  }
  // llm-d's Go struct reads metricsLoggingInterval as nanoseconds when it is a bare number.
  const rawKb = ix.kvBlockIndexConfig as Record<string, unknown> | undefined;
  const kbInput = rawKb && typeof rawKb.metricsLoggingInterval === 'number' ? { ...rawKb, metricsLoggingInterval: String(rawKb.metricsLoggingInterval) } : rawKb;
  const kb = readParams(KV_BLOCK_INDEX, kbInput, `${where} indexerConfig.kvBlockIndexConfig`, log);
  if (kb.redisConfig !== undefined) {
    throw new ConfigError(`${where}: indexerConfig.kvBlockIndexConfig.redisConfig is not supported: llm-epp keeps the block index in memory, and every replica subscribes to the engines' events itself`);
  }
  const mem = readParams({ size: { type: 'number', integer: true, min: 1, doc: '' }, podCacheSize: { type: 'number', integer: true, min: 1, max: 64, default: 10, doc: '' } } as const, kb.inMemoryConfig, `${where} indexerConfig.kvBlockIndexConfig.inMemoryConfig`);
  let maxKeys = Math.min(mem.size ?? DEFAULT_MAX_KEYS, MAX_KEYS);
  if (kb.costAwareMemoryConfig !== undefined) {
    const c = readParams({ size: { type: 'string', default: '2GiB', doc: '' } } as const, kb.costAwareMemoryConfig, `${where} indexerConfig.kvBlockIndexConfig.costAwareMemoryConfig`);
    maxKeys = Math.max(1024, Math.min(MAX_KEYS, Math.floor(configBytes(`${where}: costAwareMemoryConfig.size`, c.size) / BYTES_PER_KEY)));
  }
  const tierWeights: Record<string, number> = { gpu: 1, cpu: 0.8 };
  if (ix.kvCacheBackendConfigs !== undefined) {
    for (const [i, b] of ix.kvCacheBackendConfigs.entries()) {
      const c = readParams({ name: { type: 'string', doc: '' }, weight: { type: 'number', min: 0, doc: '' } } as const, b, `${where} indexerConfig.kvCacheBackendConfigs[${i}]`);
      if (!c.name || c.weight === undefined) throw new ConfigError(`${where}: indexerConfig.kvCacheBackendConfigs[${i}] needs a name and a weight`);
      tierWeights[c.name.toLowerCase()] = c.weight;
    }
  }
  const ev = readParams(KV_EVENTS, p.kvEventsConfig, `${where} kvEventsConfig`, log);
  const pd = readParams(POD_DISCOVERY, ev.podDiscoveryConfig, `${where} kvEventsConfig.podDiscoveryConfig`);
  if (ev.zmqEndpoint !== undefined && !/^(tcp|ipc|inproc):\/\/\S+$/.test(ev.zmqEndpoint)) {
    throw new ConfigError(`${where}: kvEventsConfig.zmqEndpoint must be a ZMQ endpoint such as tcp://*:5557, got "${ev.zmqEndpoint}"`);
  }
  if (!ev.zmqEndpoint && !ev.discoverPods) throw new ConfigError(`${where}: no KV events would arrive: set kvEventsConfig.zmqEndpoint (engines connect to llm-epp) or discoverPods: true (llm-epp connects to each engine)`);
  return {
    blockSize: tp.blockSizeTokens ?? tp.blockSize ?? 16,
    hashSeed: tp.hashSeed,
    maxKeys,
    podCacheSize: mem.podCacheSize,
    tierWeights,
    enableMetrics: kb.enableMetrics,
    logEveryMs: durationOrNanos(kb.metricsLoggingInterval, `${where}: metricsLoggingInterval`),
    speculativeTtlMs: p.speculativeIndexing ? configDuration(`${where}: speculativeTTL`, p.speculativeTTL) : undefined,
    maxBlocks: p.maxPrefixBlocksToMatch,
    zmqEndpoint: ev.zmqEndpoint,
    topicFilter: ev.topicFilter,
    discoverPods: ev.discoverPods,
    socketPort: pd.socketPort,
    replaySocketPort: pd.replaySocketPort > 0 ? pd.replaySocketPort : undefined,
  };
}

const DEFAULT_MAX_KEYS = 1 << 20;
/** Keys beyond this are refused: llm-d's default of 10⁸ would be tens of GB here. */
const MAX_KEYS = 1 << 25;
/** Index memory per key, for costAwareMemoryConfig.size (bench/kv-index.bench.ts). */
const BYTES_PER_KEY = 96;


/** A duration ("1m"), or nanoseconds as llm-d's Go structs read a bare number. */
function durationOrNanos(text: string, where: string): number {
  if (/^\d+$/.test(text.trim())) return Number(text) / 1e6;
  try {
    return parseDuration(text);
  } catch (e) {
    throw new ConfigError(`${where}: ${(e as Error).message}`);
  }
}


export const precisePrefixCacheProducer = definePlugin({
  type: 'precise-prefix-cache-producer',
  description: 'Prefix matches from the engines\' own KV-cache events (ZMQ): the prompt\'s tokens (token-producer) looked up in a block index the events keep; for prefix-cache-scorer with prefixMatchInfoProducerName.',
  params: PRECISE_PARAMS,
  create: (name, p, ctx) => new PrecisePrefixProducer('precise-prefix-cache-producer', name, preciseSettings(p, `plugin "${name}" (precise-prefix-cache-producer)`, ctx.log), ctx),
});
