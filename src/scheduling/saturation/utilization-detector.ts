// utilization-detector (GAIE's default saturation detector): saturation is the
// mean over candidate endpoints of max(queue / queueDepthThreshold,
// kv / kvCacheUtilThreshold); an endpoint with stale or missing metrics counts
// as 1.0, and no endpoints at all as 1.0. Used as a filter it drops endpoints
// over either threshold (× (1 + headroom)) or with stale metrics, returning
// all of them when it would drop everything (fail open).
import { parseDuration } from '../../units.ts';
import { isFresh, type Endpoint } from '../../pool/endpoint.ts';
import type { CycleState, Filter, SaturationDetector } from '../framework.ts';
import { ConfigError } from '../params.ts';
import { definePlugin } from '../registry.ts';

export interface UtilizationParams {
  queueDepthThreshold: number;
  kvCacheUtilThreshold: number;
  metricsStalenessThresholdMs: number;
  headroom: number;
}

/** One endpoint's load: max(queue / queueDepthThreshold, kv / kvCacheUtilThreshold); without metrics, 1. */
export function endpointLoad(m: Endpoint['metrics'], queueDepthThreshold: number, kvCacheUtilThreshold: number): number {
  return m === undefined ? 1 : Math.max(m.waitingQueueSize / queueDepthThreshold, m.kvCacheUsage / kvCacheUtilThreshold);
}

export class UtilizationDetector implements SaturationDetector, Filter {
  readonly type = 'utilization-detector';
  readonly name: string;
  readonly params: UtilizationParams;
  readonly #now: () => number;

  constructor(name: string, params: UtilizationParams, now: () => number = () => performance.now()) {
    this.name = name;
    this.params = params;
    this.#now = now;
  }

  get stalenessMs(): number {
    return this.params.metricsStalenessThresholdMs;
  }

  #fresh(ep: Endpoint, now: number): boolean {
    return isFresh(ep, now, this.params.metricsStalenessThresholdMs);
  }

  saturation(endpoints: readonly Endpoint[]): number {
    if (endpoints.length === 0) return 1;
    const { queueDepthThreshold: q, kvCacheUtilThreshold: kv } = this.params;
    const now = this.#now();
    let sum = 0;
    for (const ep of endpoints) {
      sum += this.#fresh(ep, now) ? endpointLoad(ep.metrics, q, kv) : 1;
    }
    return sum / endpoints.length;
  }

  filter(_state: CycleState, endpoints: readonly Endpoint[]): readonly Endpoint[] {
    const { queueDepthThreshold: q, kvCacheUtilThreshold: kv, headroom } = this.params;
    const now = this.#now();
    const qMax = q * (1 + headroom);
    const kvMax = kv * (1 + headroom);
    const kept = endpoints.filter((ep) => this.#fresh(ep, now) && ep.metrics!.waitingQueueSize < qMax && ep.metrics!.kvCacheUsage < kvMax);
    return kept.length === 0 ? endpoints : kept;
  }
}

export const utilizationDetector = definePlugin({
  type: 'utilization-detector',
  description:
    'Saturation = mean over endpoints of max(queue / queueDepthThreshold, kv / kvCacheUtilThreshold), stale endpoints counting 1.0; at ≥ 1 sheddable requests (priority < 0) get 429. Also usable as a filter dropping endpoints over the thresholds (fails open). The default saturationDetector.',
  params: {
    queueDepthThreshold: { type: 'number', default: 5, exclusiveMin: 0, doc: 'Waiting requests at which an endpoint counts as saturated.' },
    kvCacheUtilThreshold: { type: 'number', default: 0.8, exclusiveMin: 0, doc: 'KV-cache use (0..1) at which an endpoint counts as saturated.' },
    metricsStalenessThreshold: { type: 'string', default: '200ms', doc: 'Endpoints whose metrics are older count as saturated (and are filtered out).' },
    headroom: { type: 'number', default: 0, min: 0, doc: 'Filter only: thresholds are multiplied by 1 + headroom.' },
  },
  create: (name, p) => {
    let staleMs: number;
    try {
      staleMs = parseDuration(p.metricsStalenessThreshold);
    } catch (e) {
      throw new ConfigError(`plugin "${name}" (utilization-detector): parameter "metricsStalenessThreshold": ${(e as Error).message}`);
    }
    return new UtilizationDetector(name, { queueDepthThreshold: p.queueDepthThreshold, kvCacheUtilThreshold: p.kvCacheUtilThreshold, metricsStalenessThresholdMs: staleMs, headroom: p.headroom });
  },
});
