// What the benchmark reads from llm-epp's own /metrics around a measured
// phase: the token-producer's tokenization latency histogram, its results and
// prefix-cache characters, the KV events ingested, the precise producer's
// fallbacks and the pods whose cache state it does not know. Series are summed
// over their labels (pods, plugins, backends); absent series read as 0, so the
// approximate config reads all zeros.
import { parsePrometheusText, type Sample } from '../../src/metrics/prom-text.ts';

export interface EppReading {
  tokenizeCount: number;
  tokenizeSumSeconds: number;
  /** Cumulative bucket counts by upper bound (+Inf last). */
  tokenizeBuckets: { le: number; count: number }[];
  tokenizeOk: number;
  tokenizeFailed: number;
  prefixHitChars: number;
  prefixMissChars: number;
  events: number;
  fallbacks: number;
  uncertainPods: number;
}

const TOKENIZE = 'llm_d_epp_tokenization_latency_seconds';
const NAMES = new Set([
  `${TOKENIZE}_bucket`,
  `${TOKENIZE}_sum`,
  `${TOKENIZE}_count`,
  'llm_d_epp_tokenization_requests_total',
  'llm_d_epp_tokenization_prefix_cache_chars_total',
  'llm_d_epp_kv_cache_events_total',
  'llm_d_epp_precise_prefix_fallbacks_total',
  'llm_d_epp_kv_cache_uncertain_pods',
]);

function sum(samples: Sample[] | undefined, keep: (s: Sample) => boolean = () => true): number {
  let total = 0;
  for (const s of samples ?? []) if (keep(s)) total += s.value;
  return total;
}

/** The reading of one /metrics page. */
export function readEppPage(text: string): EppReading {
  const page = parsePrometheusText(text, NAMES);
  const byLe = new Map<number, number>();
  for (const s of page.get(`${TOKENIZE}_bucket`) ?? []) {
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    if (!Number.isNaN(le)) byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  const requests = page.get('llm_d_epp_tokenization_requests_total');
  const chars = page.get('llm_d_epp_tokenization_prefix_cache_chars_total');
  return {
    tokenizeCount: sum(page.get(`${TOKENIZE}_count`)),
    tokenizeSumSeconds: sum(page.get(`${TOKENIZE}_sum`)),
    tokenizeBuckets: [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le),
    tokenizeOk: sum(requests, (s) => s.labels.result === 'ok'),
    tokenizeFailed: sum(requests, (s) => s.labels.result !== 'ok'),
    prefixHitChars: sum(chars, (s) => s.labels.result === 'hit'),
    prefixMissChars: sum(chars, (s) => s.labels.result === 'miss'),
    events: sum(page.get('llm_d_epp_kv_cache_events_total')),
    fallbacks: sum(page.get('llm_d_epp_precise_prefix_fallbacks_total')),
    uncertainPods: sum(page.get('llm_d_epp_kv_cache_uncertain_pods')),
  };
}

export async function readEpp(metricsPort: number): Promise<EppReading> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  if (!res.ok) throw new Error(`llm-epp /metrics answered ${res.status}`);
  return readEppPage(await res.text());
}

/** What happened between two readings (gauges: the later value). */
export function eppDelta(before: EppReading, after: EppReading): EppReading {
  const earlier = new Map(before.tokenizeBuckets.map((b) => [b.le, b.count]));
  return {
    tokenizeCount: after.tokenizeCount - before.tokenizeCount,
    tokenizeSumSeconds: after.tokenizeSumSeconds - before.tokenizeSumSeconds,
    tokenizeBuckets: after.tokenizeBuckets.map((b) => ({ le: b.le, count: b.count - (earlier.get(b.le) ?? 0) })),
    tokenizeOk: after.tokenizeOk - before.tokenizeOk,
    tokenizeFailed: after.tokenizeFailed - before.tokenizeFailed,
    prefixHitChars: after.prefixHitChars - before.prefixHitChars,
    prefixMissChars: after.prefixMissChars - before.prefixMissChars,
    events: after.events - before.events,
    fallbacks: after.fallbacks - before.fallbacks,
    uncertainPods: after.uncertainPods,
  };
}

/**
 * Quantile `q` (0–1) of a cumulative histogram, interpolated linearly inside
 * its bucket as Prometheus' histogram_quantile does (the lowest bucket from 0;
 * a quantile in the +Inf bucket is the highest finite bound). NaN when empty.
 */
export function histogramQuantile(q: number, buckets: readonly { le: number; count: number }[]): number {
  const total = buckets.length ? buckets[buckets.length - 1].count : 0;
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return lower;
      return b.count === below ? b.le : lower + ((b.le - lower) * (rank - below)) / (b.count - below);
    }
    lower = b.le;
    below = b.count;
  }
  return lower;
}
