import { describe, it, expect } from 'vitest';
import { thrown } from './helpers/thrown.ts';
import { readFileSync } from 'node:fs';
import { parsePrometheusText } from '../src/metrics/prom-text.ts';
import {
  DEFAULT_ENGINE,
  ENGINE_TYPE_LABELS,
  ENGINES,
  MissingMetricError,
  engineForLabels,
  engineNameForLabels,
  extractMetrics,
  formatMetricSpec,
  getEngine,
  parseMetricSpec,
  wantedMetricNames,
  type EngineMapping,
  type ModelServerMetrics,
} from '../src/metrics/engines.ts';

function fixture(name: string): string {
  return readFileSync(new URL(`./fixtures/metrics/${name}`, import.meta.url), 'utf8');
}

function engine(name: string): EngineMapping {
  const e = getEngine(name);
  if (e === undefined) throw new Error(`no engine ${name}`);
  return e;
}

/** Extract through the filtered parse (the production path) and check the unfiltered
 * parse gives the same answer. */
function extract(engineName: string, text: string): ModelServerMetrics {
  const e = engine(engineName);
  const filtered = extractMetrics(e, parsePrometheusText(text, wantedMetricNames(e)));
  expect(extractMetrics(e, parsePrometheusText(text))).toEqual(filtered);
  return filtered;
}

function extractError(engineName: string, text: string): MissingMetricError {
  return thrown(() => extractMetrics(engine(engineName), parsePrometheusText(text)), MissingMetricError);
}

const VLLM_COMPOSITE = fixture('vllm-composite-datadog-vllm_metrics.prom');
const KV_LINE = 'vllm:kv_cache_usage_perc{model_name="facebook/opt-125m"} 0.0';
const GPU_LINE = 'vllm:gpu_cache_usage_perc{model_name="facebook/opt-125m"} 0.0';

describe('engine selection', () => {
  it('exposes the label keys and default', () => {
    expect(ENGINE_TYPE_LABELS).toEqual(['llm-d.ai/engine-type', 'inference.networking.k8s.io/engine-type']);
    expect(DEFAULT_ENGINE).toBe('vllm');
    expect([...ENGINES.keys()].sort()).toEqual(['sglang', 'tgi', 'triton-tensorrt-llm', 'trtllm-serve', 'vllm']);
    for (const [k, e] of ENGINES) expect(e.name).toBe(k);
  });

  it('picks the engine from pod labels, llm-d.ai label first, GAIE\'s as the fallback', () => {
    expect(engineForLabels({}).name).toBe('vllm');
    expect(engineForLabels({ 'inference.networking.k8s.io/engine-type': 'sglang' }).name).toBe('sglang');
    expect(engineForLabels({ 'llm-d.ai/engine-type': 'trtllm-serve' }).name).toBe('trtllm-serve');
    expect(
      engineForLabels({ 'inference.networking.k8s.io/engine-type': 'tgi', 'llm-d.ai/engine-type': 'sglang' }).name,
    ).toBe('sglang');
    // An empty llm-d label does not hide the GAIE one.
    expect(
      engineNameForLabels({ 'inference.networking.k8s.io/engine-type': 'sglang', 'llm-d.ai/engine-type': '' }),
    ).toBe('sglang');
  });

  it('falls back to vLLM for unknown engines but lets the caller see the raw name', () => {
    const labels = { 'llm-d.ai/engine-type': 'mystery-engine' };
    expect(engineForLabels(labels).name).toBe('vllm');
    expect(engineNameForLabels(labels)).toBe('mystery-engine');
    expect(getEngine('mystery-engine')).toBeUndefined();
    expect(getEngine('constructor')).toBeUndefined();
    expect(engineNameForLabels({})).toBe(DEFAULT_ENGINE);
  });

  it('lists the sample names each engine needs (cached)', () => {
    expect([...wantedMetricNames(engine('vllm'))].sort()).toEqual([
      'vllm:cache_config_info',
      'vllm:gpu_cache_usage_perc',
      'vllm:kv_cache_usage_perc',
      'vllm:lora_requests_info',
      'vllm:num_requests_running',
      'vllm:num_requests_waiting',
    ]);
    expect(wantedMetricNames(engine('vllm'))).toBe(wantedMetricNames(engine('vllm')));
    expect([...wantedMetricNames(engine('triton-tensorrt-llm'))].sort()).toEqual([
      'nv_trt_llm_kv_cache_block_metrics',
      'nv_trt_llm_request_metrics',
    ]);
    expect([...wantedMetricNames(engine('tgi'))].sort()).toEqual(['tgi_batch_current_size', 'tgi_queue_size']);
    expect([...wantedMetricNames(engine('sglang'))].sort()).toEqual([
      'sglang:cache_config_info',
      'sglang:num_queue_reqs',
      'sglang:num_running_reqs',
      'sglang:token_usage',
    ]);
    expect([...wantedMetricNames(engine('trtllm-serve'))].sort()).toEqual([
      'trtllm_kv_cache_max_blocks',
      'trtllm_kv_cache_tokens_per_block',
      'trtllm_kv_cache_utilization',
      'trtllm_num_requests_running',
      'trtllm_num_requests_waiting',
    ]);
  });
});

