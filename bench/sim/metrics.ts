// Metric state of one simulated engine and its rendering as vLLM V1's /metrics page
// (≈ v0.11: `vllm:` names, `engine` + `model_name` labels sorted alphabetically as
// prometheus_client does, counters exposed with `_total`, Python float formatting, the
// bucket lists of vllm/v1/metrics/loggers.py). `_created` series are not emitted.
import { ITERATION_BUCKETS, ITL_BUCKETS, LATENCY_BUCKETS, TTFT_BUCKETS, buckets125, py } from '../lib/vllm-page.ts';

const N_BUCKETS = [1, 2, 5, 10, 20];

export class Histogram {
  readonly bounds: readonly number[];
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]) {
        this.counts[i]++;
        return;
      }
    }
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

export type FinishReason = 'stop' | 'length' | 'abort';

export class EngineMetrics {
  promptTokens = 0;
  generationTokens = 0;
  prefixCacheQueries = 0;
  prefixCacheHits = 0;
  preemptions = 0;
  success: Record<FinishReason, number> = { stop: 0, length: 0, abort: 0 };
  readonly ttft = new Histogram(TTFT_BUCKETS);
  readonly itl = new Histogram(ITL_BUCKETS);
  readonly requestTpot = new Histogram(ITL_BUCKETS);
  readonly e2e = new Histogram(LATENCY_BUCKETS);
  readonly queue = new Histogram(LATENCY_BUCKETS);
  readonly inference = new Histogram(LATENCY_BUCKETS);
  readonly prefill = new Histogram(LATENCY_BUCKETS);
  readonly decode = new Histogram(LATENCY_BUCKETS);
  readonly iterationTokens = new Histogram(ITERATION_BUCKETS);
  readonly requestPromptTokens: Histogram;
  readonly requestGenerationTokens: Histogram;
  readonly requestMaxNumGenerationTokens: Histogram;
  readonly requestParamsMaxTokens: Histogram;
  readonly requestParamsN = new Histogram(N_BUCKETS);

  constructor(maxModelLen: number) {
    const b = buckets125(maxModelLen);
    this.requestPromptTokens = new Histogram(b);
    this.requestGenerationTokens = new Histogram(b);
    this.requestMaxNumGenerationTokens = new Histogram(b);
    this.requestParamsMaxTokens = new Histogram(b);
  }

  reset(): void {
    this.promptTokens = 0;
    this.generationTokens = 0;
    this.prefixCacheQueries = 0;
    this.prefixCacheHits = 0;
    this.preemptions = 0;
    this.success = { stop: 0, length: 0, abort: 0 };
    for (const v of Object.values(this)) if (v instanceof Histogram) v.reset();
  }
}

