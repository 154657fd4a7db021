// llm-d Router v0.10's metric names (docs/metrics.md): every llm_d_epp_*
// series llm-epp measures is on the page with llm-d's labels, each deprecated
// twin next to it with the same observations, the pool's standard-deviation
// gauges, the processing-overhead histograms, the opt-in ext_proc stream
// metrics, and the fairness-id label capped like model names.
import { EventEmitter } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import { observeStream } from '../src/extproc/stream-metrics.ts';
import { parsePrometheusText } from '../src/metrics/prom-text.ts';
import { MAX_LABEL_VALUES, OTHER_LABEL } from '../src/observability/bounded.ts';
import { EppMetrics } from '../src/observability/metrics.ts';
import { Datastore } from '../src/pool/datastore.ts';
import { RequestPolicy } from '../src/request-control/policy.ts';
import { createLogger } from '../src/log.ts';
import { createRegistry } from '../src/builtin-plugins.ts';
import { loadConfig, parseConfigText } from '../src/scheduling/config.ts';
import { PipelineScheduler } from '../src/scheduling/pipeline.ts';
import { makeDirector, makePool, request } from './helpers/scheduling.ts';
import { startTestApp } from './helpers/app-harness.ts';
import type { EnvoyClient } from './helpers/envoy-client.ts';
import { FakePod } from './helpers/fake-pod.ts';

type Samples = Map<string, { labels: Record<string, string>; value: number }[]>;

async function page(app: App): Promise<Samples> {
  return parsePrometheusText(await app.metrics.registry.metrics());
}

function sum(s: Samples, name: string, match: Record<string, string> = {}): number {
  let total = 0;
  for (const x of s.get(name) ?? []) if (Object.entries(match).every(([k, v]) => x.labels[k] === v)) total += x.value;
  return total;
}