describe('vllm', () => {
  it('reads the composite fixture, cache_config block_size 16 / num_gpu_blocks 7281', () => {
    expect(extract('vllm', VLLM_COMPOSITE)).toEqual({
      waitingQueueSize: 0,
      runningRequests: 0,
      kvCacheUsage: 0,
      cacheBlockSize: 16,
      cacheNumGpuBlocks: 7281,
    });
  });

  it('prefers kv_cache_usage_perc over the deprecated gpu_cache_usage_perc', () => {
    expect(VLLM_COMPOSITE).toContain(KV_LINE);
    expect(VLLM_COMPOSITE).toContain(GPU_LINE);
    const page = VLLM_COMPOSITE.replace(KV_LINE, KV_LINE.replace(' 0.0', ' 0.42')).replace(
      GPU_LINE,
      GPU_LINE.replace(' 0.0', ' 0.13'),
    );
    expect(extract('vllm', page).kvCacheUsage).toBe(0.42);
  });

  it('falls back to gpu_cache_usage_perc when kv_cache_usage_perc is absent', () => {
    const page = VLLM_COMPOSITE.replace(KV_LINE, '').replace(GPU_LINE, GPU_LINE.replace(' 0.0', ' 0.13'));
    expect(extract('vllm', page).kvCacheUsage).toBe(0.13);
  });

  it('names both KV metrics when neither is present', () => {
    const err = extractError('vllm', VLLM_COMPOSITE.replace(KV_LINE, '').replace(GPU_LINE, ''));
    expect(err.metric).toBe('vllm:kv_cache_usage_perc');
    expect(err.engine).toBe('vllm');
    expect(err.message).toContain('vllm:kv_cache_usage_perc');
    expect(err.message).toContain('vllm:gpu_cache_usage_perc');
  });

  it('throws naming the missing queue or running metric', () => {
    // The design-doc sample has num_requests_running but no num_requests_waiting.
    const err = extractError('vllm', fixture('vllm-v1-docs-design-metrics-example.prom'));
    expect(err.metric).toBe('vllm:num_requests_waiting');
    expect(err.message).toMatch(/vllm:num_requests_waiting/);
    const noRunning = VLLM_COMPOSITE.replace('vllm:num_requests_running{model_name="facebook/opt-125m"} 0.0', '');
    expect(extractError('vllm', noRunning).metric).toBe('vllm:num_requests_running');
    expect(() => extractMetrics(engine('vllm'), new Map())).toThrow(/vllm:num_requests_waiting/);
  });

  it('reads the real counts from a busy page', () => {
    const page = [
      'vllm:num_requests_running{engine="0",model_name="m"} 8.0',
      'vllm:num_requests_waiting{engine="0",model_name="m"} 3.0',
      'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.6123',
    ].join('\n');
    expect(extract('vllm', page)).toEqual({ waitingQueueSize: 3, runningRequests: 8, kvCacheUsage: 0.6123 });
  });

  it('data parallel: sums waiting/running across engine labels, max of KV, first cache config', () => {
    const page = [
      'vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="1000"} 1.0',
      'vllm:cache_config_info{block_size="16",engine="1",num_gpu_blocks="999"} 1.0',
      'vllm:num_requests_running{engine="0",model_name="m"} 4.0',
      'vllm:num_requests_running{engine="1",model_name="m"} 6.0',
      'vllm:num_requests_running{engine="2",model_name="m"} 1.0',
      'vllm:num_requests_waiting{engine="0",model_name="m"} 2.0',
      'vllm:num_requests_waiting{engine="1",model_name="m"} 5.0',
      'vllm:num_requests_waiting{engine="2",model_name="m"} 0.0',
      'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25',
      'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.75',
      'vllm:kv_cache_usage_perc{engine="2",model_name="m"} 0.5',
      // v0.10.x emits the deprecated twin too; it must not be mixed in.
      'vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.99',
    ].join('\n');
    expect(extract('vllm', page)).toEqual({
      waitingQueueSize: 7,
      runningRequests: 11,
      kvCacheUsage: 0.75,
      cacheBlockSize: 16,
      cacheNumGpuBlocks: 1000,
    });
  });

  it('several series of one engine value are not added up (max)', () => {
    const page = [
      'vllm:num_requests_running{engine="0",model_name="a"} 4.0',
      'vllm:num_requests_running{engine="0",model_name="b"} 6.0',
      'vllm:num_requests_waiting{engine="0",model_name="a"} 2.0',
      'vllm:num_requests_waiting{engine="0",model_name="b"} 1.0',
      'vllm:num_requests_waiting{engine="1",model_name="a"} 10.0',
      'vllm:kv_cache_usage_perc{model_name="a"} 0.1',
      'vllm:kv_cache_usage_perc{model_name="b"} 0.2',
    ].join('\n');
    expect(extract('vllm', page)).toEqual({ waitingQueueSize: 12, runningRequests: 6, kvCacheUsage: 0.2 });
  });

  it('ignores NaN samples; NaN only counts as missing', () => {
    const page = [
      'vllm:num_requests_running 1',
      'vllm:num_requests_waiting{engine="0"} NaN',
      'vllm:num_requests_waiting{engine="1"} 2',
      'vllm:kv_cache_usage_perc NaN',
      'vllm:gpu_cache_usage_perc 0.3',
    ].join('\n');
    expect(extract('vllm', page)).toEqual({ waitingQueueSize: 2, runningRequests: 1, kvCacheUsage: 0.3 });
    const err = extractError('vllm', 'vllm:num_requests_waiting NaN\nvllm:num_requests_running 1');
    expect(err.metric).toBe('vllm:num_requests_waiting');
    expect(err.message).toContain('no series with matching labels');
  });

  it('LoRA: the series with the largest value (newest timestamp) wins', () => {
    const page = [
      'vllm:num_requests_running 0',
      'vllm:num_requests_waiting 0',
      'vllm:kv_cache_usage_perc 0',
      '# HELP vllm:lora_requests_info Running stats on lora requests.',
      '# TYPE vllm:lora_requests_info gauge',
      'vllm:lora_requests_info{max_lora="4",running_lora_adapters="old-a",waiting_lora_adapters=""} 1.7537953e+09',
      'vllm:lora_requests_info{max_lora="4",running_lora_adapters="sql-lora, tweet-lora ",waiting_lora_adapters="b,,c"} 1.7537953269352946e+09',
      'vllm:lora_requests_info{max_lora="4",running_lora_adapters="",waiting_lora_adapters="older"} 1.7537952e+09',
    ].join('\n');
    expect(extract('vllm', page).lora).toEqual({
      maxActiveModels: 4,
      activeModels: ['sql-lora', 'tweet-lora'],
      waitingModels: ['b', 'c'],
    });
  });

  it('LoRA: empty lists, missing max_lora, absent metric', () => {
    const base = 'vllm:num_requests_running 0\nvllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0\n';
    expect(
      extract('vllm', base + 'vllm:lora_requests_info{max_lora="2",running_lora_adapters="",waiting_lora_adapters=""} 5').lora,
    ).toEqual({ maxActiveModels: 2, activeModels: [], waitingModels: [] });
    expect(extract('vllm', base + 'vllm:lora_requests_info{running_lora_adapters="x"} 5').lora).toEqual({
      maxActiveModels: 0,
      activeModels: ['x'],
      waitingModels: [],
    });
    const m = extract('vllm', base);
    expect(m.lora).toBeUndefined();
    expect(m.cacheBlockSize).toBeUndefined();
    expect(m.cacheNumGpuBlocks).toBeUndefined();
  });

  it('cache_config_info: "None" and non-numbers are ignored', () => {
    const base = 'vllm:num_requests_running 0\nvllm:num_requests_waiting 0\nvllm:kv_cache_usage_perc 0\n';
    const m = extract('vllm', base + 'vllm:cache_config_info{block_size="32",engine="0",num_gpu_blocks="None"} 1.0');
    expect(m.cacheBlockSize).toBe(32);
    expect(m.cacheNumGpuBlocks).toBeUndefined();
    const m2 = extract('vllm', base + 'vllm:cache_config_info{block_size="auto",num_gpu_blocks="12.5"} 1.0');
    expect(m2.cacheBlockSize).toBeUndefined();
    expect(m2.cacheNumGpuBlocks).toBeUndefined();
  });
});

