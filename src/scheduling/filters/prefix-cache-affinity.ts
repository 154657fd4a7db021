// prefix-cache-affinity-filter: keep only the endpoints whose prefix match
// reaches affinityThreshold, so a strong cache hit is not outvoted by load
// scorers. With probability explorationProbability it steps aside so other
// endpoints also get to warm up; if nobody passes it keeps everyone.
import type { Endpoint } from '../../pool/endpoint.ts';
import { PREFIX_MATCH, prefixResult } from '../producers/approx-prefix.ts';
import type { CycleState, Filter, PluginContext } from '../framework.ts';
import { definePlugin } from '../registry.ts';

class PrefixCacheAffinityFilter implements Filter {
  readonly type = 'prefix-cache-affinity-filter';
  readonly name: string;
  readonly consumes = [PREFIX_MATCH];
  readonly #threshold: number;
  readonly #explore: number;
  readonly #maxQueuePenalty: number;
  readonly #maxTokensPenalty: number;
  readonly #random: () => number;

  constructor(name: string, threshold: number, explore: number, maxQueuePenalty: number, maxTokensPenalty: number, ctx: PluginContext) {
    this.name = name;
    this.#threshold = threshold;
    this.#explore = explore;
    this.#maxQueuePenalty = maxQueuePenalty;
    this.#maxTokensPenalty = maxTokensPenalty;
    this.#random = ctx.random;
  }

  filter(state: CycleState, endpoints: readonly Endpoint[]): readonly Endpoint[] {
    const r = prefixResult(state);
    if (!r || r.total === 0) return endpoints;
    if (this.#explore > 0 && this.#random() < this.#explore) return endpoints;
    const sticky = endpoints.filter((e) => (r.matched.get(e.key) ?? 0) / r.total >= this.#threshold);
    if (sticky.length === 0) return endpoints;
    // Stickiness yields when every sticky endpoint is loaded far beyond the least loaded one.
    if (this.#maxQueuePenalty > 0 && gap(sticky, endpoints, (e) => e.metrics?.waitingQueueSize ?? 0) > this.#maxQueuePenalty) return endpoints;
    if (this.#maxTokensPenalty > 0 && gap(sticky, endpoints, (e) => e.inFlightTokens) > this.#maxTokensPenalty) return endpoints;
    return sticky;
  }
}

function gap(sticky: readonly Endpoint[], all: readonly Endpoint[], load: (e: Endpoint) => number): number {
  let minAll = Infinity;
  for (const e of all) minAll = Math.min(minAll, load(e));
  let minSticky = Infinity;
  for (const e of sticky) minSticky = Math.min(minSticky, load(e));
  return minSticky - minAll;
}

export const prefixCacheAffinityFilter = definePlugin({
  type: 'prefix-cache-affinity-filter',
  description:
    'Keeps the endpoints whose prefix-cache match (from prefix-cache-scorer) is at least affinityThreshold; a no-op when none is, or with probability explorationProbability. Pair with weighted-random-picker.',
  params: {
    affinityThreshold: { type: 'number', min: 0, max: 1, default: 0.8, doc: 'Minimum matched share of the prompt\'s blocks.' },
    explorationProbability: { type: 'number', min: 0, max: 1, default: 0.01, doc: 'Chance to skip the filter for one request.' },
    maxTTFTPenaltyMs: {
      type: 'number',
      min: 0,
      default: 5000,
      doc: 'Used by llm-d with a latency predictor; llm-epp has none, so this is accepted and has no effect (see maxQueuePenalty).',
    },
    maxQueuePenalty: { type: 'number', min: 0, default: 0, doc: 'If > 0, stickiness yields when the sticky endpoints\' shortest waiting queue exceeds the pool\'s shortest by more than this.' },
    maxTokensInFlightPenalty: {
      type: 'number',
      min: 0,
      default: 0,
      doc: 'If > 0, stickiness yields when the sticky endpoints\' fewest in-flight prompt tokens exceed the pool\'s fewest by more than this.',
    },
  },
  create: (name, p, ctx) => new PrefixCacheAffinityFilter(name, p.affinityThreshold, p.explorationProbability, p.maxQueuePenalty, p.maxTokensInFlightPenalty, ctx),
});
