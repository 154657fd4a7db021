// /metrics with --workers: the control thread's registry (pool gauges, scrape
// and process metrics) and every worker's (requests, streams, plugins) added
// up per series, with prom-client's aggregation: counters and histograms sum;
// a gauge that each thread computes over the same shared picture says how it
// combines (`aggregator: 'first'` takes the control thread's, listed first;
// 'max' for per-thread copies of one index).
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';
import type { WorkerSupervisor } from './supervisor.ts';

type Json = MetricObjectWithValues<MetricValue<string>>[];

export interface MetricsView {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export function aggregatedMetrics(own: Registry, workers: Pick<WorkerSupervisor, 'collectMetrics'>): MetricsView {
  return {
    contentType: own.contentType,
    async metrics() {
      const [mine, theirs] = await Promise.all([own.getMetricsAsJSON(), workers.collectMetrics()]);
      return AggregatorRegistry.aggregate([mine, ...(theirs as Json[])]).metrics();
    },
  };
}
