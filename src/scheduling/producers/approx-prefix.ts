// approx-prefix-cache-producer: hashes the request's routing text into
// prefix blocks, looks them up in the prefix index (which endpoints were sent
// which blocks), and after the pick records the blocks for the chosen
// endpoints. prefix-cache-scorer, prefix-cache-affinity-filter and
// no-hit-lru-scorer read its result from the cycle state (PREFIX_MATCH, or the
// producer's own key when they name it).
import { isDataProducer, stateKey, type CycleState, type DataProducer, type Plugin, type PluginContext, type PreRequest, type ProfileResult, type StateKey } from '../framework.ts';
import { ConfigError, type Params } from '../params.ts';
import { definePlugin } from '../registry.ts';
import type { Endpoint } from '../../pool/endpoint.ts';
import type { PoolChange } from '../../pool/datastore.ts';
import { blockHashes, pairHashes, type BlockHashes } from '../../prefix/hash.ts';
import { PrefixIndex } from '../../prefix/indexer.ts';
import { CHARS_PER_TOKEN } from '../../units.ts';

const PRODUCED_BY = 'approx-prefix-cache-producer or prefix-cache-scorer';

/** The request's prefix match, written by every prefix producer (the last one wins). */
export const PREFIX_MATCH: StateKey<PrefixResult> = stateKey('prefix-cache-match', PRODUCED_BY, 'approx-prefix-cache-producer');

const byProducer = new Map<string, StateKey<PrefixResult>>();

/** The prefix match written by the producer named `name` (one key per name). */
export function prefixMatchKey(name: string): StateKey<PrefixResult> {
  let key = byProducer.get(name);
  if (!key) {
    key = stateKey(`prefix-cache-match:${name}`, `a prefix producer named "${name}"`);
    byProducer.set(name, key);
  }
  return key;
}

/** A plugin that writes PREFIX_MATCH and its own key (approximate, precise or burst prefix producer). */
export interface PrefixMatchProducer extends DataProducer {
  readonly matchKey: StateKey<PrefixResult>;
}

export function isPrefixMatchProducer(p: Plugin): p is PrefixMatchProducer {
  return isDataProducer(p) && 'matchKey' in p;
}

export const PREFIX_PARAMS = {
  autoTune: { type: 'boolean', default: true, doc: 'Take block size and per-endpoint capacity from the endpoint\'s cache_config_info (block_size, num_gpu_blocks).' },
  blockSizeTokens: { type: 'number', integer: true, min: 1, doc: 'Block size in tokens (× 4 characters). Default 16, vLLM\'s block size.' },
  blockSize: { type: 'number', integer: true, min: 1, doc: 'Deprecated: block size in characters. Use blockSizeTokens.' },
  hashBlockSize: { type: 'number', integer: true, min: 1, doc: 'Ignored, with a warning: the pre-v1.0 GAIE name of the block size in characters, which GAIE ignores too.' },
  maxPrefixBlocksToMatch: { type: 'number', integer: true, min: 1, default: 8192, doc: 'Most blocks hashed per request (8192 × 16 tokens = 131,072 tokens).' },
  maxPrefixTokensToMatch: { type: 'number', integer: true, min: 0, default: 0, doc: 'If > 0, caps hashed blocks at this many tokens instead.' },
  lruCapacityPerServer: { type: 'number', integer: true, min: 1, default: 31250, doc: 'Blocks remembered per endpoint (≈ 500K tokens of an 8B model on an H100).' },
} as const;

export interface PrefixResult {
  readonly hashes: BlockHashes;
  readonly blockTokens: number;
  readonly total: number;
  readonly matched: ReadonlyMap<string, number>;
  /** Largest matched block count over the candidates. */
  readonly best: number;
}

/** The producer parameters' own rule, checked where they are written (producer or GAIE-style scorer). */
export function checkPrefixParams(type: string, name: string, params: Params<typeof PREFIX_PARAMS>): void {
  if (params.blockSize !== undefined && params.blockSizeTokens === undefined) {
    throw new ConfigError(`plugin "${name}" (${type}): parameter "blockSize" (characters) is deprecated; set blockSizeTokens instead`);
  }
}

export class ApproxPrefixProducer implements PrefixMatchProducer, PreRequest {
  readonly type: string;
  readonly name: string;
  readonly matchKey: StateKey<PrefixResult>;
  readonly produces: readonly StateKey<unknown>[];
  readonly index = new PrefixIndex();
  readonly #p: Params<typeof PREFIX_PARAMS>;
  readonly #blockTokens: number;
  readonly #ctx: PluginContext;
  readonly #metricLabels: { plugin_name: string; plugin_type: string };

