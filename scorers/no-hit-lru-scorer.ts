// no-hit-lru-scorer (llm-d): spreads "cold" requests (no prefix hit on any
// candidate) over the endpoints that were least recently given a cold request,
// so new prefixes land where they evict the least. Endpoints never given one
// score 1.0; the others (m of them) score (m − rank) / (m + 1), the most recent
// lowest. Requests with a prefix hit score 0.5 everywhere.
import { LRUCache } from 'lru-cache';
import type { Endpoint } from '../src/pool/endpoint.ts';
import { prefixResult } from '../src/prefix/producer.ts';
import type { CycleState, PreRequest, Scorer } from '../src/scheduling/framework.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

class NoHitLruScorer implements Scorer, PreRequest {
  readonly type = 'no-hit-lru-scorer';
  readonly category = 'distribution';
  readonly name: string;
  // Endpoint key → sequence number of its last cold request.
  readonly #lru: LRUCache<string, number>;
  #seq = 0;
  readonly #prefixPlugin: string;

  constructor(name: string, size: number, prefixPlugin: string) {
    this.name = name;
    this.#lru = new LRUCache({ max: size });
    this.#prefixPlugin = prefixPlugin;
  }

  #cold(state: CycleState): boolean {
    const r = prefixResult(state, this.#prefixPlugin);
    return !r || r.best === 0;
  }

  score(state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    const out = new Float64Array(endpoints.length);
    if (!this.#cold(state)) return out.fill(0.5);
    const used: { i: number; seq: number }[] = [];
    for (let i = 0; i < endpoints.length; i++) {
      const seq = this.#lru.peek(endpoints[i].key);
      if (seq === undefined) out[i] = 1;
      else used.push({ i, seq });
    }
    used.sort((a, b) => a.seq - b.seq); // least recent first
    const m = used.length;
    used.forEach((u, rank) => (out[u.i] = (m - rank) / (m + 1)));
    return out;
  }

  preRequest(state: CycleState, primary: Endpoint): void {
    if (this.#cold(state)) this.#lru.set(primary.key, ++this.#seq);
  }
}

export const noHitLruScorer = definePlugin({
  type: 'no-hit-lru-scorer',
  description: 'For requests without any prefix hit: endpoints least recently given such a request score highest (never ⇒ 1.0). Requests with a hit ⇒ 0.5 for all.',
  params: {
    lruSize: { type: 'number', integer: true, min: 1, default: 1024, doc: 'Endpoints remembered.' },
    prefixPluginType: { type: 'string', default: 'prefix-cache-scorer', doc: 'Type of the prefix plugin whose result decides "no hit" (llm-d compatibility; the plugin is found by name).' },
    prefixPluginName: { type: 'string', default: 'prefix-cache-scorer', doc: 'Name of that plugin; without a result from it, the config\'s prefix plugin is used.' },
  },
  create: (name, p) => new NoHitLruScorer(name, p.lruSize, p.prefixPluginName),
});
