// Prometheus metrics, named and labelled as the GAIE EPP names them so that
// existing dashboards and alerts work unchanged.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EndpointPool } from '../pool/datastore.ts';
import { isFresh, type Endpoint } from '../pool/endpoint.ts';
import { LabelValues, MAX_LABEL_VALUES } from './bounded.ts';

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
const MODEL_LABELS = ['model_name', 'target_model_name'] as const;

export interface EppMetricsOptions {
  poolName: string;
  stalenessThresholdMs: number;
  version: string;
  /** Also export Node.js process metrics (event loop lag, heap, CPU). */
  processMetrics?: boolean;
  /** Distinct model names kept as label values (default MAX_LABEL_VALUES); later ones share "other". */
  maxModelLabels?: number;
}

/**
 * Labels whose values come from what clients send. Every one of them is set
 * through modelLabel(); test/metric-labels.test.ts fails when a metric gains a
 * label that is in neither this list nor OPERATOR_LABELS.
 */
export const CLIENT_LABELS = ['model_name', 'target_model_name', 'target_model'] as const;
/** Labels whose values come from the operator (config, pool, objectives) or from llm-epp itself. */
export const OPERATOR_LABELS = [
  'priority', 'error_code', 'status', 'pod_name', 'namespace', 'port', 'extension_point', 'plugin_type', 'plugin_name',
  'model_server_pod', 'model_rewrite_name', 'commit', 'build_ref', 'name', 'label', 'reason', 'version', 'major', 'minor',
  'patch', 'space', 'kind', 'type',
] as const;

export class EppMetrics {
  readonly registry = new Registry();
  readonly #models: LabelValues;
  readonly requestTotal: Counter<'model_name' | 'target_model_name' | 'priority'>;
  readonly requestErrorTotal: Counter<'model_name' | 'target_model_name' | 'error_code'>;
  readonly requestDuration: Histogram<'model_name' | 'target_model_name'>;
  readonly requestSizes: Histogram<'model_name' | 'target_model_name'>;
  readonly responseSizes: Histogram<'model_name' | 'target_model_name'>;
  readonly inputTokens: Histogram<'model_name' | 'target_model_name'>;
  readonly outputTokens: Histogram<'model_name' | 'target_model_name'>;
  readonly promptCachedTokens: Histogram<'model_name' | 'target_model_name'>;
  readonly runningRequests: Gauge<'model_name'>;
  readonly ntpot: Histogram<'model_name' | 'target_model_name'>;
  readonly ttft: Histogram<'model_name' | 'target_model_name'>;
  readonly tpot: Histogram<'model_name' | 'target_model_name'>;
  readonly schedulerE2E: Histogram<string>;
  readonly schedulerAttempts: Counter<'status' | 'target_model_name' | 'pod_name' | 'namespace' | 'port'>;
  readonly pluginDuration: Histogram<'extension_point' | 'plugin_type' | 'plugin_name'>;
  readonly scrapeErrors: Counter<'model_server_pod'>;
  readonly prefixIndexerSize: Gauge<string>;
  readonly modelRewrites: Counter<'model_rewrite_name' | 'model_name' | 'target_model'>;
  readonly prefixHitRatio: Histogram<string>;
  readonly prefixHitBytes: Histogram<string>;
  readonly streamsEnded: Counter<'reason'>;
  /** Reads the open ext_proc stream count (set by the server once it exists). */
  openStreams: () => number = () => 0;

  /**
   * The label value for a client-chosen model name: clients can send any
   * string, and every distinct one would otherwise be a new series forever.
   */
  modelLabel(model: string): string {
    return this.#models.value(model);
  }