describe('llm_d_epp_* metrics with their deprecated twins', () => {
  const pods = [new FakePod({ waiting: 1, running: 2, kv: 0.2 }), new FakePod({ waiting: 5, running: 6, kv: 0.6 })];
  let app: App;
  let client: EnvoyClient;

  beforeAll(async () => {
    await Promise.all(pods.map((p) => p.start()));
    ({ app, client } = await startTestApp([`--endpoints=${pods.map((p) => p.key).join(',')}`, '--enable-grpc-stream-metrics'], { waitReady: 2 }));
    const usage = '{"id":"x","usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}}';
    await client.send({
      body: JSON.stringify({ model: 'm1', prompt: 'hello' }),
      headers: { 'x-llm-d-inference-fairness-id': 'tenant-a' },
      response: { status: 200, headers: { 'content-type': 'application/json' }, chunks: [usage] },
    });
    const sse = [
      'data: {"choices":[{"text":"a"}]}\n\n',
      'data: {"choices":[{"text":"b"}]}\n\n',
      'data: {"choices":[{"text":"c"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}\n\n',
      'data: [DONE]\n\n',
    ];
    await client.send({
      body: JSON.stringify({ model: 'm1', prompt: 'hello', stream: true }),
      headers: { 'x-gateway-inference-fairness-id': 'tenant-b' },
      response: { status: 200, headers: { 'content-type': 'text/event-stream' }, chunks: sse },
    });
    // One request llm-epp answers itself (400: no model), for the error series.
    await client.send({ body: JSON.stringify({ prompt: 'no model' }) });
  });
  afterAll(async () => {
    client.close();
    await app.stop(100);
    await Promise.all(pods.map((p) => p.stop()));
  });

  it('request series carry model, target model, fairness id and priority; the deprecated ones the labels they had', async () => {
    const s = await page(app);
    expect(sum(s, 'llm_d_epp_request_total', { model_name: 'm1', target_model_name: 'm1', fairness_id: 'tenant-a', priority: '0' })).toBe(1);
    expect(sum(s, 'llm_d_epp_request_total', { fairness_id: 'tenant-b' })).toBe(1);
    expect(sum(s, 'inference_objective_request_total', { model_name: 'm1', priority: '0' })).toBe(2);
    for (const x of s.get('inference_objective_request_total')!) expect('fairness_id' in x.labels).toBe(false);
    // Histograms: each llm_d_epp_ series and its twin saw the same requests.
    for (const [now, old, n] of [
      ['llm_d_epp_request_duration_seconds_count', 'inference_objective_request_duration_seconds_count', 2],
      ['llm_d_epp_request_size_bytes_count', 'inference_objective_request_sizes_count', 2],
      ['llm_d_epp_response_size_bytes_count', 'inference_objective_response_sizes_count', 2],
      ['llm_d_epp_request_input_tokens_count', 'inference_objective_input_tokens_count', 2],
      ['llm_d_epp_request_output_tokens_count', 'inference_objective_output_tokens_count', 2],
      ['llm_d_epp_request_cached_tokens_count', 'inference_objective_prompt_cached_tokens_count', 1],
      ['llm_d_epp_request_ntpot_seconds_count', 'inference_objective_normalized_time_per_output_token_seconds_count', 2],
      ['llm_d_epp_request_ttft_seconds_count', 'inference_objective_request_ttft_seconds_count', 2],
    ] as const) {
      expect(sum(s, now), now).toBe(n);
      expect(sum(s, old), old).toBe(n);
    }
    expect(sum(s, 'llm_d_epp_request_ttft_seconds_count', { streaming: 'true', fairness_id: 'tenant-b' })).toBe(1);
    expect(sum(s, 'llm_d_epp_request_ttft_seconds_count', { streaming: 'false', fairness_id: 'tenant-a' })).toBe(1);
    // Streaming-only series: the SSE response's four chunks give three gaps.
    expect(sum(s, 'llm_d_epp_request_streaming_tpot_seconds_count')).toBe(1);
    expect(sum(s, 'llm_d_epp_request_streaming_itl_seconds_count', { fairness_id: 'tenant-b' })).toBe(3);
    expect(sum(s, 'llm_d_epp_request_running', { model_name: 'm1' })).toBe(0);
    expect(sum(s, 'llm_d_epp_request_error_total', { error_code: 'BadRequest', fairness_id: 'default-flow', priority: '0' })).toBe(1);
    expect(sum(s, 'inference_objective_request_error_total', { error_code: 'BadRequest' })).toBe(1);
  });

  it('scheduler, processing-overhead and info series', async () => {
    const s = await page(app);
    expect(sum(s, 'llm_d_epp_scheduler_e2e_duration_seconds_count')).toBe(2);
    expect(sum(s, 'inference_extension_scheduler_e2e_duration_seconds_count')).toBe(2);
    const attempts = s.get('llm_d_epp_scheduler_attempts_total')!;
    expect(attempts.every((a) => 'endpoint_name' in a.labels && !('pod_name' in a.labels))).toBe(true);
    expect(sum(s, 'llm_d_epp_scheduler_attempts_total', { status: 'success' })).toBe(2);
    expect(sum(s, 'inference_extension_scheduler_attempts_total', { status: 'success' })).toBe(2);
    expect(sum(s, 'llm_d_epp_request_processing_duration_seconds_count')).toBe(2);
    expect(sum(s, 'llm_d_epp_response_processing_duration_seconds_count')).toBe(2);
    expect(sum(s, 'llm_d_epp_plugin_duration_seconds_count')).toBe(sum(s, 'inference_extension_plugin_duration_seconds_count'));
    expect(sum(s, 'llm_d_epp_plugin_duration_seconds_count')).toBeGreaterThan(0);
    expect(sum(s, 'llm_d_epp_info')).toBe(1);
    expect(sum(s, 'inference_extension_info')).toBe(1);
  });

  it('pool gauges: averages, standard deviations, ready endpoints and per-endpoint queues, with twins', async () => {
    const s = await page(app);
    expect(sum(s, 'llm_d_epp_average_queue_size')).toBe(3);
    expect(sum(s, 'inference_pool_average_queue_size')).toBe(3);
    expect(sum(s, 'llm_d_epp_std_dev_queue_size')).toBe(2);
    expect(sum(s, 'llm_d_epp_average_running_requests')).toBe(4);
    expect(sum(s, 'llm_d_epp_std_dev_running_requests')).toBe(2);
    expect(sum(s, 'llm_d_epp_std_dev_kv_cache_utilization')).toBeCloseTo(0.2, 9);
    expect(sum(s, 'llm_d_epp_ready_endpoints')).toBe(2);
    expect(sum(s, 'inference_pool_ready_pods')).toBe(2);
    expect(s.get('llm_d_epp_per_endpoint_queue_size')!.map((x) => x.labels.model_server_endpoint).sort()).toEqual(pods.map((p) => p.key).sort());
    expect(sum(s, 'inference_pool_per_pod_queue_size')).toBe(6);
  });

  it('--enable-grpc-stream-metrics: streams in flight, their duration, and how they ended by gRPC code', async () => {
    const s = await page(app);
    expect(sum(s, 'llm_d_epp_extproc_streams_total', { code: 'OK' })).toBe(3);
    expect(sum(s, 'llm_d_epp_extproc_stream_duration_seconds_count')).toBe(3);
    expect(sum(s, 'llm_d_epp_extproc_streams_inflight')).toBe(0);
  });
});