describe('sglang', () => {
  it('reads the 0.4 docs sample: queue 2826, running 162, token_usage 0.28', () => {
    expect(extract('sglang', fixture('sglang-0.4-docs-production_metrics.prom'))).toEqual({
      waitingQueueSize: 2826,
      runningRequests: 162,
      kvCacheUsage: 0.28,
    });
  });

  it('reads the 0.5.10 sample (tp_rank label)', () => {
    expect(extract('sglang', fixture('sglang-0.5.10-datadog-sglang_metrics.prom'))).toEqual({
      waitingQueueSize: 0,
      runningRequests: 0,
      kvCacheUsage: 0.25,
    });
  });

  it('tp ranks report the same queue: max, not sum; cache_config_info page_size/num_pages', () => {
    const page = [
      'sglang:num_queue_reqs{model_name="m",tp_rank="0"} 5',
      'sglang:num_queue_reqs{model_name="m",tp_rank="1"} 5',
      'sglang:num_running_reqs{model_name="m",tp_rank="0"} 7',
      'sglang:num_running_reqs{model_name="m",tp_rank="1"} 6',
      'sglang:token_usage{model_name="m",tp_rank="0"} 0.4',
      'sglang:token_usage{model_name="m",tp_rank="1"} 0.41',
      'sglang:cache_config_info{model_name="m",num_pages="27000",page_size="1"} 1',
    ].join('\n');
    expect(extract('sglang', page)).toEqual({
      waitingQueueSize: 5,
      runningRequests: 7,
      kvCacheUsage: 0.41,
      cacheBlockSize: 1,
      cacheNumGpuBlocks: 27000,
    });
  });

  it('does not read vLLM names', () => {
    expect(extractError('sglang', VLLM_COMPOSITE).metric).toBe('sglang:num_queue_reqs');
  });
});