/** What the page renderer needs from an engine. */
export interface MetricsSource {
  readonly modelName: string;
  readonly engineIndex: string;
  readonly metrics: EngineMetrics;
  readonly numRunning: number;
  readonly numWaiting: number;
  readonly kvCacheUsage: number;
  readonly blockSize: number;
  readonly numGpuBlocks: number;
  readonly enablePrefixCaching: boolean;
  /** Present only when LoRA is configured. */
  readonly lora?: { maxLoras: number; running: string[]; waiting: string[] };
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** Render the vLLM /metrics page of one engine. */
export function renderMetrics(src: MetricsSource, nowUnixSeconds = Date.now() / 1000): string {
  const out: string[] = [];
  const model = esc(src.modelName);
  const eng = esc(src.engineIndex);
  const lbl = `engine="${eng}",model_name="${model}"`;
  const m = src.metrics;
  const family = (name: string, type: string, help: string, lines: string[]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
  };
  const gauge = (name: string, help: string, v: number) => family(name, 'gauge', help, [`${name}{${lbl}} ${py(v)}`]);
  const counter = (name: string, help: string, v: number) => family(`${name}_total`, 'counter', help, [`${name}_total{${lbl}} ${py(v)}`]);
  const histogram = (name: string, help: string, h: Histogram) => {
    const lines: string[] = [];
    let cum = 0;
    for (let i = 0; i < h.bounds.length; i++) {
      cum += h.counts[i];
      lines.push(`${name}_bucket{engine="${eng}",le="${py(h.bounds[i])}",model_name="${model}"} ${py(cum)}`);
    }
    lines.push(`${name}_bucket{engine="${eng}",le="+Inf",model_name="${model}"} ${py(h.count)}`);
    lines.push(`${name}_count{${lbl}} ${py(h.count)}`, `${name}_sum{${lbl}} ${py(h.sum)}`);
    family(name, 'histogram', help, lines);
  };

  gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', src.numRunning);
  gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', src.numWaiting);
  gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', src.kvCacheUsage);
  if (src.lora !== undefined) {
    const l = src.lora;
    family('vllm:lora_requests_info', 'gauge', 'Running stats on lora requests.', [
      `vllm:lora_requests_info{max_lora="${l.maxLoras}",running_lora_adapters="${esc(l.running.join(','))}",waiting_lora_adapters="${esc(l.waiting.join(','))}"} ${py(nowUnixSeconds)}`,
    ]);
  }
  family('vllm:cache_config_info', 'gauge', 'Information of the LLMEngine CacheConfig', [
    `vllm:cache_config_info{block_size="${src.blockSize}",cache_dtype="auto",calculate_kv_scales="False",cpu_offload_gb="0",enable_prefix_caching="${src.enablePrefixCaching ? 'True' : 'False'}",engine="${eng}",gpu_memory_utilization="0.9",is_attention_free="False",num_cpu_blocks="None",num_gpu_blocks="${src.numGpuBlocks}",num_gpu_blocks_override="None",prefix_caching_hash_algo="sha256",sliding_window="None",swap_space="4",swap_space_bytes="4294967296"} 1.0`,
  ]);
  counter('vllm:num_preemptions', 'Cumulative number of preemption from the engine.', m.preemptions);
  counter('vllm:prompt_tokens', 'Number of prefill tokens processed.', m.promptTokens);
  counter('vllm:generation_tokens', 'Number of generation tokens processed.', m.generationTokens);
  family('vllm:request_success_total', 'counter', 'Count of successfully processed requests.',
    (['stop', 'length', 'abort'] as const).map((r) => `vllm:request_success_total{engine="${eng}",finished_reason="${r}",model_name="${model}"} ${py(m.success[r])}`));
  counter('vllm:prefix_cache_queries', 'Prefix cache queries, in terms of number of queried tokens.', m.prefixCacheQueries);
  counter('vllm:prefix_cache_hits', 'Prefix cache hits, in terms of number of cached tokens.', m.prefixCacheHits);
  histogram('vllm:request_prompt_tokens', 'Number of prefill tokens processed.', m.requestPromptTokens);
  histogram('vllm:request_generation_tokens', 'Number of generation tokens processed.', m.requestGenerationTokens);
  histogram('vllm:iteration_tokens_total', 'Histogram of number of tokens per engine_step.', m.iterationTokens);
  histogram('vllm:request_max_num_generation_tokens', 'Histogram of maximum number of requested generation tokens.', m.requestMaxNumGenerationTokens);
  histogram('vllm:request_params_n', 'Histogram of the n request parameter.', m.requestParamsN);
  histogram('vllm:request_params_max_tokens', 'Histogram of the max_tokens request parameter.', m.requestParamsMaxTokens);
  histogram('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', m.ttft);
  histogram('vllm:time_per_output_token_seconds', 'Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.', m.itl);
  histogram('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', m.itl);
  histogram('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', m.e2e);
  histogram('vllm:request_queue_time_seconds', 'Histogram of time spent in WAITING phase for request.', m.queue);
  histogram('vllm:request_inference_time_seconds', 'Histogram of time spent in RUNNING phase for request.', m.inference);
  histogram('vllm:request_prefill_time_seconds', 'Histogram of time spent in PREFILL phase for request.', m.prefill);
  histogram('vllm:request_decode_time_seconds', 'Histogram of time spent in DECODE phase for request.', m.decode);
  histogram('vllm:request_time_per_output_token_seconds', 'Histogram of time_per_output_token_seconds per request.', m.requestTpot);
  return out.join('\n') + '\n';
}
