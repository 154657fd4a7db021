// llm-d Router v0.10 plugin types that llm-epp does not implement (yet). A
// config that declares one is refused with one line naming the plugin and
// why, never silently ignored: a platform team moving from llm-d Router must
// learn at start-up, not in production, that a feature is missing.
// The README's compatibility table (src/compat-table.ts) reads this list and
// fails on any llm-d Router plugin that is neither here nor registered.

export interface Unsupported {
  /** What the plugin does in llm-d Router, and what to use in llm-epp meanwhile. */
  readonly why: string;
}

const PD = 'prefill/decode (and encode) disaggregation is not implemented in llm-epp yet; use one profile (single-profile-handler with decode-filter)';
const EVICTION = 'in-flight eviction (flowControl.enableEviction) always evicts sheddable requests (priority < 0), lowest priority and most recently dispatched first, as llm-d Router\'s defaults do; its victim policies are not declared as plugins in llm-epp';
const LATENCY = 'predicted-latency routing (the latency predictor sidecar) is not implemented in llm-epp';
const MULTICLUSTER = 'multi-cluster routing is not implemented in llm-epp';
const MM = 'multimodal encoder-cache routing is not implemented in llm-epp';

export const UNSUPPORTED_PLUGINS: ReadonlyMap<string, Unsupported> = new Map(
  (
    [
      // P/D disaggregation and its deciders, filters and helpers.
      ['disagg-profile-handler', PD],
      ['pd-profile-handler', PD],
      ['disagg-headers-handler', PD],
      ['prefill-header-handler', PD],
      ['always-disagg-pd-decider', PD],
      ['prefix-based-pd-decider', PD],
      ['always-disagg-multimodal-decider', PD],
      ['p2p-source-producer', PD],
      ['disaggregatedset-rollout-screener', PD],
      // In-flight eviction's victim policies are built in (flowControl.enableEviction), not declared.
      ['sheddable-eviction-filter', EVICTION],
      ['priority-then-time-eviction-order-policy', EVICTION],
      ['agent-identity', 'agent-identity (fairness ids from agent session headers) is not implemented in llm-epp; set x-llm-d-inference-fairness-id at the gateway instead'],
      // Latency prediction.
      ['predicted-latency-producer', LATENCY],
      ['latency-scorer', LATENCY],
      ['latency-slo-admitter', LATENCY],
      ['slo-headroom-tier-filter', LATENCY],
      // Multimodal.
      ['mm-embeddings-cache-producer', MM],
      ['mm-embeddings-cache-scorer', MM],
      // Topology.
      ['topology-extractor', 'topology-aware routing (zone/rack/host affinity) is not implemented in llm-epp; by-label or label-selector-filter can keep a zone by pod label'],
      ['topology-affinity-filter', 'topology-aware routing is not implemented in llm-epp; by-label or label-selector-filter can keep a zone by pod label'],
      ['topology-affinity-scorer', 'topology-aware routing is not implemented in llm-epp'],
      // Other data sources and parsers.
      ['k8s-notification-source', 'watching arbitrary Kubernetes kinds for extractors is not implemented in llm-epp; endpoint-notification-source is'],
      ['models-data-source', 'scraping /v1/models per endpoint is not implemented in llm-epp'],
      ['models-data-extractor', 'scraping /v1/models per endpoint is not implemented in llm-epp'],
      ['vllmgrpc-parser', 'the vLLM gRPC API is not parsed by llm-epp (it routes HTTP/JSON APIs)'],
      ['vertexai-parser', 'the Vertex AI request format is not parsed by llm-epp'],
      ['context-length-aware', 'context-length-aware scoring is not implemented in llm-epp'],
      ['header-label-affinity-scorer', 'header-to-label affinity scoring is not implemented in llm-epp; label-selector-filter keeps pods by label'],
      ['request-attribute-reporter', 'reporting request attributes in response metadata is not implemented in llm-epp'],
      ['multicluster-file-discovery', MULTICLUSTER],
      ['multicluster-metrics-data-source', MULTICLUSTER],
      ['multicluster-metrics-extractor', MULTICLUSTER],
      ['multicluster-approx-prefix-cache-producer', MULTICLUSTER],
      ['multicluster-prefix-cache-scorer', MULTICLUSTER],
      ['multicluster-queue-scorer', MULTICLUSTER],
      ['multicluster-kv-cache-utilization-scorer', MULTICLUSTER],
      ['multicluster-session-affinity-filter', MULTICLUSTER],
      // llm-d's end-to-end test helpers.
      ['header-based-testing-filter', 'a test-only filter of llm-d Router\'s end-to-end suite'],
      ['destination-endpoint-served-verifier', 'a test-only plugin of llm-d Router\'s end-to-end suite'],
    ] as const
  ).map(([type, why]) => [type, { why }]),
);

/** The one line a refused plugin gets. */
export function unsupportedMessage(name: string, type: string, u: Unsupported): string {
  return `plugin "${name}": type "${type}" (llm-d Router) is not supported by llm-epp: ${u.why}`;
}
