// The dispatch gate llm-d Router puts in front of the queues: the configured
// saturation detector over the whole pool (not the request's subset), so
// endpoints with stale or missing metrics count as saturated (the
// utilization detector scores them 1.0) and an empty pool reads 1.0. A pool
// with no endpoint whose metrics are fresh reads 1.0 too, whatever the
// detector (the concurrency detector reads no metrics): nothing could be
// scheduled there, so a request dispatched then would only fail. It also
// keeps llm_d_epp_flow_control_stale_endpoints current.
import { isFresh } from '../pool/endpoint.ts';
import type { EndpointPool } from '../pool/datastore.ts';
import type { SaturationDetector } from '../scheduling/framework.ts';
import type { DispatchGate } from './types.ts';

export interface PoolGateOptions {
  /** Endpoints whose metrics are older count as stale (the detector's metricsStalenessThreshold). */
  stalenessMs: number;
  now?: () => number;
  /** Told the stale count at each reading (llm_d_epp_flow_control_stale_endpoints{detector}). */
  staleEndpoints?: (detector: string, count: number) => void;
}

/** A DispatchGate reading `pool` through `detector`. */
export function poolGate(pool: EndpointPool, detector: SaturationDetector, opts: PoolGateOptions): DispatchGate {
  const now = opts.now ?? (() => performance.now());
  const report = opts.staleEndpoints;
  return {
    saturation(): number {
      const endpoints = pool.list();
      const t = now();
      let stale = 0;
      for (const ep of endpoints) if (!isFresh(ep, t, opts.stalenessMs)) stale++;
      report?.(detector.type, stale);
      // Nothing can be scheduled without an endpoint with fresh metrics (an endpoint that just
      // appeared is not scraped yet): saturated, whatever the detector counts.
      if (stale === endpoints.length) return 1;
      return detector.saturation(endpoints);
    },
    poolEmpty(): boolean {
      return pool.list().length === 0;
    },
  };
}
