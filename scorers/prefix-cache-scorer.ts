// prefix-cache-scorer (approximate): the share of the request's prefix blocks,
// counted from the start, that were already sent to each endpoint:
// matchedBlocks / totalBlocks. Its parameters configure the approximate
// prefix producer it owns (as GAIE auto-creates approx-prefix-cache-producer
// with the scorer's parameters).
import type { Endpoint } from '../src/pool/endpoint.ts';
import { ApproxPrefixProducer, PREFIX_PARAMS, isPrefixMatchProducer, prefixResult, type PrefixMatchProducer } from '../src/scheduling/producers/approx-prefix.ts';
import type { CycleState, DataProducer, PluginContext, PreRequest, ProfileResult, Scorer, StateKey } from '../src/scheduling/framework.ts';
import type { Params } from '../src/scheduling/params.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

export class PrefixCacheScorer implements Scorer, DataProducer, PreRequest {
  readonly type = 'prefix-cache-scorer';
  readonly category = 'affinity';
  readonly name: string;
  readonly producer: PrefixMatchProducer;
  readonly produces: readonly StateKey<unknown>[];
  readonly consumes: readonly StateKey<unknown>[];

  /** Set when this scorer runs its own index; undefined when a declared prefix producer runs it. */
  readonly #own: ApproxPrefixProducer | undefined;

  constructor(name: string, params: Params<typeof PREFIX_PARAMS>, ctx: PluginContext) {
    this.name = name;
    // Reuse a declared producer rather than keeping a second index of the same requests.
    const declared = [...ctx.plugins.values()].find(isPrefixMatchProducer);
    this.#own = declared ? undefined : new ApproxPrefixProducer('prefix-cache-scorer', name, params, ctx);
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
    const out = new Float64Array(endpoints.length);
    const r = prefixResult(state, this.producer.matchKey);
    if (!r || r.total === 0 || r.best === 0) return out;
    for (let i = 0; i < endpoints.length; i++) out[i] = (r.matched.get(endpoints[i].key) ?? 0) / r.total;
    return out;
  }
}

export const prefixCacheScorer = definePlugin({
  type: 'prefix-cache-scorer',
  description: 'Approximate prefix-cache affinity: consecutive matched prefix blocks from the start ÷ total blocks, from an index of past routing decisions.',
  params: PREFIX_PARAMS,
  create: (name, p, ctx) => new PrefixCacheScorer(name, p, ctx),
});
