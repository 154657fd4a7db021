// prefix-cache-scorer (approximate): the share of the request's prefix blocks,
// counted from the start, that were already sent to each endpoint:
// matchedBlocks / totalBlocks. Its parameters configure the approximate
// prefix producer it owns (as GAIE auto-creates approx-prefix-cache-producer
// with the scorer's parameters).
import type { Endpoint } from '../src/pool/endpoint.ts';
import { ApproxPrefixProducer, PREFIX_PARAMS, prefixResult } from '../src/prefix/producer.ts';
import type { CycleState, DataProducer, PluginContext, PreRequest, ProfileResult, Scorer } from '../src/scheduling/framework.ts';
import type { Params } from '../src/scheduling/params.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

export class PrefixCacheScorer implements Scorer, DataProducer, PreRequest {
  readonly type = 'prefix-cache-scorer';
  readonly category = 'affinity';
  readonly name: string;
  readonly producer: ApproxPrefixProducer;

  /** False when a declared approx-prefix-cache-producer runs the index (it is then a plugin of its own). */
  readonly #ownsProducer: boolean;

  constructor(name: string, params: Params<typeof PREFIX_PARAMS>, ctx: PluginContext) {
    this.name = name;
    // Reuse a declared producer rather than keeping a second index of the same requests.
    const declared = [...ctx.plugins.values()].find((p): p is ApproxPrefixProducer => p instanceof ApproxPrefixProducer);
    this.producer = declared ?? new ApproxPrefixProducer('prefix-cache-scorer', name, params, ctx);
    this.#ownsProducer = declared === undefined;
  }

  produce(state: CycleState, candidates: readonly Endpoint[]): void {
    if (this.#ownsProducer) this.producer.produce(state, candidates);
  }

  preRequest(state: CycleState, primary: Endpoint, results: ReadonlyMap<string, ProfileResult>): void {
    if (this.#ownsProducer) this.producer.preRequest(state, primary, results);
  }

  score(state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    const out = new Float64Array(endpoints.length);
    const r = prefixResult(state, this.producer.name);
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
