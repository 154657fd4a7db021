// Prometheus metrics under llm-d Router v0.10's names (llm_d_epp_*, its
// docs/metrics.md), each with its deprecated twin (GAIE's
// inference_objective_*, inference_pool_*, inference_extension_*) written
// alongside as llm-d does, so dashboards built for either keep working.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EndpointPool } from '../pool/datastore.ts';
import { LabelValues, MAX_LABEL_VALUES } from './bounded.ts';
import { KvCacheMetrics } from './kv-cache-metrics.ts';
import { registerPoolGauges } from './pool-gauges.ts';
import { keepLabels, noLabels, registerAlias, sameLabels, type OldLabels } from './twin.ts';

const DURATION_BUCKETS = [
  0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120, 180, 240,
  300, 360, 480, 600, 900, 1200, 1800, 2700, 3600,
];
const REQUEST_SIZE_BUCKETS = [
  64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1048576, 2097152, 4194304,
  8388608, 16777216, 33554432, 67108864, 134217728, 268435456, 536870912, 1073741824,
];
const RESPONSE_SIZE_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536];
const INPUT_TOKEN_BUCKETS = [
  1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32778, 65536, 131072, 262144, 524288, 1048576,
];
const OUTPUT_TOKEN_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192];
const NTPOT_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0];
// TTFT / TPOT as the gateway sees them: vLLM's own bucket lists.
const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0,
  640.0, 2560.0,
];
const TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
const SCHEDULER_BUCKETS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];

const ALPHA = '[ALPHA] ';
const deprecated = (now: string, help: string) => `${ALPHA}[Deprecated: Use ${now}] ${help}`;
// llm-d's buckets for the series GAIE did not have.
const LLMD_TTFT_BUCKETS = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60, 120];
const LLMD_TPOT_BUCKETS = [0.0005, 0.00205, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 2];
const ITL_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2];
const REQUEST_PROCESSING_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.04, 0.06, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const RESPONSE_PROCESSING_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const STREAM_DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600];

export interface EppMetricsOptions {
  poolName: string;
  stalenessThresholdMs: number;
  version: string;
  /** Also export Node.js process metrics (event loop lag, heap, CPU). */
  processMetrics?: boolean;
  /** Distinct model names kept as label values (default MAX_LABEL_VALUES); later ones share "other". */
  maxModelLabels?: number;
  /** Distinct fairness ids kept as label values (default MAX_LABEL_VALUES); later ones share "other". */
  maxFairnessLabels?: number;
  /** llm_d_epp_extproc_* stream metrics (--enable-grpc-stream-metrics). */
  streamMetrics?: boolean;
}

/**
 * Labels whose values come from what clients send. Every one of them is set
 * through modelLabel() or fairnessLabel() (program_id: a fairness id); test/client-labels.test.ts fails
 * when a metric gains a label that is in neither this list nor OPERATOR_LABELS.
 */
export const CLIENT_LABELS = ['model_name', 'target_model_name', 'target_model', 'fairness_id', 'program_id'] as const;
/** Labels whose values come from the operator (config, pool, objectives) or from llm-epp itself. */
export const OPERATOR_LABELS = [
  'priority', 'error_code', 'status', 'pod_name', 'endpoint_name', 'namespace', 'port', 'extension_point', 'plugin_type', 'plugin_name',
  'model_server_pod', 'model_server_endpoint', 'model_rewrite_name', 'commit', 'build_ref', 'name', 'label', 'reason', 'version', 'major', 'minor',
  'patch', 'space', 'kind', 'type', 'streaming', 'code', 'source_type', 'extractor_type', 'producer_name',
  'outcome', 'inference_pool', 'detector',
] as const;

/** The labels of llm-d's request and latency series. */
export interface RequestLabels {
  [k: string]: string;
  model_name: string;
  target_model_name: string;
  fairness_id: string;
  priority: string;
}
type AttemptLabels = { status: string; target_model_name: string; endpoint_name: string; namespace: string; port: string };
type PluginLabels = { extension_point: string; plugin_type: string; plugin_name: string };
type PrefixLabels = { plugin_name: string; plugin_type: string };
export type InflightLabel = 'endpoint_name' | 'namespace' | 'producer_name' | 'fairness_id' | 'priority';