describe('tgi', () => {
  it('reads queue and batch size from the excerpt; no KV gauge means 0', () => {
    const page = fixture('tgi-datadog-payload-excerpt.prom');
    expect(extract('tgi', page)).toEqual({ waitingQueueSize: 0, runningRequests: 0, kvCacheUsage: 0 });
    const busy = page.replace('\ntgi_queue_size 0\n', '\ntgi_queue_size 12\n').replace(
      '\ntgi_batch_current_size 0\n',
      '\ntgi_batch_current_size 3\n',
    );
    expect(extract('tgi', busy)).toEqual({ waitingQueueSize: 12, runningRequests: 3, kvCacheUsage: 0 });
  });
});

describe('trtllm-serve', () => {
  it('reads its gauges, block size and count from gauges', () => {
    const page = [
      '# HELP trtllm_num_requests_waiting Number of requests waiting',
      '# TYPE trtllm_num_requests_waiting gauge',
      'trtllm_num_requests_waiting{model_name="llama"} 4.0',
      'trtllm_num_requests_running{model_name="llama"} 9.0',
      'trtllm_kv_cache_utilization{model_name="llama"} 0.35',
      'trtllm_kv_cache_tokens_per_block{model_name="llama"} 32.0',
      'trtllm_kv_cache_max_blocks{model_name="llama"} 4096.0',
    ].join('\n');
    expect(extract('trtllm-serve', page)).toEqual({
      waitingQueueSize: 4,
      runningRequests: 9,
      kvCacheUsage: 0.35,
      cacheBlockSize: 32,
      cacheNumGpuBlocks: 4096,
    });
    expect(extractError('trtllm-serve', page.replace(/trtllm_kv_cache_utilization.*\n/, '')).metric).toBe(
      'trtllm_kv_cache_utilization',
    );
  });
});

