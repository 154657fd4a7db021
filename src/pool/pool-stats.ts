// The pool at a glance, from the endpoints with fresh metrics: count, mean,
// spread and largest of each signal. One pass over the pool serves the pool
// gauges (observability/pool-gauges.ts) and the debug pool summary
// (llm-d's metrics logger, every --refresh-prometheus-metrics-interval).
import type { EndpointPool } from './datastore.ts';
import { isFresh } from './endpoint.ts';

export interface Signal {
  mean: number;
  /** Population standard deviation. */
  sd: number;
  max: number;
}

export interface PoolStats {
  endpoints: number;
  /** Endpoints with fresh metrics (the ready ones). */
  ready: number;
  kv: Signal;
  queue: Signal;
  running: Signal;
  perEndpoint: { name: string; queue: number }[];
}

function signal(values: number[]): Signal {
  if (values.length === 0) return { mean: 0, sd: 0, max: 0 };
  let sum = 0;
  let max = -Infinity;
  for (const v of values) {
    sum += v;
    if (v > max) max = v;
  }
  const mean = sum / values.length;
  let sq = 0;
  for (const v of values) sq += (v - mean) * (v - mean);
  return { mean, sd: Math.sqrt(sq / values.length), max };
}

/** `now` is performance.now(), the clock endpoint freshness is kept in. */
export function poolStats(pool: EndpointPool, stalenessThresholdMs: number, now = performance.now()): PoolStats {
  const kv: number[] = [];
  const queue: number[] = [];
  const running: number[] = [];
  const perEndpoint: PoolStats['perEndpoint'] = [];
  const list = pool.list();
  for (const e of list) {
    if (!isFresh(e, now, stalenessThresholdMs)) continue;
    const m = e.metrics!;
    kv.push(m.kvCacheUsage);
    queue.push(m.waitingQueueSize);
    running.push(m.runningRequests);
    perEndpoint.push({ name: e.name, queue: m.waitingQueueSize });
  }
  return { endpoints: list.length, ready: perEndpoint.length, kv: signal(kv), queue: signal(queue), running: signal(running), perEndpoint };
}

/** The debug log's pool summary line. */
export function poolSummary(s: PoolStats): Record<string, number> {
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    endpoints: s.endpoints,
    fresh: s.ready,
    meanWaiting: round(s.queue.mean),
    maxWaiting: s.queue.max,
    meanKvCacheUsage: round(s.kv.mean),
    maxKvCacheUsage: round(s.kv.max),
  };
}