  constructor(type: string, name: string, params: Params<typeof PREFIX_PARAMS>, ctx: PluginContext) {
    this.#metricLabels = { plugin_name: name, plugin_type: type };
    this.type = type;
    this.name = name;
    this.matchKey = prefixMatchKey(name);
    this.produces = [PREFIX_MATCH, this.matchKey];
    this.#p = params;
    this.#ctx = ctx;
    checkPrefixParams(type, name, params);
    this.#blockTokens = params.blockSizeTokens ?? 16;
    if (params.hashBlockSize !== undefined) ctx.log.warn({ plugin: name, hashBlockSize: params.hashBlockSize }, 'prefix parameter hashBlockSize is obsolete and ignored; set blockSizeTokens');
    // Endpoints that leave the pool are purged at once (also when no
    // endpoint-notification-source names this producer as its extractor).
    ctx.pool.on('change', (change) => this.endpointChanged(change));
    // Blocks the other workers / replicas recorded (--workers, --state-sync) go into this index too.
    ctx.sync?.onPrefix(name, (ep, hashes) => {
      if (!this.index.hasEndpoint(ep.key)) this.index.ensureEndpoint(ep.key, this.#capacity(ep));
      this.index.add(ep.key, hashes);
      ctx.metrics?.prefixIndexerSize.set(this.#metricLabels, this.index.size);
    });
  }

  /** Blocks kept for `ep`: its cache size as reported (autoTune), else lruCapacityPerServer. */
  #capacity(ep: Endpoint): number {
    const reported = this.#p.autoTune ? ep.metrics?.cacheNumGpuBlocks : undefined;
    return reported && reported > 0 ? reported : this.#p.lruCapacityPerServer;
  }

  /** An endpoint extractor (endpoint-notification-source): a removed endpoint's blocks go. Idempotent. */
  endpointChanged(change: PoolChange): void {
    for (const ep of change.removed) this.index.removeEndpoint(ep.key);
  }

  produce(state: CycleState, candidates: readonly Endpoint[]): void {
    const parsed = state.request.parsed;
    if (!parsed) return;
    const p = this.#p;
    let blockTokens = this.#blockTokens;
    if (p.autoTune) {
      const reported = candidates[0]?.metrics?.cacheBlockSize;
      if (reported && reported > 0) blockTokens = reported;
    }
    const maxBlocks = p.maxPrefixTokensToMatch > 0 ? Math.max(1, Math.floor(p.maxPrefixTokensToMatch / blockTokens)) : p.maxPrefixBlocksToMatch;
    for (const ep of candidates) this.index.ensureEndpoint(ep.key, this.#capacity(ep));
    const hashes = blockHashes(parsed.routingParts, state.request.targetModel, parsed.cacheSalt, blockTokens * CHARS_PER_TOKEN, maxBlocks);
    const { matched, total } = this.index.match(hashes);
    let best = 0;
    for (const v of matched.values()) if (v > best) best = v;
    const result: PrefixResult = { hashes, blockTokens, total, matched, best };
    state.set(PREFIX_MATCH, result);
    // Also under this producer's own key, for consumers that name their prefix plugin.
    state.set(this.matchKey, result);
  }

  preRequest(state: CycleState, primary: Endpoint, results: ReadonlyMap<string, ProfileResult>): void {
    const r = state.get(this.matchKey);
    if (!r || r.total === 0) return;
    // Every profile's pick computes the prompt's prefix (with prefill/decode
    // disaggregation, the prefill endpoint as well as the decode one).
    const others = chosenByOtherProfiles(primary, results);
    // Recording the blocks is off the request's critical path (as GAIE does it
    // asynchronously): the destination reply goes out first.
    const sync = this.#ctx.sync;
    setImmediate(() => {
      // The other workers / replicas get every block, not only those new here: re-sent blocks
      // are touches, which keep their LRUs' eviction order the same as this one's (sending only
      // new blocks measured 80 % of one replica's hit rate under eviction, bench:active-active).
      const words = sync ? pairHashes(r.hashes) : undefined;
      for (const ep of [primary, ...others]) {
        this.index.add(ep.key, r.hashes);
        if (words) sync!.prefixAdded(this.name, ep.key, words);
      }
      this.#ctx.metrics?.prefixIndexerSize.set(this.#metricLabels, this.index.size);
    });
    const m = this.#ctx.metrics;
    if (m) {
      const hit = r.matched.get(primary.key) ?? 0;
      const charsPerBlock = r.blockTokens * CHARS_PER_TOKEN;
      m.prefixHitRatio.observe(this.#metricLabels, hit / r.total);
      m.prefixHitBytes.observe(this.#metricLabels, hit * charsPerBlock);
    }
  }
}

/** The prefix result of this cycle: under `key` (a producer's own), else the latest one. */
export function prefixResult(state: CycleState, key?: StateKey<PrefixResult>): PrefixResult | undefined {
  return (key && state.get(key)) || state.get(PREFIX_MATCH);
}

/** The endpoints other profiles chose (the prefill pick of a P/D config), without the primary. */
export function chosenByOtherProfiles(primary: Endpoint, results: ReadonlyMap<string, ProfileResult>): Endpoint[] {
  const out: Endpoint[] = [];
  for (const r of results.values()) {
    const ep = r.endpoints[0];
    if (ep && ep !== primary && !out.includes(ep)) out.push(ep);
  }
  return out;
}

export const approxPrefixCacheProducer = definePlugin({
  type: 'approx-prefix-cache-producer',
  description: 'The approximate prefix index on its own (prefix-cache-scorer already includes one).',
  params: PREFIX_PARAMS,
  create: (name, p, ctx) => new ApproxPrefixProducer('approx-prefix-cache-producer', name, p, ctx),
});
