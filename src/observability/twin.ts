// Deprecated twins. llm-d Router v0.10 moved its metrics to the llm_d_epp_
// prefix and keeps serving each deprecated series (inference_objective_*,
// inference_pool_*, inference_extension_*) next to its current twin, so old
// and new dashboards both work.
//
// llm-epp records each observation once, in the current series, and derives
// the deprecated one when Prometheus scrapes: its labels mapped from the
// current ones (renamed, or dropped and summed over). Counting twice on the
// request path measured 3 % of the busy CPU in the headline benchmark
// (prom-client's share 1.1 % → 1.9 % of samples); deriving it costs a pass over
// the series once per scrape instead. A twin that cannot be derived (other
// buckets, other semantics) is recorded twice with TwinHistogram.
import type { Histogram, MetricObjectWithValues, MetricValue, MetricValueWithName, Registry } from 'prom-client';

type Labels = Record<string, string | number>;
/** The deprecated series' labels from the current series' labels (without `le`). */
export type OldLabels = (l: Labels) => Labels;

export const sameLabels: OldLabels = (l) => l;
export const noLabels: OldLabels = () => ({});
export const keepLabels =
  (...keys: string[]): OldLabels =>
  (l) => {
    const out: Labels = {};
    for (const k of keys) if (l[k] !== undefined) out[k] = l[k];
    return out;
  };

interface Source {
  readonly name: string;
  readonly labelNames?: readonly string[];
  get(): Promise<MetricObjectWithValues<MetricValue<string>>>;
}

/**
 * Register `name` as a series derived from `source` at scrape time: same type,
 * each sample's labels mapped (the histogram `le` label kept), samples that
 * map to the same labels summed — right for counters, histograms and additive
 * gauges (running requests, sizes).
 */
export function registerAlias(registry: Registry, source: Source, name: string, help: string, map: OldLabels): void {
  const alias = {
    name,
    help,
    // What the mapping leaves of the source's label names (read by tools that list a metric's labels).
    labelNames: Object.keys(map(Object.fromEntries((source.labelNames ?? []).map((n) => [n, ''])))),
    // The type and aggregator are the source's; get() fills them in.
    type: undefined as unknown,
    aggregator: 'sum',
    async get() {
      const m = await source.get();
      const byKey = new Map<string, MetricValueWithName<string>>();
      for (const v of m.values as MetricValueWithName<string>[]) {
        const { le, ...rest } = v.labels as Labels;
        const labels = le === undefined ? map(rest) : { ...map(rest), le };
        const metricName = v.metricName === undefined ? undefined : name + v.metricName.slice(source.name.length);
        const key = `${metricName ?? ''}\0${JSON.stringify(labels)}`;
        const seen = byKey.get(key);
        if (seen) seen.value += v.value;
        else byKey.set(key, { labels, value: v.value, ...(metricName !== undefined ? { metricName } : {}) } as MetricValueWithName<string>);
      }
      return { name, help, type: m.type, aggregator: m.aggregator, values: [...byKey.values()] };
    },
    reset() {},
  };
  registry.registerMetric(alias as never);
}