  constructor(pool: EndpointPool, opts: EppMetricsOptions) {
    const r = this.registry;
    const registers = [r];
    const models = new LabelValues(opts.maxModelLabels ?? MAX_LABEL_VALUES);
    this.#models = models;
    new Gauge({
      name: 'llm_epp_client_label_values',
      help: 'Distinct client-supplied values (model names) kept as metric labels; at the cap, new values are reported as "other".',
      labelNames: ['label'],
      registers,
      collect() {
        this.set({ label: 'model' }, models.size);
      },
    });
    this.requestTotal = new Counter({
      name: 'inference_objective_request_total',
      help: ALPHA + 'Counter of inference objective requests broken out for each model and target model.',
      labelNames: ['model_name', 'target_model_name', 'priority'],
      registers,
    });
    this.requestErrorTotal = new Counter({
      name: 'inference_objective_request_error_total',
      help: ALPHA + 'Counter of inference objective requests errors broken out for each model and target model.',
      labelNames: ['model_name', 'target_model_name', 'error_code'],
      registers,
    });
    const hist = (name: string, help: string, buckets: number[]) =>
      new Histogram({ name, help: ALPHA + help, labelNames: MODEL_LABELS, buckets, registers });
    this.requestDuration = hist('inference_objective_request_duration_seconds', 'Inference objective response latency distribution in seconds for each model and target model.', DURATION_BUCKETS);
    this.requestSizes = hist('inference_objective_request_sizes', 'Inference objective requests size distribution in bytes for each model and target model.', REQUEST_SIZE_BUCKETS);
    this.responseSizes = hist('inference_objective_response_sizes', 'Inference objective responses size distribution in bytes for each model and target model.', RESPONSE_SIZE_BUCKETS);
    this.inputTokens = hist('inference_objective_input_tokens', 'Inference objective input token count distribution for requests in each model.', INPUT_TOKEN_BUCKETS);
    this.outputTokens = hist('inference_objective_output_tokens', 'Inference objective output token count distribution for requests in each model.', OUTPUT_TOKEN_BUCKETS);
    this.promptCachedTokens = hist('inference_objective_prompt_cached_tokens', 'Inference objective prompt cached token count distribution for requests in each model.', INPUT_TOKEN_BUCKETS);
    this.ntpot = hist('inference_objective_normalized_time_per_output_token_seconds', 'Inference objective latency divided by number of output tokens in seconds for each model and target model.', NTPOT_BUCKETS);
    this.ttft = hist('inference_objective_request_ttft_seconds', 'Time to first token as seen by the gateway, in seconds, for each model and target model.', TTFT_BUCKETS);
    this.tpot = hist('inference_objective_request_tpot_seconds', 'Time per output token after the first, as seen by the gateway, in seconds, for each model and target model.', TPOT_BUCKETS);
    this.runningRequests = new Gauge({
      name: 'inference_objective_running_requests',
      help: ALPHA + 'Inference objective number of running requests in each model.',
      labelNames: ['model_name'],
      registers,
    });
    this.schedulerE2E = new Histogram({
      name: 'inference_extension_scheduler_e2e_duration_seconds',
      help: ALPHA + 'End-to-end scheduling latency distribution in seconds.',
      buckets: SCHEDULER_BUCKETS,
      registers,
    });
    this.schedulerAttempts = new Counter({
      name: 'inference_extension_scheduler_attempts_total',
      help: ALPHA + 'Number of scheduling attempts by outcome and chosen endpoint.',
      labelNames: ['status', 'target_model_name', 'pod_name', 'namespace', 'port'],
      registers,
    });
    this.pluginDuration = new Histogram({
      name: 'inference_extension_plugin_duration_seconds',
      help: ALPHA + 'Plugin processing latency distribution in seconds for each extension point, plugin type and plugin name.',
      labelNames: ['extension_point', 'plugin_type', 'plugin_name'],
      buckets: SCHEDULER_BUCKETS,
      registers,
    });
    this.modelRewrites = new Counter({
      name: 'inference_extension_model_rewrite_decisions_total',
      help: ALPHA + 'Model rewrites applied, by InferenceModelRewrite, requested model and target model.',
      labelNames: ['model_rewrite_name', 'model_name', 'target_model'],
      registers,
    });
    this.prefixIndexerSize = new Gauge({
      name: 'inference_extension_prefix_indexer_size',
      help: ALPHA + 'Size of the prefix indexer (blocks held over all endpoints).',
      registers,
    });
    this.prefixHitRatio = new Histogram({
      name: 'inference_extension_prefix_indexer_hit_ratio',
      help: ALPHA + 'Ratio of prefix length matched to total prefix length in the cache lookup.',
      buckets: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
      registers,
    });
    this.prefixHitBytes = new Histogram({
      name: 'inference_extension_prefix_indexer_hit_bytes',
      help: ALPHA + 'Length of the prefix match in number of bytes in the cache lookup.',
      buckets: [0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536],
      registers,
    });
    this.streamsEnded = new Counter({
      name: 'llm_epp_extproc_streams_ended_total',
      help: 'ext_proc streams llm-epp ended on its own, by reason: stream_limit (refused: --max-concurrent-streams), idle_timeout (--stream-idle-timeout), message_too_large, protocol_error, drain_timeout (still open when --drain-timeout ran out).',
      labelNames: ['reason'],
      registers,
    });
    const self = this;
    new Gauge({
      name: 'llm_epp_extproc_streams',
      help: 'ext_proc streams open now.',
      registers,
      collect() {
        this.set(self.openStreams());
      },
    });
    this.scrapeErrors = new Counter({
      name: 'llm_epp_model_server_scrape_errors_total',
      help: 'Failed scrapes of a model server\'s metrics page.',
      labelNames: ['model_server_pod'],
      registers,
    });
    new Gauge({
      name: 'inference_extension_info',
      help: ALPHA + 'General information of the current build of Inference Extension.',
      labelNames: ['commit', 'build_ref'],
      registers,
    }).set({ commit: process.env.LLM_EPP_COMMIT ?? 'unknown', build_ref: opts.version }, 1);

    // Pool gauges are computed when scraped, from the live pool: always
    // current, and no timer on the event loop.
    const name = opts.poolName;
    const fresh = (): Endpoint[] => {
      const now = performance.now();
      return pool.list().filter((e) => isFresh(e, now, opts.stalenessThresholdMs));
    };
    const avg = (eps: Endpoint[], f: (e: Endpoint) => number) => (eps.length ? eps.reduce((s, e) => s + f(e), 0) / eps.length : 0);
    new Gauge({
      name: 'inference_pool_average_kv_cache_utilization',
      help: ALPHA + 'The average kv cache utilization for an inference server pool.',
      labelNames: ['name'],
      registers,
      collect() {
        this.set({ name }, avg(fresh(), (e) => e.metrics!.kvCacheUsage));
      },
    });
    new Gauge({
      name: 'inference_pool_average_queue_size',
      help: ALPHA + 'The average number of requests pending in the model server queue.',
      labelNames: ['name'],
      registers,
      collect() {
        this.set({ name }, avg(fresh(), (e) => e.metrics!.waitingQueueSize));
      },
    });
    new Gauge({
      name: 'inference_pool_average_running_requests',
      help: ALPHA + 'The average number of requests running in the model servers.',
      labelNames: ['name'],
      registers,
      collect() {
        this.set({ name }, avg(fresh(), (e) => e.metrics!.runningRequests));
      },
    });
    new Gauge({
      name: 'inference_pool_ready_pods',
      help: ALPHA + 'The number of ready pods in the inference server pool.',
      labelNames: ['name'],
      registers,
      collect() {
        this.set({ name }, fresh().length);
      },
    });
    new Gauge({
      name: 'inference_pool_per_pod_queue_size',
      help: ALPHA + 'The waiting queue size of each model server pod.',
      labelNames: ['name', 'model_server_pod'],
      registers,
      collect() {
        this.reset();
        for (const e of fresh()) this.set({ name, model_server_pod: e.name }, e.metrics!.waitingQueueSize);
      },
    });
    if (opts.processMetrics) collectDefaultMetrics({ register: r });
  }
}