/** The ext_proc stream lifecycle series (opt-in). */
export interface StreamMetrics {
  readonly inflight: Gauge<string>;
  readonly duration: Histogram<string>;
  readonly total: Counter<'code'>;
}

export class EppMetrics {
  readonly registry = new Registry();
  readonly #models: LabelValues;
  readonly #fairness: LabelValues;
  readonly requestTotal: Counter<string>;
  readonly requestErrorTotal: Counter<string>;
  readonly requestDuration: Histogram<string>;
  readonly requestSizes: Histogram<string>;
  readonly responseSizes: Histogram<string>;
  readonly inputTokens: Histogram<string>;
  readonly outputTokens: Histogram<string>;
  readonly promptCachedTokens: Histogram<string>;
  readonly runningRequests: Gauge<string>;
  readonly ntpot: Histogram<string>;
  /** llm_d_epp_request_ttft_seconds (request labels + streaming). */
  readonly ttft: Histogram<string>;
  /** The GAIE-era inference_objective_request_ttft_seconds (model pair; other buckets, so recorded on its own). */
  readonly ttftGaie: Histogram<'model_name' | 'target_model_name'>;
  /** llm_d_epp_request_streaming_tpot_seconds: streamed responses only. */
  readonly tpot: Histogram<string>;
  /** The GAIE-era inference_objective_request_tpot_seconds: every response, other buckets. */
  readonly tpotGaie: Histogram<'model_name' | 'target_model_name'>;
  readonly itl: Histogram<string>;
  readonly requestProcessing: Histogram<string>;
  readonly responseProcessing: Histogram<string>;
  readonly schedulerE2E: Histogram<string>;
  readonly schedulerAttempts: Counter<keyof AttemptLabels>;
  readonly pluginDuration: Histogram<keyof PluginLabels>;
  readonly modelRewrites: Counter<'model_rewrite_name' | 'model_name' | 'target_model'>;
  readonly prefixIndexerSize: Gauge<keyof PrefixLabels>;
  readonly prefixHitRatio: Histogram<keyof PrefixLabels>;
  readonly prefixHitBytes: Histogram<keyof PrefixLabels>;
  readonly scrapeErrors: Counter<'model_server_pod'>;
  readonly pollErrors: Counter<'source_type'>;
  readonly extractErrors: Counter<'source_type' | 'extractor_type'>;
  readonly streamsEnded: Counter<'reason'>;
  /** In-flight load per endpoint, fairness id and priority, set by an inflight-load-producer (llm-d: only with one configured). */
  readonly inflightRequests: Gauge<InflightLabel>;
  readonly inflightTokens: Gauge<InflightLabel>;
  /** Undefined unless --enable-grpc-stream-metrics. */
  readonly streams: StreamMetrics | undefined;
  /** Token producer, KV events and the KV-block index (precise prefix-cache routing). */
  readonly kvCache: KvCacheMetrics;
  /** Reads the open ext_proc stream count (set by the server once it exists). */
  openStreams: () => number = () => 0;

  /**
   * The label value for a client-chosen model name: clients can send any
   * string, and every distinct one would otherwise be a new series forever.
   * model_name and target_model_name share one cap, as in llm-d.
   */
  modelLabel(model: string): string {
    return this.#models.value(model);
  }

  /** Model names configured by InferenceModelRewrites: their labels are never folded into "other". */
  pinModels(names: Iterable<string>): void {
    this.#models.pin(names);
  }

  /** The label value for a client-chosen fairness id (x-llm-d-inference-fairness-id): capped like model names. */
  fairnessLabel(id: string): string {
    return this.#fairness.value(id);
  }

