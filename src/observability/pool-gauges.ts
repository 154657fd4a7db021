// The pool's gauges (llm_d_epp_* and their inference_pool_* twins), computed
// when Prometheus scrapes, from the endpoints with fresh metrics: always
// current, and no timer on the event loop. One pass over the pool per scrape
// serves every gauge (the first collect() of a scrape computes, the others
// read the same snapshot).
import { Gauge, type Registry } from 'prom-client';
import type { EndpointPool } from '../pool/datastore.ts';
import { poolStats, type PoolStats } from '../pool/pool-stats.ts';

const ALPHA = '[ALPHA] ';

type Stats = PoolStats;

export function registerPoolGauges(registers: Registry[], pool: EndpointPool, name: string, stalenessThresholdMs: number): void {
  // One snapshot per scrape: reused by the gauges collected within 100 ms of it.
  let snap: Stats | undefined;
  let at = -Infinity;
  const stats = (): Stats => {
    const now = performance.now();
    if (!snap || now - at > 100) {
      snap = poolStats(pool, stalenessThresholdMs, now);
      at = now;
    }
    return snap;
  };
  const poolGauge = (metric: string, help: string, read: (s: Stats) => number) =>
    new Gauge({
      name: metric,
      help,
      labelNames: ['name'],
      registers,
      // With --workers, the control thread's figure (it holds the scraped metrics).
      aggregator: 'first',
      collect() {
        this.set({ name }, read(stats()));
      },
    });
  const twin = (now: string, old: string, help: string, oldHelp: string, read: (s: Stats) => number) => {
    poolGauge(`llm_d_epp_${now}`, ALPHA + help, read);
    poolGauge(`inference_pool_${old}`, `${ALPHA}[Deprecated: Use llm_d_epp_${now}] ${oldHelp}`, read);
  };
  twin('average_kv_cache_utilization', 'average_kv_cache_utilization', 'The average kv cache utilization for an inference server pool.', 'The average kv cache utilization for an inference server pool.', (s) => s.kv.mean);
  twin('average_queue_size', 'average_queue_size', 'The average number of requests pending in the model server queue.', 'The average number of requests pending in the model server queue.', (s) => s.queue.mean);
  twin('average_running_requests', 'average_running_requests', 'The average number of running requests across model servers in the pool.', 'The average number of running requests across model servers in the pool.', (s) => s.running.mean);
  twin('ready_endpoints', 'ready_pods', 'The number of ready endpoints (fresh metrics) in the inference server pool.', 'The number of ready pods in the inference server pool.', (s) => s.ready);
  poolGauge('llm_d_epp_std_dev_kv_cache_utilization', ALPHA + 'Standard deviation of kv cache utilization across the pool\'s endpoints.', (s) => s.kv.sd);
  poolGauge('llm_d_epp_std_dev_queue_size', ALPHA + 'Standard deviation of the model server queue size across the pool\'s endpoints.', (s) => s.queue.sd);
  poolGauge('llm_d_epp_std_dev_running_requests', ALPHA + 'Standard deviation of running requests across the pool\'s endpoints.', (s) => s.running.sd);
  const perEndpoint = (metric: string, help: string, label: string) =>
    new Gauge({
      name: metric,
      help,
      labelNames: ['name', label],
      registers,
      aggregator: 'first',
      collect() {
        this.reset();
        for (const e of stats().perEndpoint) this.set({ name, [label]: e.name }, e.queue);
      },
    });
  perEndpoint('llm_d_epp_per_endpoint_queue_size', ALPHA + 'The number of requests pending in the model server queue for each endpoint.', 'model_server_endpoint');
  perEndpoint('inference_pool_per_pod_queue_size', `${ALPHA}[Deprecated: Use llm_d_epp_per_endpoint_queue_size] The waiting queue size of each model server pod.`, 'model_server_pod');
}
