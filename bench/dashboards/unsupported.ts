// The llm-d Router v0.10 metrics (its docs/metrics.md and pkg/epp metric
// registrations at the v0.10.0 commit) of features llm-epp does not have. A
// panel of llm-d's dashboard may stay empty only when every metric it waits
// for is listed here; any other empty panel fails the dashboard check.

const P = 'llm_d_epp_';

export const UNSUPPORTED_FEATURES: Readonly<Record<string, readonly string[]>> = {
  'P/D disaggregation': [
    P + 'disagg_decision_total',
    P + 'pd_decision_total',
    P + 'disaggregatedset_strict_header_no_match_total',
    P + 'disaggregatedset_revision_gating_share',
    'llm_d_inference_scheduler_disagg_decision_total',
    'llm_d_inference_scheduler_pd_decision_total',
  ],
  'predicted latency / SLO': [
    'inference_request_metric',
    'request_predicted_ttft_seconds',
    'request_ttft_prediction_duration_seconds',
    'request_predicted_tpot_seconds',
    'request_tpot_prediction_duration_seconds',
    'request_slo_violation_total',
  ].flatMap((n) => [P + n, 'inference_objective_' + n]),
  'KV-cache index': [
    'kv_cache_index_admissions_total',
    'kv_cache_index_evictions_total',
    'kv_cache_index_lookup_requests_total',
    'kv_cache_index_lookup_hits_total',
    'kv_cache_index_max_pod_hit_count_total',
    'kv_cache_index_lookup_latency_seconds',
    'kv_cache_events_dedup_removed_hashes_suppressed_total',
    'kv_cache_events_dedup_removed_hashes_forwarded_total',
    'kv_cache_events_active_subscribers',
    'kv_cache_events_messages_received_total',
    'kv_cache_events_pool_capacity',
    'kv_cache_events_pool_queue_depth',
    'kv_cache_events_removals_skipped_total',
    'kv_cache_events_stores_skipped_total',
    'kv_cache_events_subscriber_reconnections_total',
    'kv_cache_events_zmq_errors_total',
  ].map((n) => P + n),
  'encoder cache': ['encoder_cache_queries_total', 'encoder_cache_hits_total', 'encoder_cache_hit_ratio'].map((n) => P + n),
  'per-endpoint in-flight load': [P + 'inflight_requests', P + 'inflight_tokens'],
};

const BY_NAME = new Map<string, string>(Object.entries(UNSUPPORTED_FEATURES).flatMap(([feature, names]) => names.map((n) => [n, feature] as const)));

/** The feature llm-epp lacks that `metric` (a sample name: histograms add _bucket, _sum, _count) belongs to. */
export function unsupportedFeature(metric: string): string | undefined {
  const own = BY_NAME.get(metric);
  if (own) return own;
  const base = /^(.*)_(?:bucket|sum|count)$/.exec(metric)?.[1];
  return base ? BY_NAME.get(base) : undefined;
}
