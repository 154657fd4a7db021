// A realistic vLLM V1 /metrics page for benchmarks (real family names, labels and bucket lists).

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

// Bucket lists from vLLM v1/metrics/loggers.py (≈ v0.10–0.12); the simulator's pages use them too.
export const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];
export const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
export const LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];
export const ITERATION_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

/** vLLM's build_1_2_5_buckets(max): 1, 2, 5, 10, 20, 50, … up to max. */
export function buckets125(max: number): number[] {
  const out: number[] = [];
  for (let m = 1; ; m *= 10) {
    for (const k of [1, 2, 5]) {
      if (k * m > max) return out;
      out.push(k * m);
    }
  }
}

const TOKENS_125 = buckets125(100_000);

/** Value formatting of Python prometheus_client (floatToGoString): repr(), switching to
 * Go-style exponents above 6 integer digits, e.g. 8.128902e+06, 1.7537953269352946e+09. */
export function py(v: number): string {
  let s = Number.isInteger(v) && Math.abs(v) < 1e16 ? `${v}.0` : String(v);
  const dot = s.indexOf('.');
  if (v > 0 && dot > 6 && !s.includes('e')) {
    const mantissa = `${s[0]}.${s.slice(1, dot)}${s.slice(dot + 1)}`.replace(/\.?0+$/, '');
    s = `${mantissa}e+0${dot - 1}`;
  }
  return s;
}

/** A realistic vLLM V1 (≈ v0.10) page of ~25 KB: engine + model_name labels, _created
 * series, the real bucket lists (a real page also has prefill/decode/per-request-TPOT and
 * further token histograms; they are left out to keep the page at the size the brief asks for). */
export interface PageState {
  waiting: number;
  running: number;
  kv: number;
}

export function syntheticVllmPage(state: PageState = { waiting: 3, running: 24, kv: 0.6187263736263736 }): string {
  const out: string[] = [];
  const created = 1.7537953269352946e9;
  const lbl = `engine="0",model_name="${MODEL}"`;
  const family = (name: string, type: string, help: string, lines: string[]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
  };
  family('python_gc_objects_collected_total', 'counter', 'Objects collected during gc', ['0', '1', '2'].map((g, i) => `python_gc_objects_collected_total{generation="${g}"} ${py([12045, 3311, 902][i])}`));
  family('python_gc_collections_total', 'counter', 'Number of times this generation was collected', ['0', '1', '2'].map((g, i) => `python_gc_collections_total{generation="${g}"} ${py([3301, 299, 14][i])}`));
  family('python_info', 'gauge', 'Python platform information', ['python_info{implementation="CPython",major="3",minor="12",patchlevel="11",version="3.12.11"} 1.0']);
  family('process_virtual_memory_bytes', 'gauge', 'Virtual memory size in bytes.', [`process_virtual_memory_bytes ${py(41379475456)}`]);
  family('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', [`process_resident_memory_bytes ${py(3276800000)}`]);
  family('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.', [`process_start_time_seconds ${py(1753795210.44)}`]);
  family('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.', ['process_cpu_seconds_total 1893.54']);
  family('process_open_fds', 'gauge', 'Number of open file descriptors.', ['process_open_fds 87.0']);
  family('vllm:num_requests_running', 'gauge', 'Number of requests in model execution batches.', [`vllm:num_requests_running{${lbl}} ${py(state.running)}`]);
  family('vllm:num_requests_waiting', 'gauge', 'Number of requests waiting to be processed.', [`vllm:num_requests_waiting{${lbl}} ${py(state.waiting)}`]);
  family('vllm:kv_cache_usage_perc', 'gauge', 'KV-cache usage. 1 means 100 percent usage.', [`vllm:kv_cache_usage_perc{${lbl}} ${py(state.kv)}`]);
  family('vllm:engine_sleep_state', 'gauge', 'Engine sleep state', ['awake', 'weights_offloaded', 'discard_all'].map((s, i) => `vllm:engine_sleep_state{${lbl},sleep_state="${s}"} ${py(i === 0 ? 1 : 0)}`));
  family('vllm:cache_config_info', 'gauge', 'Information of the LLMEngine CacheConfig', [
    'vllm:cache_config_info{block_size="16",cache_dtype="auto",calculate_kv_scales="False",cpu_offload_gb="0",enable_prefix_caching="True",engine="0",gpu_memory_utilization="0.9",is_attention_free="False",num_cpu_blocks="None",num_gpu_blocks="28672",num_gpu_blocks_override="None",prefix_caching_hash_algo="sha256",sliding_window="None",swap_space="4",swap_space_bytes="4294967296"} 1.0',
  ]);
  const counter = (name: string, help: string, series: [string, number][]) => {
    family(`${name}_total`, 'counter', help, series.map(([l, v]) => `${name}_total{${l}} ${py(v)}`));
    family(`${name}_created`, 'gauge', help, series.map(([l]) => `${name}_created{${l}} ${py(created)}`));
  };
  counter('vllm:num_preemptions', 'Cumulative number of preemption from the engine.', [[lbl, 12]]);
  counter('vllm:prompt_tokens', 'Number of prefill tokens processed.', [[lbl, 8128902]]);
  counter('vllm:generation_tokens', 'Number of generation tokens processed.', [[lbl, 7557572]]);
  counter('vllm:request_success', 'Count of successfully processed requests.', [
    [`engine="0",finished_reason="stop",model_name="${MODEL}"`, 10231],
    [`engine="0",finished_reason="length",model_name="${MODEL}"`, 777],
    [`engine="0",finished_reason="abort",model_name="${MODEL}"`, 3],
  ]);
  counter('vllm:prefix_cache_queries', 'Prefix cache queries, in terms of number of queried tokens.', [[lbl, 8128902]]);
  counter('vllm:prefix_cache_hits', 'Prefix cache hits, in terms of number of cached tokens.', [[lbl, 3251760]]);
  const histogram = (name: string, help: string, bounds: number[], count: number, sum: number) => {
    const lines: string[] = [];
    for (let i = 0; i < bounds.length; i++) {
      const c = Math.round(count * Math.min(1, ((i + 1) / bounds.length) ** 2));
      lines.push(`${name}_bucket{engine="0",le="${py(bounds[i])}",model_name="${MODEL}"} ${py(c)}`);
    }
    lines.push(`${name}_bucket{engine="0",le="+Inf",model_name="${MODEL}"} ${py(count)}`);
    lines.push(`${name}_count{${lbl}} ${py(count)}`, `${name}_sum{${lbl}} ${py(sum)}`);
    family(name, 'histogram', help, lines);
    family(`${name}_created`, 'gauge', help, [`${name}_created{${lbl}} ${py(created)}`]);
  };
  histogram('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', TTFT_BUCKETS, 11008, 2351.8979474117756);
  histogram('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', ITL_BUCKETS, 7400757, 86696.45791549598);
  histogram('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', LATENCY_BUCKETS, 11008, 31160.93850019932);
  histogram('vllm:request_queue_time_seconds', 'Histogram of time spent in WAITING phase for request.', LATENCY_BUCKETS, 11008, 112.03);
  histogram('vllm:request_prompt_tokens', 'Number of prefill tokens processed.', TOKENS_125, 11008, 8128902);
  histogram('vllm:request_generation_tokens', 'Number of generation tokens processed.', TOKENS_125, 11008, 7557572);
  histogram('vllm:iteration_tokens_total', 'Histogram of number of tokens per engine_step.', ITERATION_BUCKETS, 1622361, 15686474);
  return out.join('\n') + '\n';
}

