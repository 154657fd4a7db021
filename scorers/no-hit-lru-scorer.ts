// no-hit-lru-scorer (llm-d): spreads "cold" requests (no prefix hit on any
// candidate) over the endpoints that were least recently given a cold request,
// so new prefixes land where they evict the least. As llm-d ranks them: never
// used endpoints first, then used ones from least to most recently used; the
// endpoint at position i of n scores 1 − i / (n − 1) (n = 1 ⇒ 1.0). Requests
// with a prefix hit score 0.5 everywhere.
import { LRUCache } from 'lru-cache';
import type { Endpoint } from '../src/pool/endpoint.ts';
import { PREFIX_MATCH, chosenByOtherProfiles, prefixMatchKey, prefixResult, type PrefixResult } from '../src/scheduling/producers/approx-prefix.ts';
import type { CycleState, Plugin, PreRequest, ProfileResult, Scorer, StateKey } from '../src/scheduling/framework.ts';
import { ConfigError } from '../src/scheduling/params.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

class NoHitLruScorer implements Scorer, PreRequest {
  readonly type = 'no-hit-lru-scorer';
  readonly category = 'distribution';
  readonly name: string;
  // Endpoint key → sequence number of its last cold request.
  readonly #lru: LRUCache<string, number>;
  #seq = 0;
  readonly #prefixKey: StateKey<PrefixResult>;
  readonly #prefixName: string;
  readonly #prefixType: string;
  readonly consumes = [PREFIX_MATCH];

  constructor(name: string, size: number, prefixName: string, prefixType: string) {
    this.name = name;
    this.#lru = new LRUCache({ max: size });
    this.#prefixKey = prefixMatchKey(prefixName);
    this.#prefixName = prefixName;
    this.#prefixType = prefixType;
  }

  /** prefixPluginName / prefixPluginType, as llm-d: a plugin of that name must be of that type. */
  checkConfig(plugins: ReadonlyMap<string, Plugin>): void {
    const named = plugins.get(this.#prefixName);
    if (named && named.type !== this.#prefixType) {
      throw new ConfigError(
        `plugin "${this.name}" (no-hit-lru-scorer): prefixPluginName "${this.#prefixName}" is a ${named.type}, but prefixPluginType says ${this.#prefixType}`,
      );
    }
  }

  #cold(state: CycleState): boolean {
    const r = prefixResult(state, this.#prefixKey);
    return !r || r.best === 0;
  }

  score(state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    const out = new Float64Array(endpoints.length);
    if (!this.#cold(state)) return out.fill(0.5);
    const n = endpoints.length;
    if (n === 1) return out.fill(1);
    const order: { i: number; seq: number }[] = [];
    for (let i = 0; i < n; i++) order.push({ i, seq: this.#lru.peek(endpoints[i].key) ?? -1 });
    // Never used (seq −1) first, then least recent first; stable for equal keys.
    order.sort((a, b) => a.seq - b.seq);
    order.forEach((o, pos) => (out[o.i] = Math.max(0, 1 - pos / (n - 1))));
    return out;
  }

  preRequest(state: CycleState, primary: Endpoint, results: ReadonlyMap<string, ProfileResult>): void {
    if (!this.#cold(state)) return;
    this.#lru.set(primary.key, ++this.#seq);
    for (const ep of chosenByOtherProfiles(primary, results)) this.#lru.set(ep.key, ++this.#seq);
  }
}

export const noHitLruScorer = definePlugin({
  type: 'no-hit-lru-scorer',
  description: 'For requests without any prefix hit: never-used endpoints first, then least recently used; position i of n scores 1 − i/(n − 1). Requests with a hit ⇒ 0.5 for all.',
  params: {
    lruSize: { type: 'number', integer: true, min: 1, default: 1024, doc: 'Endpoints remembered.' },
    prefixPluginType: { type: 'string', default: 'prefix-cache-scorer', doc: 'Type of the prefix plugin whose result decides "no hit": the plugin named prefixPluginName must be of this type (a config error otherwise).' },
    prefixPluginName: { type: 'string', default: 'prefix-cache-scorer', doc: 'Name of that plugin; without a result from it, the config\'s prefix plugin is used.' },
    prefixMatchInfoProducerName: { type: 'string', doc: 'llm-d Router: name of the prefix producer whose match decides "no hit" (takes precedence over prefixPluginName).' },
  },
  create: (name, p) =>
    p.prefixMatchInfoProducerName !== undefined
      ? new NoHitLruScorer(name, p.lruSize, p.prefixMatchInfoProducerName, 'approx-prefix-cache-producer')
      : new NoHitLruScorer(name, p.lruSize, p.prefixPluginName, p.prefixPluginType),
});
