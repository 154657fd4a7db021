// One line describing the pool, written to the debug log every
// --refresh-prometheus-metrics-interval (llm-d Router's metrics logger does
// the same): how many endpoints, how many have fresh metrics, and their mean
// and largest waiting queue and KV-cache use.
import type { EndpointPool } from './datastore.ts';
import { isFresh } from './endpoint.ts';

export interface PoolSummary {
  endpoints: number;
  fresh: number;
  meanWaiting: number;
  maxWaiting: number;
  meanKvCacheUsage: number;
  maxKvCacheUsage: number;
}

export function poolSummary(pool: EndpointPool, now: number, stalenessMs: number): PoolSummary {
  const list = pool.list();
  let fresh = 0;
  let waiting = 0;
  let maxWaiting = 0;
  let kv = 0;
  let maxKv = 0;
  for (const ep of list) {
    if (!isFresh(ep, now, stalenessMs)) continue;
    fresh++;
    const m = ep.metrics!;
    waiting += m.waitingQueueSize;
    kv += m.kvCacheUsage;
    if (m.waitingQueueSize > maxWaiting) maxWaiting = m.waitingQueueSize;
    if (m.kvCacheUsage > maxKv) maxKv = m.kvCacheUsage;
  }
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    endpoints: list.length,
    fresh,
    meanWaiting: fresh ? round(waiting / fresh) : 0,
    maxWaiting,
    meanKvCacheUsage: fresh ? round(kv / fresh) : 0,
    maxKvCacheUsage: round(maxKv),
  };
}
