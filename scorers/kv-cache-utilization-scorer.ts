// kv-cache-utilization-scorer: 1 − KV-cache usage (a 0–1 fraction).
import type { Endpoint } from '../src/pool/endpoint.ts';
import type { CycleState, Scorer } from '../src/scheduling/framework.ts';
import { definePlugin } from '../src/scheduling/registry.ts';

class KvCacheUtilizationScorer implements Scorer {
  readonly type = 'kv-cache-utilization-scorer';
  readonly category = 'distribution';
  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  score(_state: CycleState, endpoints: readonly Endpoint[]): Float64Array {
    const out = new Float64Array(endpoints.length);
    for (let i = 0; i < endpoints.length; i++) out[i] = 1 - (endpoints[i].metrics?.kvCacheUsage ?? 0);
    return out;
  }
}

export const kvCacheUtilizationScorer = definePlugin({
  type: 'kv-cache-utilization-scorer',
  aliases: ['kv-cache-scorer'],
  description: 'Prefers free KV cache: 1 − kv_cache_usage (0–1).',
  params: {},
  create: (name) => new KvCacheUtilizationScorer(name),
});
