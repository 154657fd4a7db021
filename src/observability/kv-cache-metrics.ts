// Metrics of precise prefix-cache routing: the token producer (latency,
// outcome, prefix-cache reuse), the KV-event subscribers (events by pod and
// type, decode errors, reconnects, sequence gaps) and the KV-block index.
// The index series keep llm-d Router v0.10's names (llm_d_epp_kv_cache_index_*,
// from its embedded llm-d-kv-cache) with their deprecated kvcache_index_*
// twins, and like llm-d they are registered only when the producer's
// indexerConfig.kvBlockIndexConfig.enableMetrics is true. The rest are
// llm-epp's, labelled, so absent until something happens. The `pod` label is
// an endpoint of the pool (bounded by it), never a string from a peer.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { noLabels, registerAlias } from './twin.ts';

const ALPHA = '[ALPHA] ';
const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LOOKUP_BUCKETS = [0.00001, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05];

export type TokenizeOutcome = 'ok' | 'timeout' | 'http' | 'invalid' | 'unreachable' | 'unsupported' | 'aborted' | 'overloaded' | 'error';
export type KvEventKind = 'BlockStored' | 'BlockRemoved' | 'AllBlocksCleared' | 'unknown';

/** The index's counters, registered on demand (enableMetrics). */
export interface KvIndexMetrics {
  readonly admissions: Counter<string>;
  readonly evictions: Counter<string>;
  readonly lookups: Counter<string>;
  readonly hits: Counter<string>;
  readonly maxPodHits: Counter<string>;
  readonly lookupLatency: Histogram<string>;
}

export class KvCacheMetrics {
  readonly tokenizeLatency: Histogram<'plugin_name' | 'backend'>;
  readonly tokenizeRequests: Counter<'plugin_name' | 'backend' | 'result'>;
  readonly tokenizedTokens: Counter<'plugin_name' | 'backend'>;
  readonly tokenizePrefixChars: Counter<'plugin_name' | 'result'>;
  readonly events: Counter<'pod' | 'event_type'>;
  readonly decodeErrors: Counter<'pod'>;
  readonly reconnects: Counter<'pod'>;
  readonly sequenceGaps: Counter<'pod' | 'outcome'>;
  readonly indexBlocks: Gauge<'plugin_name'>;
  readonly uncertainPods: Gauge<'plugin_name'>;
  readonly fallbacks: Counter<'plugin_name' | 'reason'>;
  readonly #registry: Registry;
  #index: KvIndexMetrics | undefined;

  constructor(registry: Registry) {
    this.#registry = registry;
    const registers = [registry];
    this.tokenizeLatency = new Histogram({
      name: 'llm_d_epp_tokenization_latency_seconds',
      help: ALPHA + 'Time the token-producer took to tokenize a request (render call or in-process), in seconds, by backend.',
      labelNames: ['plugin_name', 'backend'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.tokenizeRequests = new Counter({
      name: 'llm_d_epp_tokenization_requests_total',
      help: ALPHA + 'Requests the token-producer handled, by backend and result (ok, or why the request fell back to approximate prefix scoring: timeout, http, invalid, unreachable, unsupported, aborted, overloaded, error).',
      labelNames: ['plugin_name', 'backend', 'result'],
      registers,
    });
    this.tokenizedTokens = new Counter({ name: 'llm_d_epp_tokenized_tokens_total', help: ALPHA + 'Prompt tokens produced by the token-producer.', labelNames: ['plugin_name', 'backend'], registers });
    this.tokenizePrefixChars = new Counter({
      name: 'llm_d_epp_tokenization_prefix_cache_chars_total',
      help: ALPHA + 'Prompt characters the in-process tokenizer took from its prefix cache (result="hit") or tokenized (result="miss"); hit / (hit + miss) is the cache hit rate.',
      labelNames: ['plugin_name', 'result'],
      registers,
    });
    this.events = new Counter({ name: 'llm_d_epp_kv_cache_events_total', help: ALPHA + 'KV-cache events received from the engines, by pod and event type.', labelNames: ['pod', 'event_type'], registers });
    this.decodeErrors = new Counter({ name: 'llm_d_epp_kv_cache_event_decode_errors_total', help: ALPHA + 'KV-event messages that could not be decoded (or had no matching endpoint), by pod ("unknown" when the topic names none).', labelNames: ['pod'], registers });
    this.reconnects = new Counter({ name: 'llm_d_epp_kv_cache_subscriber_reconnects_total', help: ALPHA + 'KV-event subscriber reconnects to a pod (its cache state is cleared: events may have been lost).', labelNames: ['pod'], registers });
    this.sequenceGaps = new Counter({ name: 'llm_d_epp_kv_cache_sequence_gaps_total', help: ALPHA + 'KV-event sequence gaps or resets per pod, by outcome: replayed (filled from the replay socket) or cleared (the pod\'s state was dropped).', labelNames: ['pod', 'outcome'], registers });
    this.indexBlocks = new Gauge({ name: 'llm_d_epp_kv_cache_index_blocks', help: ALPHA + 'KV blocks held by the precise prefix index (over all pods).', labelNames: ['plugin_name'], registers });
    this.uncertainPods = new Gauge({ name: 'llm_d_epp_kv_cache_uncertain_pods', help: ALPHA + 'Pods whose cache state is not known (no subscription yet, or cleared after a gap or reconnect until new events arrive).', labelNames: ['plugin_name'], registers });
    this.fallbacks = new Counter({ name: 'llm_d_epp_precise_prefix_fallbacks_total', help: ALPHA + 'Requests the precise prefix producer scored with its approximate index instead, by reason (no_tokens: tokenization failed or was unavailable).', labelNames: ['plugin_name', 'reason'], registers });
  }

  /** llm-d's kv_cache_index_* series (and the kvcache_index_* twins), registered once on first use. */
  index(): KvIndexMetrics {
    if (this.#index) return this.#index;
    const r = this.#registry;
    const registers = [r];
    const twin = <M,>(metric: M, old: string, help: string): M => {
      // prom-client's metric objects carry their name, though its typings do not say so.
      const source = metric as unknown as Parameters<typeof registerAlias>[1];
      registerAlias(r, source, old, `${ALPHA}[Deprecated: Use ${source.name}] ${help}`, noLabels);
      return metric;
    };
    const counter = (name: string, help: string) => twin(new Counter({ name: `llm_d_epp_kv_cache_index_${name}`, help: ALPHA + help, registers }), `kvcache_index_${name}`, help);
    this.#index = {
      admissions: counter('admissions_total', 'Blocks admitted to the KV-block index.'),
      evictions: counter('evictions_total', 'Blocks evicted from the KV-block index.'),
      lookups: counter('lookup_requests_total', 'KV-block index lookups performed.'),
      hits: counter('lookup_hits_total', 'KV-block index lookups that matched at least one block.'),
      maxPodHits: counter('max_pod_hit_count_total', 'Sum over lookups of the best per-pod matched block count.'),
      lookupLatency: twin(
        new Histogram({ name: 'llm_d_epp_kv_cache_index_lookup_latency_seconds', help: ALPHA + 'KV-block index lookup latency in seconds.', buckets: LOOKUP_BUCKETS, registers }),
        'kvcache_index_lookup_latency_seconds',
        'KV-block index lookup latency in seconds.',
      ),
    };
    return this.#index;
  }
}