  constructor(pool: EndpointPool, opts: EppMetricsOptions) {
    const r = this.registry;
    const registers = [r];
    const models = new LabelValues(opts.maxModelLabels ?? MAX_LABEL_VALUES);
    const fairness = new LabelValues(opts.maxFairnessLabels ?? MAX_LABEL_VALUES);
    this.#models = models;
    this.#fairness = fairness;
    new Gauge({
      name: 'llm_epp_client_label_values',
      help: 'Distinct client-supplied values kept as metric labels (model names, fairness ids); at the cap, new values are reported as "other".',
      labelNames: ['label'],
      registers,
      aggregator: 'max',
      collect() {
        this.set({ label: 'model' }, models.size);
        this.set({ label: 'fairness_id' }, fairness.size);
      },
    });

    const REQ = ['model_name', 'target_model_name', 'fairness_id', 'priority'];
    const counter = (name: string, help: string, labelNames: string[]) => new Counter({ name, help, labelNames, registers });
    const histogram = (name: string, help: string, labelNames: string[], buckets: number[]) => new Histogram({ name, help, labelNames, buckets, registers });
    // `aggregator`: how --workers' /metrics combines the threads' values (each worker holds its own copy of a shared index: max).
    const gauge = (name: string, help: string, labelNames: string[], aggregator: 'sum' | 'max' | 'first' = 'sum') => new Gauge({ name, help, labelNames, registers, aggregator });

    /** The deprecated twin of `metric`, derived from it at scrape time. */
    const twin = <M,>(metric: M, old: string, help: string, map: OldLabels): M => {
      // prom-client's metric objects carry their name, though its typings do not say so.
      const source = metric as unknown as { name: string; get(): Promise<never> };
      registerAlias(r, source, old, deprecated(source.name, help), map);
      return metric;
    };
    const MODELS = keepLabels('model_name', 'target_model_name');
    /** A request histogram: llm_d_epp_<now> with the request labels; inference_objective_<old> by model pair. */
    const reqHist = (now: string, old: string, help: string, buckets: number[], oldHelp = help) =>
      twin(histogram(`llm_d_epp_${now}`, ALPHA + help, REQ, buckets), `inference_objective_${old}`, oldHelp, MODELS);

    this.requestTotal = twin(
      counter('llm_d_epp_request_total', ALPHA + 'Total number of processed requests.', REQ),
      'inference_objective_request_total',
      'Counter of inference objective requests broken out for each model and target model.',
      keepLabels('model_name', 'target_model_name', 'priority'),
    );
    this.requestErrorTotal = twin(
      counter('llm_d_epp_request_error_total', ALPHA + 'Total number of request errors.', [...REQ, 'error_code']),
      'inference_objective_request_error_total',
      'Counter of inference objective requests errors broken out for each model and target model.',
      keepLabels('model_name', 'target_model_name', 'error_code'),
    );
    this.requestDuration = reqHist('request_duration_seconds', 'request_duration_seconds', 'End-to-end request latency distribution in seconds.', DURATION_BUCKETS, 'Inference objective response latency distribution in seconds for each model and target model.');
    this.requestSizes = reqHist('request_size_bytes', 'request_sizes', 'Request body size distribution in bytes.', REQUEST_SIZE_BUCKETS, 'Inference objective requests size distribution in bytes for each model and target model.');
    this.responseSizes = reqHist('response_size_bytes', 'response_sizes', 'Response body size distribution in bytes.', RESPONSE_SIZE_BUCKETS, 'Inference objective responses size distribution in bytes for each model and target model.');
    this.inputTokens = reqHist('request_input_tokens', 'input_tokens', 'Input (prompt) token count distribution.', INPUT_TOKEN_BUCKETS, 'Inference objective input token count distribution for requests in each model.');
    this.outputTokens = reqHist('request_output_tokens', 'output_tokens', 'Output token count distribution.', OUTPUT_TOKEN_BUCKETS, 'Inference objective output token count distribution for requests in each model.');
    this.promptCachedTokens = reqHist('request_cached_tokens', 'prompt_cached_tokens', 'Prompt tokens served from the model server\'s prefix cache.', INPUT_TOKEN_BUCKETS, 'Inference objective prompt cached token count distribution for requests in each model.');
    this.ntpot = reqHist('request_ntpot_seconds', 'normalized_time_per_output_token_seconds', 'Normalized time per output token in seconds (end-to-end latency divided by output token count).', NTPOT_BUCKETS, 'Inference objective latency divided by number of output tokens in seconds for each model and target model.');
    this.runningRequests = twin(
      gauge('llm_d_epp_request_running', ALPHA + 'Current number of active running requests.', REQ),
      'inference_objective_running_requests',
      'Inference objective number of running requests in each model.',
      keepLabels('model_name'),
    );
    // The GAIE-era TTFT/TPOT series have other buckets (and TPOT other semantics) than llm-d's:
    // they cannot be derived at scrape time, so they are recorded on their own.
    const MODEL_PAIR = ['model_name', 'target_model_name'];
    this.ttft = histogram('llm_d_epp_request_ttft_seconds', ALPHA + 'Time to first token in seconds, from request received to the first response byte; for a non-streaming request, the whole response time.', [...REQ, 'streaming'], LLMD_TTFT_BUCKETS);
    this.ttftGaie = histogram('inference_objective_request_ttft_seconds', deprecated('llm_d_epp_request_ttft_seconds', 'Time to first token as seen by the gateway, in seconds, for each model and target model.'), MODEL_PAIR, TTFT_BUCKETS) as Histogram<'model_name' | 'target_model_name'>;
    this.tpot = histogram('llm_d_epp_request_streaming_tpot_seconds', ALPHA + 'Average time per output token in seconds for streaming requests: (e2e - TTFT) / (output_tokens - 1).', REQ, LLMD_TPOT_BUCKETS);
    this.tpotGaie = histogram('inference_objective_request_tpot_seconds', deprecated('llm_d_epp_request_streaming_tpot_seconds', 'Time per output token after the first, as seen by the gateway, in seconds, for each model and target model.'), MODEL_PAIR, TPOT_BUCKETS) as Histogram<'model_name' | 'target_model_name'>;
    this.itl = histogram('llm_d_epp_request_streaming_itl_seconds', ALPHA + 'Inter-token latency in seconds for streaming requests: the time between consecutive response body chunks.', REQ, ITL_BUCKETS);
    this.requestProcessing = histogram('llm_d_epp_request_processing_duration_seconds', ALPHA + 'EPP request processing latency in seconds, from request receipt until the request body has been handled (routed), including admission.', [], REQUEST_PROCESSING_BUCKETS);
    this.responseProcessing = histogram('llm_d_epp_response_processing_duration_seconds', ALPHA + 'EPP response processing latency in seconds: the sum of per-chunk handler time for a streamed response, or the interval from response headers to completion for a non-streaming one.', [], RESPONSE_PROCESSING_BUCKETS);

    this.schedulerE2E = twin(
      histogram('llm_d_epp_scheduler_e2e_duration_seconds', ALPHA + 'End-to-end scheduling latency distribution in seconds.', [], SCHEDULER_BUCKETS),
      'inference_extension_scheduler_e2e_duration_seconds',
      'End-to-end scheduling latency distribution in seconds.',
      noLabels,
    );
    this.schedulerAttempts = twin(
      counter('llm_d_epp_scheduler_attempts_total', ALPHA + 'Total number of scheduling attempts, by outcome and chosen endpoint.', ['status', 'target_model_name', 'endpoint_name', 'namespace', 'port']) as Counter<keyof AttemptLabels>,
      'inference_extension_scheduler_attempts_total',
      'Total number of scheduling attempts.',
      (l) => ({ status: l.status, target_model_name: l.target_model_name, pod_name: l.endpoint_name, namespace: l.namespace, port: l.port }),
    );
    const PLUGIN = ['extension_point', 'plugin_type', 'plugin_name'];
    const pluginHelp = 'Plugin processing latency distribution in seconds for each extension point, plugin type and plugin name.';
    this.pluginDuration = twin(histogram('llm_d_epp_plugin_duration_seconds', ALPHA + pluginHelp, PLUGIN, SCHEDULER_BUCKETS) as Histogram<keyof PluginLabels>, 'inference_extension_plugin_duration_seconds', pluginHelp, sameLabels);
    const rewriteHelp = 'Model rewrites applied, by InferenceModelRewrite, requested model and target model.';
    this.modelRewrites = twin(
      counter('llm_d_epp_model_rewrite_decisions_total', ALPHA + rewriteHelp, ['model_rewrite_name', 'model_name', 'target_model']) as Counter<'model_rewrite_name' | 'model_name' | 'target_model'>,
      'inference_extension_model_rewrite_decisions_total',
      rewriteHelp,
      sameLabels,
    );
    const PREFIX = ['plugin_name', 'plugin_type'];
    const RATIO_BUCKETS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
    const HIT_BYTES_BUCKETS = [0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];
    // GAIE's prefix series were unlabelled: the deprecated twins sum over the prefix producers.
    this.prefixIndexerSize = twin(gauge('llm_d_epp_prefix_indexer_size', ALPHA + 'Size of the approximate prefix indexer (blocks held over all endpoints).', PREFIX, 'max') as Gauge<keyof PrefixLabels>, 'inference_extension_prefix_indexer_size', 'Size of the prefix indexer.', noLabels);
    this.prefixHitRatio = twin(
      histogram('llm_d_epp_prefix_indexer_hit_ratio', ALPHA + 'Ratio of prefix length matched to total prefix length in the cache lookup.', PREFIX, RATIO_BUCKETS) as Histogram<keyof PrefixLabels>,
      'inference_extension_prefix_indexer_hit_ratio',
      'Ratio of prefix length matched to total prefix length in the cache lookup.',
      noLabels,
    );
    this.prefixHitBytes = twin(
      histogram('llm_d_epp_prefix_indexer_hit_bytes', ALPHA + 'Length of the prefix match in number of bytes in the cache lookup.', PREFIX, HIT_BYTES_BUCKETS) as Histogram<keyof PrefixLabels>,
      'inference_extension_prefix_indexer_hit_bytes',
      'Length of the prefix match in number of bytes in the cache lookup.',
      noLabels,
    );
    this.pollErrors = twin(
      counter('llm_d_epp_datalayer_poll_errors_total', ALPHA + 'Data-source poll errors (failed scrapes) per source type.', ['source_type']) as Counter<'source_type'>,
      'llm_d_inference_scheduler_datalayer_poll_errors_total',
      'Data-source poll errors per source type.',
      sameLabels,
    );
    this.extractErrors = twin(
      counter('llm_d_epp_datalayer_extract_errors_total', ALPHA + 'Extract errors (a page without the metrics its extractor needs) per source and extractor type.', ['source_type', 'extractor_type']) as Counter<'source_type' | 'extractor_type'>,
      'llm_d_inference_scheduler_datalayer_extract_errors_total',
      'Extract errors per source/extractor type.',
      sameLabels,
    );
    this.streamsEnded = counter(
      'llm_epp_extproc_streams_ended_total',
      'ext_proc streams llm-epp ended on its own, by reason: stream_limit (refused: --max-concurrent-streams), idle_timeout (--stream-idle-timeout), message_too_large, protocol_error, drain_timeout (still open when --drain-timeout ran out).',
      ['reason'],
    ) as Counter<'reason'>;
    const self = this;
    new Gauge({
      name: 'llm_epp_extproc_streams',
      help: 'ext_proc streams open now.',
      registers,
      collect() {
        this.set(self.openStreams());
      },
    });
    this.streams = opts.streamMetrics
      ? {
          inflight: gauge('llm_d_epp_extproc_streams_inflight', ALPHA + 'Number of ext_proc gRPC streams currently open.', []),
          duration: histogram('llm_d_epp_extproc_stream_duration_seconds', ALPHA + 'Duration an ext_proc gRPC stream stays open, in seconds.', [], STREAM_DURATION_BUCKETS),
          total: counter('llm_d_epp_extproc_streams_total', ALPHA + 'Total ext_proc gRPC streams completed, by gRPC status code.', ['code']) as Counter<'code'>,
        }
      : undefined;
    const INFLIGHT = ['endpoint_name', 'namespace', 'producer_name', 'fairness_id', 'priority'];
    this.inflightRequests = gauge('llm_d_epp_inflight_requests', ALPHA + 'Requests in flight on each endpoint (scheduled, not yet completed), as tracked by the inflight-load-producer.', INFLIGHT) as Gauge<InflightLabel>;
    this.inflightTokens = gauge('llm_d_epp_inflight_tokens', ALPHA + 'Tokens in flight on each endpoint: uncached prompt tokens, plus estimated output tokens with addEstimatedOutputTokens.', INFLIGHT) as Gauge<InflightLabel>;
    this.scrapeErrors = counter('llm_epp_model_server_scrape_errors_total', 'Failed scrapes of a model server\'s metrics page.', ['model_server_pod']) as Counter<'model_server_pod'>;
    const info = twin(gauge('llm_d_epp_info', ALPHA + 'General information of the current build.', ['commit', 'build_ref'], 'first'), 'inference_extension_info', 'General information of the current build of Inference Extension.', sameLabels);
    info.set({ commit: process.env.LLM_EPP_COMMIT ?? 'unknown', build_ref: opts.version }, 1);

    this.kvCache = new KvCacheMetrics(r);
    registerPoolGauges(registers, pool, opts.poolName, opts.stalenessThresholdMs);
    if (opts.processMetrics) collectDefaultMetrics({ register: r });
  }
}
