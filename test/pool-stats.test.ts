// The pool at a glance: one pass over the endpoints with fresh metrics feeds
// the pool gauges and the debug log's pool summary; stale ones do not count.
import { describe, expect, it } from 'vitest';
import { poolStats, poolSummary } from '../src/pool/pool-stats.ts';
import { makePool } from './helpers/scheduling.ts';

describe('poolStats / poolSummary', () => {
  it('mean, spread and largest over the fresh endpoints; a stale endpoint is counted but not averaged', () => {
    const { pool, endpoints } = makePool([
      { waitingQueueSize: 1, runningRequests: 2, kvCacheUsage: 0.2 },
      { waitingQueueSize: 5, runningRequests: 6, kvCacheUsage: 0.6 },
      { waitingQueueSize: 100, runningRequests: 100, kvCacheUsage: 1 },
    ]);
    endpoints[2].metricsUpdatedAt = performance.now() - 60_000; // stale
    const s = poolStats(pool, 5000);
    expect(s.endpoints).toBe(3);
    expect(s.ready).toBe(2);
    expect(s.queue).toEqual({ mean: 3, sd: 2, max: 5 });
    expect(s.running.mean).toBe(4);
    expect(s.kv.max).toBe(0.6);
    // The summary line reads the same figures (metrics are kept on performance.now()'s clock).
    expect(poolSummary(poolStats(pool, 5000))).toEqual({ endpoints: 3, fresh: 2, meanWaiting: 3, maxWaiting: 5, meanKvCacheUsage: 0.4, maxKvCacheUsage: 0.6 });
  });
});