describe('triton-tensorrt-llm', () => {
  const page = [
    '# HELP nv_trt_llm_request_metrics TRT LLM request metrics',
    '# TYPE nv_trt_llm_request_metrics gauge',
    'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="context",version="1"} 1',
    'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="scheduled",version="1"} 6',
    'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="max",version="1"} 64',
    'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"} 6',
    'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="waiting",version="1"} 2',
    '# TYPE nv_trt_llm_kv_cache_block_metrics gauge',
    'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="free",model="tensorrt_llm",version="1"} 1500',
    'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="tensorrt_llm",version="1"} 2000',
    'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used",model="tensorrt_llm",version="1"} 500',
    'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="tokens_per",model="tensorrt_llm",version="1"} 64',
    'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",model="tensorrt_llm",version="1"} 0.25',
  ].join('\n');

  it('selects series by label equality', () => {
    expect(extract('triton-tensorrt-llm', page)).toEqual({
      waitingQueueSize: 2,
      runningRequests: 6,
      kvCacheUsage: 0.25,
      cacheBlockSize: 64,
      cacheNumGpuBlocks: 2000,
    });
  });

  it('says when the family is present but no series matches', () => {
    const err = extractError('triton-tensorrt-llm', page.replace(/.*request_type="waiting".*\n/, ''));
    expect(err.metric).toBe('nv_trt_llm_request_metrics{request_type="waiting"}');
    expect(err.message).toContain('no series with matching labels');
  });
});

describe('metric specs', () => {
  it('parses GAIE selectors', () => {
    expect(parseMetricSpec('')).toBeUndefined();
    expect(parseMetricSpec('  ')).toBeUndefined();
    expect(parseMetricSpec('vllm:num_requests_waiting')).toEqual({ name: 'vllm:num_requests_waiting' });
    expect(parseMetricSpec('m{}')).toEqual({ name: 'm' });
    expect(parseMetricSpec('nv_trt_llm_request_metrics{request_type=waiting}')).toEqual({
      name: 'nv_trt_llm_request_metrics',
      labels: { request_type: 'waiting' },
    });
    expect(parseMetricSpec('m{a="x,y", b = z,}')).toEqual({ name: 'm', labels: { a: 'x,y', b: 'z' } });
    expect(parseMetricSpec('m{a="q\\"q"}')).toEqual({ name: 'm', labels: { a: 'q"q' } });
  });

  it('rejects what it cannot honour', () => {
    for (const bad of ['m{a!="x"}', 'm{a=~"x"}', 'm{a=~x}', 'm{a==x}', 'm{a="x" b="y"}', '9m', 'm{a="x",a="y"}', 'm{a}', 'sum(m)']) {
      expect(() => parseMetricSpec(bad), bad).toThrow(/invalid metric spec/);
    }
  });

  it('formats specs for messages', () => {
    expect(formatMetricSpec({ name: 'm' })).toBe('m');
    expect(formatMetricSpec({ name: 'm', labels: { a: 'x', b: 'y' } })).toBe('m{a="x",b="y"}');
  });

  it('built-in mappings are frozen', () => {
    const e = engine('vllm');
    expect(Object.isFrozen(e)).toBe(true);
    expect(Object.isFrozen(e.kvUsage)).toBe(true);
    expect(Object.isFrozen(e.waiting)).toBe(true);
  });
});
