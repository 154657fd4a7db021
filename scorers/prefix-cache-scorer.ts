// prefix-cache-scorer (approximate): the share of the request's prefix blocks,
// counted from the start, that were already sent to each endpoint:
// matchedBlocks / totalBlocks. Its parameters configure the approximate
// prefix producer it owns (as GAIE auto-creates approx-prefix-cache-producer
// with the scorer's parameters).
import type { Endpoint } from '../src/pool/endpoint.ts';
import { ApproxPrefixProducer, PREFIX_PARAMS, checkPrefixParams, isPrefixMatchProducer, prefixResult, type PrefixMatchProducer, type PrefixResult } from '../src/scheduling/producers/approx-prefix.ts';
import type { CycleState, DataProducer, Plugin, PluginContext, PreRequest, ProfileResult, Scorer, StateKey } from '../src/scheduling/framework.ts';
import { ConfigError, type Params } from '../src/scheduling/params.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

// llm-d Router's own parameters of the scorer (the rest are GAIE v1.5's producer parameters).
const SCORER_PARAMS = {
  prefixMatchInfoProducerName: { type: 'string', doc: 'Name of the prefix producer whose match this scorer reads (llm-d Router). Default: a declared approx-prefix-cache-producer, else the scorer\'s own index.' },
  matchLengthWeight: { type: 'number', min: 0, max: 1, default: 0, doc: 'Weight of the absolute matched length in the score (0..1); the rest is the matched share of the prompt.' },
  matchLengthScaleTokens: { type: 'number', integer: true, min: 1, default: 8192, doc: 'Matched tokens that give the full absolute-length score.' },
} as const;

const PARAMS = { ...PREFIX_PARAMS, ...SCORER_PARAMS } as const;
const PRODUCER_PARAM_NAMES = Object.keys(PREFIX_PARAMS);

export class PrefixCacheScorer implements Scorer, DataProducer, PreRequest {
  readonly type = 'prefix-cache-scorer';
  readonly category = 'affinity';
  readonly name: string;
  producer!: PrefixMatchProducer;
  produces: readonly StateKey<unknown>[] = [];
  consumes: readonly StateKey<unknown>[] = [];
  readonly #params: Params<typeof PARAMS>;
  readonly #ctx: PluginContext;
  /** Set when this scorer runs its own index; undefined when a declared prefix producer runs it. */
  #own: ApproxPrefixProducer | undefined;

  constructor(name: string, params: Params<typeof PARAMS>, ctx: PluginContext, rawKeys: readonly string[]) {
    this.name = name;
    this.#params = params;
    this.#ctx = ctx;
    checkPrefixParams('prefix-cache-scorer', name, params);
    if (params.prefixMatchInfoProducerName !== undefined) {
      const given = rawKeys.filter((k) => PRODUCER_PARAM_NAMES.includes(k));
      if (given.length) {
        throw new ConfigError(`plugin "${name}" (prefix-cache-scorer): "${given[0]}" configures a prefix producer; with prefixMatchInfoProducerName set, give it on the producer "${params.prefixMatchInfoProducerName}" instead`);
      }
    }
  }

  /** The producer named by prefixMatchInfoProducerName, else a declared one, else an index of its own (GAIE). */
  link(plugins: ReadonlyMap<string, Plugin>): void {
    const wanted = this.#params.prefixMatchInfoProducerName;
    let declared: PrefixMatchProducer | undefined;
    if (wanted !== undefined) {
      const p = plugins.get(wanted);
      if (p && !isPrefixMatchProducer(p)) throw new ConfigError(`plugin "${this.name}" (prefix-cache-scorer): prefixMatchInfoProducerName "${wanted}" names a ${p.type}, not a prefix producer`);
      if (!p && wanted !== 'approx-prefix-cache-producer') {
        throw new ConfigError(`plugin "${this.name}" (prefix-cache-scorer): prefixMatchInfoProducerName "${wanted}" names no declared prefix producer (declare it under plugins)`);
      }
      declared = p as PrefixMatchProducer | undefined;
    } else {
      // Reuse a declared producer rather than keeping a second index of the same requests.
      // (Only an approximate one: llm-d binds a precise or burst producer by name.)
      declared = [...plugins.values()].find((p): p is ApproxPrefixProducer => p instanceof ApproxPrefixProducer);
    }
    this.#own = declared ? undefined : new ApproxPrefixProducer('prefix-cache-scorer', this.name, this.#params, this.#ctx);
    this.producer = declared ?? this.#own!;
    this.produces = this.#own ? this.#own.produces : [];
    this.consumes = [this.producer.matchKey];
  }

  produce(state: CycleState, candidates: readonly Endpoint[]): void {
    this.#own?.produce(state, candidates);
  }

  preRequest(state: CycleState, primary: Endpoint, results: ReadonlyMap<string, ProfileResult>): void {
    this.#own?.preRequest(state, primary, results);
  }

  score(state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    return prefixScores(prefixResult(state, this.producer.matchKey), endpoints, this.#params.matchLengthWeight, this.#params.matchLengthScaleTokens);
  }
}

/** Matched share of the prompt's blocks per endpoint, blended with `w` × the absolute matched length (of `scale` tokens). */
export function prefixScores(r: PrefixResult | undefined, endpoints: readonly Endpoint[], w = 0, scale = 1): Float64Array {
  const out = new Float64Array(endpoints.length);
  if (!r || r.total === 0 || r.best === 0) return out;
  for (let i = 0; i < endpoints.length; i++) {
    const matched = r.matched.get(endpoints[i].key) ?? 0;
    const ratio = matched / r.total;
    out[i] = w === 0 ? ratio : (1 - w) * ratio + w * Math.min(1, (matched * r.blockTokens) / scale);
  }
  return out;
}

export const prefixCacheScorer = definePlugin({
  type: 'prefix-cache-scorer',
  description: 'Prefix-cache affinity: consecutive matched prefix blocks from the start ÷ total blocks (optionally blended with the absolute matched length), read from a prefix producer (approx-prefix-cache-producer, or its own index with GAIE v1.5 parameters).',
  params: PARAMS,
  create: (name, p, ctx, raw) => new PrefixCacheScorer(name, p, ctx, Object.keys((raw ?? {}) as object)),
});