describe('observeStream', () => {
  it('counts a stream once, by the code it was ended with: OK, an error\'s code, or Canceled', async () => {
    const m = new EppMetrics(new Datastore(), { poolName: 'p', stalenessThresholdMs: 1000, version: 't', processMetrics: false, streamMetrics: true });
    const ok = new EventEmitter();
    const idle = new EventEmitter();
    const gone = new EventEmitter();
    for (const c of [ok, idle, gone]) observeStream(c, m.streams!);
    expect((await m.streams!.inflight.get()).values[0].value).toBe(3);
    ok.emit('finish');
    ok.emit('close');
    idle.emit('error', { code: 4, details: 'idle' });
    idle.emit('finish');
    gone.emit('cancelled', 'cancelled');
    gone.emit('close');
    const s = parsePrometheusText(await m.registry.metrics());
    expect(Object.fromEntries(s.get('llm_d_epp_extproc_streams_total')!.map((x) => [x.labels.code, x.value]))).toEqual({ OK: 1, DeadlineExceeded: 1, Canceled: 1 });
    expect(sum(s, 'llm_d_epp_extproc_streams_inflight')).toBe(0);
    expect(sum(s, 'llm_d_epp_extproc_stream_duration_seconds_count')).toBe(3);
  });
});

describe('stream metrics are opt-in', () => {
  it('without the flag, no llm_d_epp_extproc_* series', async () => {
    const pod = new FakePod();
    await pod.start();
    const { app, client } = await startTestApp([`--endpoints=${pod.key}`], { waitReady: 1 });
    try {
      await client.send({ body: JSON.stringify({ model: 'm', prompt: 'p' }) });
      const text = await app.metrics.registry.metrics();
      expect(text).not.toContain('llm_d_epp_extproc_streams');
      expect(text).toContain('llm_d_epp_request_total');
    } finally {
      client.close();
      await app.stop(100);
      await pod.stop();
    }
  });
});

describe('fairness_id label values', () => {
  it('are capped at 1,000 distinct values, then "other", separately from model names', () => {
    const m = new EppMetrics(new Datastore(), { poolName: 'p', stalenessThresholdMs: 1000, version: 't', processMetrics: false });
    const labels = Array.from({ length: MAX_LABEL_VALUES + 200 }, (_, i) => m.fairnessLabel(`tenant-${i}`));
    expect(new Set(labels).size).toBe(MAX_LABEL_VALUES + 1);
    expect(labels.at(-1)).toBe(OTHER_LABEL);
    expect(m.fairnessLabel('tenant-0')).toBe('tenant-0');
    // Model names have their own budget.
    expect(m.modelLabel('a-model')).toBe('a-model');
    expect(m.fairnessLabel('x'.repeat(10_000)).length).toBeLessThan(200);
  });
});

describe('model names an InferenceModelRewrite configures', () => {
  it('keep their own label past the cap (llm-d Router PR #1909); other names still fold into "other"', () => {
    const m = new EppMetrics(new Datastore(), { poolName: 'p', stalenessThresholdMs: 1000, version: 't', processMetrics: false, maxModelLabels: 2 });
    const policy = new RequestPolicy();
    policy.onRewrites = (models) => m.pinModels(models);
    expect([m.modelLabel('a'), m.modelLabel('b'), m.modelLabel('c')]).toEqual(['a', 'b', OTHER_LABEL]);
    policy.setRewrites([{ name: 'canary', createdAt: 0, rules: [{ matches: ['food-review'], targets: [{ modelRewrite: 'food-review-v2', weight: 1 }] }] }]);
    expect([m.modelLabel('food-review'), m.modelLabel('food-review-v2'), m.modelLabel('d')]).toEqual(['food-review', 'food-review-v2', OTHER_LABEL]);
    policy.setRewrites([]);
    expect(m.modelLabel('food-review-v2')).toBe(OTHER_LABEL);
  });
});


describe('llm_d_epp_inflight_requests / _tokens (an inflight-load-producer is configured)', () => {
  const CONFIG = `apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: inflight-load-producer
  name: load
- type: active-request-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: active-request-scorer
  - pluginRef: max-score-picker
`;
  const OPTIONS = { metricsStalenessThresholdMs: 60_000, fallbackEndpoints: 0, disableEndpointSubsetFilter: false };

  it('per endpoint, fairness id and priority while requests are in flight; moved with a fallback; removed when done', async () => {
    const { pool, endpoints } = makePool([{ name: 'a' }, { name: 'b' }]);
    const metrics = new EppMetrics(pool, { poolName: 'p', stalenessThresholdMs: 60_000, version: 't', processMetrics: false });
    const log = createLogger('silent');
    const config = loadConfig(parseConfigText(CONFIG, 'c'), createRegistry(), { pool, log, metrics, random: Math.random }, 'c');
    const director = makeDirector(pool, new PipelineScheduler(config, log, metrics), OPTIONS, metrics, log);
    const series = async () =>
      Object.fromEntries(
        (await metrics.inflightRequests.get()).values.map((v) => [`${v.labels.endpoint_name}/${v.labels.fairness_id}/${v.labels.priority}/${v.labels.producer_name}`, v.value]),
      );
    const r1 = director.pick({ ...request({ model: 'm', prompt: 'x'.repeat(400) }), fairnessId: 'tenant-a' }, undefined);
    const r2 = director.pick({ ...request({ model: 'm', prompt: 'y'.repeat(400) }), fairnessId: 'tenant-b', priority: 2 }, undefined);
    const first = r1.primary.name;
    const second = r2.primary.name;
    expect(new Set([first, second])).toEqual(new Set(['a', 'b'])); // active-request-scorer spreads them
    expect(await series()).toEqual({ [`${first}/tenant-a/0/load`]: 1, [`${second}/tenant-b/2/load`]: 1 });
    const tokens = (await metrics.inflightTokens.get()).values;
    expect(tokens.every((t) => t.value === 100)).toBe(true); // 400 characters ≈ 100 tokens, nothing cached
    // The gateway reports that r1 was served by the other endpoint: its load moves there.
    const other = endpoints.find((e) => e.name !== first)!;
    director.responseReceived(r1, other.key, '200');
    expect(await series()).toEqual({ [`${second}/tenant-a/0/load`]: 1, [`${second}/tenant-b/2/load`]: 1 });
    director.responseComplete(r1, true);
    director.responseComplete(r2, false);
    expect(await series()).toEqual({});
    expect((await metrics.inflightTokens.get()).values).toEqual([]);
  });
});
